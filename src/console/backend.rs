//! What the console reads and changes. Reads come from a `Reads`: a node in this process, or
//! the cluster behind a proxy; either way they pass a node's ReadIndex barrier, so a page
//! never shows a state older than a write already acknowledged. Writes go through the proxy's
//! upstream, so they reach the leader wherever it is and are replicated like any
//! client's.

use std::sync::Arc;

use crate::cli::status::ClusterView;
use crate::client::UpstreamError;
use crate::fsm::{BrowseCursor, BrowseState, FsmError, JobCounts, JobId, JobPage, JobView, Op, Reply, TubePage, TubeSummary};
use crate::proxy::Upstream;

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
            UpstreamError::Fsm(e @ (FsmError::WrongState | FsmError::NotYours)) => {
                Refusal::Conflict(format!("{e:?}: the job is reserved or in another state"))
            }
            UpstreamError::Fsm(e) => Refusal::BadRequest(format!("refused: {e:?}")),
            UpstreamError::NotUpgraded(why) => Refusal::Conflict(why),
            UpstreamError::Unavailable(why) => Refusal::Unavailable(why),
        }
    }
}

/// Counts over every tube, and how many jobs and tubes there are.
pub struct Totals {
    pub counts: JobCounts,
    pub jobs: u64,
    pub tubes: u64,
}

/// Where the console's reads come from.
#[tonic::async_trait]
pub trait Reads: Send + Sync + 'static {
    /// The cluster as its leader sees it, with each member's own answer.
    async fn cluster(&self) -> Result<ClusterView, Refusal>;
    async fn tubes(&self, after: Option<u64>, limit: usize) -> Result<TubePage, Refusal>;
    async fn tube(&self, name: String) -> Result<TubeSummary, Refusal>;
    async fn totals(&self) -> Result<Totals, Refusal>;
    /// A page of a tube's jobs; NotFound when the tube does not exist.
    async fn jobs(&self, tube: String, state: BrowseState, after: BrowseCursor, limit: usize) -> Result<JobPage, Refusal>;
    async fn job(&self, id: JobId) -> Result<JobView, Refusal>;
    /// The leader and term as known now, for the timeline (0 and the term: none known).
    async fn leader(&self) -> Option<(u64, u64)>;
    /// The node in this process, if any.
    fn node_id(&self) -> Option<u64>;
}

#[derive(Clone)]
pub struct Backend {
    pub reads: Arc<dyn Reads>,
    upstream: Arc<dyn Upstream>,
}

impl Backend {
    pub fn new(reads: Arc<dyn Reads>, upstream: Arc<dyn Upstream>) -> Self {
        Backend { reads, upstream }
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
        let oldest = || self.reads.jobs(tube.clone(), BrowseState::Buried, BrowseCursor::default(), 1);
        let mut deleted = 0;
        for _ in 0..DELETE_BURIED_BATCH {
            let Some(job) = oldest().await?.jobs.pop() else { return Ok((deleted, false)) };
            match self.write(Op::Delete { client: None, id: job.id }).await {
                Ok(_) => deleted += 1,
                // Kicked or deleted by someone else since the read: go on with the next.
                Err(Refusal::NotFound(_) | Refusal::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((deleted, !oldest().await?.jobs.is_empty()))
    }
}
