//! Writes forwarded on a proxy's long-lived stream: many at once share the stream, each is
//! answered once, and killing the leader while they are out loses none and applies none
//! twice (a retry carries the same sequence number). A malformed write is refused at the
//! node's edge and never reaches the log.
#![cfg(madsim)]

use std::collections::BTreeSet;
use std::time::Duration;

use coolbeans::api::forwarding_client::ForwardingClient;
use coolbeans::api::{ApplyOpRequest, ForwardRequest, ForwardedWrite, OpType};
use coolbeans::client::{Answer, Query, RemoteUpstream};
use coolbeans::fsm::{ClientKey, Op, Reply};
use coolbeans_sim::cluster::{node_addr, Cluster, NodeSetup};
use coolbeans_sim::trace::Trace;
use madsim::runtime::{Handle, Runtime};

fn put(n: u32) -> Op {
    let body = format!("job {n}").into_bytes().into();
    Op::Put { client: Some(ClientKey::new("fe", "c")), tube: "default".into(), pri: n, delay_secs: 0, ttr_secs: 60, body }
}

#[test]
fn forwarded_writes_survive_a_leader_kill_and_apply_once() {
    let runtime = Runtime::with_seed_and_config(11, madsim::Config::default());
    runtime.block_on(async move {
        let mut cluster = Cluster::start(3, NodeSetup::default(), Trace::new());
        let (leader, _) = cluster.await_leader(Duration::from_secs(20), None).await.expect("a leader");
        let host = Handle::current().create_node().name("proxy").ip("10.0.2.1".parse().unwrap()).build();
        let writes = host.spawn(async move {
            let upstream = RemoteUpstream::new((1..=3).map(|id| node_addr(id).to_string()).collect(), "fe".into()).expect("addresses");
            let tasks: Vec<_> = (0..300)
                .map(|n| {
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        madsim::time::sleep(Duration::from_millis(u64::from(n) * 10)).await;
                        upstream.write(put(n)).await
                    })
                })
                .collect();
            let mut ids = Vec::new();
            for task in tasks {
                match task.await.expect("write task") {
                    Ok(Reply::Put { id }) => ids.push(id),
                    other => panic!("a put answered {other:?}"),
                }
            }
            let mut bodies = Vec::new();
            for &id in &ids {
                match upstream.query(Query::Job(id)).await {
                    Ok(Answer::Job(Some((_, body)))) => bodies.push(body),
                    other => panic!("job {id} read as {other:?}"),
                }
            }
            let stats = match upstream.query(Query::StatsTube("default".into())).await {
                Ok(Answer::TubeStats(Some(tube))) => tube,
                other => panic!("stats-tube answered {other:?}"),
            };
            (ids, bodies, stats)
        });
        madsim::time::sleep(Duration::from_millis(1500)).await;
        cluster.kill(leader);
        let (ids, bodies, stats) = writes.await.expect("proxy runs");
        assert_eq!(stats.jobs.ready, 300, "a retried put applied twice: {stats:?}");
        assert_eq!(ids.len(), 300);
        assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 300, "every put got its own job: none applied twice");
        let distinct: BTreeSet<_> = bodies.iter().collect();
        assert_eq!(distinct.len(), 300, "every job holds its own put's body");
    });
}

#[test]
fn a_malformed_forwarded_write_is_refused_before_the_log() {
    let runtime = Runtime::with_seed_and_config(12, madsim::Config::default());
    runtime.block_on(async move {
        let cluster = Cluster::start(3, NodeSetup::default(), Trace::new());
        let (leader, _) = cluster.await_leader(Duration::from_secs(20), None).await.expect("a leader");
        madsim::time::sleep(Duration::from_secs(1)).await;
        let last_before = cluster.status(leader).expect("leader runs").commit_index;
        let host = Handle::current().create_node().name("caller").ip("10.0.2.2".parse().unwrap()).build();
        let answer = host
            .spawn(async move {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node_addr(leader))).unwrap().connect_lazy();
                let mut client = ForwardingClient::new(channel);
                // A reserve names its client: one without is malformed.
                let op = ApplyOpRequest { op: OpType::Reserve as i32, body: Vec::new().into(), ..ApplyOpRequest::default() };
                let frame = ForwardRequest { writes: vec![ForwardedWrite { id: 42, op: Some(op) }] };
                let mut answers = client.forward(tokio_stream::iter(vec![frame])).await.expect("stream opens").into_inner();
                answers.message().await.expect("an answer frame").expect("not the end")
            })
            .await
            .expect("caller runs");
        assert_eq!(answer.answers.len(), 1);
        let refused = &answer.answers[0];
        assert_eq!((refused.id, refused.response.is_none()), (42, true));
        assert_eq!(refused.status_code, tonic::Code::InvalidArgument as i32, "{refused:?}");
        madsim::time::sleep(Duration::from_secs(1)).await;
        // Only heartbeats may have passed: no entry was appended for the refused write.
        assert_eq!(cluster.status(leader).expect("leader runs").commit_index, last_before);
    });
}
