//! The Browse service's pages (the web console's tubes and jobs) as wire messages and back:
//! the node's service (`rpc::browse`) writes them and a proxy's console reads them, so
//! the conversion sits below both.

use super::{BrowseJobsResponse, TubeSummaryProto};
use crate::fsm::{job_to_proto, BrowseCursor, JobCounts, JobPage, TubeSummary};

/// A tube's summary on the wire.
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

/// Counts of jobs by state, in the summary's fields (the page's totals).
pub fn counts_to_proto(c: &JobCounts) -> TubeSummaryProto {
    TubeSummaryProto { urgent: c.urgent, ready: c.ready, reserved: c.reserved, delayed: c.delayed, buried: c.buried, ..TubeSummaryProto::default() }
}

/// Counts of jobs by state from the summary's fields.
pub fn counts_from_proto(p: &TubeSummaryProto) -> JobCounts {
    JobCounts { urgent: p.urgent, ready: p.ready, reserved: p.reserved, delayed: p.delayed, buried: p.buried }
}

/// A tube's summary from the wire.
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

/// A page of jobs on the wire.
pub fn jobs_to_proto(page: &JobPage) -> BrowseJobsResponse {
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
    use crate::fsm::{BrowseState, Fsm, Op};

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
