//! The `Forwarding` service: proxies' writes on one long-lived stream each. Every write of a
//! frame is proposed as its own call to the node (the driver batches them into entries), and
//! answers go back as they apply, as many to a frame as are ready.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use prost::Message as _;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status, Streaming};

use super::status::status_of;
use crate::api::forwarding_server::Forwarding;
use crate::api::metadata::CallerSeq;
use crate::api::metadata::{leader_hint, needs_version};
use crate::api::{self, ForwardedAnswer};
use crate::codec::wire::{decode_op, encode_result};
use crate::fsm::Op;
use crate::limits::{FORWARD_FRAME_ANSWERS_MAX, FORWARD_FRAME_BYTES_SOFT_MAX};
use crate::node::{NodeError, NodeHandle};

/// How long a write may wait for its entry to apply before its caller is told to retry (as on
/// the unary calls).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ForwardService {
    node: NodeHandle,
    /// Writes of one stream taken and not yet answered back (`--max-forwarded-writes`).
    writes_max: usize,
    /// Changes when the server begins to shut down: streams stop taking writes then, and end
    /// once the writes they took are answered.
    stopping: tokio::sync::watch::Receiver<()>,
}

impl ForwardService {
    pub fn new(node: NodeHandle, stopping: tokio::sync::watch::Receiver<()>, writes_max: usize) -> Self {
        ForwardService { node, writes_max: writes_max.max(1), stopping }
    }
}

#[tonic::async_trait]
impl Forwarding for ForwardService {
    type ForwardStream = Answers;

    async fn forward(&self, request: Request<Streaming<api::ForwardRequest>>) -> Result<Response<Answers>, Status> {
        let mut incoming = request.into_inner();
        // A write holds a permit from when it is read until its answer goes into a frame: past
        // the bound the stream is read no further, and h2's flow control stops the proxy,
        // however many writes it sends without reading its answers.
        let permits = Arc::new(Semaphore::new(self.writes_max));
        let (tx, rx) = mpsc::channel(self.writes_max);
        let node = self.node.clone();
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    biased;
                    _ = stopping.changed() => return,
                    frame = incoming.message() => frame,
                };
                let Ok(Some(frame)) = frame else { return };
                for write in frame.writes {
                    let permit = tokio::select! {
                        biased;
                        _ = stopping.changed() => return,
                        permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                    };
                    let (node, tx) = (node.clone(), tx.clone());
                    tokio::spawn(async move {
                        let _ = tx.send((apply(&node, write).await, permit)).await;
                    });
                }
            }
        });
        Ok(Response::new(Answers { rx }))
    }
}

/// Proposes one forwarded write and answers it. A write that could not apply (malformed, or
/// one only the leader itself proposes) is refused before it reaches the log.
async fn apply(node: &NodeHandle, write: api::ForwardedWrite) -> ForwardedAnswer {
    let id = write.id;
    let Some(request) = write.op else {
        return refused(id, Status::invalid_argument("a forwarded write without an operation"));
    };
    let op = match decode_op(request.op(), &request.body) {
        Ok(Op::Tick | Op::NewLeader) => return refused(id, Status::invalid_argument("only the leader proposes ticks and leader changes")),
        Ok(op) => op,
        Err(e) => return refused(id, Status::invalid_argument(e.0)),
    };
    let caller = (!request.caller_id.is_empty()).then_some(CallerSeq { caller: request.caller_id, seq: request.caller_seq });
    match tokio::time::timeout(WRITE_TIMEOUT, node.propose(op, caller)).await {
        Ok(Ok(reply)) => answered(id, encode_result(&Ok(reply))),
        Ok(Err(NodeError::Fsm(e))) => answered(id, encode_result(&Err(e))),
        Ok(Err(e)) => refused(id, status_of(e)),
        Err(_) => refused(id, Status::unavailable("write not applied in time; retry")),
    }
}

fn answered(id: u64, response: api::ApplyOpResponse) -> ForwardedAnswer {
    ForwardedAnswer { id, response: Some(response), ..ForwardedAnswer::default() }
}

/// A write refused as `status` says; "not the leader" carries the leader if known.
fn refused(id: u64, status: Status) -> ForwardedAnswer {
    let (leader_id, leader_addr) = leader_hint(&status);
    ForwardedAnswer {
        id,
        response: None,
        status_code: status.code() as i32,
        status_message: status.message().to_string(),
        leader_id: leader_id.unwrap_or(0),
        leader_addr: leader_addr.unwrap_or_default(),
        needs_version: needs_version(&status).unwrap_or(0),
    }
}

