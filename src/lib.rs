//! coolbeans: a beanstalkd-compatible work queue replicated through Raft.

pub mod accept;
pub mod api;
pub mod chaos;
pub mod fsm;
pub mod history;
pub mod node;
pub mod protocol;
pub mod limits;
pub mod metrics;
pub mod rpc;
pub mod security;
pub mod cli;
pub mod storage;
pub mod proxy;
