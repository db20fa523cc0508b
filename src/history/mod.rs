//! What beanstalkd clients saw: every call with when it started, when it ended and what it
//! answered, plus the moments a client's holds became at risk. The checkers (`check`) read
//! only this (and the final state the cluster reports), never the cluster's internals, so the
//! same history and checkers serve the simulator and the chaos test on real processes
//! (`tests/chaos`).
//!
//! Times are durations since the run started, on a clock the cluster's runs at the same rate
//! as: in the simulator, madsim's one clock for every host; on real processes, the machine's
//! monotonic clock, which its wall clock (the leader's time stamps) follows but for steps.

pub mod check;
pub mod wire;

use std::collections::BTreeMap;
use std::time::Duration;

/// A beanstalkd client (one connection at a time).
pub type ClientId = u32;
/// A job id as the protocol shows it.
pub type JobId = u64;

/// A beanstalkd command a client sent. Each client uses one tube and watches that tube only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `put` into `tube`. Bodies are unique across the run, so a body names its put.
    Put {
        tube: String,
        pri: u32,
        delay_secs: u32,
        ttr_secs: u32,
        body: Vec<u8>,
    },
    /// `reserve` (timeout `None`) or `reserve-with-timeout`, watching `tube` only.
    Reserve {
        tube: String,
        timeout_secs: Option<u32>,
    },
    ReserveJob(JobId),
    Delete(JobId),
    Release {
        id: JobId,
        pri: u32,
        delay_secs: u32,
    },
    Bury {
        id: JobId,
        pri: u32,
    },
    Touch(JobId),
    KickJob(JobId),
    /// `kick <bound>` on `tube`: moves up to `bound` buried (else delayed) jobs to ready.
    Kick {
        tube: String,
        bound: u32,
    },
    PauseTube {
        tube: String,
        delay_secs: u32,
    },
    /// `peek <id>`.
    Peek(JobId),
}

/// A server's answer, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Inserted(JobId),
    Reserved {
        id: JobId,
        body: Vec<u8>,
    },
    Found {
        id: JobId,
        body: Vec<u8>,
    },
    TimedOut,
    DeadlineSoon,
    Deleted,
    Released,
    Buried,
    Touched,
    /// `KICKED` (kick-job).
    KickedJob,
    /// `KICKED <count>` (kick).
    Kicked(u32),
    Paused,
    NotFound,
    /// Any other line (`DRAINING`, `INTERNAL_ERROR`, ...): the call had no effect the
    /// client can rely on, and the checkers treat it like an unknown outcome.
    Other(String),
}

/// One call from one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub client: ClientId,
    pub call: Call,
    /// When the client began sending the command.
    pub start: Duration,
    /// When the answer arrived, or when the client gave up on it.
    pub end: Duration,
    /// `None`: the outcome is unknown (the connection broke or the client stopped waiting).
    /// The call may have taken effect at any time from `start` on, or never.
    pub answer: Option<Answer>,
}

/// From `from` on, the jobs `client` holds may be released without it asking: its connection
/// closed, or its proxy crashed or was cut off from the cluster long enough to lose its
/// lease. `until` bounds which holds are at risk: only those whose reserve started before it
/// (a hold taken later, on a fresh connection or session, is safe again). `None`: for ever.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldRisk {
    pub client: ClientId,
    pub from: Duration,
    pub until: Option<Duration>,
}

/// A job as the cluster holds it at the end, after healing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinalState {
    Ready,
    Delayed,
    Reserved,
    Buried,
}

/// A job that exists at the end, read from the healed cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalJob {
    pub tube: String,
    pub state: FinalState,
    pub body: Vec<u8>,
}

/// Everything the clients recorded in one run.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub records: Vec<Record>,
    pub risks: Vec<HoldRisk>,
    /// Every job the healed cluster holds at the end (the run's last observation, after all
    /// calls in `records` have ended).
    pub final_jobs: BTreeMap<JobId, FinalJob>,
}
