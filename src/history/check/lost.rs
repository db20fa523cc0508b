//! No acknowledged put is lost, and no job appears that was never put.
//!
//! A job whose put was answered `INSERTED <id>` must still be there at the end, with its body,
//! unless a delete of it was answered `DELETED` (or a delete of it has an unknown outcome, in
//! which case it may be gone). Every job the clients or the final state show must carry the
//! body of some put, one id must always come with one body, and one body with one id (the
//! one its put was answered with, if it was).

use std::collections::BTreeMap;

use super::jobs::{is_unknown, job_of, shown_job, Index};
use super::{describe_final, describe_records, Violation};
use crate::history::{Answer, Call, History, JobId};

pub const NAME: &str = "lost";

/// Where a job was seen with a body: an answer in the history, or the final state.
#[derive(Clone, Copy)]
enum Seen {
    Record(usize),
    Final(JobId),
}

pub fn check(h: &History) -> Result<(), Violation> {
    let index = Index::new(h);
    if let Some((first, second)) = index.duplicate_body {
        let detail = format!(
            "two puts carry the same body, so bodies cannot name puts (the workload must make them unique): {}",
            describe_records(h, &[first, second])
        );
        return Err(Violation { checker: NAME, job: None, detail });
    }
    check_sightings(h, &index)?;
    check_acknowledged(h)
}

/// Every sighting of a job carries a put's body, consistently in both directions.
fn check_sightings(h: &History, index: &Index) -> Result<(), Violation> {
    let mut sightings: Vec<(JobId, &[u8], Seen)> = Vec::new();
    for (i, r) in h.records.iter().enumerate() {
        if let Some((id, body)) = shown_job(r) {
            sightings.push((id, body, Seen::Record(i)));
        }
    }
    for (&id, job) in &h.final_jobs {
        sightings.push((id, job.body.as_slice(), Seen::Final(id)));
    }
    let mut first_by_id: BTreeMap<JobId, (&[u8], Seen)> = BTreeMap::new();
    let mut first_by_body: BTreeMap<&[u8], (JobId, Seen)> = BTreeMap::new();
    for (id, body, seen) in sightings {
        let Some(&put) = index.put_of_body.get(body) else {
            let detail = format!("a job with a body no put carried (a phantom job): {}", show(h, seen));
            return Err(Violation { checker: NAME, job: Some(id), detail });
        };
        if let Some(&(first_body, first)) = first_by_id.get(&id) {
            if first_body != body {
                let detail = format!("one id shown with two bodies: {}, and {}", show(h, first), show(h, seen));
                return Err(Violation { checker: NAME, job: Some(id), detail });
            }
        }
        if let Some(&(first_id, first)) = first_by_body.get(body) {
            if first_id != id {
                let put_shown = match first {
                    Seen::Record(i) if i == put => String::new(),
                    _ => format!("{}; ", describe_records(h, &[put])),
                };
                let detail =
                    format!("one put's body shown under two ids (jobs {first_id} and {id}): {put_shown}{}, and {}", show(h, first), show(h, seen));
                return Err(Violation { checker: NAME, job: Some(id), detail });
            }
        }
        check_tube(h, put, id, seen)?;
        first_by_id.entry(id).or_insert((body, seen));
        first_by_body.entry(body).or_insert((id, seen));
    }
    Ok(())
}

/// A job at the end sits in the tube it was put into.
fn check_tube(h: &History, put: usize, id: JobId, seen: Seen) -> Result<(), Violation> {
    let Seen::Final(_) = seen else { return Ok(()) };
    let Call::Put { tube, .. } = &h.records[put].call else { return Ok(()) };
    if h.final_jobs[&id].tube == *tube {
        return Ok(());
    }
    let detail = format!("the job ends in another tube than its put's: {}; {}", describe_records(h, &[put]), show(h, seen));
    Err(Violation { checker: NAME, job: Some(id), detail })
}

/// Every acknowledged put's job is still there at the end unless a delete may have removed it.
fn check_acknowledged(h: &History) -> Result<(), Violation> {
    let mut about: BTreeMap<JobId, Vec<usize>> = BTreeMap::new();
    for (i, r) in h.records.iter().enumerate() {
        if let Some(id) = job_of(r) {
            about.entry(id).or_default().push(i);
        }
    }
    for r in &h.records {
        let (Call::Put { .. }, Some(Answer::Inserted(id))) = (&r.call, &r.answer) else { continue };
        if h.final_jobs.contains_key(id) {
            continue; // its body was compared with the put's by `check_sightings`
        }
        let calls = &about[id];
        let may_be_deleted =
            calls.iter().map(|&j| &h.records[j]).any(|d| d.call == Call::Delete(*id) && (d.answer == Some(Answer::Deleted) || is_unknown(&d.answer)));
        if !may_be_deleted {
            let detail = format!(
                "an acknowledged put's job is gone at the end, and no delete of it was acknowledged or \
                 has an unknown outcome; every call about it: {}",
                describe_records(h, calls)
            );
            return Err(Violation { checker: NAME, job: Some(*id), detail });
        }
    }
    Ok(())
}

