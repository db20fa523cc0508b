//! The Browse service: what a web console in front of the cluster reads (`coolbeans
//! beanstalkd --http-listen`), and the conversions of its pages to and from the wire, used by
//! both ends.

use tonic::{Request, Response, Status};

use super::status::{read_refused, status_of};
use crate::api::browse::{counts_to_proto, jobs_to_proto, tube_to_proto};
use crate::api::browse_server::Browse;
use crate::api::{BrowseJobsRequest, BrowseJobsResponse, BrowseTubesRequest, BrowseTubesResponse};
use crate::fsm::{BrowseCursor, BrowseState, FsmError, JobCounts, TubePage};
use crate::limits::BROWSE_PAGE_MAX;
use crate::node::replicated::Replicated;
use crate::node::{NodeError, NodeHandle};

/// How long a read may wait for its barrier.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub struct BrowseService {
    node: NodeHandle,
}

impl BrowseService {
    pub fn new(node: NodeHandle) -> Self {
        BrowseService { node }
    }

    async fn read<R>(&self, f: impl FnOnce(&Replicated) -> R) -> Result<R, Status> {
        self.node.read_within(READ_TIMEOUT, f).await.map_err(read_refused)
    }
}

/// A page's length as asked: 1 to the most a page holds.
fn limit(asked: u32) -> Result<usize, Status> {
    match usize::try_from(asked) {
        Ok(n @ 1..=BROWSE_PAGE_MAX) => Ok(n),
        _ => Err(Status::invalid_argument(format!("limit {asked} is out of range: a page holds 1 to {BROWSE_PAGE_MAX}"))),
    }
}

#[tonic::async_trait]
impl Browse for BrowseService {
    async fn tubes(&self, request: Request<BrowseTubesRequest>) -> Result<Response<BrowseTubesResponse>, Status> {
        let r = request.into_inner();
        let limit = limit(r.limit)?;
        let now = crate::clock::now_ms();
        let answer = self
            .read(move |s| {
                let page = match r.name.as_str() {
                    "" => s.fsm.tube_page(r.after, limit, now),
                    name => TubePage { tubes: s.fsm.tube_summary(name, now).into_iter().collect(), next: None },
                };
                let mut totals = JobCounts::default();
                for (_, c) in s.fsm.tube_job_counts() {
                    totals.add_counts(&c);
                }
                (page, totals, s.fsm.job_count(), s.fsm.tube_count())
            })
            .await?;
        let (page, totals, jobs, tubes) = answer;
        Ok(Response::new(BrowseTubesResponse {
            tubes: page.tubes.iter().map(tube_to_proto).collect(),
            next: page.next,
            totals: Some(counts_to_proto(&totals)),
            job_count: jobs as u64,
            tube_count: tubes as u64,
        }))
    }

    async fn jobs(&self, request: Request<BrowseJobsRequest>) -> Result<Response<BrowseJobsResponse>, Status> {
        let r = request.into_inner();
        let limit = limit(r.limit)?;
        let state = BrowseState::parse(&r.state)
            .ok_or_else(|| Status::invalid_argument(format!("state {:?} is not one of ready, delayed, reserved, buried", r.state)))?;
        let after = BrowseCursor { key: r.after_key, id: r.after_id };
        let page = self.read(move |s| s.fsm.job_page(&r.tube_name, state, after, limit)).await?;
        let page = page.ok_or_else(|| status_of(NodeError::Fsm(FsmError::NotFound)))?;
        Ok(Response::new(jobs_to_proto(&page)))
    }
}
