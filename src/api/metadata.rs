//! The metadata keys a node and its callers agree on: who a write is from (deduplication of
//! retries), where the leader is, and what kind of refusal a status is; with the writing and
//! reading of the refusals' keys, which both sides do (a node reads its own refusals to send
//! them on a forwarding stream, a client rebuilds them from it).

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

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

/// "Not the leader" in words: the node's, which a client repeats when it rebuilds the refusal.
pub fn not_leader_words(leader_id: Option<u64>, leader_addr: Option<&str>) -> String {
    match leader_id {
        Some(id) => format!("not the leader; the leader is node {id} at {}", leader_addr.unwrap_or("an unknown address")),
        None => "not the leader, and no leader is known".to_string(),
    }
}

/// Identifies a write for deduplication: who sent it and its sequence number, which travel
/// in the caller keys. The replicated state keeps each caller's last answers by it; the node,
/// its service and its clients carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerSeq {
    pub caller: String,
    pub seq: u64,
}

/// "Not the leader", in the node's words and with the leader in the metadata where it is
/// known: the node's refusal, and the client's reading of the same refusal sent back on a
/// forwarding stream.
pub fn not_leader(leader_id: Option<u64>, leader_addr: Option<String>) -> Status {
    let mut status = Status::failed_precondition(not_leader_words(leader_id, leader_addr.as_deref()));
    let md = status.metadata_mut();
    md.insert(NOT_LEADER_KEY, MetadataValue::from_static("1"));
    if let Some(id) = leader_id.and_then(|id| id.to_string().parse().ok()) {
        md.insert(LEADER_ID_KEY, id);
    }
    if let Some(addr) = leader_addr.and_then(|a| a.parse().ok()) {
        md.insert(LEADER_ADDR_KEY, addr);
    }
    status
}

/// Marks `status` as the state machine's answer (see `STATE_MACHINE_KEY`).
pub fn mark_state_machine(status: &mut Status) {
    status.metadata_mut().insert(STATE_MACHINE_KEY, MetadataValue::from_static("1"));
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
