//! A proxy's writes to one node on one long-lived `Forwarding` stream: the writes queued
//! while a frame is sent go together in the next, so many clients share each frame and no
//! write pays for a call of its own. A stream that breaks, or stops answering, fails the
//! writes it carried (their callers retry with the same sequence number, which applies
//! once) and is opened again for the next write. An answer comes back as the status the
//! unary call would have had (`outcome`).

use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message as _;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tonic::Status;

use super::retry::{next_backoff, BACKOFF_MIN};
use crate::api::metadata::{mark_state_machine, not_leader, NEEDS_VERSION_KEY};
use crate::api::{self, ForwardRequest, ForwardedAnswer, ForwardedWrite};
use crate::limits::{
    CLIENT_API_ANSWER_BYTES_MAX, FORWARD_CALLS_QUEUED_MAX, FORWARD_FRAMES_QUEUED_MAX, FORWARD_FRAME_BYTES_SOFT_MAX, FORWARD_FRAME_WRITES_MAX,
};
use crate::metrics::Counter;
use crate::security::dial::ForwardingApi;

/// How long a write waits for its answer before its caller tries elsewhere (as a unary call's
/// own limit does).
pub(super) const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stream with writes out may go without answering any before it is dropped: the
/// node is paused or cut off, though its connection looks open.
const STREAM_SILENCE_MAX: Duration = Duration::from_secs(6);
/// How long opening a stream may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(2);

type Answer = Result<api::ApplyOpResponse, Status>;

struct Call {
    op: api::ApplyOpRequest,
    reply: oneshot::Sender<Answer>,
}

/// The writes to one node.
pub struct Forwarder {
    calls: mpsc::Sender<Call>,
}

impl Forwarder {
    /// Forwards to the node `client` calls; its stream task lives as long as this.
    /// Each stream it opens is counted in `opened`, if given.
    pub fn new(client: ForwardingApi, opened: Option<Counter>) -> Forwarder {
        let (calls, rx) = mpsc::channel(FORWARD_CALLS_QUEUED_MAX);
        tokio::spawn(run(client, rx, opened));
        Forwarder { calls }
    }

    /// Forwards one write and waits for its answer: the state machine's (which may be a
    /// refusal), or the status that kept the node from taking it.
    pub async fn write(&self, op: api::ApplyOpRequest) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.calls.send(Call { op, reply }).await.map_err(|_| Status::unavailable("the forwarder has stopped"))?;
        match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(Status::unavailable("the forward stream broke before the write was answered")),
            Err(_) => Err(Status::deadline_exceeded("no answer to the forwarded write in time")),
        }
    }
}

/// A forwarded answer's outcome as the unary call would have had it: the state machine's
/// answer, or the status that refused the write (with its leader hint).
pub fn outcome(answer: ForwardedAnswer) -> Result<api::ApplyOpResponse, Status> {
    if let Some(response) = answer.response {
        return Ok(response);
    }
    let code = tonic::Code::from_i32(answer.status_code);
    if code == tonic::Code::FailedPrecondition && answer.needs_version != 0 {
        let mut status = Status::failed_precondition(answer.status_message);
        status.metadata_mut().insert(NEEDS_VERSION_KEY, answer.needs_version.into());
        return Err(status);
    }
    if code == tonic::Code::FailedPrecondition {
        let leader_id = (answer.leader_id != 0).then_some(answer.leader_id);
        let leader_addr = (!answer.leader_addr.is_empty()).then_some(answer.leader_addr);
        return Err(not_leader(leader_id, leader_addr));
    }
    let mut status = Status::new(code, answer.status_message);
    // One answer's OutOfRange is the state machine's ("last watched tube"): tonic's own, for a
    // message over the size limit, would have failed the whole stream.
    if code == tonic::Code::OutOfRange {
        mark_state_machine(&mut status);
    }
    Err(status)
}

