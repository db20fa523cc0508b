//! A member that lost its data dir must not start over as a new one: it would bootstrap a
//! cluster of its own at term 1, forget its votes (and could vote twice in a term), and the
//! leader would take it for the follower it was. Before a fresh data dir is bootstrapped, the
//! other peers are asked; if the leader says this node once acknowledged log entries, the
//! node refuses to start and says how to come back.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::api::{Empty, NodeStatusResponse};
use crate::security::Dialer;

/// How long a peer may take to answer: at the first start of a cluster, the others may not
/// be up yet, and waiting for them is not needed.
const PEER_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether the data dir holds nothing yet but its lock (a first start, or a dir that was lost).
pub(crate) fn is_fresh(data_dir: &Path) -> bool {
    let lock = std::ffi::OsStr::new(crate::storage::names::LOCK_FILE);
    std::fs::read_dir(data_dir).map_or(true, |mut entries| entries.all(|e| e.is_ok_and(|e| e.file_name() == lock)))
}

/// Refuses a fresh data dir for node `id` when the leader among `peers` knows it held entries
/// beyond the bootstrap (index 1); a peer that does not answer is not waited for.
pub(crate) async fn refuse_lost_member(dialer: &Dialer, id: u64, peers: &BTreeMap<u64, String>) -> Result<(), String> {
    for (&peer, addr) in peers.iter().filter(|(&peer, _)| peer != id) {
        let Some(status) = status(dialer, addr).await else { continue };
        if status.leader_id != peer {
            continue;
        }
        let matched = status.members.iter().find(|m| m.node_id == id).map_or(0, |m| m.match_index);
        if matched > 1 {
            return Err(lost_member_message(id, peer, addr, matched));
        }
    }
    Ok(())
}

fn lost_member_message(id: u64, leader: u64, addr: &str, matched: u64) -> String {
    format!(
        "the data dir is empty, but the cluster's leader (node {leader} at {addr}) says node {id} held its log up to \
         index {matched}: this node's data was lost, and starting it afresh could forget votes and acknowledged \
         writes. To bring this machine back: `coolbeans cluster-client --node-addr {addr} leave --node-id {id}`, \
         then start it with a new --node-id and --join {addr}"
    )
}

async fn status(dialer: &Dialer, addr: &str) -> Option<NodeStatusResponse> {
    let endpoint = dialer.endpoint(addr).ok()?.connect_timeout(PEER_TIMEOUT).timeout(PEER_TIMEOUT);
    let channel = tokio::time::timeout(PEER_TIMEOUT, dialer.connect(&endpoint)).await.ok()?.ok()?;
    let answer = tokio::time::timeout(PEER_TIMEOUT, dialer.cluster(channel).status(Empty {})).await.ok()?;
    answer.ok().map(|r| r.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The message names the node, the leader and both commands to come back.
    #[test]
    fn message_says_how_to_rejoin() {
        let message = lost_member_message(3, 1, "10.0.0.1:7001", 42);
        for part in ["node 3", "node 1 at 10.0.0.1:7001", "index 42", "leave --node-id 3", "--join 10.0.0.1:7001"] {
            assert!(message.contains(part), "{part:?} missing from {message}");
        }
    }

    // A missing or empty dir is fresh, as is one with only its lock; one with any other file
    // is not.
    #[test]
    fn fresh_means_empty() {
        let dir = std::env::temp_dir().join(format!("coolbeans-fresh-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(is_fresh(&dir));
        std::fs::create_dir_all(&dir).expect("mkdir");
        assert!(is_fresh(&dir));
        std::fs::write(dir.join(crate::storage::names::LOCK_FILE), "1\n").expect("write");
        assert!(is_fresh(&dir));
        std::fs::write(dir.join("node-id"), "3\n").expect("write");
        assert!(!is_fresh(&dir));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
