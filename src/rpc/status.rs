//! Node errors as gRPC statuses, and caller identity from request metadata.

use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use crate::node::codec::wire::result_code;
use crate::node::codec::DecodeError;
use crate::node::replicated::EntryError;
use crate::node::{CallerSeq, NodeError};

/// Metadata keys of a write's caller and sequence number (deduplication of retries).
pub const CALLER_ID_KEY: &str = "x-coolbeans-caller";
pub const CALLER_SEQ_KEY: &str = "x-coolbeans-seq";
/// Metadata keys that tell a caller where the leader is.
pub const LEADER_ID_KEY: &str = "x-coolbeans-leader-id";
pub const LEADER_ADDR_KEY: &str = "x-coolbeans-leader-addr";
/// Marks a FailedPrecondition that means "not the leader" (not a job in the wrong state).
pub const NOT_LEADER_KEY: &str = "x-coolbeans-not-leader";
/// Marks a FailedPrecondition that means "not every voter runs the operation's version yet"
/// (a rolling upgrade is under way), with the version the operation needs.
pub const NEEDS_VERSION_KEY: &str = "x-coolbeans-needs-version";
/// Marks a status that is the state machine's answer, not the transport's: tonic answers a
/// message over its size limit with OutOfRange, the code of "last watched tube".
pub const STATE_MACHINE_KEY: &str = "x-coolbeans-state-machine";

fn code_of(code: crate::api::ResultCode) -> Code {
    Code::from_i32(code as i32)
}

/// Each node error as its own status; NotLeader carries the leader in the metadata.
pub fn status_of(e: NodeError) -> Status {
    let message = e.to_string();
    match e {
        NodeError::NotLeader { leader_id, leader_addr } => {
            let mut status = Status::failed_precondition(message);
            let md = status.metadata_mut();
            md.insert(NOT_LEADER_KEY, tonic::metadata::MetadataValue::from_static("1"));
            if let Some(id) = leader_id.and_then(|id| id.to_string().parse().ok()) {
                md.insert(LEADER_ID_KEY, id);
            }
            if let Some(addr) = leader_addr.and_then(|a| a.parse().ok()) {
                md.insert(LEADER_ADDR_KEY, addr);
            }
            status
        }
        NodeError::Dropped(_) | NodeError::Stopped => Status::unavailable(message),
        NodeError::Fsm(e) => {
            let mut status = Status::new(code_of(result_code(&e)), message);
            status.metadata_mut().insert(STATE_MACHINE_KEY, tonic::metadata::MetadataValue::from_static("1"));
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

pub fn invalid(e: DecodeError) -> Status {
    Status::invalid_argument(e.0)
}

/// Whether a status is the state machine's answer (see `STATE_MACHINE_KEY`).
pub fn is_state_machine(status: &Status) -> bool {
    status.metadata().contains_key(STATE_MACHINE_KEY)
}

/// The version a refused operation needs, when the status says it waits for every voter
/// to be upgraded.
pub fn needs_version(status: &Status) -> Option<u32> {
    if status.code() != Code::FailedPrecondition {
        return None;
    }
    status.metadata().get(NEEDS_VERSION_KEY)?.to_str().ok()?.parse().ok()
}

/// Whether a status says "not the leader".
pub fn is_not_leader(status: &Status) -> bool {
    status.code() == Code::FailedPrecondition && status.metadata().contains_key(NOT_LEADER_KEY)
}

/// The leader a NotLeader status names, if any: (id, address).
pub fn leader_hint(status: &Status) -> (Option<u64>, Option<String>) {
    let md = status.metadata();
    let id = md.get(LEADER_ID_KEY).and_then(|v| v.to_str().ok()).and_then(|s| s.parse().ok());
    let addr = md.get(LEADER_ADDR_KEY).and_then(|v| v.to_str().ok()).map(str::to_string);
    (id, addr)
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

/// Puts a caller identity into a request's metadata.
pub fn set_caller<T>(request: &mut tonic::Request<T>, caller: &CallerSeq) {
    let md = request.metadata_mut();
    if let Ok(v) = caller.caller.parse() {
        md.insert(CALLER_ID_KEY, v);
    }
    if let Ok(v) = caller.seq.to_string().parse() {
        md.insert(CALLER_SEQ_KEY, v);
    }
}
