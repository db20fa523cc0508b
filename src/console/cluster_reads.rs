//! The console's reads of the cluster behind a proxy (`coolbeans beanstalkd`): over gRPC,
//! the Browse service for pages and GetJob for a job, on the node believed to lead, retried
//! through leader changes as the proxy's own reads are.

use std::sync::Arc;

use super::backend::{Reads, Refusal, Totals};
use crate::api::browse::{counts_from_proto, jobs_from_proto, tube_from_proto};
use crate::api::{BrowseJobsRequest, BrowseTubesRequest, BrowseTubesResponse};
use crate::cli::status::{self, ClusterView};
use crate::client::RemoteUpstream;
use crate::client::UpstreamError;
use crate::fsm::{BrowseCursor, BrowseState, FsmError, JobId, JobPage, JobView, TubePage, TubeSummary};

pub struct ClusterReads {
    remote: Arc<RemoteUpstream>,
}

impl ClusterReads {
    pub fn new(remote: Arc<RemoteUpstream>) -> Self {
        ClusterReads { remote }
    }

    async fn tubes_page(&self, after: Option<u64>, limit: usize, name: String) -> Result<BrowseTubesResponse, Refusal> {
        let request = BrowseTubesRequest { after, limit: limit as u32, name };
        self.remote
            .browse(|mut c| {
                let request = request.clone();
                async move { c.tubes(request).await }
            })
            .await
            .map_err(Refusal::from)
    }
}

#[tonic::async_trait]
impl Reads for ClusterReads {
    /// As `cluster-client status` shows it, asked of each node in turn until one answers.
    async fn cluster(&self) -> Result<ClusterView, Refusal> {
        let mut why = String::from("no node to ask");
        for addr in self.remote.addrs() {
            match status::gather(self.remote.dialer(), addr).await {
                Ok(view) => return Ok(view),
                Err(e) => why = e,
            }
        }
        Err(Refusal::Unavailable(why))
    }

    async fn tubes(&self, after: Option<u64>, limit: usize) -> Result<TubePage, Refusal> {
        let page = self.tubes_page(after, limit, String::new()).await?;
        Ok(TubePage { tubes: page.tubes.iter().map(tube_from_proto).collect(), next: page.next })
    }

    async fn tube(&self, name: String) -> Result<TubeSummary, Refusal> {
        let page = self.tubes_page(None, 1, name).await?;
        page.tubes.first().map(tube_from_proto).ok_or_else(|| Refusal::NotFound("no such tube".into()))
    }

    async fn totals(&self) -> Result<Totals, Refusal> {
        let page = self.tubes_page(None, 1, String::new()).await?;
        let counts = page.totals.as_ref().map(counts_from_proto).unwrap_or_default();
        Ok(Totals { counts, jobs: page.job_count, tubes: page.tube_count })
    }

    async fn jobs(&self, tube: String, state: BrowseState, after: BrowseCursor, limit: usize) -> Result<JobPage, Refusal> {
        let request =
            BrowseJobsRequest { tube_name: tube, state: state.name().into(), after_key: after.key, after_id: after.id, limit: limit as u32 };
        match self
            .remote
            .browse(|mut c| {
                let request = request.clone();
                async move { c.jobs(request).await }
            })
            .await
        {
            Ok(page) => jobs_from_proto(&page).map_err(Refusal::Unavailable),
            Err(UpstreamError::Fsm(FsmError::NotFound)) => Err(Refusal::NotFound("no such tube".into())),
            Err(e) => Err(e.into()),
        }
    }

    async fn job(&self, id: JobId) -> Result<JobView, Refusal> {
        self.remote.job_view(id).await?.ok_or_else(|| Refusal::NotFound(format!("no job {id}")))
    }

    async fn leader(&self) -> Option<(u64, u64)> {
        self.remote.leader_and_term().await
    }

    fn node_id(&self) -> Option<u64> {
        None
    }
}
