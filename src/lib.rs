//! coolbeans: a beanstalkd-compatible work queue replicated through Raft.

pub mod api;
pub mod fsm;
