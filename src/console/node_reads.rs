//! The console's reads of a node in this process (`serve`, `cluster-node`): straight from its
//! state machine, behind its ReadIndex barrier.

use std::time::Duration;

use super::backend::{Reads, Refusal, Totals};
use crate::api::NodeStatusResponse;
use crate::cli::status::{self, ClusterView};
use crate::fsm::{BrowseCursor, BrowseState, JobCounts, JobId, JobPage, JobView, TubePage, TubeSummary};
use crate::node::replicated::Replicated;
use crate::node::{NodeHandle, ReadRefused};
use crate::security::Dialer;

/// How long a read may wait for its barrier (a leader to confirm it): a page asks again
/// within seconds anyway.
const READ_PATIENCE: Duration = Duration::from_secs(3);

pub struct NodeReads {
    node: NodeHandle,
    /// The node's own gRPC address, where `cluster-client status` would ask, and the
    /// credentials to ask with; none for `serve`, whose node is the whole cluster.
    grpc: Option<(String, Dialer)>,
}

impl NodeReads {
    pub fn new(node: NodeHandle, grpc: Option<(String, Dialer)>) -> Self {
        NodeReads { node, grpc }
    }

    async fn read<R>(&self, f: impl FnOnce(&Replicated) -> R) -> Result<R, Refusal> {
        self.node.read_within(READ_PATIENCE, f).await.map_err(|refused| match refused {
            ReadRefused::Node(e) => Refusal::Unavailable(format!("the read was not confirmed: {e}")),
            ReadRefused::TimedOut(within) => Refusal::Unavailable(format!("no leader confirmed the read within {within:?}")),
        })
    }

    fn own_status(&self) -> NodeStatusResponse {
        let versions = (self.node.version(), self.node.voters_version());
        crate::rpc::cluster::status_response(&self.node.status(), versions, tokio::time::Instant::now())
    }
}

#[tonic::async_trait]
impl Reads for NodeReads {
    async fn cluster(&self) -> Result<ClusterView, Refusal> {
        match &self.grpc {
            Some((addr, dialer)) => status::gather(dialer, addr).await.map_err(Refusal::Unavailable),
            None => {
                let me = self.own_status();
                let answers = [(me.node_id, Ok(me.clone()))].into_iter().collect();
                Ok(status::assemble(me.clone(), Ok(me), &answers))
            }
        }
    }

    async fn tubes(&self, after: Option<u64>, limit: usize) -> Result<TubePage, Refusal> {
        let now = crate::clock::now_ms();
        self.read(move |s| s.fsm.tube_page(after, limit, now)).await
    }

    async fn tube(&self, name: String) -> Result<TubeSummary, Refusal> {
        let now = crate::clock::now_ms();
        let found = self.read(move |s| s.fsm.tube_summary(&name, now)).await?;
        found.ok_or_else(|| Refusal::NotFound("no such tube".into()))
    }

    async fn totals(&self) -> Result<Totals, Refusal> {
        self.read(|s| {
            let mut counts = JobCounts::default();
            for (_, c) in s.fsm.tube_job_counts() {
                counts.add_counts(&c);
            }
            Totals { counts, jobs: s.fsm.job_count() as u64, tubes: s.fsm.tube_count() as u64 }
        })
        .await
    }

    async fn jobs(&self, tube: String, state: BrowseState, after: BrowseCursor, limit: usize) -> Result<JobPage, Refusal> {
        let page = self.read(move |s| s.fsm.job_page(&tube, state, after, limit)).await?;
        page.ok_or_else(|| Refusal::NotFound("no such tube".into()))
    }

    async fn job(&self, id: JobId) -> Result<JobView, Refusal> {
        self.read(move |s| s.fsm.job(id)).await?.ok_or_else(|| Refusal::NotFound(format!("no job {id}")))
    }

    async fn leader(&self) -> Option<(u64, u64)> {
        let status = self.node.status();
        Some((status.leader_id, status.term))
    }

    fn node_id(&self) -> Option<u64> {
        Some(self.node.status().node_id)
    }
}
