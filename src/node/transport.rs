//! Outgoing raft traffic: one task per peer drains a bounded queue and sends its batches on one
//! long-lived `RaftTransport.Stream` call (no call and no headers per batch). A snapshot goes
//! apart, by a task of its own on a `SendSnapshot` call, in chunks (`snapshot_chunks`), so
//! that heartbeats and appends never wait behind it. A full queue drops messages (raft
//! retransmits); a stream that broke or stalled is reported to raft as an unreachable peer and
//! opened again; a snapshot's outcome is reported to raft once it is known.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::transport::Endpoint;

use super::handle::Input;
use super::snapshot_chunks::{Outgoing, SnapshotKey};
use crate::api::{RaftBatch, SnapshotProgress};
use crate::chaos::buggify;
use crate::limits::{
    RAFT_BATCH_BYTES_SOFT_MAX, RAFT_BATCH_MESSAGES_MAX, RAFT_MESSAGE_BYTES_MAX, RAFT_PEER_QUEUE_MESSAGES_MAX, RAFT_STREAM_BATCHES_MAX,
    SNAPSHOT_CHUNKS_IN_FLIGHT_MAX, SNAPSHOT_CHUNK_TIMEOUT,
};
use crate::security::dial::explain;
use crate::security::Dialer;

/// How long connecting to a peer may take before it counts as unreachable.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);

struct Peer {
    addr: String,
    queue: mpsc::Sender<Message>,
}

/// The peers raft messages go to.
pub(crate) struct Transport {
    from: u64,
    /// This node's own address, sent with every batch.
    from_addr: String,
    /// Addresses learned from peers' batches, for peers the membership does not name yet.
    learned: BTreeMap<u64, String>,
    peers: BTreeMap<u64, Peer>,
    /// Where send failures are reported: the driver's own input channel, weak, so that the
    /// node stops once every handle is dropped (a strong sender here kept it running).
    reports: mpsc::WeakSender<Input>,
    /// The size snapshots are cut into (`limits::SNAPSHOT_CHUNK_BYTES_MAX` but in the
    /// simulator, which cuts them small so that its snapshots take many chunks).
    snapshot_chunk_bytes: usize,
    /// This node's cluster as far as it knows (0: not yet), stamped on what it sends.
    cluster_id: Arc<AtomicU64>,
    /// The state machine version this node runs, stamped on what it sends: how a leader
    /// learns, with no call of its own, which operations every voter understands.
    version: u32,
    /// How peers are dialed: this node's certificate or token, with its peer role.
    dialer: Dialer,
}

impl Transport {
    /// `cluster_id` is the node's cluster, as far as it knows, and `version` the state
    /// machine version it runs: both are stamped on what it sends.
    pub fn new(
        from: u64,
        from_addr: String,
        reports: mpsc::WeakSender<Input>,
        snapshot_chunk_bytes: usize,
        (cluster_id, version): (Arc<AtomicU64>, u32),
        dialer: Dialer,
    ) -> Self {
        assert!(snapshot_chunk_bytes > 0);
        assert!(snapshot_chunk_bytes <= crate::limits::SNAPSHOT_CHUNK_BYTES_MAX);
        let (learned, peers) = (BTreeMap::new(), BTreeMap::new());
        Transport { from, from_addr, learned, peers, reports, snapshot_chunk_bytes, cluster_id, version, dialer }
    }

    /// The driver's own input channel, for other work that reports back to it (weak: a
    /// report must not keep the node alive).
    pub fn reports(&self) -> mpsc::WeakSender<Input> {
        self.reports.clone()
    }

    /// Remembers where a peer that sent us a batch can be reached.
    pub fn learn(&mut self, peer: u64, addr: String) {
        if peer != 0 && !addr.is_empty() {
            self.learned.insert(peer, addr);
        }
    }

