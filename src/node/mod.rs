//! The Raft node: one task owns the raft-rs `RawNode`, makes its log durable, applies committed
//! entries to the replicated state, and talks to its peers.

mod driver;
pub mod entry;
mod entry_format;
#[cfg(test)]
mod golden_format;
mod handle;
mod inbound;
mod log_store;
mod metrics;
mod owed;
mod persist;
mod raft_logger;
mod reads;
mod received_snapshot;
pub mod replicated;
pub(crate) mod snapshot_chunks;
mod snapshots;
mod start;
mod transport;
pub mod version;

pub use driver::DriverConfig;
pub(crate) use handle::lock;
pub use handle::{AppliedEvents, MemberChange, NodeError, NodeHandle, NodeStop, ReadRefused, Status};
pub use metrics::NodeMetrics;
pub use start::{start_node, LogStorage, NodeOptions, StartError};