/// The answers of one stream, as many to a frame as are ready when it is sent.
pub struct Answers {
    /// Each answer with its write's permit, given back once the answer is in a frame.
    rx: mpsc::Receiver<(ForwardedAnswer, OwnedSemaphorePermit)>,
}

impl tokio_stream::Stream for Answers {
    type Item = Result<api::ForwardResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let first = match self.rx.poll_recv(cx) {
            Poll::Ready(Some((answer, _permit))) => answer,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let mut bytes = first.encoded_len();
        let mut answers = vec![first];
        while answers.len() < FORWARD_FRAME_ANSWERS_MAX && bytes < FORWARD_FRAME_BYTES_SOFT_MAX {
            match self.rx.try_recv() {
                Ok((answer, _permit)) => {
                    bytes += answer.encoded_len();
                    answers.push(answer);
                }
                Err(_) => break,
            }
        }
        Poll::Ready(Some(Ok(api::ForwardResponse { answers })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The round trip of a refusal: the node's side here, the proxy's in `client`.
    use crate::api::metadata::{is_not_leader, is_state_machine};
    use crate::client::forward::outcome;

    /// A refusal crosses the stream and comes back as the status the unary call would have
    /// returned: "not the leader" with its hint, anything else with its code and message.
    #[test]
    fn refusals_come_back_as_the_unary_status() {
        let hint = status_of(NodeError::NotLeader { leader_id: Some(3), leader_addr: Some("h:3".into()) });
        let words = hint.message().to_string();
        let back = outcome(refused(7, hint)).expect_err("refused");
        assert!(is_not_leader(&back));
        assert_eq!(back.message(), words, "the node's own words");
        assert_eq!(words, "not the leader; the leader is node 3 at h:3");
        assert_eq!(leader_hint(&back), (Some(3), Some("h:3".into())));
        let unknown = outcome(refused(8, status_of(NodeError::NotLeader { leader_id: None, leader_addr: None }))).expect_err("refused");
        assert!(is_not_leader(&unknown));
        assert_eq!(leader_hint(&unknown), (None, None));
        let busy = outcome(refused(9, status_of(NodeError::Overloaded))).expect_err("refused");
        assert_eq!(busy.code(), tonic::Code::ResourceExhausted);
        assert!(!is_not_leader(&busy));
        let last_tube = outcome(refused(11, status_of(NodeError::Fsm(crate::fsm::FsmError::LastWatchedTube)))).expect_err("refused");
        assert_eq!(last_tube.code(), tonic::Code::OutOfRange);
        assert!(is_state_machine(&last_tube), "the state machine's answer keeps its mark");
        let answer = answered(10, encode_result(&Ok(crate::fsm::Reply::Put { id: 5 })));
        assert_eq!(outcome(answer).expect("answered").error_code, 0);
    }

    /// A write's permit comes back only once its answer is taken into a frame, so a proxy
    /// that reads no answers holds the stream's bound and no more.
    #[test]
    fn permits_come_back_as_answers_are_framed() {
        let permits = Arc::new(Semaphore::new(2));
        let (tx, rx) = mpsc::channel(2);
        for id in [1, 2] {
            let permit = permits.clone().try_acquire_owned().expect("a permit");
            tx.try_send((answered(id, api::ApplyOpResponse::default()), permit)).expect("room");
        }
        assert!(permits.clone().try_acquire_owned().is_err(), "the bound is held by answers not yet taken");
        let mut answers = Answers { rx };
        let waker = std::task::Waker::noop();
        let frame = match tokio_stream::Stream::poll_next(Pin::new(&mut answers), &mut Context::from_waker(waker)) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => panic!("no frame: {other:?}"),
        };
        assert_eq!(frame.answers.iter().map(|a| a.id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(permits.available_permits(), 2, "both permits are back once framed");
    }

    /// An operation refused until every voter is upgraded comes back as such, with the
    /// version it needs and the voters behind in its message: not as "not the leader", nor
    /// as the state machine's "wrong state", which share its code.
    #[test]
    fn not_upgraded_comes_back_as_such() {
        let e = NodeError::NotEveryVoterUpgraded { op: crate::storage::format::OpType::PauseTube, needs: 2, behind: vec![(3, Some(1)), (4, None)] };
        let back = outcome(refused(12, status_of(e))).expect_err("refused");
        assert_eq!(back.code(), tonic::Code::FailedPrecondition);
        assert_eq!(needs_version(&back), Some(2));
        assert!(!is_not_leader(&back));
        assert!(back.message().contains("PAUSE_TUBE") && back.message().contains("node 3 runs version 1, node 4 has not been heard from"));
        let not_leader = outcome(refused(13, status_of(NodeError::NotLeader { leader_id: None, leader_addr: None }))).expect_err("refused");
        assert_eq!(needs_version(&not_leader), None);
    }
}
