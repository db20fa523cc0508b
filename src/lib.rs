//! coolbeans: a beanstalkd-compatible work queue replicated through Raft.

pub mod accept;
pub mod api;
pub mod chaos;
pub mod client;
pub mod clock;
pub mod codec;
pub mod fsm;
/// The properties the fuzz targets check, for them and for the corpus replay in tests/.
#[doc(hidden)]
pub mod fuzz_checks;

/// The unit tests note the largest allocation of each thread, to show that damaged bytes never
/// get one as large as a length in them claims.
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: fuzz_checks::WatchingAllocator = fuzz_checks::WatchingAllocator;
pub mod cli;
#[cfg(not(madsim))]
pub mod console;
pub mod history;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod protocol;
pub mod proxy;
pub mod rpc;
pub mod security;
pub mod storage;
