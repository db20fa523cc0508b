//! The receiving end of `RaftTransport.SendSnapshot`: takes a snapshot's parts as they come
//! (each within `SNAPSHOT_CHUNK_TIMEOUT`), acknowledges how much of the data it holds, and
//! hands the whole message to the node as any raft message from a peer, once its state is
//! decoded and its file staged (acknowledging all held meanwhile). The data lives in
//! the node's one `Receiving` slot (see `snapshot_chunks`), where a call that ends early
//! leaves it for the next call of the same snapshot.

use std::sync::{Arc, Mutex};

use crate::node::lock;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::status::status_of;
use crate::api::snapshot_part::Part;
use crate::api::{SnapshotPart, SnapshotProgress};
use crate::chaos::{buggify, observe};
use crate::limits::{SNAPSHOT_ACKS_QUEUED_MAX, SNAPSHOT_BYTES_MAX, SNAPSHOT_CHUNK_TIMEOUT};
use crate::node::snapshot_chunks::{PartError, Receiving};
use crate::node::NodeHandle;

pub(super) type Progress = ReceiverStream<Result<SnapshotProgress, Status>>;

/// Receives one call's parts in a task of its own; answers the stream of acknowledgements.
pub(super) fn receive(node: NodeHandle, receiving: Arc<Mutex<Receiving>>, stopping: watch::Receiver<()>, parts: Streaming<SnapshotPart>) -> Progress {
    let (acks, rx) = mpsc::channel(SNAPSHOT_ACKS_QUEUED_MAX);
    tokio::spawn(async move {
        if let Err(status) = carry(&node, &receiving, stopping, parts, &acks).await {
            tracing::debug!(code = ?status.code(), why = status.message(), "snapshot call ended before delivery");
            let _ = acks.try_send(Err(status));
        }
    });
    ReceiverStream::new(rx)
}

/// The header, then chunks until the end: delivered to the node once whole.
async fn carry(
    node: &NodeHandle,
    receiving: &Mutex<Receiving>,
    mut stopping: watch::Receiver<()>,
    mut parts: Streaming<SnapshotPart>,
    acks: &mpsc::Sender<Result<SnapshotProgress, Status>>,
) -> Result<(), Status> {
    let Part::Header(header) = next_part(&mut parts, &mut stopping).await? else {
        return Err(Status::invalid_argument("a snapshot call starts with its header"));
    };
    super::cluster::same_cluster(node, header.from, header.cluster_id)?;
    let (call, held) = {
        let mut slot = lock(receiving);
        // Buggify: the data an earlier call left is lost (the snapshot starts over).
        if buggify::fires(0.1) {
            slot.forget();
        }
        slot.begin(header, SNAPSHOT_BYTES_MAX).map_err(refused)?
    };
    acknowledge(acks, held)?;
    let node_id = node.status().node_id;
    loop {
        match next_part(&mut parts, &mut stopping).await? {
            Part::Header(_) => return Err(Status::invalid_argument("a second header in one snapshot call")),
            Part::Chunk(chunk) => {
                let received = lock(receiving).take_chunk(call, chunk).map_err(refused)?;
                observe::report(observe::Event::SnapshotProgress { node: node_id, received_bytes: received });
                acknowledge(acks, received)?;
            }
            Part::End(end) => {
                let delivery = lock(receiving).finish(call, end).map_err(refused)?;
                let snapshot = delivery.message.get_snapshot();
                let (index, bytes) = (snapshot.get_metadata().index, snapshot.get_data().len() as u64);
                let from = delivery.from;
                // Preparing a large snapshot (see `received_snapshot`) may take longer than the
                // sender waits for an acknowledgement: it hears that all is held meanwhile.
                let stepped = node.step_snapshot(from, delivery.from_addr, delivery.message);
                tokio::pin!(stepped);
                let stepped = loop {
                    tokio::select! {
                        stepped = &mut stepped => break stepped,
                        _ = tokio::time::sleep(SNAPSHOT_CHUNK_TIMEOUT / 4) => acknowledge(acks, bytes)?,
                    }
                };
                stepped.map_err(status_of)?;
                tracing::info!(from, index, bytes, resumed_from = held, "snapshot received");
                observe::report(observe::Event::SnapshotReceived { node: node_id, index, bytes, resumed_from: held });
                let delivered = SnapshotProgress { received_bytes: bytes, delivered: true };
                let _ = tokio::time::timeout(SNAPSHOT_CHUNK_TIMEOUT, acks.send(Ok(delivered))).await;
                return Ok(());
            }
        }
    }
}

/// The next part, within a chunk's time.
async fn next_part(parts: &mut Streaming<SnapshotPart>, stopping: &mut watch::Receiver<()>) -> Result<Part, Status> {
    let next = tokio::select! {
        biased;
        _ = stopping.changed() => return Err(Status::unavailable("node shutting down")),
        next = tokio::time::timeout(SNAPSHOT_CHUNK_TIMEOUT, parts.message()) => next,
    };
    match next {
        Err(_) => Err(Status::deadline_exceeded(format!("no part of the snapshot came in {SNAPSHOT_CHUNK_TIMEOUT:?}"))),
        Ok(Err(status)) => Err(status),
        Ok(Ok(None)) => Err(Status::cancelled("the sender ended the call before the snapshot's end")),
        Ok(Ok(Some(SnapshotPart { part: None }))) => Err(Status::invalid_argument("an empty snapshot part")),
        Ok(Ok(Some(SnapshotPart { part: Some(part) }))) => Ok(part),
    }
}

/// Tells the sender how many bytes of the data are held. The queue has room for every
/// acknowledgement a sender that keeps to its window leaves unread.
fn acknowledge(acks: &mpsc::Sender<Result<SnapshotProgress, Status>>, received_bytes: u64) -> Result<(), Status> {
    acks.try_send(Ok(SnapshotProgress { received_bytes, delivered: false }))
        .map_err(|_| Status::resource_exhausted("the sender does not read its acknowledgements"))
}

/// Each refusal as its own status.
fn refused(e: PartError) -> Status {
    let message = e.to_string();
    match e {
        PartError::Superseded => Status::aborted(message),
        PartError::TooLarge { .. } | PartError::ChunkTooLarge { .. } => Status::resource_exhausted(message),
        PartError::Checksum { .. } => Status::data_loss(message),
        PartError::NotASnapshot(_) | PartError::DataInHeader | PartError::OutOfOrder { .. } | PartError::PastEnd { .. } | PartError::Short { .. } => {
            Status::invalid_argument(message)
        }
    }
}
