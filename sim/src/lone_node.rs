//! A lone node, as `serve -b` runs one, for the tests that crash its disk: bring it back and
//! read what it holds.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use coolbeans::node::NodeHandle;

use crate::cluster::Cluster;

/// Restarts node 1 and answers its jobs, body → id, once it leads and has applied its log.
pub async fn restart(cluster: &mut Cluster) -> Result<BTreeMap<Bytes, u64>, String> {
    cluster.restart(1);
    cluster.await_leader(Duration::from_secs(10), None).await.ok_or("the node did not lead again after the power loss")?;
    let node = cluster.handle(1).ok_or("the node does not run")?;
    // raft-rs drops a ReadIndex asked before the leader commits in its term: ask again.
    for _ in 0..100 {
        match tokio::time::timeout(Duration::from_millis(100), node.read_barrier()).await {
            Ok(Ok(())) => return Ok(jobs_of(&node)),
            Ok(Err(e)) => return Err(format!("read barrier: {e}")),
            Err(_) => {}
        }
    }
    Err("no read barrier passed in 10 s".into())
}

/// The node's jobs, body → id.
pub fn jobs_of(node: &NodeHandle) -> BTreeMap<Bytes, u64> {
    let state = node.read(|s| s.snapshot());
    let jobs = state.fsm.map(|fsm| fsm.jobs).unwrap_or_default();
    jobs.into_iter().map(|j| (j.body, j.id as u64)).collect()
}
