//! The state machine's vocabulary: operations in, replies and reservation events out.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

/// A job id: one global sequence from 1.
pub type JobId = u64;

/// Milliseconds on the state machine's clock (leader-stamped, since the Unix epoch).
pub type Millis = u64;

/// Who a reservation belongs to: a client connection behind a proxy. Ordered, so
/// that "every client of a proxy" is one range of the session map.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientKey {
    pub proxy: Arc<str>,
    pub client: Arc<str>,
}

impl ClientKey {
    pub fn new(proxy: &str, client: &str) -> Self {
        ClientKey { proxy: proxy.into(), client: client.into() }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.proxy, self.client)
    }
}

/// One replicated operation. Durations are whole seconds, as the beanstalkd protocol gives
/// them; the machine keeps milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `put`: a new job in `tube`, ready or (delay > 0) delayed. `client`, when given, is
    /// counted as a producer. ttr 0 is raised to 1.
    Put { client: Option<ClientKey>, tube: String, pri: u32, delay_secs: u32, ttr_secs: u32, body: Bytes },
    /// `reserve` (timeout None) or `reserve-with-timeout`: across `tubes`, or the client's
    /// watch list when `tubes` is empty. Replaces any wait the client already had.
    Reserve { client: ClientKey, request_id: String, timeout_secs: Option<u32>, tubes: Vec<String> },
    /// `reserve-job <id>`: a ready, delayed or buried job, by id.
    ReserveJob { client: ClientKey, id: JobId },
    /// `delete <id>`: a ready, delayed or buried job, or one reserved by `client`.
    Delete { client: Option<ClientKey>, id: JobId },
    /// `release <id> <pri> <delay>`: a job reserved by `client`, back to ready or delayed.
    Release { client: ClientKey, id: JobId, pri: u32, delay_secs: u32 },
    /// `bury <id> <pri>`: a job reserved by `client`.
    Bury { client: ClientKey, id: JobId, pri: u32 },
    /// `touch <id>`: restart the TTR of a job reserved by `client`.
    Touch { client: ClientKey, id: JobId },
    /// `kick <bound>` on `tube`: buried jobs if it has any, else delayed ones.
    Kick { tube: String, bound: u32 },
    /// `kick-job <id>`: one buried or delayed job.
    KickJob { id: JobId },
    /// The console's move: a ready, delayed or buried job into `tube` (made if need be), in
    /// the same state, keeping its priority, ready time or bury order. A reserved job stays
    /// where it is (WrongState): its holder may still delete or release it.
    MoveJob { id: JobId, tube: String },
    /// `pause-tube <tube> <delay>`: 0 unpauses at once.
    PauseTube { tube: String, delay_secs: u32 },
    /// `use <tube>`.
    Use { client: ClientKey, tube: String },
    /// `watch <tube>`.
    Watch { client: ClientKey, tube: String },
    /// `ignore <tube>`.
    Ignore { client: ClientKey, tube: String },
    /// A client connected: its session starts (using and watching `default`), so the tube
    /// counts include it before it sends anything. Counts no command.
    ClientHello { client: ClientKey },
    /// The client went away: its reserved jobs go back to ready, its wait and session end.
    ClientGone { client: ClientKey },
    /// The proxy went away: every wait of its clients ends, then `ClientGone` for each client,
    /// in client order.
    ProxyGone { proxy: String },
    /// The proxy is alive: its clients' sessions last `lease_secs` more seconds, after which
    /// the proxy counts as gone (`ProxyGone`). 0 cancels the lease (sessions then last until
    /// ended explicitly).
    ProxyLease { proxy: String, lease_secs: u32 },
    /// A put refused after its body was read (`EXPECTED_CRLF`, or `DRAINING`): as in
    /// beanstalkd, it uses up a job id, counts as a put and makes the client a producer, and
    /// keeps no job.
    DiscardPut { client: ClientKey },
    /// A newly elected leader's first write: every proxy lease counts as renewed now for its
    /// own length (a lease ending later keeps its end), before any timer due by now fires.
    /// A cluster that went without a leader for longer than a lease then does not end every
    /// proxy's sessions the moment a leader returns: they get a whole lease to renew.
    NewLeader,
    /// Only time passes: fires every deadline due by now.
    Tick,
}

/// What a reservation came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReserveOutcome {
    Reserved { id: JobId, body: Bytes },
    TimedOut,
    DeadlineSoon,
}

