//! A waiting reserve whose answer is lost on its way is still answered, with that job, soon
//! after: the proxy finds the lost answer and asks for it again. The answer is lost for
//! sure here: every node restarts (breaking the proxy's reservation feeds) while the
//! proxy is cut off, and the put that serves the wait lands before the feeds reconnect.
#![cfg(madsim)]

use std::time::Duration;

use coolbeans::client::JobClient;
use coolbeans_sim::client::Connection;
use coolbeans_sim::cluster::{node_addr, Cluster, NodeSetup};
use coolbeans_sim::history::{Answer, Call};
use coolbeans_sim::proxies::{proxy_addr, Proxies};
use coolbeans_sim::trace::Trace;
use madsim::net::NetSim;
use madsim::runtime::{Handle, Runtime};

/// A job to put while the waiter's proxy is cut off: its priority, TTR and body.
struct Put {
    pri: u32,
    ttr_secs: u32,
    body: &'static [u8],
}

/// Cuts the proxy off while a client waits in `reserve`, restarts every node, puts
/// `puts` in order (each after `gap`) and heals; answers the waiter's answer and the ids put.
fn lose_the_answer(puts: Vec<Put>, gap: Duration) -> (Answer, Vec<u64>) {
    let runtime = Runtime::with_seed_and_config(7, madsim::Config::default());
    runtime.block_on(async move {
        let trace = Trace::new();
        let mut cluster = Cluster::start(3, NodeSetup::default(), trace.clone());
        cluster.await_leader(Duration::from_secs(20), None).await.expect("a leader");
        let proxies = Proxies::start(1, 3, Duration::from_secs(60), trace);
        let waiter_host = Handle::current().create_node().name("waiter").ip("10.0.3.1".parse().unwrap()).build();
        let waiter = waiter_host.spawn(async {
            let mut conn = Connection::open(proxy_addr(0)).await.expect("connects");
            let reserve = Call::Reserve { tube: "default".into(), timeout_secs: None };
            conn.call(&reserve, Duration::from_secs(60)).await.expect("answered")
        });
        madsim::time::sleep(Duration::from_secs(2)).await;

        let net = NetSim::current();
        let proxy = proxies.list[0].host;
        let nodes: Vec<_> = cluster.nodes.values().map(|n| n.host).collect();
        for &node in &nodes {
            net.clog_link(node, proxy);
            net.clog_link(proxy, node);
        }
        for id in 1..=3 {
            cluster.kill(id);
            cluster.restart(id);
        }
        cluster.await_leader(Duration::from_secs(20), None).await.expect("a leader after the restart");
        let putter = Handle::current().create_node().name("putter").ip("10.0.3.2".parse().unwrap()).build();
        let mut ids = Vec::new();
        for put in puts {
            let id = putter
                .spawn(async move {
                    let mut client = JobClient::new("putter", (1..=3).map(node_addr).collect());
                    client.put_with_ttr("default", put.pri, put.ttr_secs, put.body).await
                })
                .await
                .expect("putter runs")
                .expect("put acknowledged");
            ids.push(id);
            madsim::time::sleep(gap).await;
        }
        for &node in &nodes {
            net.unclog_link(node, proxy);
            net.unclog_link(proxy, node);
        }
        let answer = tokio::time::timeout(Duration::from_secs(10), waiter).await.expect("answered within 10 s of healing");
        (answer.expect("waiter runs"), ids)
    })
}

#[test]
fn a_lost_reservation_answer_still_arrives() {
    let (answer, ids) = lose_the_answer(vec![Put { pri: 0, ttr_secs: 60, body: b"lost on its way" }], Duration::from_secs(3));
    assert_eq!(answer, Answer::Reserved { id: ids[0], body: b"lost on its way".to_vec() });
}

/// The lost answer's job outlives its TTR before the answer is asked for again, and a more
/// urgent job is ready by then: the answer still names the first job (its reservation took
/// place when first answered). Serving the wait afresh with the urgent job would have held the
/// first one for a client that never learned of it.
#[test]
fn a_lost_answer_still_names_its_job_after_the_ttr_ran_out() {
    let puts = vec![Put { pri: 10, ttr_secs: 1, body: b"the first" }, Put { pri: 0, ttr_secs: 60, body: b"more urgent" }];
    let (answer, ids) = lose_the_answer(puts, Duration::from_secs(2));
    assert_eq!(answer, Answer::Reserved { id: ids[0], body: b"the first".to_vec() });
}