/// Opens a stream when there is a write to send, and runs it until it breaks; again and again
/// until the forwarder is dropped.
async fn run(client: ForwardingApi, mut calls: mpsc::Receiver<Call>, opened: Option<Counter>) {
    let mut backoff = BACKOFF_MIN;
    // After a failed open, writes are refused at once until this time (their callers try
    // another node meanwhile), rather than wait behind the backoff.
    let mut down_until: Option<Instant> = None;
    while let Some(first) = calls.recv().await {
        if down_until.is_some_and(|at| Instant::now() < at) {
            let _ = first.reply.send(Err(Status::unavailable("the forward stream to this node is down; retrying soon")));
            continue;
        }
        let (frames, frames_rx) = mpsc::channel(FORWARD_FRAMES_QUEUED_MAX);
        let mut client = client.clone().max_decoding_message_size(CLIENT_API_ANSWER_BYTES_MAX).max_encoding_message_size(CLIENT_API_ANSWER_BYTES_MAX);
        let request = tokio_stream::wrappers::ReceiverStream::new(frames_rx);
        let answers = match tokio::time::timeout(OPEN_TIMEOUT, client.forward(request)).await {
            Ok(Ok(response)) => response.into_inner(),
            opened => {
                let status = match opened {
                    Ok(Err(status)) => status,
                    _ => Status::unavailable("the forward stream did not open in time"),
                };
                let _ = first.reply.send(Err(status));
                down_until = Some(Instant::now() + backoff);
                backoff = next_backoff(backoff);
                continue;
            }
        };
        (backoff, down_until) = (BACKOFF_MIN, None);
        if let Some(opened) = &opened {
            opened.inc();
        }
        let mut stream = Stream { frames, out: BTreeMap::new(), next_id: 1, last_heard: Instant::now() };
        let why = stream.carry(first, &mut calls, answers).await;
        stream.fail_all(&why);
    }
}

/// One open stream: the writes sent on it that wait for answers, by id.
struct Stream {
    frames: mpsc::Sender<ForwardRequest>,
    out: BTreeMap<u64, oneshot::Sender<Answer>>,
    next_id: u64,
    /// When the stream last answered (or last went from idle to busy).
    last_heard: Instant,
}

impl Stream {
    /// Sends `first` and every write queued after it, routes the answers, and returns why the
    /// stream ended.
    async fn carry(&mut self, first: Call, calls: &mut mpsc::Receiver<Call>, mut answers: tonic::Streaming<api::ForwardResponse>) -> String {
        let mut next = Some(first);
        loop {
            if let Some(call) = next.take() {
                if let Err(why) = self.send_frame(call, calls) {
                    return why;
                }
            }
            let silence_ends = self.last_heard + STREAM_SILENCE_MAX;
            tokio::select! {
                biased;
                frame = answers.message() => match frame {
                    Ok(Some(frame)) => self.route(frame),
                    Ok(None) => return "the node ended the forward stream".into(),
                    Err(status) => return format!("the forward stream broke: {}", status.message()),
                },
                call = calls.recv() => match call {
                    Some(call) => next = Some(call),
                    None => return "the forwarder stopped".into(),
                },
                _ = tokio::time::sleep_until(silence_ends), if !self.out.is_empty() => {
                    return "the node stopped answering on the forward stream".into();
                }
            }
        }
    }

    /// Sends `first` and the writes queued behind it as one frame.
    fn send_frame(&mut self, first: Call, calls: &mut mpsc::Receiver<Call>) -> Result<(), String> {
        if self.out.is_empty() {
            self.last_heard = Instant::now();
        }
        let mut writes = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(call) = next.take() {
            let id = self.next_id;
            self.next_id += 1;
            bytes += call.op.encoded_len();
            writes.push(ForwardedWrite { id, op: Some(call.op) });
            self.out.insert(id, call.reply);
            if writes.len() < FORWARD_FRAME_WRITES_MAX && bytes < FORWARD_FRAME_BYTES_SOFT_MAX {
                next = calls.try_recv().ok();
            }
        }
        self.frames.try_send(ForwardRequest { writes }).map_err(|_| "the forward stream stalled".to_string())
    }

    fn route(&mut self, frame: api::ForwardResponse) {
        self.last_heard = Instant::now();
        for answer in frame.answers {
            if let Some(reply) = self.out.remove(&answer.id) {
                let _ = reply.send(outcome(answer));
            }
        }
    }

    fn fail_all(&mut self, why: &str) {
        tracing::debug!(writes = self.out.len(), why, "forward stream ended");
        for (_, reply) in std::mem::take(&mut self.out) {
            let _ = reply.send(Err(Status::unavailable(why.to_string())));
        }
    }
}
