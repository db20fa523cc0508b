//! What `stats-job`, `stats-tube` and `stats` report of the state machine, as numbers and
//! names: `protocol::stats` writes them as beanstalkd's YAML, the gRPC API carries them.

use std::sync::Arc;

use super::browse::BrowseState;
use super::index::{Counters, Job, Tube};
use super::machine::Fsm;
use super::types::{JobId, Millis};

/// Whole seconds from `now` to `at`, truncated toward zero as beanstalkd's integer division.
pub(crate) fn secs_until(at: Millis, now: Millis) -> i64 {
    (at as i64 - now as i64) / 1000
}

/// Jobs of each state, over one tube or all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Ready jobs with priority below 1024 (counted in `ready` too).
    pub urgent: u64,
    pub ready: u64,
    pub reserved: u64,
    pub delayed: u64,
    pub buried: u64,
}

impl JobCounts {
    pub(crate) fn of(tube: &Tube) -> Self {
        let mut counts = JobCounts::default();
        counts.add(tube);
        counts
    }

    /// Adds another set of counts into these.
    pub fn add_counts(&mut self, other: &JobCounts) {
        self.urgent += other.urgent;
        self.ready += other.ready;
        self.reserved += other.reserved;
        self.delayed += other.delayed;
        self.buried += other.buried;
    }

    fn add(&mut self, tube: &Tube) {
        self.urgent += tube.urgent_count;
        self.ready += tube.ready.len() as u64;
        self.reserved += tube.reserved_count;
        self.delayed += tube.delayed.len() as u64;
        self.buried += tube.buried.len() as u64;
    }
}

/// `stats-job`: one job at a moment. Durations are whole seconds, truncated as beanstalkd's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobStats {
    pub id: JobId,
    pub tube: Arc<str>,
    pub state: BrowseState,
    pub pri: u32,
    pub age_secs: u64,
    /// The last delay given.
    pub delay_secs: u32,
    pub ttr_secs: u32,
    /// Left of the delay or the TTR; 0 in the other states. Negative while a timer is due but
    /// not yet ticked.
    pub time_left_secs: i64,
    pub reserves: u32,
    pub timeouts: u32,
    pub releases: u32,
    pub buries: u32,
    pub kicks: u32,
}

/// `stats-tube`: one tube at a moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TubeStats {
    pub name: Arc<str>,
    pub jobs: JobCounts,
    pub total_jobs: u64,
    /// Sessions that use, watch and wait on the tube.
    pub using: u64,
    pub watching: u64,
    pub waiting: u64,
    pub cmd_delete: u64,
    pub cmd_pause_tube: u64,
    /// The pause given and what is left of it; 0 and 0 when not paused.
    pub pause_secs: u32,
    pub pause_left_secs: i64,
}

/// The state machine's part of `stats`: what every replica counts alike. The serving process
/// adds what it knows of itself (connections, commands that never reach the log, identity).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MachineStats {
    pub jobs: JobCounts,
    /// Commands applied through the log.
    pub counters: Counters,
    pub tubes: u64,
    /// Sessions that have put, that have reserved, and that wait to reserve.
    pub producers: u64,
    pub workers: u64,
    pub waiting: u64,
}

impl JobStats {
    fn of(job: &Job, tube: &Tube, now: Millis) -> Self {
        JobStats {
            id: job.id,
            tube: tube.name.clone(),
            state: job.state.kind(),
            pri: job.pri,
            age_secs: (now - job.created.min(now)) / 1000,
            delay_secs: job.delay_secs,
            ttr_secs: job.ttr_secs,
            time_left_secs: job.state.secs_left(now),
            reserves: job.reserves,
            timeouts: job.timeouts,
            releases: job.releases,
            buries: job.buries,
            kicks: job.kicks,
        }
    }
}

impl TubeStats {
    fn of(tube: &Tube, now: Millis) -> Self {
        let (pause_secs, pause_left_secs) = match tube.pause {
            Some(pause) => (pause.secs, secs_until(pause.until, now)),
            None => (0, 0),
        };
        TubeStats {
            name: tube.name.clone(),
            jobs: JobCounts::of(tube),
            total_jobs: tube.total_jobs,
            using: tube.using_count,
            watching: tube.watching_count,
            waiting: tube.waiters.len() as u64,
            cmd_delete: tube.cmd_delete,
            cmd_pause_tube: tube.cmd_pause_tube,
            pause_secs,
            pause_left_secs,
        }
    }
}

impl Fsm {
    /// Each tube's jobs by state, in tube creation order.
    pub fn tube_job_counts(&self) -> Vec<(Arc<str>, JobCounts)> {
        self.s.tubes.values().map(|tube| (tube.name.clone(), JobCounts::of(tube))).collect()
    }

    /// `stats-job <id>` at time `now_ms` (the machine's clock if that is later).
    pub fn stats_job(&self, id: JobId, now_ms: Millis) -> Option<JobStats> {
        let job = self.s.jobs.get(&id)?;
        Some(JobStats::of(job, &self.s.tubes[&job.tube], now_ms.max(self.s.clock)))
    }

    /// `stats-tube <name>`, or None when the tube does not exist.
    pub fn stats_tube(&self, name: &str, now_ms: Millis) -> Option<TubeStats> {
        let tube = self.s.tube_ids.get(name)?;
        Some(TubeStats::of(&self.s.tubes[tube], now_ms.max(self.s.clock)))
    }

    /// The machine's part of `stats`.
    pub fn stats(&self) -> MachineStats {
        let mut jobs = JobCounts::default();
        for tube in self.s.tubes.values() {
            jobs.add(tube);
        }
        let sessions = || self.s.sessions.values();
        MachineStats {
            jobs,
            counters: self.s.counters.clone(),
            tubes: self.s.tubes.len() as u64,
            producers: sessions().filter(|s| s.producer).count() as u64,
            workers: sessions().filter(|s| s.worker).count() as u64,
            waiting: self.s.waits.len() as u64,
        }
    }
}
