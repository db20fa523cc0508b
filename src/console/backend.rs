//! What the console reads and changes: a node in this process. Reads pass its ReadIndex
//! barrier first, so a page never shows a state older than a write already acknowledged;
//! writes go through the front end's upstream, so they reach the leader wherever it is and
//! are replicated like any client's.

use std::sync::Arc;
use std::time::Duration;

use crate::api::NodeStatusResponse;
use crate::cli::status::{self, ClusterView};
use crate::fsm::{BrowseCursor, BrowseState, FsmError, JobId, JobPage, JobView, Op, Reply, TubePage, TubeSummary};
use crate::node::replicated::Replicated;
use crate::node::NodeHandle;
use crate::proxy::upstream::UpstreamError;
use crate::proxy::Upstream;

/// How long a read may wait for its barrier (a leader to confirm it): a page asks again
/// within seconds anyway.
const READ_PATIENCE: Duration = Duration::from_secs(3);
/// Buried jobs one "delete all buried" request deletes at most, each a replicated write;
/// the page asks again while more are left, so no request runs for long.
pub const DELETE_BURIED_BATCH: usize = 1000;

/// Why a request could not be answered, by the HTTP status it gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the request itself is wrong.
    BadRequest(String),
    /// 404: no such tube or job.
    NotFound(String),
    /// 409: the job is in a state the action does not apply to.
    Conflict(String),
    /// 503: no leader answered in time.
    Unavailable(String),
}

impl From<UpstreamError> for Refusal {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::Fsm(FsmError::NotFound) => Refusal::NotFound("no such job or tube".into()),
            UpstreamError::Fsm(e @ (FsmError::WrongState | FsmError::NotYours)) => Refusal::Conflict(format!("{e:?}: the job is reserved or in another state")),
            UpstreamError::Fsm(e) => Refusal::BadRequest(format!("refused: {e:?}")),
            UpstreamError::NotUpgraded(why) => Refusal::Conflict(why),
            UpstreamError::Unavailable(why) => Refusal::Unavailable(why),
        }
    }
}

/// Where the cluster's status comes from.
#[derive(Clone)]
pub enum ClusterSource {
    /// `serve`: the one node, as it sees itself.
    Alone,
    /// A cluster member: its own gRPC address, asked as `cluster-client status` would.
    Member(String),
}

#[derive(Clone)]
pub struct Backend {
    node: NodeHandle,
    upstream: Arc<dyn Upstream>,
    cluster: ClusterSource,
}

impl Backend {
    pub fn new(node: NodeHandle, upstream: Arc<dyn Upstream>, cluster: ClusterSource) -> Self {
        Backend { node, upstream, cluster }
    }

    pub fn node(&self) -> &NodeHandle {
        &self.node
    }

    /// A linearizable read of the state machine.
    async fn read<R>(&self, f: impl FnOnce(&Replicated) -> R) -> Result<R, Refusal> {
        match tokio::time::timeout(READ_PATIENCE, self.node.read_barrier()).await {
            Ok(Ok(())) => Ok(self.node.read(f)),
            Ok(Err(e)) => Err(Refusal::Unavailable(format!("the read was not confirmed: {e}"))),
            Err(_) => Err(Refusal::Unavailable(format!("no leader confirmed the read within {READ_PATIENCE:?}"))),
        }
    }

    /// The cluster as its leader sees it, with each member's own answer.
    pub async fn cluster(&self) -> Result<ClusterView, Refusal> {
        match &self.cluster {
            ClusterSource::Member(addr) => status::gather(addr).await.map_err(Refusal::Unavailable),
            ClusterSource::Alone => {
                let me = self.own_status();
                let answers = [(me.node_id, Ok(me.clone()))].into_iter().collect();
                Ok(status::assemble(me.clone(), Ok(me), &answers))
            }
        }
    }

