//! The Browse service: what a web console in front of the cluster reads (`coolbeans
//! beanstalkd --http-listen`), and the conversions of its pages to and from the wire, used by
//! both ends.

use tonic::{Request, Response, Status};

use super::status::{read_refused, status_of};
use crate::api::browse_server::Browse;
use crate::api::{BrowseJobsRequest, BrowseJobsResponse, BrowseTubesRequest, BrowseTubesResponse, TubeSummaryProto};
use crate::fsm::{job_to_proto, BrowseCursor, BrowseState, FsmError, JobCounts, JobPage, TubePage, TubeSummary, BROWSE_PAGE_MAX};
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
        let now = crate::node::clock::now_ms();
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

pub fn tube_to_proto(t: &TubeSummary) -> TubeSummaryProto {
    TubeSummaryProto {
        seq: t.seq,
        name: t.name.to_string(),
        waiting: t.waiting,
        using: t.using,
        watching: t.watching,
        total_jobs: t.total_jobs,
        cmd_delete: t.cmd_delete,
        pause_secs: t.pause_secs,
        pause_left_secs: t.pause_left_secs,
        ..counts_to_proto(&t.counts)
    }
}

fn counts_to_proto(c: &JobCounts) -> TubeSummaryProto {
    TubeSummaryProto { urgent: c.urgent, ready: c.ready, reserved: c.reserved, delayed: c.delayed, buried: c.buried, ..TubeSummaryProto::default() }
}

pub fn counts_from_proto(p: &TubeSummaryProto) -> JobCounts {
    JobCounts { urgent: p.urgent, ready: p.ready, reserved: p.reserved, delayed: p.delayed, buried: p.buried }
}

pub fn tube_from_proto(p: &TubeSummaryProto) -> TubeSummary {
    TubeSummary {
        seq: p.seq,
        name: p.name.as_str().into(),
        counts: counts_from_proto(p),
        waiting: p.waiting,
        using: p.using,
        watching: p.watching,
        total_jobs: p.total_jobs,
        cmd_delete: p.cmd_delete,
        pause_secs: p.pause_secs,
        pause_left_secs: p.pause_left_secs,
    }
}

fn jobs_to_proto(page: &JobPage) -> BrowseJobsResponse {
    let next = page.next.unwrap_or_default();
    BrowseJobsResponse { jobs: page.jobs.iter().map(job_to_proto).collect(), has_next: page.next.is_some(), next_key: next.key, next_id: next.id }
}

/// A page of jobs from the wire, or why it does not decode.
pub fn jobs_from_proto(p: &BrowseJobsResponse) -> Result<JobPage, String> {
    let jobs = p.jobs.iter().map(crate::fsm::job_view_from_proto).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
    let next = p.has_next.then_some(BrowseCursor { key: p.next_key, id: p.next_id });
    Ok(JobPage { jobs, next })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::fsm::{Fsm, Op};

    /// A page of tubes and one of jobs come back from the wire as they went.
    #[test]
    fn pages_round_trip() {
        let mut fsm = Fsm::new();
        for (tube, delay_secs) in [("a", 0), ("a", 9), ("b", 0)] {
            let op = Op::Put { client: None, tube: tube.into(), pri: 3, delay_secs, ttr_secs: 5, body: Bytes::from_static(b"hi") };
            fsm.apply(op, 1_000);
        }
        fsm.apply(Op::PauseTube { tube: "b".into(), delay_secs: 30 }, 2_000);
        let tubes = fsm.tube_page(None, 10, 3_000);
        assert!(!tubes.tubes.is_empty());
        for t in &tubes.tubes {
            assert_eq!(&tube_from_proto(&tube_to_proto(t)), t);
        }
        for state in [BrowseState::Ready, BrowseState::Delayed] {
            let page = fsm.job_page("a", state, BrowseCursor::default(), 1).expect("a exists");
            assert_eq!(jobs_from_proto(&jobs_to_proto(&page)), Ok(page));
        }
    }
}
