//! No job is held by two clients at once.
//!
//! When client A's reserve is answered `RESERVED <id>`, A holds the job from some moment of
//! the call on. The hold surely lasts until the earliest of:
//! - the start of A's next call that could end it (delete, release, bury of that job, whatever
//!   its answer);
//! - the TTR bound: the reserve's start, or the start of A's latest acknowledged touch of the
//!   job, plus the job's TTR (less the cluster's clock truncation);
//! - the `from` of a hold risk of A that covers the hold (its `until` is open or later than
//!   the reserve's start).
//!
//! Another client's reserve answered with the same job, which began after A's reserve ended
//! and ended before A's sure hold did, was granted while A held the job: a violation.

use std::collections::BTreeMap;
use std::time::Duration;

use super::jobs::{is_unknown, named_job, ttr_of, Index};
use super::{describe_records, Violation, CLOCK_SLACK};
use crate::history::{Answer, Call, ClientId, History, JobId, Record};

pub const NAME: &str = "holders";

/// A hold some client surely had, and why it surely lasted that long.
struct Hold {
    /// The reserve that granted it.
    grant: usize,
    /// Until when the hold surely lasted (exclusive: a grant exactly then is fine).
    until: Duration,
    /// The records that set `until`: acknowledged touches, or the call that ended it.
    evidence: Vec<usize>,
    /// Why the hold may end at `until`.
    reason: &'static str,
}

pub fn check(h: &History) -> Result<(), Violation> {
    let index = Index::new(h);
    let mut grants: BTreeMap<JobId, Vec<usize>> = BTreeMap::new();
    let mut by_client: BTreeMap<ClientId, Vec<usize>> = BTreeMap::new();
    for (i, r) in h.records.iter().enumerate() {
        if let Some(id) = granted(r) {
            grants.entry(id).or_default().push(i);
        }
        by_client.entry(r.client).or_default().push(i);
    }
    for (&id, job_grants) in &grants {
        for &a in job_grants {
            let ra = &h.records[a];
            let Some(hold) = sure_hold(h, &index, &by_client[&ra.client], a, id) else { continue };
            for &b in job_grants {
                let rb = &h.records[b];
                if rb.client != ra.client && rb.start >= ra.end && rb.end < hold.until {
                    return Err(violation(h, id, &hold, b));
                }
            }
        }
    }
    Ok(())
}

/// The job a reserve (or reserve-job) was granted, if its answer says so.
fn granted(r: &Record) -> Option<JobId> {
    match (&r.call, &r.answer) {
        (Call::Reserve { .. } | Call::ReserveJob(_), Some(Answer::Reserved { id, .. })) => Some(*id),
        _ => None,
    }
}

/// The hold granted by record `a` (one of the holder's `own` records), or `None` if the
/// job's put (hence its TTR) is unknown: the `lost` checker reports such phantom jobs.
fn sure_hold(h: &History, index: &Index, own: &[usize], a: usize, id: JobId) -> Option<Hold> {
    let ra = &h.records[a];
    let put = index.put_of_job(id)?;
    let Call::Put { ttr_secs, tube, .. } = &h.records[put].call else { return None };
    let later: Vec<usize> = own.iter().copied().filter(|&j| j != a && h.records[j].start >= ra.start).collect();
    // A's touches count only until A could have been granted the job anew.
    let regrant = later.iter().filter(|&&j| may_grant(&h.records[j], id, tube)).map(|&j| h.records[j].start).min().unwrap_or(Duration::MAX);
    let touches: Vec<usize> = later
        .iter()
        .copied()
        .filter(|&j| {
            let r = &h.records[j];
            r.call == Call::Touch(id) && r.answer == Some(Answer::Touched) && r.start < regrant
        })
        .collect();
    let touched_last = touches.iter().map(|&j| h.records[j].start).max().unwrap_or(ra.start).max(ra.start);
    let ttr_bound = (touched_last + ttr_of(*ttr_secs)).saturating_sub(CLOCK_SLACK);
    let mut hold = Hold { grant: a, until: ttr_bound, evidence: touches, reason: "its TTR could expire" };
    if let Some(&end) = later.iter().filter(|&&j| ends_hold(&h.records[j].call, id)).min_by_key(|&&j| h.records[j].start) {
        if h.records[end].start < hold.until {
            hold = Hold { grant: a, until: h.records[end].start, evidence: vec![end], reason: "its holder let it go" };
        }
    }
    let risk_from =
        h.risks.iter().filter(|risk| risk.client == ra.client && risk.until.is_none_or(|until| ra.start < until)).map(|risk| risk.from).min();
    if let Some(from) = risk_from.filter(|&from| from < hold.until) {
        hold = Hold { grant: a, until: from, evidence: Vec::new(), reason: "its holder's holds became at risk" };
    }
    Some(hold)
}

/// Whether a call by the holder could end its hold on `id`, whatever it was answered.
fn ends_hold(call: &Call, id: JobId) -> bool {
    matches!(call, Call::Delete(_) | Call::Release { .. } | Call::Bury { .. }) && named_job(call) == Some(id)
}