/// A reservation answered: the reply to a waiting `reserve`, to be sent to its client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservationEvent {
    pub client: ClientKey,
    pub request_id: String,
    pub outcome: ReserveOutcome,
}

/// The successful answer to an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Delete, release, bury, touch, kick-job, pause-tube, use, gone, tick.
    Done,
    /// Put: the new job's id.
    Put { id: JobId },
    /// Reserve: answered already (the same outcome is also among the events), or None while
    /// the client waits.
    Reserve(Option<ReserveOutcome>),
    /// Reserve-job: the job now reserved by the client.
    ReservedJob { id: JobId, body: Bytes },
    /// Kick: how many jobs were kicked.
    Kicked { count: u32 },
    /// Watch, ignore: how many tubes the client watches now.
    Watching { count: u32 },
    /// Proxy lease: whether the proxy held a lease until now.
    Lease { was_live: bool },
}

/// Why an operation did nothing. Each maps to its own wire code; the beanstalkd proxy
/// answers NOT_FOUND for the first three, as beanstalkd does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsmError {
    /// No such job (or tube, for pause-tube).
    NotFound,
    /// The job exists but is in a state the operation does not take.
    WrongState,
    /// The job is reserved by another client.
    NotYours,
    /// `ignore` of the only tube a client watches.
    LastWatchedTube,
    /// An argument no command could carry (a bad tube name).
    BadArgument(&'static str),
    /// A put refused before the log: the node's jobs are at its `--max-jobs-bytes`. The
    /// machine never answers it; the node's admission does, through the same paths.
    OutOfMemory,
}

impl fmt::Display for FsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsmError::NotFound => f.write_str("not found"),
            FsmError::WrongState => f.write_str("job is not in a state this operation takes"),
            FsmError::NotYours => f.write_str("job is reserved by another client"),
            FsmError::LastWatchedTube => f.write_str("cannot ignore the only watched tube"),
            FsmError::BadArgument(why) => write!(f, "bad argument: {why}"),
            FsmError::OutOfMemory => f.write_str("the node holds as many job bytes as --max-jobs-bytes allows"),
        }
    }
}

impl std::error::Error for FsmError {}

/// The result of applying one operation: its reply and every reservation it answered, in the
/// order they were answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub reply: Result<Reply, FsmError>,
    pub events: Vec<ReservationEvent>,
}

/// A job's state as readers see it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    Ready,
    /// Becomes ready at `until`.
    Delayed {
        until: Millis,
    },
    /// Held by `by` until `deadline` (its TTR runs out then).
    Reserved {
        by: ClientKey,
        deadline: Millis,
    },
    /// `seq` orders the tube's buried jobs: kicks and peek-buried take the smallest.
    Buried {
        seq: u64,
    },
}

impl JobState {
    /// The state without its times and holder.
    pub fn kind(&self) -> super::BrowseState {
        match self {
            JobState::Ready => super::BrowseState::Ready,
            JobState::Delayed { .. } => super::BrowseState::Delayed,
            JobState::Reserved { .. } => super::BrowseState::Reserved,
            JobState::Buried { .. } => super::BrowseState::Buried,
        }
    }

    /// The whole seconds left before the state ends on its own (a delay or a TTR runs out),
    /// as stats-job's time-left gives them; 0 for a state with no end.
    pub fn secs_left(&self, now: Millis) -> i64 {
        match self {
            JobState::Reserved { deadline, .. } => super::stats::secs_until(*deadline, now),
            JobState::Delayed { until } => super::stats::secs_until(*until, now),
            JobState::Ready | JobState::Buried { .. } => 0,
        }
    }
}

/// A copy of one job, for peeks and stats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobView {
    pub id: JobId,
    pub tube: String,
    pub pri: u32,
    pub state: JobState,
    /// The last delay given (put or release), in seconds.
    pub delay_secs: u32,
    pub ttr_secs: u32,
    pub created_ms: Millis,
    pub body: Bytes,
    pub reserves: u32,
    pub timeouts: u32,
    pub releases: u32,
    pub buries: u32,
    pub kicks: u32,
}

/// Which of a proxy's clients wait for a reservation (CheckClientState).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientStates {
    pub waiting: Vec<String>,
    pub not_waiting: Vec<String>,
    pub missing: Vec<String>,
}
