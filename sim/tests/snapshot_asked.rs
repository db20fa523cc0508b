//! A snapshot asked for (`cluster-client snapshot`) is encoded and written apart from the
//! driver like any other: the answer comes once it is the log's start, a second ask while
//! one is in flight is answered by that one, and the node keeps serving writes after.
#![cfg(madsim)]

use std::time::Duration;

use coolbeans::client::JobClient;
use coolbeans_sim::cluster::{node_addr, Cluster, NodeSetup};
use coolbeans_sim::trace::Trace;
use madsim::runtime::{Handle, Runtime};

#[test]
fn a_snapshot_asked_for_becomes_the_log_start() {
    let runtime = Runtime::with_seed_and_config(11, madsim::Config::default());
    runtime.block_on(async {
        let cluster = Cluster::start(3, NodeSetup::default(), Trace::new());
        let (leader, _) = cluster.await_leader(Duration::from_secs(20), None).await.expect("a leader");
        let putter = Handle::current().create_node().name("putter").ip("10.0.3.2".parse().unwrap()).build();
        let put = |body: &'static [u8]| {
            putter.spawn(async move { JobClient::new("putter", (1..=3).map(node_addr).collect()).put("default", 0, body).await })
        };
        for _ in 0..20 {
            put(b"before").await.expect("putter runs").expect("put acknowledged");
        }
        let handle = cluster.handle(leader).expect("the leader runs");
        let applied = handle.status().applied_index;
        let (first, second) = tokio::join!(handle.snapshot(), handle.snapshot());
        let index = first.expect("the snapshot is taken");
        assert!(index >= applied, "snapshot at {index}, applied {applied} when asked");
        assert_eq!(second, Ok(index), "a second ask at once gets the same snapshot");
        madsim::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(handle.status().snapshot_index, index);
        put(b"after").await.expect("putter runs").expect("put acknowledged after the snapshot");
    });
}
