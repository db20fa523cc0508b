//! The ordered indexes the machine keeps: jobs by id, tubes with their per-state sets, the one
//! timer queue, and client sessions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use bytes::Bytes;

use super::types::{ClientKey, JobId, JobState, Millis};

/// A tube's identity: its creation sequence number, never reused, so timers and jobs can name
/// a tube without its string and list-tubes can answer in creation order.
pub(crate) type TubeId = u64;

/// Ready jobs with priority below this count as urgent (beanstalkd's URGENT_THRESHOLD).
pub(crate) const URGENT_PRI_MAX_EXCLUSIVE: u32 = 1024;

/// The margin before a TTR deadline in which a waiting reserve answers DEADLINE_SOON.
pub(crate) const DEADLINE_SOON_MARGIN_MS: Millis = 1000;

/// Hashes job ids (dense, sequential integers). The low bits, which pick the bucket, are the
/// id's own: consecutive jobs sit in consecutive buckets, so a queue's hot end (new puts,
/// oldest reserves) stays in few cache lines even with a million jobs stored. The top 7 bits,
/// which hashbrown compares first, come from a multiplication so they still differ. Fixed, so
/// the layout is the same on every replica; iteration order never reaches output anyway.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        const TOP_7_BITS: u64 = 0xFE00_0000_0000_0000;
        self.0 = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) & TOP_7_BITS) | (n & !TOP_7_BITS);
    }
}

/// Jobs by id. Boxed: a job is about 150 bytes, and the table doubles as jobs pile up; moving
/// pointers rather than whole jobs made the growth of a table of 300k jobs cost a tenth, not
/// a third, of a put's time in `serve` (`coolbeans bench`, put phase).
pub(crate) type JobMap = HashMap<JobId, Box<Job>, BuildHasherDefault<IdHasher>>;

/// Hashes short strings (tube names) a word at a time. Fixed, like `IdHasher`; maps keyed by
/// it are only looked up, never iterated into output.
#[derive(Default)]
pub(crate) struct NameHasher(u64);

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7C_C1_B7_27_22_0A_95);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7C_C1_B7_27_22_0A_95);
        }
    }
}

/// Client sessions: looked up on nearly every operation, so hashed; whoever needs them in
/// order (snapshot, digest, a proxy's clients) sorts their keys first.
pub(crate) type Sessions = HashMap<ClientKey, Session, BuildHasherDefault<NameHasher>>;

/// Tube ids by name: looked up on every put, so hashed rather than ordered.
pub(crate) type TubeNames = HashMap<Arc<str>, TubeId, BuildHasherDefault<NameHasher>>;

/// What a timer does when it fires. The order of the variants is the firing order among
/// timers due at the same millisecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TimerKind {
    /// A delayed job becomes ready (key: job id).
    DelayEnd,
    /// A tube's pause ends (key: tube id).
    PauseEnd,
    /// A reserved job's TTR runs out (key: job id).
    TtrEnd,
    /// A reserved job enters the DEADLINE_SOON margin (key: job id).
    DeadlineSoon,
    /// A waiting reserve times out (key: wait sequence).
    WaitTimeout,
    /// A proxy's lease runs out (key: lease id).
    LeaseEnd,
}

/// One pending deadline. Ordered by time, then kind, then key: a total order, so replicas fire
/// timers in the same order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Timer {
    pub at: Millis,
    pub kind: TimerKind,
    pub key: u64,
}

/// One job and its history counters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Job {
    pub id: JobId,
    pub tube: TubeId,
    pub pri: u32,
    /// The last delay given, in seconds (stats-job shows it).
    pub delay_secs: u32,
    pub ttr_secs: u32,
    pub created: Millis,
    pub body: Bytes,
    pub state: JobState,
    /// The job's one pending timer: delay end while delayed, deadline-soon then TTR end while
    /// reserved, none otherwise.
    pub timer: Option<Timer>,
    pub reserves: u32,
    pub timeouts: u32,
    pub releases: u32,
    pub buries: u32,
    pub kicks: u32,
}

impl Job {
    pub fn ttr_ms(&self) -> Millis {
        Millis::from(self.ttr_secs) * 1000
    }
}

/// A pause in force on a tube.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Pause {
    pub secs: u32,
    pub until: Millis,
}

