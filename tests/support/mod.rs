//! The conformance harness behind `tests/conformance.rs`: the conversation format, the wire,
//! the comparison of answers, the servers under test and the runner that ties them together.

pub mod conv;
pub mod matching;
pub mod runner;
pub mod server;
pub mod wire;
