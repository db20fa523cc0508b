//! The upstream of a proxy in the same process as a member of a larger cluster
//! (`cluster-node --beanstalkd-listen`): while that node leads, writes go to it in-process,
//! with no gRPC and no encoding; otherwise, or when it stops leading under a write, they are
//! forwarded to the leader as `coolbeans beanstalkd` forwards them. Either way a write keeps
//! one caller sequence number, so that a retry through the other path applies once. Reads
//! pass the node's own ReadIndex barrier (a follower asks the leader for it), and reservation
//! results come from the node's own applied entries and from every other node's stream.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::upstream::{feed_local_reservations, query_local, Upstream};
use crate::client::{Answer, Query, RemoteUpstream, UpstreamError};
use crate::fsm::{Op, Reply, ReservationEvent};
use crate::node::{NodeError, NodeHandle};

/// How long a read waits on the node in this process before asking the cluster instead (a
/// follower cut off from the leader answers no barrier).
const LOCAL_READ_PATIENCE: Duration = Duration::from_secs(2);

pub struct CoLocatedUpstream {
    node: NodeHandle,
    /// The cluster, with this node's address first (`RemoteUpstream`'s index 0).
    remote: Arc<RemoteUpstream>,
}

impl CoLocatedUpstream {
    /// A proxy beside `node`, whose cluster `remote` reaches with this node's own
    /// address first.
    pub fn new(node: NodeHandle, remote: Arc<RemoteUpstream>) -> Arc<Self> {
        Arc::new(CoLocatedUpstream { node, remote })
    }
}

#[tonic::async_trait]
impl Upstream for CoLocatedUpstream {
    async fn write(&self, op: Op) -> Result<Reply, UpstreamError> {
        let caller = self.remote.caller_for(&op);
        if self.node.is_leader() && !matches!(op, Op::Tick | Op::NewLeader) {
            match self.node.propose(op.clone(), caller.clone()).await {
                Ok(reply) => return Ok(reply),
                Err(NodeError::Fsm(e)) => return Err(UpstreamError::Fsm(e)),
                Err(NodeError::Entry(e)) => return Err(UpstreamError::Unavailable(e.to_string())),
                // Not (or no longer) the leader, or the write may or may not have applied:
                // the leader answers it, or its cached answer, by the same sequence number.
                Err(NodeError::NotLeader { .. } | NodeError::Dropped(_) | NodeError::Overloaded | NodeError::Stopped) => {}
                Err(e @ NodeError::Invalid(_)) => return Err(UpstreamError::Unavailable(e.to_string())),
                Err(e @ NodeError::NotEveryVoterUpgraded { .. }) => return Err(UpstreamError::NotUpgraded(e.to_string())),
            }
        }
        self.remote.write_as(op, caller).await
    }

    async fn query(&self, query: Query) -> Result<Answer, UpstreamError> {
        let local = tokio::time::timeout(LOCAL_READ_PATIENCE, query_local(&self.node, self.remote.proxy_id(), query.clone(), LOCAL_READ_PATIENCE));
        match local.await {
            Ok(Ok(answer)) => Ok(answer),
            _ => self.remote.query(query).await,
        }
    }

    fn reservations(&self) -> mpsc::Receiver<ReservationEvent> {
        let (tx, rx) = mpsc::channel(4096);
        feed_local_reservations(&self.node, self.remote.proxy_id().to_string(), tx.clone());
        self.remote.stream_reservations(Some(0), &tx);
        rx
    }

    fn proxy_id(&self) -> &str {
        self.remote.proxy_id()
    }
}
