//! A node that joins a cluster whose log was compacted gets the state as a snapshot sent in
//! many chunks over a slow link, and ends with the leader's digest; a snapshot whose link is
//! cut midway, for longer than a chunk may take, resumes from the bytes already received.
#![cfg(madsim)]

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use coolbeans::chaos::observe::{self, Event};
use coolbeans::client::JobClient;
use coolbeans::limits::SNAPSHOT_CHUNK_TIMEOUT;
use coolbeans_sim::cluster::{node_addr, Cluster, NodeSetup};
use coolbeans_sim::trace::Trace;
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle, Runtime};

/// A snapshot that node 4 received: its data's size, and where its last call resumed from.
#[derive(Clone, Copy, Debug)]
struct Received {
    bytes: u64,
    resumed_from: u64,
}

/// What node 4's snapshot receiving reported.
#[derive(Default)]
struct Seen {
    /// The most data it held of a snapshot in progress.
    progress_bytes: u64,
    received: Vec<Received>,
}

/// Records node 4's snapshot progress and deliveries.
fn watch_node_4() -> Rc<RefCell<Seen>> {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let inner = seen.clone();
    observe::install(move |event| match event {
        Event::SnapshotProgress { node: 4, received_bytes } => {
            let mut s = inner.borrow_mut();
            s.progress_bytes = s.progress_bytes.max(received_bytes);
        }
        Event::SnapshotReceived { node: 4, bytes, resumed_from, .. } => {
            inner.borrow_mut().received.push(Received { bytes, resumed_from });
        }
        _ => {}
    });
    seen
}

/// Starts 3 nodes that snapshot only when asked, puts `jobs` jobs of `body_bytes` each, and
/// compacts the leader's log behind them, so a node joining later needs the snapshot.
async fn compacted_cluster(setup: NodeSetup, jobs: usize, body_bytes: usize) -> (Cluster, u64, NodeHandle) {
    let cluster = Cluster::start(3, setup, Trace::new());
    let (leader, _) = cluster.await_leader(Duration::from_secs(20), None).await.expect("a leader");
    let client = Handle::current().create_node().name("client").ip("10.0.3.2".parse().unwrap()).build();
    let nodes: Vec<SocketAddr> = (1..=3).map(node_addr).collect();
    client
        .spawn(async move {
            let mut c = JobClient::new("putter", nodes);
            for i in 0..jobs {
                let body = vec![b'a' + (i % 26) as u8; body_bytes];
                c.put("default", 0, &body).await.expect("put acknowledged");
            }
        })
        .await
        .expect("putter runs");
    let index = cluster.handle(leader).expect("the leader runs").snapshot().await.expect("a snapshot");
    assert!(index > jobs as u64, "the snapshot at {index} covers every put");
    (cluster, leader, client)
}

/// Adds node 4 through the leader.
async fn join_node_4(cluster: &mut Cluster, setup: NodeSetup, leader: u64, client: &NodeHandle) {
    cluster.add_node(4, setup);
    let via = node_addr(leader).to_string();
    client
        .spawn(async move { coolbeans::cli::client::join_with_retry(&via, 4, &node_addr(4).to_string()).await })
        .await
        .expect("join task runs")
        .expect("join accepted");
}

/// Waits until every node has applied the same index, then checks their digests agree.
async fn converge(cluster: &Cluster, limit: Duration) {
    let started = madsim::time::Instant::now();
    loop {
        let digests = cluster.digests();
        let applied: Vec<u64> = digests.values().map(|(applied, _)| *applied).collect();
        if digests.len() == 4 && applied.iter().all(|a| *a == applied[0]) {
            let first = digests.values().next().expect("four nodes").1;
            assert!(digests.values().all(|(_, d)| *d == first), "digests differ at one index: {digests:?}");
            return;
        }
        assert!(started.elapsed() < limit, "nodes did not converge in {limit:?}: {digests:?}");
        madsim::time::sleep(Duration::from_millis(50)).await;
    }
}

fn slow_link() {
    NetSim::current().update_config(|c| c.send_latency = Duration::from_millis(50)..Duration::from_millis(150));
}

/// 200 jobs of 60 KB make a snapshot of about 12 MB: twelve chunks of the real size, sent
/// with a round trip of 100 to 300 ms. Node 4 receives it whole in one call and converges.
#[test]
fn a_joining_node_gets_a_snapshot_of_many_chunks_over_a_slow_link() {
    let runtime = Runtime::with_seed_and_config(21, madsim::Config::default());
    runtime.block_on(async {
        let seen = watch_node_4();
        let setup = NodeSetup { snapshot_entries: 1_000_000, ..NodeSetup::default() };
        let (mut cluster, leader, client) = compacted_cluster(setup.clone(), 200, 60_000).await;
        slow_link();
        join_node_4(&mut cluster, setup, leader, &client).await;
        converge(&cluster, Duration::from_secs(60)).await;
        let received = seen.borrow().received.clone();
        let chunk = coolbeans::limits::SNAPSHOT_CHUNK_BYTES_MAX as u64;
        assert!(received.iter().any(|r| r.bytes > 10 * chunk), "no snapshot of more than 10 chunks reached node 4: {received:?}");
        observe::uninstall();
    });
}

/// 100 jobs of 20 KB in chunks of 16 KiB: over 120 chunks. Once node 4 holds a third of
/// them, the link from the leader to it is cut for longer than a chunk may take: the call
/// fails at both ends, and raft's retry resumes where node 4 stopped rather than from zero.
#[test]
fn a_snapshot_cut_off_midway_resumes_where_it_stopped() {
    let runtime = Runtime::with_seed_and_config(22, madsim::Config::default());
    runtime.block_on(async {
        let seen = watch_node_4();
        let setup = NodeSetup { snapshot_entries: 1_000_000, snapshot_chunk_bytes: 16 * 1024, ..NodeSetup::default() };
        let (mut cluster, leader, client) = compacted_cluster(setup.clone(), 100, 20_000).await;
        slow_link();
        join_node_4(&mut cluster, setup, leader, &client).await;
        let third = 100 * 20_000 / 3;
        let started = madsim::time::Instant::now();
        while seen.borrow().progress_bytes < third {
            assert!(started.elapsed() < Duration::from_secs(30), "node 4 never held a third of the snapshot");
            madsim::time::sleep(Duration::from_millis(5)).await;
        }
        let cut_at = seen.borrow().progress_bytes;
        assert!(seen.borrow().received.is_empty(), "the snapshot arrived before the cut");
        let (from, to) = (cluster.nodes[&leader].host, cluster.nodes[&4].host);
        NetSim::current().clog_link(from, to);
        madsim::time::sleep(SNAPSHOT_CHUNK_TIMEOUT + Duration::from_secs(5)).await;
        NetSim::current().unclog_link(from, to);
        converge(&cluster, Duration::from_secs(90)).await;
        let received = seen.borrow().received.clone();
        let last = received.last().copied().expect("node 4 received the snapshot");
        assert!(last.resumed_from >= cut_at, "resumed from {} bytes, though {cut_at} had arrived before the cut", last.resumed_from);
        assert!(last.bytes >= 100 * 20_000, "{last:?}");
        observe::uninstall();
    });
}