    fn own_status(&self) -> NodeStatusResponse {
        let versions = (self.node.version(), self.node.voters_version());
        crate::rpc::cluster::status_response(&self.node.status(), versions, tokio::time::Instant::now())
    }

    pub async fn tubes(&self, after: Option<u64>, limit: usize) -> Result<TubePage, Refusal> {
        let now = crate::node::clock::now_ms();
        self.read(move |s| s.fsm.tube_page(after, limit, now)).await
    }

    pub async fn tube(&self, name: String) -> Result<TubeSummary, Refusal> {
        let now = crate::node::clock::now_ms();
        let found = self.read(move |s| s.fsm.tube_summary(&name, now)).await?;
        found.ok_or_else(|| Refusal::NotFound("no such tube".into()))
    }

    /// Totals over every tube, and the machine's job count.
    pub async fn totals(&self) -> Result<(crate::fsm::JobCounts, usize, usize), Refusal> {
        self.read(|s| {
            let mut total = crate::fsm::JobCounts::default();
            for (_, c) in s.fsm.tube_job_counts() {
                total.urgent += c.urgent;
                total.ready += c.ready;
                total.reserved += c.reserved;
                total.delayed += c.delayed;
                total.buried += c.buried;
            }
            (total, s.fsm.job_count(), s.fsm.tube_count())
        })
        .await
    }

    pub async fn jobs(&self, tube: String, state: BrowseState, after: BrowseCursor, limit: usize) -> Result<JobPage, Refusal> {
        let page = self.read(move |s| s.fsm.job_page(&tube, state, after, limit)).await?;
        page.ok_or_else(|| Refusal::NotFound("no such tube".into()))
    }

    pub async fn job(&self, id: JobId) -> Result<JobView, Refusal> {
        self.read(move |s| s.fsm.job(id)).await?.ok_or_else(|| Refusal::NotFound(format!("no job {id}")))
    }

    async fn write(&self, op: Op) -> Result<Reply, Refusal> {
        self.upstream.write(op).await.map_err(Refusal::from)
    }

    pub async fn pause(&self, tube: String, delay_secs: u32) -> Result<(), Refusal> {
        self.write(Op::PauseTube { tube, delay_secs }).await.map(drop)
    }

    /// Kicks up to `bound` jobs of the tube; answers how many.
    pub async fn kick(&self, tube: String, bound: u32) -> Result<u32, Refusal> {
        match self.write(Op::Kick { tube, bound }).await? {
            Reply::Kicked { count } => Ok(count),
            other => Err(Refusal::Unavailable(format!("kick answered {other:?}"))),
        }
    }

    pub async fn kick_job(&self, id: JobId) -> Result<(), Refusal> {
        self.write(Op::KickJob { id }).await.map(drop)
    }

    pub async fn delete_job(&self, id: JobId) -> Result<(), Refusal> {
        self.write(Op::Delete { client: None, id }).await.map(drop)
    }

    pub async fn move_job(&self, id: JobId, tube: String) -> Result<(), Refusal> {
        self.write(Op::MoveJob { id, tube }).await.map(drop)
    }

    /// Deletes the tube's buried jobs, oldest first, at most `DELETE_BURIED_BATCH`; answers
    /// how many, and whether any are left.
    pub async fn delete_buried(&self, tube: String) -> Result<(usize, bool), Refusal> {
        let mut deleted = 0;
        for _ in 0..DELETE_BURIED_BATCH {
            let name = tube.clone();
            let Some(job) = self.read(move |s| s.fsm.peek_buried(&name)).await? else { return Ok((deleted, false)) };
            match self.write(Op::Delete { client: None, id: job.id }).await {
                Ok(_) => deleted += 1,
                // Kicked or deleted by someone else since the peek: go on with the next.
                Err(Refusal::NotFound(_) | Refusal::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let name = tube.clone();
        let more = self.read(move |s| s.fsm.peek_buried(&name).is_some()).await?;
        Ok((deleted, more))
    }
}
