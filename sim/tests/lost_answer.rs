//! A waiting reserve whose answer is lost on its way is still answered, with that job, soon
//! after: the front end finds the lost answer and asks for it again. The answer is lost for
//! sure here: every node restarts (breaking the front end's reservation feeds) while the
//! front end is cut off, and the put that serves the wait lands before the feeds reconnect.
#![cfg(madsim)]

use std::time::Duration;

use coolbeans::rpc::job_client::JobClient;
use coolbeans_sim::client::Connection;
use coolbeans_sim::front_ends::{front_end_addr, FrontEnds};
use coolbeans_sim::history::{Answer, Call};
use coolbeans_sim::trace::Trace;
use coolbeans_sim::world::{node_addr, Cluster, NodeSetup};
use madsim::net::NetSim;
use madsim::runtime::{Handle, Runtime};

#[test]
fn a_lost_reservation_answer_still_arrives() {
    let runtime = Runtime::with_seed_and_config(7, madsim::Config::default());
    runtime.block_on(async {
        let trace = Trace::new();
        let mut cluster = Cluster::start(3, NodeSetup::default(), trace.clone());
        cluster.await_leader(Duration::from_secs(20), None).await.expect("a leader");
        let front_ends = FrontEnds::start(1, 3, Duration::from_secs(60), trace);
        let waiter_host = Handle::current().create_node().name("waiter").ip("10.0.3.1".parse().unwrap()).build();
        let waiter = waiter_host.spawn(async {
            let mut conn = Connection::open(front_end_addr(0)).await.expect("connects");
            let reserve = Call::Reserve { tube: "default".into(), timeout_secs: None };
            conn.call(&reserve, Duration::from_secs(60)).await.expect("answered")
        });
        madsim::time::sleep(Duration::from_secs(2)).await;

        let net = NetSim::current();
        let front_end = front_ends.list[0].host;
        let nodes: Vec<_> = cluster.nodes.values().map(|n| n.host).collect();
        for &node in &nodes {
            net.clog_link(node, front_end);
            net.clog_link(front_end, node);
        }
        for id in 1..=3 {
            cluster.kill(id);
            cluster.restart(id);
        }
        cluster.await_leader(Duration::from_secs(20), None).await.expect("a leader after the restart");
        let putter = Handle::current().create_node().name("putter").ip("10.0.3.2".parse().unwrap()).build();
        let id = putter
            .spawn(async { JobClient::new("putter", (1..=3).map(node_addr).collect()).put("default", 0, b"lost on its way").await })
            .await
            .expect("putter runs")
            .expect("put acknowledged");
        madsim::time::sleep(Duration::from_secs(3)).await;
        for &node in &nodes {
            net.unclog_link(node, front_end);
            net.unclog_link(front_end, node);
        }
        let answer = tokio::time::timeout(Duration::from_secs(10), waiter).await.expect("answered within 10 s of healing");
        assert_eq!(answer.expect("waiter runs"), Answer::Reserved { id, body: b"lost on its way".to_vec() });
    });
}
