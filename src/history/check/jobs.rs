//! What the checkers share: which put made a job, and which job a record is about.
//!
//! Bodies are unique per put, so a body names its put; ids come from answers (`INSERTED`,
//! `RESERVED`, `FOUND`) and from the final state, each paired with the body it carried.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::history::{Answer, Call, History, JobId, Record};

/// Whether a record's outcome is unknown: no answer, or an answer the client cannot rely on.
pub(crate) fn is_unknown(answer: &Option<Answer>) -> bool {
    matches!(answer, None | Some(Answer::Other(_)))
}

/// The job a call names by id. `put` and `reserve` name none: their answer tells the id.
pub(crate) fn named_job(call: &Call) -> Option<JobId> {
    match call {
        Call::ReserveJob(id)
        | Call::Delete(id)
        | Call::Release { id, .. }
        | Call::Bury { id, .. }
        | Call::Touch(id)
        | Call::KickJob(id)
        | Call::Peek(id) => Some(*id),
        Call::Put { .. } | Call::Reserve { .. } | Call::Kick { .. } | Call::PauseTube { .. } => None,
    }
}

/// The job a record is about: the one its call names, else the one its answer gives.
pub(crate) fn job_of(r: &Record) -> Option<JobId> {
    if let Some(id) = named_job(&r.call) {
        return Some(id);
    }
    match (&r.call, &r.answer) {
        (Call::Put { .. }, Some(Answer::Inserted(id))) => Some(*id),
        (Call::Reserve { .. }, Some(Answer::Reserved { id, .. })) => Some(*id),
        _ => None,
    }
}

/// The job and body an answer shows, if it shows one.
pub(crate) fn shown_job(r: &Record) -> Option<(JobId, &[u8])> {
    match (&r.call, &r.answer) {
        (Call::Put { body, .. }, Some(Answer::Inserted(id))) => Some((*id, body.as_slice())),
        (_, Some(Answer::Reserved { id, body })) | (_, Some(Answer::Found { id, body })) => Some((*id, body.as_slice())),
        _ => None,
    }
}

/// A job's time to run as the cluster applies it: 0 is raised to 1 second.
pub(crate) fn ttr_of(ttr_secs: u32) -> Duration {
    Duration::from_secs(u64::from(ttr_secs.max(1)))
}

/// The puts by body, and the first body seen for each job id.
pub(crate) struct Index<'h> {
    /// Each body's put (its record's place in the history): the first one, if two share it.
    pub put_of_body: BTreeMap<&'h [u8], usize>,
    /// Two puts with the same body, which breaks the premise that a body names its put.
    pub duplicate_body: Option<(usize, usize)>,
    /// The body each job id was first shown with, by answers in history order, then the
    /// final state.
    pub body_of_job: BTreeMap<JobId, &'h [u8]>,
}

impl<'h> Index<'h> {
    pub fn new(h: &'h History) -> Self {
        let mut put_of_body = BTreeMap::new();
        let mut duplicate_body = None;
        for (i, r) in h.records.iter().enumerate() {
            if let Call::Put { body, .. } = &r.call {
                if let Some(&first) = put_of_body.get(body.as_slice()) {
                    duplicate_body.get_or_insert((first, i));
                } else {
                    put_of_body.insert(body.as_slice(), i);
                }
            }
        }
        let mut body_of_job = BTreeMap::new();
        for r in &h.records {
            if let Some((id, body)) = shown_job(r) {
                body_of_job.entry(id).or_insert(body);
            }
        }
        for (&id, job) in &h.final_jobs {
            body_of_job.entry(id).or_insert(job.body.as_slice());
        }
        Index { put_of_body, duplicate_body, body_of_job }
    }

    /// The put that made job `id`, found through the body the job was shown with.
    pub fn put_of_job(&self, id: JobId) -> Option<usize> {
        self.body_of_job.get(&id).and_then(|body| self.put_of_body.get(body).copied())
    }
}