    /// Sends messages to their peers, at the addresses the membership gives.
    pub fn send(&mut self, messages: Vec<Message>, addresses: &BTreeMap<u64, String>) {
        for m in messages {
            let to = m.to;
            let Some(addr) = addresses.get(&to).or_else(|| self.learned.get(&to)).cloned() else {
                tracing::debug!(to, "no address for peer; message dropped");
                continue;
            };
            let peer = self.peer(to, &addr);
            if peer.queue.try_send(m).is_err() {
                tracing::debug!(to, "peer queue full; message dropped");
            }
        }
    }

    /// Forgets peers no longer in the membership.
    pub fn retain(&mut self, addresses: &BTreeMap<u64, String>) {
        self.peers.retain(|id, _| addresses.contains_key(id));
    }

    fn peer(&mut self, to: u64, addr: &str) -> &Peer {
        let stale = self.peers.get(&to).is_some_and(|p| p.addr != addr);
        if stale || !self.peers.contains_key(&to) {
            let (tx, rx) = mpsc::channel(RAFT_PEER_QUEUE_MESSAGES_MAX);
            let from = (self.from, self.from_addr.clone());
            let stamps = (self.cluster_id.clone(), self.version);
            let (reports, dialer) = (self.reports.clone(), self.dialer.clone());
            tokio::spawn(run_peer(from, to, addr.to_string(), rx, (reports, dialer), self.snapshot_chunk_bytes, stamps));
            self.peers.insert(to, Peer { addr: addr.to_string(), queue: tx });
        }
        &self.peers[&to]
    }
}

/// Sends everything queued for one peer until the queue is dropped: snapshots by a task of
/// their own, everything else on the peer's stream, in batches.
async fn run_peer(
    (from, from_addr): (u64, String),
    to: u64,
    addr: String,
    mut queue: mpsc::Receiver<Message>,
    (reports, dialer): (mpsc::WeakSender<Input>, Dialer),
    snapshot_chunk_bytes: usize,
    (cluster_id, version): (Arc<AtomicU64>, u32),
) {
    let endpoint = match dialer.endpoint(&addr) {
        Ok(e) => e.connect_timeout(SEND_TIMEOUT),
        Err(e) => {
            tracing::error!(to, %addr, error = %e, "bad peer address");
            return;
        }
    };
    let endpoint = (dialer, endpoint);
    let mut stream: Option<PeerStream> = None;
    let mut snapshot: Option<SnapshotSend> = None;
    while let Some(first) = queue.recv().await {
        let (messages, snapshots) = take_batch(first, &mut queue);
        for m in snapshots {
            let outgoing = Outgoing::new(from, from_addr.clone(), m, snapshot_chunk_bytes).in_cluster(cluster_id.load(Relaxed));
            start_snapshot(&mut snapshot, outgoing, to, &endpoint, &reports);
        }
        // Buggify: a batch lost or late on the wire (raft must cope with both).
        if messages.is_empty() || buggify::fires(0.01) {
            continue;
        }
        if let Some(pause) = buggify::delay(0.01, Duration::from_millis(300)) {
            tokio::time::sleep(pause).await;
        }
        let batch = RaftBatch { from, messages, from_addr: from_addr.clone(), cluster_id: cluster_id.load(Relaxed), version };
        if !send_on_stream(&endpoint, &mut stream, batch).await {
            report(&reports, Input::Unreachable { peer: to });
        }
    }
}

/// Takes `first` and the messages queued behind it, up to a batch's count and bytes: the
/// snapshots apart, the others encoded.
fn take_batch(first: Message, queue: &mut mpsc::Receiver<Message>) -> (Vec<Bytes>, Vec<Message>) {
    let mut encoded: Vec<Bytes> = Vec::new();
    let mut snapshots = Vec::new();
    let mut bytes = 0;
    let mut next = Some(first);
    while let Some(m) = next.take() {
        if m.get_msg_type() == MessageType::MsgSnapshot {
            snapshots.push(m);
        } else if let Ok(e) = m.write_to_bytes() {
            bytes += e.len();
            encoded.push(e.into());
        }
        if encoded.len() + snapshots.len() < RAFT_BATCH_MESSAGES_MAX && bytes < RAFT_BATCH_BYTES_SOFT_MAX {
            next = queue.try_recv().ok();
        }
    }
    (encoded, snapshots)
}

