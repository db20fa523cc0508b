//! A read asked of a leader the moment it is elected passes its barrier. raft-rs drops a
//! ReadIndex without a word until the new leader has committed in its term; the driver asks
//! again, where the read used to wait until leadership changed once more.
#![cfg(madsim)]

use std::time::Duration;

use coolbeans_sim::cluster::{Cluster, NodeSetup};
use coolbeans_sim::trace::Trace;

const ELECTIONS: usize = 12;

async fn read_as_soon_as_elected() -> Result<usize, String> {
    let mut cluster = Cluster::start(3, NodeSetup::default(), Trace::new());
    let (mut leader, _) = cluster.await_leader(Duration::from_secs(10), None).await.ok_or("no leader")?;
    let mut asked_early = 0;
    for round in 0..ELECTIONS {
        cluster.kill(leader);
        // The first node to call itself leader, seen within a millisecond of it.
        let elected = loop {
            let found = cluster.nodes.keys().copied().find(|id| *id != leader && cluster.status(*id).is_some_and(|s| s.is_leader()));
            if let Some(id) = found {
                break id;
            }
            madsim::time::sleep(Duration::from_millis(1)).await;
        };
        let node = cluster.handle(elected).ok_or("the new leader does not run")?;
        asked_early += usize::from(node.status().commit_index < node.status().last_index);
        match tokio::time::timeout(Duration::from_secs(3), node.read_barrier()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("round {round}: the read failed: {e}")),
            Err(_) => return Err(format!("round {round}: a read asked of node {elected} just elected did not pass within 3 s")),
        }
        cluster.restart(leader);
        leader = elected;
        madsim::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(asked_early)
}

#[test]
fn a_read_asked_of_a_leader_just_elected_passes() {
    let seeds = std::env::var("COOLBEANS_SIM_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(4u64);
    for seed in 1..=seeds {
        let early = coolbeans_sim::in_fresh_world(seed, read_as_soon_as_elected).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        eprintln!("seed {seed}: {early} of {ELECTIONS} reads asked before the leader committed in its term");
    }
}
