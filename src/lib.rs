//! coolbeans: a beanstalkd-compatible work queue replicated through Raft.

pub mod accept;
pub mod api;
pub mod chaos;
pub mod fsm;
/// The properties the fuzz targets check, for them and for the corpus replay in tests/.
#[doc(hidden)]
pub mod fuzz_checks;
pub mod history;
pub mod node;
pub mod protocol;
pub mod limits;
pub mod metrics;
pub mod rpc;
pub mod cli;
pub mod storage;
pub mod proxy;
