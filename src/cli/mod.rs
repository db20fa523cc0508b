//! Subcommands and their flags. Each one parses, then hands to the library.

pub mod bench;
pub mod client;
pub mod console;
pub mod metrics;
pub mod node;
pub mod peers;
pub mod proxy;
pub mod put_bench;
mod rejoin;
pub mod security;
pub mod serve;
pub mod status;
pub mod stop;
pub mod table;
pub mod top;

/// How a process whose node stopped ends: at once, so a supervisor restarts or alerts on it
/// rather than the process answering from a dead node. A node removed or stopped on request
/// ends cleanly (a removed one's work is done, and restarting it would not make it a member
/// again); any other stop is a failure, the error `main` prints last before exiting non-zero.
pub(crate) fn exit_for(node: &crate::node::NodeHandle, stop: crate::node::NodeStop) -> Result<(), String> {
    let status = node.status();
    let (node, term) = (status.node_id, status.term);
    match stop {
        crate::node::NodeStop::Removed => {
            tracing::info!(node, term, "removed from the cluster; exiting");
            Ok(())
        }
        crate::node::NodeStop::Stopped => {
            tracing::info!(node, term, "stopped; everything written is durable");
            Ok(())
        }
        crate::node::NodeStop::Failed(why) => {
            tracing::error!(node, term, error = %why, "the node stopped; exiting");
            Err(format!("node {node} stopped: {why}"))
        }
    }
}
