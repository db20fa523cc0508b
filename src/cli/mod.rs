//! Subcommands and their flags. Each one parses, then hands to the library.

pub mod bench;
pub mod client;
pub mod front;
pub mod node;
pub mod peers;
pub mod put_bench;
pub mod serve;
