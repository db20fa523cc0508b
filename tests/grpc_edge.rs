//! Writes over gRPC are checked at the edge: a request that could not apply
//! (here, naming no client where the operation needs one, or a negative id) is refused with
//! InvalidArgument before it reaches the log, so the node's log does not grow; the same
//! request naming its client is appended and answered.
#![cfg(not(madsim))]

mod common;

use common::{one_node, status, temp_dir};
use coolbeans::api::job_state_machine_client::JobStateMachineClient;
use coolbeans::api::{ClientGoneRequest, KickRequest, ReleaseRequest, UseTubeRequest};
use tonic::Code;

#[tokio::test]
async fn writes_that_would_not_apply_never_reach_the_log() {
    let dir = temp_dir("grpc-edge");
    let (_node, addr) = one_node(&dir, &[]).await;
    let mut client = JobStateMachineClient::connect(format!("http://{addr}")).await.expect("connect");
    let last = || async { status(addr).await.expect("the node's status").last_index };
    let before = last().await;

    let refusals = [
        client.release(ReleaseRequest { job_id: 1, ..Default::default() }).await.map(drop),
        client.use_tube(UseTubeRequest { tube_name: "t".into(), ..Default::default() }).await.map(drop),
        client.kick(KickRequest { job_id: -3 }).await.map(drop),
        client.client_gone(ClientGoneRequest { proxy_id: String::new(), client_ids: vec![String::new()] }).await.map(drop),
    ];
    for (i, refusal) in refusals.into_iter().enumerate() {
        let status = refusal.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "request {i}: {status:?}");
        assert!(!status.message().is_empty(), "request {i} says why");
    }
    assert_eq!(last().await, before, "nothing refused was appended");

    let named = UseTubeRequest { tube_name: "t".into(), proxy_id: "p".into(), client_id: "c".into() };
    client.use_tube(named).await.expect("a use naming its client applies");
    assert!(last().await > before, "an accepted write is appended");
}
