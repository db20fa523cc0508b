//! The `Cluster` service (membership, leadership, snapshots) and the internal `RaftTransport`.

use std::sync::{Arc, Mutex};

use raft::eraftpb::Message;
use raft::StateRole;
use tonic::{Request, Response, Status, Streaming};

use super::status::status_of;
use crate::api::cluster_server::Cluster;
use crate::api::raft_transport_server::RaftTransport;
use crate::api::{Empty, IsNodeLeaderResponse, JoinRequest, LeaveRequest, MemberProto, NodeRole, NodeStatusResponse, RaftBatch, SnapshotPart};
use crate::node::snapshot_chunks::Receiving;
use crate::node::{MemberChange, NodeHandle};

pub struct ClusterService {
    node: NodeHandle,
}

impl ClusterService {
    pub fn new(node: NodeHandle) -> Self {
        ClusterService { node }
    }
}

fn node_id(s: &str) -> Result<u64, Status> {
    match s.parse::<u64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(Status::invalid_argument(format!("node id {s:?} is not a positive integer"))),
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<Empty>, Status> {
        let m = request.into_inner();
        let id = node_id(&m.node_id)?;
        if m.addr.is_empty() {
            return Err(Status::invalid_argument("join needs the new node's address"));
        }
        self.node.change_member(MemberChange::Join { id, addr: m.addr }).await.map_err(status_of)?;
        Ok(Response::new(Empty {}))
    }

    async fn leave(&self, request: Request<LeaveRequest>) -> Result<Response<Empty>, Status> {
        let id = node_id(&request.into_inner().node_id)?;
        self.node.change_member(MemberChange::Leave { id }).await.map_err(status_of)?;
        Ok(Response::new(Empty {}))
    }

    async fn is_node_leader(&self, _request: Request<Empty>) -> Result<Response<IsNodeLeaderResponse>, Status> {
        Ok(Response::new(IsNodeLeaderResponse { is_leader: self.node.status().is_leader() }))
    }

    async fn snapshot(&self, _request: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.node.snapshot().await.map_err(status_of)?;
        Ok(Response::new(Empty {}))
    }

    async fn status(&self, _request: Request<Empty>) -> Result<Response<NodeStatusResponse>, Status> {
        let versions = (self.node.version(), self.node.voters_version());
        Ok(Response::new(status_response(&self.node.status(), versions, tokio::time::Instant::now())))
    }
}

/// A node's status as the API gives it, with each member's last contact as of `now`.
pub(crate) fn status_response(s: &crate::node::Status, versions: (u32, u32), now: tokio::time::Instant) -> NodeStatusResponse {
    let member = |node_id: u64, voter: bool| MemberProto {
        node_id,
        addr: s.addresses.get(&node_id).cloned().unwrap_or_default(),
        voter,
        match_index: s.match_index.get(&node_id).copied().unwrap_or(0),
        last_contact_ms: s.heard_at.get(&node_id).map(|at| now.saturating_duration_since(*at).as_millis() as u64),
    };
    let mut members: Vec<MemberProto> = s.voters.iter().map(|&id| member(id, true)).collect();
    members.extend(s.learners.iter().map(|&id| member(id, false)));
    members.sort_by_key(|m| m.node_id);
    let role = match s.role {
        StateRole::Follower => NodeRole::Follower,
        StateRole::PreCandidate => NodeRole::PreCandidate,
        StateRole::Candidate => NodeRole::Candidate,
        StateRole::Leader => NodeRole::Leader,
    };
    NodeStatusResponse {
        node_id: s.node_id,
        leader_id: s.leader_id,
        term: s.term,
        commit_index: s.commit_index,
        applied_index: s.applied_index,
        members,
        snapshot_index: s.snapshot_index,
        role: role as i32,
        last_index: s.last_index,
        version: versions.0,
        voters_version: versions.1,
    }
}

pub struct RaftService {
    node: NodeHandle,
    /// Changes when the server begins to shut down: streams end then.
    stopping: tokio::sync::watch::Receiver<()>,
    /// The snapshot being received in chunks, shared by the calls that carry it.
    receiving: Arc<Mutex<Receiving>>,
}

