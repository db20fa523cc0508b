//! Outgoing raft traffic: one task per peer drains a bounded queue and sends its batches on one
//! long-lived `RaftTransport.Stream` call (no call and no headers per batch); a snapshot goes
//! as a call of its own, so that a large one does not hold heartbeats behind it. A full queue
//! drops messages (raft retransmits); a stream that broke or stalled, or a failed call, is
//! reported to raft as an unreachable peer and the stream is opened again.

use std::collections::BTreeMap;
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::mpsc;
use tonic::transport::Endpoint;

use super::handle::Input;
use crate::chaos::buggify;
use crate::api::raft_transport_client::RaftTransportClient;
use crate::api::RaftBatch;

/// Messages queued per peer before new ones are dropped.
const PEER_QUEUE_MESSAGES_MAX: usize = 4096;
/// Messages sent in one batch.
const BATCH_MESSAGES_MAX: usize = 256;
/// How long one send may take before the peer counts as unreachable.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Batches waiting to go out on a peer's stream: past this the peer has stopped reading (it
/// is paused or cut off though its connection looks open), and the stream is dropped.
const STREAM_BATCHES_MAX: usize = 64;

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
    /// Where send failures are reported (the driver's own input channel).
    reports: mpsc::Sender<Input>,
}

impl Transport {
    pub fn new(from: u64, from_addr: String, reports: mpsc::Sender<Input>) -> Self {
        Transport { from, from_addr, learned: BTreeMap::new(), peers: BTreeMap::new(), reports }
    }

    /// The driver's own input channel, for other work that reports back to it (weak: a
    /// report must not keep the node alive).
    pub fn reports(&self) -> mpsc::WeakSender<Input> {
        self.reports.downgrade()
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
            let (tx, rx) = mpsc::channel(PEER_QUEUE_MESSAGES_MAX);
            tokio::spawn(run_peer((self.from, self.from_addr.clone()), to, addr.to_string(), rx, self.reports.clone()));
            self.peers.insert(to, Peer { addr: addr.to_string(), queue: tx });
        }
        &self.peers[&to]
    }
}

/// Sends everything queued for one peer until the queue is dropped.
async fn run_peer(
    (from, from_addr): (u64, String),
    to: u64,
    addr: String,
    mut queue: mpsc::Receiver<Message>,
    reports: mpsc::Sender<Input>,
) {
    let endpoint = match Endpoint::from_shared(format!("http://{addr}")) {
        Ok(e) => e.connect_timeout(SEND_TIMEOUT),
        Err(e) => {
            tracing::error!(to, %addr, error = %e, "bad peer address");
            return;
        }
    };
    let mut client: Option<RaftTransportClient<tonic::transport::Channel>> = None;
    let mut stream: Option<PeerStream> = None;
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH_MESSAGES_MAX {
            match queue.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let snapshots: Vec<u64> =
            batch.iter().filter(|m| m.get_msg_type() == MessageType::MsgSnapshot).map(|m| m.to).collect();
        // Buggify: a batch lost or late on the wire (raft must cope with both).
        if snapshots.is_empty() && buggify::fires(0.01) {
            continue;
        }
        if let Some(pause) = buggify::delay(0.01, Duration::from_millis(300)) {
            tokio::time::sleep(pause).await;
        }
        let encoded = batch.iter().filter_map(|m| m.write_to_bytes().ok()).map(Into::into).collect();
        let batch = RaftBatch { from, messages: encoded, from_addr: from_addr.clone() };
        let ok = if snapshots.is_empty() {
            send_on_stream(&endpoint, &mut stream, batch).await
        } else {
            let ok = send_batch(&endpoint.clone().timeout(SEND_TIMEOUT), &mut client, batch).await;
            if !ok {
                client = None;
            }
            ok
        };
        if !ok {
            let _ = reports.try_send(Input::Unreachable { peer: to });
        }
        for peer in snapshots {
            let _ = reports.send(Input::SnapshotSent { peer, ok }).await;
        }
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
async fn send_on_stream(endpoint: &Endpoint, stream: &mut Option<PeerStream>, batch: RaftBatch) -> bool {
    let broken = stream.as_ref().is_some_and(|s| s.call.is_finished());
    if broken {
        *stream = None;
    }
    if stream.is_none() {
        let channel = match tokio::time::timeout(SEND_TIMEOUT, endpoint.connect()).await {
            Ok(Ok(channel)) => channel,
            _ => return false,
        };
        let (batches, rx) = mpsc::channel(STREAM_BATCHES_MAX);
        let mut client = RaftTransportClient::new(channel);
        let call = tokio::spawn(async move { client.stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await });
        *stream = Some(PeerStream { batches, call });
    }
    let sent = stream.as_ref().is_some_and(|s| s.batches.try_send(batch).is_ok());
    if !sent {
        *stream = None;
    }
    sent && !broken
}

async fn send_batch(
    endpoint: &Endpoint,
    client: &mut Option<RaftTransportClient<tonic::transport::Channel>>,
    batch: RaftBatch,
) -> bool {
    if client.is_none() {
        match endpoint.connect().await {
            Ok(channel) => *client = Some(RaftTransportClient::new(channel)),
            Err(e) => {
                tracing::debug!(error = %e, "peer connect failed");
                return false;
            }
        }
    }
    let Some(c) = client.as_mut() else { return false };
    match tokio::time::timeout(SEND_TIMEOUT, c.send(batch)).await {
        Ok(Ok(_)) => true,
        Ok(Err(status)) => {
            tracing::debug!(%status, "peer refused raft batch");
            false
        }
        Err(_) => false,
    }
}