/// A snapshot being sent to a peer, by a task of its own, so that the peer's heartbeats and
/// appends never wait behind it. The task tells raft how it ended (`SnapshotSent`), unless a
/// newer snapshot to the same peer took its place.
struct SnapshotSend {
    key: SnapshotKey,
    message_term: u64,
    task: tokio::task::JoinHandle<()>,
}

/// Tells the driver, if it still runs, without waiting: a full input queue drops the report,
/// which raft makes up for (it probes the peer again).
fn report(reports: &mpsc::WeakSender<Input>, input: Input) {
    if let Some(reports) = reports.upgrade() {
        let _ = reports.try_send(input);
    }
}

/// Starts sending `outgoing` to peer `to`. One snapshot is sent to a peer at a time: the same
/// one asked again while it is sent goes on (its outcome answers both asks); another takes
/// the place of the one being sent, whose outcome then no longer matters to raft.
fn start_snapshot(current: &mut Option<SnapshotSend>, outgoing: Outgoing, to: u64, endpoint: &(Dialer, Endpoint), reports: &mpsc::WeakSender<Input>) {
    if let Some(sending) = current.as_ref().filter(|s| !s.task.is_finished()) {
        if sending.key == outgoing.key() && sending.message_term == outgoing.message_term() {
            tracing::debug!(to, index = sending.key.index, "snapshot already being sent");
            return;
        }
        sending.task.abort();
    }
    let (key, message_term) = (outgoing.key(), outgoing.message_term());
    let (endpoint, reports) = (endpoint.clone(), reports.clone());
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let outcome = send_snapshot(&endpoint, outgoing).await;
        let ok = outcome.is_ok();
        match outcome {
            Ok(resumed_from) => tracing::info!(
                to,
                index = key.index,
                bytes = key.data_bytes,
                resumed_from,
                took_ms = started.elapsed().as_millis() as u64,
                "snapshot sent"
            ),
            Err(why) => tracing::warn!(to, index = key.index, bytes = key.data_bytes, %why, "snapshot not sent; raft will retry"),
        }
        if !ok {
            report(&reports, Input::Unreachable { peer: to });
        }
        if let Some(reports) = reports.upgrade() {
            let _ = reports.send(Input::SnapshotSent { peer: to, ok }).await;
        }
    });
    *current = Some(SnapshotSend { key, message_term, task });
}

