//! The beanstalkd proxy: connections speaking the text protocol, each with its own state,
//! in front of the replicated state machine (in this process or over gRPC).

pub mod colocated;
mod conn;
pub mod metrics;
mod remote;
pub mod server;
pub mod shared;
pub mod tls;
pub mod upstream;

pub use colocated::CoLocatedUpstream;
pub use metrics::ProxyMetrics;
pub use server::{serve, ListenAddr, Listener};
pub use shared::{Identity, Limits, Proxy, COMMAND_TIMEOUT_DEFAULT};
pub use upstream::{LocalUpstream, Upstream};
