//! A partitioned leader: the leader is cut off from everyone while a client keeps writing
//! through the other nodes. The majority elects a new leader, the old one steps down (check
//! quorum), and after the partition heals every acknowledged job is there, no term ever had
//! two leaders, and all replicas reach the same digest.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coolbeans::client::JobClient;
use madsim::net::NetSim;
use madsim::runtime::Handle;
use rand::Rng;

use crate::cluster::{node_addr, Cluster, NodeSetup};
use crate::trace::Trace;

/// Runs the scenario; an error names the first check that failed.
pub async fn run(trace: Trace) -> Result<(), String> {
    let mut rng = madsim::rand::thread_rng();
    let setup = NodeSetup { snapshot_entries: rng.gen_range(30..300), ..NodeSetup::default() };
    let cluster = Cluster::start(3, setup, trace.clone());
    let (old, _) = cluster.await_leader(Duration::from_secs(10), None).await.ok_or("no leader elected in 10 s")?;
    let cut_for = Duration::from_millis(rng.gen_range(3000..8000));
    trace.event(format!("partitioning leader {old} for {cut_for:?}"));

    let leaders: Arc<Mutex<BTreeMap<u64, BTreeSet<u64>>>> = Arc::default();
    let client_host = Handle::current().create_node().name("client").ip("10.0.1.1".parse().unwrap()).build();
    let writer = client_host.spawn(async move {
        let mut c = JobClient::new("writer", (1..=3).map(node_addr).collect());
        let mut acked = Vec::new();
        for i in 0..150 {
            if let Ok(id) = c.put("default", 1, format!("job {i}").as_bytes()).await {
                acked.push(id);
            }
            madsim::time::sleep(Duration::from_millis(40)).await;
        }
        acked
    });

    madsim::time::sleep(Duration::from_millis(500)).await;
    let net = NetSim::current();
    let host = cluster.nodes[&old].host;
    net.clog_node(host);
    let healed_at = madsim::time::Instant::now() + cut_for;
    while madsim::time::Instant::now() < healed_at {
        record_leaders(&cluster, &leaders);
        madsim::time::sleep(Duration::from_millis(20)).await;
    }
    net.unclog_node(host);
    trace.event(format!("partition of node {old} healed"));

    let acked = writer.await.map_err(|e| format!("writer task: {e}"))?;
    trace.event(format!("{} writes acknowledged across the partition", acked.len()));
    for _ in 0..100 {
        record_leaders(&cluster, &leaders);
        madsim::time::sleep(Duration::from_millis(20)).await;
    }
    for (term, ids) in leaders.lock().expect("leaders lock").iter() {
        if ids.len() > 1 {
            return Err(format!("term {term} had two leaders: {ids:?}"));
        }
    }
    let checker = client_host.spawn(async move {
        let mut c = JobClient::new("checker", (1..=3).map(node_addr).collect());
        for id in &acked {
            if !c.exists(*id).await.map_err(|e| format!("get job {id}: {e}"))? {
                return Err(format!("acknowledged job {id} lost across the partition"));
            }
        }
        Ok(())
    });
    checker.await.map_err(|e| format!("checker task: {e}"))??;
    crate::failover::check_digests(&cluster, &trace).await
}

/// Notes which node each running node believes leads in its current term (a node's own claim
/// counts only when it says it is the leader).
fn record_leaders(cluster: &Cluster, leaders: &Mutex<BTreeMap<u64, BTreeSet<u64>>>) {
    let mut seen = leaders.lock().expect("leaders lock");
    for id in cluster.nodes.keys() {
        if let Some(s) = cluster.status(*id) {
            if s.is_leader() {
                seen.entry(s.term).or_default().insert(s.node_id);
            }
        }
    }
}
