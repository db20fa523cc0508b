//! The client side of the gRPC API: the cluster reached over gRPC (`RemoteUpstream`: writes
//! to the leader that apply once, linearizable reads, reservation results), and a small job
//! client over it. The proxy, the command line and the simulator use it.
//!
//! Layers: it stands on `api` (the messages, the metadata keys and the typed stats, which the
//! server shares), `codec`, `fsm`'s types and `clock`; it imports neither the node, nor the
//! server (`rpc`), nor the proxy.

pub(crate) mod forward;
pub mod job_client;
pub mod metrics;
pub mod query;
pub mod remote;
mod reservations;
pub mod retry;
pub mod status;

pub use job_client::{JobClient, Reserved};
pub use metrics::ClientMetrics;
pub use query::{Answer, Query};
pub use remote::RemoteUpstream;

use crate::fsm::FsmError;

/// Why the cluster could not answer a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamError {
    /// The state machine refused the operation.
    Fsm(FsmError),
    /// No leader answered within the patience, or the upstream is gone.
    Unavailable(String),
    /// The operation is of a state machine version not every voter runs yet (a rolling
    /// upgrade is under way); why, naming the voters behind.
    NotUpgraded(String),
}

impl From<FsmError> for UpstreamError {
    fn from(e: FsmError) -> Self {
        UpstreamError::Fsm(e)
    }
}