/// One tube: its jobs by state, its waiting reserves, and its counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Tube {
    pub name: Arc<str>,
    /// Ready jobs by (priority, id): reserves take the first.
    pub ready: BTreeSet<(u32, JobId)>,
    /// Delayed jobs by (ready time, id): peek-delayed and kick take the first.
    pub delayed: BTreeSet<(Millis, JobId)>,
    /// Buried jobs by bury sequence: peek-buried and kick take the oldest.
    pub buried: BTreeSet<(u64, JobId)>,
    /// Waiting reserves on this tube by wait sequence: FIFO.
    pub waiters: BTreeSet<u64>,
    pub reserved_count: u64,
    /// Ready jobs with priority below 1024.
    pub urgent_count: u64,
    /// Sessions that use / watch this tube.
    pub using_count: u64,
    pub watching_count: u64,
    pub pause: Option<Pause>,
    pub total_jobs: u64,
    pub cmd_delete: u64,
    pub cmd_pause_tube: u64,
}

impl Tube {
    pub fn new(name: Arc<str>) -> Self {
        Tube { name, ..Tube::default() }
    }

    pub fn job_count(&self) -> u64 {
        (self.ready.len() + self.delayed.len() + self.buried.len()) as u64 + self.reserved_count
    }

    /// Nothing uses, watches, waits on or holds jobs in this tube.
    pub fn is_unused(&self) -> bool {
        self.job_count() == 0 && self.waiters.is_empty() && self.using_count == 0 && self.watching_count == 0
    }
}

/// A waiting reserve.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Wait {
    /// FIFO position across all tubes.
    pub seq: u64,
    pub request_id: String,
    /// The tubes it waits on, in the order given.
    pub tubes: Vec<TubeId>,
    /// When it times out; None waits for ever.
    pub deadline: Option<Millis>,
}

/// A client's session: what it uses and watches, what it holds, and its wait.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Session {
    pub used: TubeId,
    /// Watched tubes in the order watched.
    pub watched: Vec<TubeId>,
    /// Reserved jobs by (TTR deadline, id): the first is the soonest to run out.
    pub reserved: BTreeSet<(Millis, JobId)>,
    pub wait: Option<Wait>,
    pub producer: bool,
    pub worker: bool,
    /// The last reservation answered, kept so a proxy that lost the answer on its way
    /// can ask again with the same request id and get it once more.
    pub answered: Option<Answered>,
}

/// A reservation's answer, as a session remembers it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Answered {
    pub request_id: String,
    pub outcome: AnsweredOutcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum AnsweredOutcome {
    Reserved(JobId),
    TimedOut,
    DeadlineSoon,
}

/// A proxy's lease: while it runs, its clients' sessions live on without the proxy saying so.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Lease {
    /// Names the lease's timer (proxy names are strings; timer keys are numbers).
    pub id: u64,
    pub until: Millis,
    /// Its length as last renewed: what a new leader renews it for.
    pub secs: u32,
}

/// The server-wide command counters (beanstalkd's op counts that go through the log).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counters {
    pub cmd_put: u64,
    pub cmd_reserve: u64,
    pub cmd_reserve_with_timeout: u64,
    pub cmd_reserve_job: u64,
    pub cmd_delete: u64,
    pub cmd_release: u64,
    pub cmd_use: u64,
    pub cmd_watch: u64,
    pub cmd_ignore: u64,
    pub cmd_bury: u64,
    pub cmd_kick: u64,
    pub cmd_touch: u64,
    pub cmd_pause_tube: u64,
    pub job_timeouts: u64,
    pub total_jobs: u64,
}

impl State {
    /// Session keys in order: how anything that reaches output walks the sessions.
    pub fn client_keys(&self) -> Vec<&ClientKey> {
        let mut keys: Vec<&ClientKey> = self.sessions.keys().collect();
        keys.sort_unstable();
        keys
    }
}

/// Every collection of the machine. Kept apart from the operations so that snapshot, restore,
/// digest and the invariant check read the same fields.
#[derive(Clone, Debug, Default)]
pub(crate) struct State {
    pub clock: Millis,
    pub next_job_id: JobId,
    pub next_bury_seq: u64,
    pub next_wait_seq: u64,
    pub next_tube_id: TubeId,
    pub jobs: JobMap,
    pub tubes: BTreeMap<TubeId, Tube>,
    /// Derived from `tubes` (never iterated into output: the digest and snapshot read `tubes`).
    pub tube_ids: TubeNames,
    pub sessions: Sessions,
    /// Waiting reserves by wait sequence, to find the client behind a tube's first waiter.
    pub waits: BTreeMap<u64, ClientKey>,
    pub timers: BTreeSet<Timer>,
    pub counters: Counters,
    /// Proxy leases by proxy id, and the proxy of each lease id.
    pub leases: BTreeMap<String, Lease>,
    pub lease_proxies: BTreeMap<u64, String>,
    pub next_lease_id: u64,
    /// What the jobs count for against the node's limit (`limits::job_bytes`); derived, never
    /// in output.
    pub jobs_bytes: u64,
}