fn show(h: &History, seen: Seen) -> String {
    match seen {
        Seen::Record(i) => describe_records(h, &[i]),
        Seen::Final(id) => describe_final(id, &h.final_jobs[&id]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::check::testkit::*;
    use crate::history::{Answer::*, Call::*, FinalState};

    fn fails(h: &History) -> Violation {
        let v = check(h).expect_err("the history should break the invariant");
        assert_eq!(v.checker, NAME);
        v
    }

    #[test]
    fn acked_put_still_there_passes() {
        // An acknowledged put whose job sits in the final state, with its body, is kept.
        let h = Hist::new().call(1, 0, 10, put("a", 5), Inserted(1)).fin(1, FinalState::Ready, "a").done();
        check(&h).unwrap();
    }

    #[test]
    fn acked_put_deleted_may_be_gone() {
        // A job deleted by an acknowledged delete (even another client's) may be absent.
        let h = Hist::new()
            .call(1, 0, 10, put("a", 5), Inserted(1))
            .call(2, 20, 30, reserve(), reserved(1, "a"))
            .call(2, 40, 50, Delete(1), Deleted)
            .done();
        check(&h).unwrap();
    }

    #[test]
    fn delete_with_unknown_outcome_may_have_removed_it() {
        // A delete that got no answer, or an error line, may have removed an acknowledged job.
        let no_answer = Hist::new().call(1, 0, 10, put("a", 5), Inserted(1)).lost(1, 20, 30, Delete(1)).done();
        check(&no_answer).unwrap();
        let error_line = Hist::new().call(1, 0, 10, put("a", 5), Inserted(1)).call(1, 20, 30, Delete(1), Other("INTERNAL_ERROR".into())).done();
        check(&error_line).unwrap();
    }

    #[test]
    fn unknown_put_whose_job_shows_up_passes() {
        // A put without an answer may have happened: its job may be reserved and stay at the end.
        let h = Hist::new().lost(1, 0, 10, put("a", 5)).call(2, 5, 30, reserve(), reserved(7, "a")).fin(7, FinalState::Reserved, "a").done();
        check(&h).unwrap();
    }

    #[test]
    fn unknown_put_never_seen_passes() {
        // A put without an answer may also never have happened.
        let h = Hist::new().lost(1, 0, 10, put("a", 5)).done();
        check(&h).unwrap();
    }

    #[test]
    fn lost_acked_job_fails() {
        // An acknowledged job missing at the end, with only a NOT_FOUND delete, was lost.
        let h = Hist::new()
            .call(1, 0, 10, put("a", 5), Inserted(1))
            .call(1, 20, 30, Delete(1), NotFound)
            .call(2, 0, 10, put("b", 5), Inserted(2))
            .fin(2, FinalState::Ready, "b")
            .done();
        let v = fails(&h);
        assert_eq!(v.job, Some(1));
        assert!(v.to_string().contains("delete 1"), "{v}");
    }

    #[test]
    fn phantom_final_job_fails() {
        // A job at the end whose body no put carried appeared from nowhere.
        let h = Hist::new().call(1, 0, 10, put("a", 5), Inserted(1)).fin(1, FinalState::Ready, "a").fin(2, FinalState::Ready, "zzz");
        let v = fails(&h.done());
        assert_eq!(v.job, Some(2));
    }

    #[test]
    fn phantom_reserved_job_fails() {
        // A reserve answered with a body no put carried shows a phantom job.
        let h = Hist::new().call(1, 0, 10, reserve(), reserved(3, "ghost")).done();
        assert_eq!(fails(&h).job, Some(3));
    }

    #[test]
    fn body_changed_at_the_end_fails() {
        // An acknowledged job whose final body is another put's body was corrupted.
        let h = Hist::new().call(1, 0, 10, put("a", 5), Inserted(1)).lost(1, 20, 30, put("b", 5)).fin(1, FinalState::Ready, "b").done();
        assert_eq!(fails(&h).job, Some(1));
    }

    #[test]
    fn job_under_another_id_fails() {
        // A put acknowledged as job 5 whose body later comes back as job 6 broke the id.
        let h = Hist::new().call(1, 0, 10, put("a", 5), Inserted(5)).call(2, 20, 30, Peek(6), found(6, "a")).fin(5, FinalState::Ready, "a").done();
        let v = fails(&h);
        assert!(v.detail.contains("two ids"), "{v}");
    }

    #[test]
    fn one_unknown_put_as_two_jobs_fails() {
        // A put without an answer that shows up under two ids was applied twice.
        let h = Hist::new().lost(1, 0, 10, put("a", 5)).fin(3, FinalState::Ready, "a").fin(4, FinalState::Ready, "a").done();
        assert_eq!(fails(&h).job, Some(4));
    }

    #[test]
    fn duplicate_bodies_are_reported() {
        // Two puts with one body break the checkers' premise, and that is said rather than guessed.
        let h = Hist::new().call(1, 0, 10, put("a", 5), Inserted(1)).call(2, 0, 10, put("a", 5), Inserted(2));
        assert_eq!(fails(&h.done()).job, None);
    }

    #[test]
    fn final_job_in_another_tube_fails() {
        // A job that ends in a tube it was never put into moved.
        let mut h = Hist::new().call(1, 0, 10, put("a", 5), Inserted(1)).fin(1, FinalState::Ready, "a").done();
        h.final_jobs.get_mut(&1).unwrap().tube = "other".into();
        assert!(fails(&h).detail.contains("another tube"));
    }
}
