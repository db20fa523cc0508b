//! A rolling upgrade in the simulator: a 3-node cluster where node 3 still runs state machine
//! version 1 and the others version 2, which (in this rehearsal only) introduced `pause-tube`.
//! While node 3 is old, the leader refuses the new operation and writes nothing node 3 cannot
//! read; once node 3 restarts as version 2 and says so on its raft traffic, the operation is
//! accepted and applies on every node.
#![cfg(madsim)]

use std::time::Duration;

use bytes::Bytes;
use coolbeans::fsm::{Op, Reply};
use coolbeans::node::version::{self, Versions};
use coolbeans::node::{NodeError, NodeHandle};
use coolbeans::storage::format::OpType;
use coolbeans_sim::cluster::{Cluster, NodeSetup, RunVersions};
use coolbeans_sim::trace::Trace;
use madsim::runtime::Runtime;

/// This build's versions, but for `pause-tube`, declared new in version 2.
fn rehearsal(op: OpType) -> u32 {
    if op == OpType::PauseTube {
        2
    } else {
        version::introduced_in(op)
    }
}

fn put(tube: &str) -> Op {
    Op::Put { client: None, tube: tube.into(), pri: 0, delay_secs: 0, ttr_secs: 60, body: Bytes::from_static(b"job") }
}

fn pause() -> Op {
    Op::PauseTube { tube: "t".into(), delay_secs: 600 }
}

/// Waits up to `limit` until `check` holds on the cluster's leader; answers that leader.
async fn leader_where(cluster: &Cluster, limit: Duration, check: impl Fn(&NodeHandle) -> bool) -> Option<NodeHandle> {
    let started = madsim::time::Instant::now();
    while started.elapsed() < limit {
        if let Some(handle) = cluster.leader().and_then(|id| cluster.handle(id)).filter(|h| check(h)) {
            return Some(handle);
        }
        madsim::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Every node runs and has applied the leader's commit index; answers each node's highest
/// applied entry version.
async fn applied_versions(cluster: &Cluster, leader: &NodeHandle) -> Vec<u32> {
    let commit = leader.status().commit_index;
    let mut versions = Vec::new();
    for id in 1..=3 {
        assert!(cluster.await_applied(id, commit, Duration::from_secs(10)).await, "node {id} applies up to {commit}");
        let handle = cluster.handle(id).expect("the node runs");
        let stopped = tokio::time::timeout(Duration::ZERO, handle.stopped()).await;
        assert!(stopped.is_err(), "node {id} stopped: {stopped:?}");
        versions.push(handle.read(|s| s.version()));
    }
    versions
}

#[test]
fn a_new_operation_waits_until_every_voter_is_upgraded() {
    let runtime = Runtime::with_seed_and_config(5, madsim::Config::default());
    runtime.block_on(async {
        let versions = RunVersions { default: Versions { understood: 2, introduced_in: rehearsal }, ..RunVersions::default() };
        versions.set(3, 1);
        let setup = NodeSetup { versions: versions.clone(), ..NodeSetup::default() };
        let mut cluster = Cluster::start(3, setup, Trace::new());
        cluster.await_leader(Duration::from_secs(20), None).await.expect("a leader");
        // Once the leader has heard every voter: node 3 is the one behind.
        let leader = leader_where(&cluster, Duration::from_secs(10), |h| h.heard_versions().len() == 2 || h.version() == 1)
            .await
            .expect("the leader hears its voters");
        assert_eq!(leader.voters_version(), 1);
        leader.propose(put("t"), None).await.expect("an operation of version 1 is accepted");
        let refused = leader.propose(pause(), None).await;
        let Err(NodeError::NotEveryVoterUpgraded { op: OpType::PauseTube, needs: 2, behind }) = &refused else {
            panic!("pause-tube was not refused: {refused:?}")
        };
        assert_eq!(behind, &[(3, Some(1))]);
        let message = refused.expect_err("refused").to_string();
        assert!(message.contains("version 2") && message.contains("node 3 runs version 1"), "{message}");
        leader.propose(put("t"), None).await.expect("version 1 operations go on");
        assert_eq!(applied_versions(&cluster, &leader).await, [1, 1, 1], "no entry of version 2 reached the log");

        // Node 3 is upgraded: stopped, and started again as version 2.
        versions.set(3, 2);
        cluster.kill(3);
        madsim::time::sleep(Duration::from_secs(1)).await;
        cluster.restart(3);
        let leader = leader_where(&cluster, Duration::from_secs(30), |h| h.voters_version() == 2)
            .await
            .expect("the leader learns that every voter runs version 2");
        assert_eq!(leader.propose(pause(), None).await, Ok(Reply::Done), "pause-tube is accepted once every voter is upgraded");
        assert_eq!(applied_versions(&cluster, &leader).await, [2, 2, 2], "the new operation applied on every node");
        let digests: Vec<_> = cluster.digests().into_values().collect();
        assert!(digests.windows(2).all(|w| w[0] == w[1]), "every node holds the same state: {digests:?}");
    });
}
