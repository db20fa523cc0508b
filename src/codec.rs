//! Operations and their results as messages: `Op` ↔ (`OpType`, encoded request message), and
//! `Result<Reply, FsmError>` ↔ `ApplyOpResponse`, in the published API's messages (`wire`)
//! and in the disk format's (`log`). The one place that converts: the node's log and service,
//! and the client, all go through it. It sits beside `api`, `storage` and `fsm`, below
//! everything that uses it. Decoding is total: a malformed operation is an error value, never
//! a panic, so every replica treats it the same way.

use crate::fsm::ClientKey;

/// Operations and results in the published API's messages: what clients and proxies send
/// and are answered.
pub mod wire {
    use crate::api as pb;
    include!("codec/ops.rs");
}

/// Operations and results in the disk format's messages: what log entries and snapshots hold.
pub mod log {
    use crate::storage::format as pb;
    include!("codec/ops.rs");
}

/// Why a request cannot become an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

pub(crate) fn invalid(what: impl Into<String>) -> DecodeError {
    DecodeError(what.into())
}

/// A job id from the wire: int64 there, positive here.
pub fn job_id(id: i64) -> Result<u64, DecodeError> {
    u64::try_from(id).map_err(|_| invalid(format!("job id {id} is negative")))
}

/// Seconds from an int64 field that beanstalkd carries as u32.
pub fn secs_u32(secs: i64, what: &str) -> Result<u32, DecodeError> {
    u32::try_from(secs).map_err(|_| invalid(format!("{what} {secs} is outside 0..=4294967295")))
}

/// The client a request names; None when it names none (an API caller without a session).
fn client(proxy_id: &str, client_id: &str) -> Option<ClientKey> {
    (!proxy_id.is_empty() || !client_id.is_empty()).then(|| ClientKey::new(proxy_id, client_id))
}

fn required_client(proxy_id: &str, client_id: &str) -> Result<ClientKey, DecodeError> {
    client(proxy_id, client_id).ok_or_else(|| invalid("the request names no client"))
}

/// `timeout_secs` on the wire: negative waits for ever (plain `reserve`).
fn timeout(timeout_secs: i32) -> Option<u32> {
    u32::try_from(timeout_secs).ok()
}
