//! The beanstalkd front end: connections speaking the text protocol, each with its own state,
//! in front of the replicated state machine (in this process or over gRPC).

pub mod colocated;
mod conn;
pub mod front_end;
pub mod metrics;
mod remote;
pub mod server;
pub mod tls;
pub mod upstream;

pub use colocated::CoLocatedUpstream;
pub use front_end::{FrontEnd, Identity, Limits, COMMAND_TIMEOUT_DEFAULT};
pub use metrics::ProxyMetrics;
pub use server::{serve, ListenAddr, Listener};
pub use upstream::{LocalUpstream, Upstream};
