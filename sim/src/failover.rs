//! The failover scenario: a 3-node cluster elects, serves puts, reserves and deletes through the
//! gRPC API; its leader is killed, a new one takes over within the election timeout, the old
//! one restarts from its simulated disk and catches up, and every acknowledged job is there.

use std::collections::BTreeSet;
use std::time::Duration;

use madsim::runtime::Handle;
use rand::Rng;

use crate::cluster::{node_addr, Cluster, NodeSetup};
use crate::trace::Trace;
use coolbeans::client::{JobClient, Reserved};

/// Elections take 10 to 20 ticks of 100 ms; with pre-vote and check-quorum a new leader can
/// need up to two rounds after the old one's lease lapses.
const NEW_LEADER_LIMIT: Duration = Duration::from_secs(5);

/// Runs the scenario; an error names the first check that failed.
pub async fn run(trace: Trace) -> Result<(), String> {
    let mut rng = madsim::rand::thread_rng();
    let setup = NodeSetup { snapshot_entries: rng.gen_range(20..200), ..NodeSetup::default() };
    trace.event(format!("setup: 3 nodes, snapshot every {} entries", setup.snapshot_entries));
    let mut cluster = Cluster::start(3, setup, trace.clone());
    let (leader, took) = cluster.await_leader(Duration::from_secs(10), None).await.ok_or("no leader elected in 10 s")?;
    trace.event(format!("first leader {leader} after {took:?}"));

    let client_host = Handle::current().create_node().name("client").ip("10.0.1.1".parse().unwrap()).build();
    let nodes: Vec<_> = (1..=3).map(node_addr).collect();
    let trace2 = trace.clone();
    let (acked, deleted) = client_host
        .spawn(async move { workload(JobClient::new("client-1", nodes), rng_count(), &trace2).await })
        .await
        .map_err(|e| format!("client task failed: {e}"))??;
    trace.event(format!("acknowledged {} puts, {} deletes", acked.len(), deleted.len()));

    let old = cluster.leader().ok_or("no leader after the workload")?;
    cluster.kill(old);
    let (new_leader, took) = cluster.await_leader(NEW_LEADER_LIMIT, Some(old)).await.ok_or(format!("no new leader within {NEW_LEADER_LIMIT:?}"))?;
    trace.event(format!("new leader {new_leader} after {took:?}"));

    let nodes: Vec<_> = (1..=3).map(node_addr).collect();
    let (acked2, deleted2) = client_host
        .spawn({
            let trace = trace.clone();
            async move { workload(JobClient::new("client-2", nodes), 20, &trace).await }
        })
        .await
        .map_err(|e| format!("client task failed: {e}"))??;

    cluster.restart(old);
    let target = cluster.status(new_leader).map(|s| s.commit_index).ok_or("leader vanished")?;
    if !cluster.await_applied(old, target, Duration::from_secs(20)).await {
        return Err(format!("restarted node {old} did not catch up to {target} in 20 s"));
    }
    trace.event(format!("node {old} caught up to {target}"));

    let all_acked: BTreeSet<u64> = acked.union(&acked2).copied().collect();
    let all_deleted: BTreeSet<u64> = deleted.union(&deleted2).copied().collect();
    let nodes: Vec<_> = (1..=3).map(node_addr).collect();
    client_host
        .spawn(async move { verify(JobClient::new("checker", nodes), all_acked, all_deleted).await })
        .await
        .map_err(|e| format!("checker task failed: {e}"))??;
    check_digests(&cluster, &trace).await
}

fn rng_count() -> usize {
    madsim::rand::thread_rng().gen_range(20..60)
}

/// Puts `count` jobs, then reserves and deletes about half of them. Answers the ids whose put
/// and whose delete were acknowledged.
async fn workload(mut c: JobClient, count: usize, trace: &Trace) -> Result<(BTreeSet<u64>, BTreeSet<u64>), String> {
    let mut acked = BTreeSet::new();
    let mut deleted = BTreeSet::new();
    for i in 0..count {
        let id = c.put("default", (i % 7) as u32, format!("job {i}").as_bytes()).await.map_err(|e| format!("put {i}: {e}"))?;
        trace.event(format!("put {i} -> job {id}"));
        acked.insert(id);
    }
    for i in 0..count / 2 {
        match c.reserve("worker", &format!("r{i}"), 0).await.map_err(|e| format!("reserve {i}: {e}"))? {
            Reserved::Job(id) => {
                c.delete("worker", id).await.map_err(|e| format!("delete {id}: {e}"))?;
                trace.event(format!("reserved and deleted job {id}"));
                deleted.insert(id);
            }
            other => return Err(format!("reserve {i} with jobs ready answered {other:?}")),
        }
    }
    Ok((acked, deleted))
}

/// Every acknowledged job is there unless its delete was acknowledged.
async fn verify(mut c: JobClient, acked: BTreeSet<u64>, deleted: BTreeSet<u64>) -> Result<(), String> {
    for id in &acked {
        let exists = c.exists(*id).await.map_err(|e| format!("get job {id}: {e}"))?;
        let expected = !deleted.contains(id);
        if exists != expected {
            return Err(format!("job {id}: exists={exists}, but acknowledged put and delete={}", deleted.contains(id)));
        }
    }
    Ok(())
}

/// Once all nodes have applied the same index, their state digests are equal.
pub async fn check_digests(cluster: &Cluster, trace: &Trace) -> Result<(), String> {
    for _ in 0..200 {
        let digests = cluster.digests();
        let indexes: BTreeSet<u64> = digests.values().map(|(i, _)| *i).collect();
        if digests.len() == 3 && indexes.len() == 1 {
            let hashes: BTreeSet<u64> = digests.values().map(|(_, d)| *d).collect();
            if hashes.len() != 1 {
                return Err(format!("digests differ at applied index {indexes:?}: {digests:?}"));
            }
            trace.event(format!("all digests equal at index {:?}", indexes.first()));
            return Ok(());
        }
        madsim::time::sleep(Duration::from_millis(50)).await;
    }
    Err("nodes never reached the same applied index".into())
}