/// Sends one snapshot on a `SendSnapshot` call: the header, then the chunks from where the
/// receiver already holds (a retry resumes), a few ahead of its acknowledgements, then the
/// end; done once the receiver has handed the whole message to raft. Every wait (to
/// connect, to send a part, for an acknowledgement) has its own timeout, so a large snapshot
/// takes as long as it needs while a stalled one fails. Answers where the data resumed from.
async fn send_snapshot((dialer, endpoint): &(Dialer, Endpoint), mut outgoing: Outgoing) -> Result<u64, String> {
    let channel = within(dialer.connect(endpoint), "connecting").await?.map_err(|e| format!("connecting: {}", explain(&e)))?;
    let mut client = dialer.raft(channel).max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX).max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX);
    let (parts, parts_rx) = mpsc::channel(SNAPSHOT_CHUNKS_IN_FLIGHT_MAX + 2);
    parts.try_send(outgoing.header()).map_err(|_| "the header did not queue")?;
    let call = client.send_snapshot(tokio_stream::wrappers::ReceiverStream::new(parts_rx));
    let mut progress = within(call, "opening the call").await?.map_err(|s| format!("refused: {}", s.message()))?.into_inner();
    let held = next_progress(&mut progress).await?.received_bytes;
    let total = outgoing.data_bytes();
    if held > total {
        return Err(format!("the receiver holds {held} bytes of {total}"));
    }
    while outgoing.hash_toward(held) {
        tokio::task::yield_now().await;
    }
    let window = (SNAPSHOT_CHUNKS_IN_FLIGHT_MAX * outgoing.chunk_bytes()) as u64;
    let (mut sent, mut acked, mut ended) = (held, held, false);
    loop {
        while !ended && sent - acked < window {
            let part = if sent < total {
                let part = outgoing.chunk(sent);
                sent = outgoing.chunk_end(sent);
                part
            } else {
                ended = true;
                outgoing.end()
            };
            // Buggify: the call cut off midway (the retry resumes), or a pause before a part.
            if buggify::fires(0.02) {
                return Err("buggify: cut off".into());
            }
            if let Some(pause) = buggify::delay(0.02, Duration::from_millis(300)) {
                tokio::time::sleep(pause).await;
            }
            within(parts.send(part), "sending a part").await?.map_err(|_| "the call ended")?;
        }
        let answer = next_progress(&mut progress).await?;
        if answer.delivered {
            return Ok(held);
        }
        if answer.received_bytes < acked || answer.received_bytes > sent {
            return Err(format!("acknowledged {} bytes, with {acked} to {sent} possible", answer.received_bytes));
        }
        acked = answer.received_bytes;
    }
}

/// `future`, or an error naming `what` if it takes longer than a chunk may.
async fn within<T>(future: impl std::future::Future<Output = T>, what: &str) -> Result<T, String> {
    tokio::time::timeout(SNAPSHOT_CHUNK_TIMEOUT, future).await.map_err(|_| format!("{what} took over {SNAPSHOT_CHUNK_TIMEOUT:?}"))
}

async fn next_progress(progress: &mut tonic::Streaming<SnapshotProgress>) -> Result<SnapshotProgress, String> {
    match within(progress.message(), "waiting for an acknowledgement").await? {
        Ok(Some(answer)) => Ok(answer),
        Ok(None) => Err("the receiver ended the call".into()),
        Err(status) => Err(format!("refused: {}", status.message())),
    }
}

/// A peer's open stream: where its batches go, and the call that carries them.
struct PeerStream {
    batches: mpsc::Sender<RaftBatch>,
    call: tokio::task::JoinHandle<Result<tonic::Response<crate::api::Empty>, tonic::Status>>,
}

impl Drop for PeerStream {
    fn drop(&mut self) {
        self.call.abort();
    }
}

/// Sends a batch on the peer's stream, opening one if there is none. Answers false when the
/// batch may not have gone: the stream had broken or stalled (it is dropped, and the next
/// batch opens another) or could not open.
async fn send_on_stream((dialer, endpoint): &(Dialer, Endpoint), stream: &mut Option<PeerStream>, batch: RaftBatch) -> bool {
    let broken = stream.as_ref().is_some_and(|s| s.call.is_finished());
    if broken {
        *stream = None;
    }
    if stream.is_none() {
        let channel = match tokio::time::timeout(SEND_TIMEOUT, dialer.connect(endpoint)).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => {
                tracing::debug!(peer = %endpoint.uri(), error = explain(&e), "cannot reach peer");
                return false;
            }
            Err(_) => return false,
        };
        let (batches, rx) = mpsc::channel(RAFT_STREAM_BATCHES_MAX);
        let mut client = dialer.raft(channel);
        let call = tokio::spawn(async move { client.stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await });
        *stream = Some(PeerStream { batches, call });
    }
    let sent = stream.as_ref().is_some_and(|s| s.batches.try_send(batch).is_ok());
    if !sent {
        *stream = None;
    }
    sent && !broken
}