/// Whether a call could have granted job `id` (of tube `tube`) to its client.
fn may_grant(r: &Record, id: JobId, tube: &str) -> bool {
    match &r.call {
        Call::ReserveJob(named) => *named == id && r.answer != Some(Answer::NotFound),
        Call::Reserve { tube: watched, .. } => granted(r) == Some(id) || (is_unknown(&r.answer) && watched == tube),
        _ => false,
    }
}

fn violation(h: &History, id: JobId, hold: &Hold, b: usize) -> Violation {
    let ra = &h.records[hold.grant];
    let mut shown = vec![hold.grant];
    shown.extend(&hold.evidence);
    shown.push(b);
    let detail = format!(
        "client {} held the job from its reserve until at least {:.3}s (when {}), yet client {} \
         was granted it inside that time: {}",
        ra.client,
        hold.until.as_secs_f64(),
        hold.reason,
        h.records[b].client,
        describe_records(h, &shown)
    );
    Violation { checker: NAME, job: Some(id), detail }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::check::testkit::*;
    use crate::history::Answer::*;
    use crate::history::Call::*;

    fn fails(h: &History) -> Violation {
        let v = check(h).expect_err("the history should break the invariant");
        assert_eq!(v.checker, NAME);
        assert_eq!(v.job, Some(1));
        v
    }

    /// Job 1 ("a", TTR 2 s) put at 0 ms and reserved by client 1 over 10..20 ms.
    fn reserved_by_one() -> Hist {
        Hist::new().call(9, 0, 5, put("a", 2), Inserted(1)).call(1, 10, 20, reserve(), reserved(1, "a"))
    }

    #[test]
    fn reserve_after_ttr_expiry_passes() {
        // Once the TTR may have expired, another client may get the job.
        let h = reserved_by_one().call(2, 500, 2100, reserve(), reserved(1, "a")).done();
        check(&h).unwrap();
    }

    #[test]
    fn reserve_after_release_passes() {
        // After the holder started its release, another client may get the job.
        let h = reserved_by_one().call(1, 100, 120, release(1, 0), Released).call(2, 90, 130, reserve(), reserved(1, "a")).done();
        check(&h).unwrap();
    }

    #[test]
    fn reserve_concurrent_with_the_grant_passes() {
        // A grant that overlaps the holder's reserve call cannot be placed inside the hold.
        let h = reserved_by_one().call(2, 15, 300, reserve(), reserved(1, "a")).done();
        check(&h).unwrap();
    }

    #[test]
    fn reserve_after_hold_risk_passes() {
        // From the moment the holder's holds are at risk, the job may go to someone else.
        let h = reserved_by_one().risk(1, 300, None).call(2, 310, 320, reserve(), reserved(1, "a")).done();
        check(&h).unwrap();
    }

    #[test]
    fn grant_exactly_at_ttr_expiry_passes() {
        // A grant at the very instant the TTR may expire is not inside the hold.
        let h = reserved_by_one().call(2, 100, 2009, reserve(), reserved(1, "a")).done();
        check(&h).unwrap();
    }

    #[test]
    fn overlapping_holders_fail() {
        // A second client granted the job well within the first one's TTR is a double hold.
        let h = reserved_by_one().call(2, 100, 200, reserve(), reserved(1, "a")).done();
        let v = fails(&h);
        assert!(v.detail.contains("TTR"), "{v}");
    }

    #[test]
    fn reserve_job_inside_hold_fails() {
        // reserve-job counts as a grant too.
        let h = reserved_by_one().call(2, 100, 200, ReserveJob(1), reserved(1, "a")).done();
        fails(&h);
    }

    #[test]
    fn touch_extends_the_hold() {
        // An acknowledged touch at 1.5 s moves the sure TTR bound to 3.5 s, so a grant at 3 s fails.
        let h = reserved_by_one().call(1, 1500, 1510, Touch(1), Touched).call(2, 2900, 3000, reserve(), reserved(1, "a")).done();
        let v = fails(&h);
        assert!(v.detail.contains("touch 1"), "{v}");
    }

    #[test]
    fn unanswered_touch_does_not_extend() {
        // A touch without an answer may not have happened, so the TTR bound stays at 2 s.
        let h = reserved_by_one().lost(1, 1500, 1510, Touch(1)).call(2, 2900, 3000, reserve(), reserved(1, "a"));
        check(&h.done()).unwrap();
    }

    #[test]
    fn grant_before_the_risk_fails() {
        // A hold risk from 1 s on does not excuse a grant at 0.5 s.
        let h = reserved_by_one().risk(1, 1000, None).call(2, 400, 500, reserve(), reserved(1, "a")).done();
        fails(&h);
    }

    #[test]
    fn risk_not_covering_the_hold_fails() {
        // A risk that ended before the reserve started does not cover the hold.
        let h = reserved_by_one().risk(1, 0, Some(5)).call(2, 400, 500, reserve(), reserved(1, "a")).done();
        fails(&h);
    }

    #[test]
    fn grant_before_the_release_fails() {
        // A grant that ended before the holder even sent its release happened inside the hold.
        let h = reserved_by_one().call(2, 100, 200, reserve(), reserved(1, "a")).call(1, 300, 310, release(1, 0), Released).done();
        fails(&h);
    }
}
