//! Subcommands and their flags. Each one parses, then hands to the library.

pub mod bench;
pub mod client;
pub mod front;
pub mod node;
pub mod peers;
pub mod put_bench;
mod rejoin;
pub mod serve;
pub mod status;
pub mod table;
pub mod top;

/// How a process whose node stopped ends: at once, so a supervisor restarts or alerts on it
/// rather than the process answering from a dead node. A removed node ends cleanly (its
/// work is done, and restarting it would not make it a member again); any other stop is a
/// failure, the error `main` prints last before exiting non-zero.
pub(crate) fn exit_for(node_id: u64, stop: crate::node::NodeStop) -> Result<(), String> {
    match stop {
        crate::node::NodeStop::Removed => {
            tracing::info!(node = node_id, "removed from the cluster; exiting");
            Ok(())
        }
        crate::node::NodeStop::Failed(why) => {
            tracing::error!(node = node_id, error = %why, "the node stopped; exiting");
            Err(format!("node {node_id} stopped: {why}"))
        }
    }
}
