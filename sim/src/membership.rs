//! Membership under load: a fourth node joins a running 3-node cluster through the Cluster
//! API (as a learner, promoted to voter once caught up), then an original member leaves; the
//! cluster keeps serving writes throughout and the joined node holds every job.

use std::collections::BTreeSet;
use std::time::Duration;

use coolbeans::api::cluster_client::ClusterClient;
use coolbeans::api::LeaveRequest;
use coolbeans::client::JobClient;
use madsim::runtime::Handle;

use crate::cluster::{node_addr, Cluster, NodeSetup};
use crate::trace::Trace;

/// Runs the scenario; an error names the first check that failed.
pub async fn run(trace: Trace) -> Result<(), String> {
    let setup = NodeSetup { snapshot_entries: 50, ..NodeSetup::default() };
    let mut cluster = Cluster::start(3, setup.clone(), trace.clone());
    cluster.await_leader(Duration::from_secs(10), None).await.ok_or("no leader elected in 10 s")?;
    let client_host = Handle::current().create_node().name("client").ip("10.0.1.1".parse().unwrap()).build();

    let acked = client_host.spawn(put_jobs("before-join", (1..=3).map(node_addr).collect(), 80)).await.map_err(|e| format!("client task: {e}"))??;
    trace.event(format!("{} jobs before the join", acked.len()));

    cluster.add_node(4, setup);
    let via = node_addr(1).to_string();
    let joined = client_host.spawn(async move { coolbeans::cli::client::join_with_retry(&via, 4, &node_addr(4).to_string()).await });
    let more = client_host.spawn(put_jobs("during-join", (1..=3).map(node_addr).collect(), 40));
    joined.await.map_err(|e| format!("join task: {e}"))??;
    let acked_more = more.await.map_err(|e| format!("client task: {e}"))??;
    trace.event("join accepted");

    await_voter(&cluster, 4, true).await?;
    let leader = cluster.leader().ok_or("no leader after the join")?;
    let target = cluster.status(leader).map(|s| s.commit_index).unwrap_or(0);
    if !cluster.await_applied(4, target, Duration::from_secs(20)).await {
        return Err(format!("joined node 4 did not catch up to {target}"));
    }
    trace.event(format!("node 4 is a voter and caught up to {target}"));

    let leaving = if leader == 1 { 2 } else { 1 };
    let leader_addr = node_addr(leader).to_string();
    client_host
        .spawn(async move {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{leader_addr}"))
                .map_err(|e| e.to_string())?
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            ClusterClient::new(channel)
                .leave(LeaveRequest { node_id: leaving.to_string() })
                .await
                .map(|_| ())
                .map_err(|e| format!("leave of node {leaving}: {}", e.message()))
        })
        .await
        .map_err(|e| format!("leave task: {e}"))??;
    await_voter(&cluster, leaving, false).await?;
    trace.event(format!("node {leaving} left"));

    let remaining: Vec<_> = [1, 2, 3, 4].into_iter().filter(|id| *id != leaving).map(node_addr).collect();
    let after = client_host.spawn(put_jobs("after-leave", remaining.clone(), 20)).await.map_err(|e| format!("client: {e}"))??;
    let all: BTreeSet<u64> = acked.iter().chain(&acked_more).chain(&after).copied().collect();
    let checker = client_host.spawn(async move {
        let mut c = JobClient::new("checker", vec![node_addr(4)]);
        for id in &all {
            if !c.exists(*id).await.map_err(|e| format!("get job {id}: {e}"))? {
                return Err(format!("job {id} missing after join and leave"));
            }
        }
        Ok(all.len())
    });
    let checked = checker.await.map_err(|e| format!("checker: {e}"))??;
    trace.event(format!("{checked} jobs present after join and leave"));
    Ok(())
}

async fn put_jobs(name: &'static str, nodes: Vec<std::net::SocketAddr>, count: usize) -> Result<Vec<u64>, String> {
    let mut c = JobClient::new(name, nodes);
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        ids.push(c.put("default", 5, format!("{name} {i}").as_bytes()).await.map_err(|e| format!("{name} put {i}: {e}"))?);
    }
    Ok(ids)
}

/// Waits until the leader lists `id` as a voter (`true`) or not at all (`false`).
async fn await_voter(cluster: &Cluster, id: u64, voter: bool) -> Result<(), String> {
    for _ in 0..600 {
        if let Some(s) = cluster.leader().and_then(|l| cluster.status(l)) {
            let listed = s.voters.contains(&id) || s.learners.contains(&id);
            if s.voters.contains(&id) == voter && (voter || !listed) {
                return Ok(());
            }
        }
        madsim::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("node {id} never became {}", if voter { "a voter" } else { "a non-member" }))
}