impl RaftService {
    pub fn new(node: NodeHandle, stopping: tokio::sync::watch::Receiver<()>) -> Self {
        RaftService { node, stopping, receiving: Arc::default() }
    }
}

#[tonic::async_trait]
impl RaftTransport for RaftService {
    async fn send(&self, request: Request<RaftBatch>) -> Result<Response<Empty>, Status> {
        self.step(request.into_inner()).await?;
        Ok(Response::new(Empty {}))
    }

    /// Steps each batch as it arrives (waiting while the driver's queue is full: the stream's
    /// back-pressure), until the sender ends the stream, a batch is refused, or the server
    /// shuts down.
    async fn stream(&self, request: Request<Streaming<RaftBatch>>) -> Result<Response<Empty>, Status> {
        let mut batches = request.into_inner();
        let mut stopping = self.stopping.clone();
        loop {
            let batch = tokio::select! {
                biased;
                _ = stopping.changed() => return Err(Status::unavailable("node shutting down")),
                batch = batches.message() => batch?,
            };
            let Some(batch) = batch else { return Ok(Response::new(Empty {})) };
            self.step(batch).await?;
        }
    }

    type SendSnapshotStream = super::snapshot::Progress;

    /// Receives a snapshot in parts, apart from the peer's stream (see `snapshot`).
    async fn send_snapshot(&self, request: Request<Streaming<SnapshotPart>>) -> Result<Response<Self::SendSnapshotStream>, Status> {
        let (node, receiving, stopping) = (self.node.clone(), self.receiving.clone(), self.stopping.clone());
        Ok(Response::new(super::snapshot::receive(node, receiving, stopping, request.into_inner())))
    }
}

/// Refuses raft traffic from node `from` of another cluster than `node`'s (an id of 0, not
/// known yet or from an earlier version, is taken on trust): a node pointed at the wrong
/// cluster's address must not vote in it or take its log.
pub(super) fn same_cluster(node: &NodeHandle, from: u64, theirs: u64) -> Result<(), Status> {
    let ours = node.cluster_id();
    if theirs == 0 || ours == 0 || theirs == ours {
        return Ok(());
    }
    let why = format!("node {from} is in cluster {theirs:016x}, this node in cluster {ours:016x}: traffic between clusters is refused");
    tracing::warn!(from, "{why}");
    Err(Status::failed_precondition(why))
}

impl RaftService {
    async fn step(&self, batch: RaftBatch) -> Result<(), Status> {
        same_cluster(&self.node, batch.from, batch.cluster_id)?;
        self.node.heard_version(batch.from, batch.version);
        let mut messages = Vec::with_capacity(batch.messages.len());
        for bytes in &batch.messages {
            // Lengths checked against the bytes there: a damaged one allocates nothing like it.
            let m = crate::storage::parse_message::<Message>(bytes)
                .map_err(|e| Status::invalid_argument(format!("undecodable raft message from {}: {e}", batch.from)))?;
            messages.push(m);
        }
        self.node.step(batch.from, batch.from_addr, messages).await.map_err(status_of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A leader's status gives its role, its last index, its versions, each member's match index and how
    /// long ago each peer was heard from (none for itself), members in id order.
    #[test]
    fn status_response_of_a_leader() {
        let now = tokio::time::Instant::now();
        let s = crate::node::Status {
            node_id: 1,
            leader_id: 1,
            term: 4,
            voters: vec![3, 1],
            learners: vec![2],
            addresses: [(1, "a:1".to_string()), (2, "a:2".to_string()), (3, "a:3".to_string())].into(),
            match_index: [(1, 10), (2, 7), (3, 9)].into(),
            role: StateRole::Leader,
            last_index: 10,
            heard_at: [(3, now - Duration::from_millis(250))].into(),
            ..Default::default()
        };
        let r = status_response(&s, (2, 1), now);
        assert_eq!((r.role, r.last_index, r.term, r.version, r.voters_version), (NodeRole::Leader as i32, 10, 4, 2, 1));
        let rows: Vec<_> = r.members.iter().map(|m| (m.node_id, m.addr.as_str(), m.voter, m.match_index, m.last_contact_ms)).collect();
        assert_eq!(rows, [(1, "a:1", true, 10, None), (2, "a:2", false, 7, None), (3, "a:3", true, 9, Some(250))]);
    }
}
