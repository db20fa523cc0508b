//! Node errors as gRPC statuses, and caller identity from request metadata: the server's
//! side of the metadata in `api::metadata` (the client reads it in `client::status`).

use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use crate::api::metadata::CallerSeq;
use crate::api::metadata::{mark_state_machine, not_leader, CALLER_ID_KEY, CALLER_SEQ_KEY, NEEDS_VERSION_KEY};
use crate::codec::wire::result_code;
use crate::codec::DecodeError;
use crate::node::replicated::EntryError;
use crate::node::{NodeError, ReadRefused};

fn code_of(code: crate::api::ResultCode) -> Code {
    Code::from_i32(code as i32)
}

/// Each node error as its own status; NotLeader carries the leader in the metadata.
pub fn status_of(e: NodeError) -> Status {
    let message = e.to_string();
    match e {
        NodeError::NotLeader { leader_id, leader_addr } => not_leader(leader_id, leader_addr),
        NodeError::Dropped(_) | NodeError::Stopped => Status::unavailable(message),
        NodeError::Fsm(e) => {
            let mut status = Status::new(code_of(result_code(&e)), message);
            mark_state_machine(&mut status);
            status
        }
        NodeError::Entry(EntryError::Malformed(_) | EntryError::Unsupported(_)) => Status::internal(message),
        NodeError::Entry(EntryError::TooOldToDeduplicate { .. }) => Status::aborted(message),
        NodeError::Overloaded => Status::resource_exhausted(message),
        NodeError::Invalid(_) => Status::invalid_argument(message),
        NodeError::NotEveryVoterUpgraded { needs, .. } => {
            let mut status = Status::failed_precondition(message);
            status.metadata_mut().insert(NEEDS_VERSION_KEY, needs.into());
            status
        }
    }
}

/// A linearizable read not made: the node's reason, or Unavailable once the time ran out
/// (a retry may find a leader).
pub fn read_refused(e: ReadRefused) -> Status {
    match e {
        ReadRefused::Node(e) => status_of(e),
        ReadRefused::TimedOut(_) => Status::unavailable("read barrier not reached in time; retry"),
    }
}

pub fn invalid(e: DecodeError) -> Status {
    Status::invalid_argument(e.0)
}

/// The caller and sequence number a write carries in its metadata, if it carries both.
pub fn caller_of(md: &MetadataMap) -> Result<Option<CallerSeq>, Status> {
    let caller = md.get(CALLER_ID_KEY).map(|v| v.to_str().map(str::to_string));
    let seq = md.get(CALLER_SEQ_KEY).map(|v| v.to_str().map(str::to_string));
    match (caller, seq) {
        (None, None) => Ok(None),
        (Some(Ok(caller)), Some(Ok(seq))) => {
            let seq = seq.parse().map_err(|_| Status::invalid_argument(format!("{CALLER_SEQ_KEY} is not a number")))?;
            Ok(Some(CallerSeq { caller, seq }))
        }
        _ => Err(Status::invalid_argument(format!("{CALLER_ID_KEY} and {CALLER_SEQ_KEY} go together, as ASCII"))),
    }
}
