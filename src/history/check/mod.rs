//! One checker per invariant, each reading only a `History`.
//!
//! Every checker is a pure function of the history: no clock, no randomness, and every
//! collection whose order reaches a report is ordered, so the same history always yields the
//! same verdict and the same words.

#[cfg(test)]
mod generated;
pub mod holders;
mod jobs;
pub mod linearizable;
pub mod lost;
#[cfg(test)]
mod testkit;

use std::fmt;
use std::time::Duration;

use crate::history::{Answer, Call, FinalJob, History, JobId, Record};

/// The cluster stamps operations with its clock in whole milliseconds, truncated. A deadline
/// it computes (TTR, delay) can therefore fall up to this much before the exact start of the
/// call plus the duration, and the checkers allow for it.
pub const CLOCK_SLACK: Duration = Duration::from_millis(1);

/// A broken invariant: which checker saw it, about which job, and the records that show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The checker's name (`lost`, `holders`, `linearizable`).
    pub checker: &'static str,
    /// The job the violation is about, when there is one.
    pub job: Option<JobId>,
    /// What is wrong, followed by the records that show it.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.job {
            Some(id) => write!(f, "checker `{}` failed on job {id}: {}", self.checker, self.detail),
            None => write!(f, "checker `{}` failed: {}", self.checker, self.detail),
        }
    }
}

impl std::error::Error for Violation {}

/// Runs every checker, cheapest first; the first violation wins.
pub fn check_all(h: &History) -> Result<(), Violation> {
    lost::check(h)?;
    holders::check(h)?;
    let stats = linearizable::check_with_stats(h)?;
    if stats.jobs_inconclusive > 0 {
        tracing::warn!(jobs = stats.jobs_inconclusive, "linearizability search gave up on some jobs (step bound reached); they count as passing");
    }
    Ok(())
}

/// One record as a reader wants it: `client 2: delete 7, 1.200s..1.350s -> DELETED`.
pub fn describe(r: &Record) -> String {
    let answer = match &r.answer {
        Some(a) => describe_answer(a),
        None => "no answer (outcome unknown)".to_string(),
    };
    format!("client {}: {}, {:.3}s..{:.3}s -> {answer}", r.client, describe_call(&r.call), r.start.as_secs_f64(), r.end.as_secs_f64())
}

/// Several records of `h`, numbered by their place in the history, in one line.
pub(crate) fn describe_records(h: &History, records: &[usize]) -> String {
    let parts: Vec<String> = records.iter().map(|&i| format!("#{i} {}", describe(&h.records[i]))).collect();
    parts.join("; ")
}

/// A job the cluster still holds at the end.
pub(crate) fn describe_final(id: JobId, job: &FinalJob) -> String {
    format!("final state: job {id} {:?} in tube {} with body {}", job.state, job.tube, describe_body(&job.body))
}

fn describe_call(call: &Call) -> String {
    match call {
        Call::Put { tube, pri, delay_secs, ttr_secs, body } => {
            format!("put {pri} {delay_secs} {ttr_secs} {} into tube {tube}", describe_body(body))
        }
        Call::Reserve { tube, timeout_secs: None } => format!("reserve on tube {tube}"),
        Call::Reserve { tube, timeout_secs: Some(s) } => format!("reserve-with-timeout {s} on tube {tube}"),
        Call::ReserveJob(id) => format!("reserve-job {id}"),
        Call::Delete(id) => format!("delete {id}"),
        Call::Release { id, pri, delay_secs } => format!("release {id} {pri} {delay_secs}"),
        Call::Bury { id, pri } => format!("bury {id} {pri}"),
        Call::Touch(id) => format!("touch {id}"),
        Call::KickJob(id) => format!("kick-job {id}"),
        Call::Kick { tube, bound } => format!("kick {bound} on tube {tube}"),
        Call::PauseTube { tube, delay_secs } => format!("pause-tube {tube} {delay_secs}"),
        Call::Peek(id) => format!("peek {id}"),
    }
}

fn describe_answer(answer: &Answer) -> String {
    match answer {
        Answer::Inserted(id) => format!("INSERTED {id}"),
        Answer::Reserved { id, body } => format!("RESERVED {id} {}", describe_body(body)),
        Answer::Found { id, body } => format!("FOUND {id} {}", describe_body(body)),
        Answer::TimedOut => "TIMED_OUT".to_string(),
        Answer::DeadlineSoon => "DEADLINE_SOON".to_string(),
        Answer::Deleted => "DELETED".to_string(),
        Answer::Released => "RELEASED".to_string(),
        Answer::Buried => "BURIED".to_string(),
        Answer::Touched => "TOUCHED".to_string(),
        Answer::KickedJob => "KICKED".to_string(),
        Answer::Kicked(n) => format!("KICKED {n}"),
        Answer::Paused => "PAUSED".to_string(),
        Answer::NotFound => "NOT_FOUND".to_string(),
        Answer::Other(line) => format!("{line} (outcome unknown)"),
    }
}

/// A body quoted, escaped, and cut to a readable length.
fn describe_body(body: &[u8]) -> String {
    const SHOWN_BYTES_MAX: usize = 40;
    let shown = &body[..body.len().min(SHOWN_BYTES_MAX)];
    let more = if body.len() > SHOWN_BYTES_MAX { "..." } else { "" };
    format!("\"{}{more}\"", shown.escape_ascii())
}
