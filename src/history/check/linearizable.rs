//! Each job's history is linearizable against the single-job state model.
//!
//! For every job (its records grouped by id, its put found by body), the checker searches for
//! a linearization: one point per call inside the call's `start..end`, in an order the model
//! accepts with the answers observed, followed by the final observation (after every call),
//! which must equal the job's final state. A call with an unknown outcome may take effect at
//! any point from its start on, or never.
//!
//! Besides the calls, the model lets the job move on its own between two points, when allowed:
//! a delay or a TTR runs out; a `kick` on the job's tube kicks it while the kick runs; and a
//! job may pass to a "ghost" of a client, a holder that may let it go at any time and whose
//! client's calls may or may not find the job theirs. A ready job may go to a ghost of a
//! client that sent a reserve on its tube (or a reserve-job of it) whose outcome is unknown,
//! from that call's start on; a job held by a client whose holds became at risk may go to a
//! ghost of that client from the risk's `from` on (its connection may be gone, the job still
//! held by it). Such moves are allowed, never forced: a late timer is not an error here.
//!
//! The search is a depth-first walk over (calls placed, model state, time), placing each call
//! as early as it can: an earlier time never loses an explanation, because every deadline the
//! model records only ever allows moves from it on. A node is cut when one with the same
//! answered calls and state was reached no later, using no more unknown-outcome calls. Calls
//! that leave the state as it is (a fitting NOT_FOUND, a FOUND peek) are placed as soon as
//! they may be, without branching.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::jobs::{is_unknown, job_of, ttr_of, Index};
use super::{describe_final, describe_records, Violation, CLOCK_SLACK};
use crate::history::{Answer, Call, ClientId, FinalState, History, JobId, Record};

pub const NAME: &str = "linearizable";

/// The most search steps spent on one job before it counts as inconclusive (and passes).
const SEARCH_STEPS_MAX: u64 = 1_000_000;
/// Words in the placed-calls mask: one bit per call of a job.
const MASK_WORDS: usize = 8;
/// The most calls one job may have for the search (more count as inconclusive).
const JOB_CALLS_MAX: usize = MASK_WORDS * 64;

/// What the checker did, for the caller to report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Jobs whose history was explained.
    pub jobs_checked: u64,
    /// Jobs the search gave up on (step bound, or more calls than the mask holds): passing.
    pub jobs_inconclusive: u64,
    /// Jobs with no put to model from (a phantom job, which `lost` reports, or an id only
    /// ever answered NOT_FOUND while some put's outcome and id are unknown).
    pub jobs_skipped: u64,
    /// Search steps over all jobs.
    pub steps: u64,
}

pub fn check(h: &History) -> Result<(), Violation> {
    check_with_stats(h).map(|_| ())
}

pub fn check_with_stats(h: &History) -> Result<Stats, Violation> {
    let index = Index::new(h);
    let mut stats = Stats::default();
    for (id, records) in records_by_job(h) {
        check_job(h, &index, id, &records, &mut stats)?;
    }
    Ok(stats)
}

/// Each job's records, for every job a record or the final state names.
fn records_by_job(h: &History) -> BTreeMap<JobId, Vec<usize>> {
    let mut by_job: BTreeMap<JobId, Vec<usize>> = BTreeMap::new();
    for (i, r) in h.records.iter().enumerate() {
        if let Some(id) = job_of(r) {
            by_job.entry(id).or_default().push(i);
        }
    }
    for &id in h.final_jobs.keys() {
        by_job.entry(id).or_default();
    }
    by_job
}

fn check_job(h: &History, index: &Index, id: JobId, records: &[usize], stats: &mut Stats) -> Result<(), Violation> {
    let Some(body) = index.body_of_job.get(&id) else {
        return check_never_shown(h, index, id, records, stats);
    };
    let Some(&put) = index.put_of_body.get(body) else {
        stats.jobs_skipped += 1;
        return Ok(());
    };
    let Some(job) = Job::build(h, id, put, records)? else {
        stats.jobs_inconclusive += 1; // more calls than the mask holds
        return Ok(());
    };
    let mut search = Search { job: &job, memo: BTreeMap::new(), steps: 0, furthest: Mask::default() };
    let verdict = search.explore(Mask::default(), State::Absent, Duration::ZERO);
    stats.steps += search.steps;
    match verdict {
        Verdict::Explained => stats.jobs_checked += 1,
        Verdict::Inconclusive => stats.jobs_inconclusive += 1,
        Verdict::Unexplained => return Err(job.violation(h, search.furthest)),
    }
    Ok(())
}

/// A job id no answer ever paired with a body: no put is known to have made it, so every
/// answer about it must say it does not exist, unless a put whose job was never shown may
/// have made it.
fn check_never_shown(h: &History, index: &Index, id: JobId, records: &[usize], stats: &mut Stats) -> Result<(), Violation> {
    let claims_existence = |r: &Record| match &r.answer {
        Some(Answer::NotFound | Answer::TimedOut | Answer::DeadlineSoon | Answer::Paused | Answer::Kicked(_)) => false,
        answer => !is_unknown(answer),
    };
    let Some(&claim) = records.iter().find(|&&i| claims_existence(&h.records[i])) else {
        stats.jobs_checked += 1;
        return Ok(());
    };
    let shown: BTreeSet<&[u8]> = index.body_of_job.values().copied().collect();
    let unseen_put = h.records.iter().any(|r| match &r.call {
        Call::Put { body, .. } => is_unknown(&r.answer) && !shown.contains(&body.as_slice()),
        _ => false,
    });
    if unseen_put {
        stats.jobs_skipped += 1;
        return Ok(());
    }
    let detail = format!("answered as if the job existed, though no put made it: {}", describe_records(h, &[claim]));
    Err(Violation { checker: NAME, job: Some(id), detail })
}

/// What a call does to the one job it is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Put { delay: Duration },
    Reserve,
    ReserveJob,
    Delete,
    Release { delay: Duration },
    Bury,
    Touch,
    KickJob,
    Peek,
}

/// What the answer says the call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// It took effect (`INSERTED`, `RESERVED`, `DELETED`, ...).
    Success,
    /// `NOT_FOUND`: the job was not in a state the call applies to, and nothing changed.
    NotFound,
    /// No answer, or one the client cannot rely on: took effect at some point, or never.
    Unknown,
}

/// One call about the job.
#[derive(Clone, Copy, Debug)]
struct Op {
    /// Its record's place in the history.
    record: usize,
    client: ClientId,
    kind: Kind,
    expect: Expect,
    start: Duration,
    /// `Duration::MAX` for an unknown outcome: it may take effect any time after its start.
    end: Duration,
}

/// Who holds a reserved job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Holder {
    /// The client's current connection, which learnt of the grant.
    Client(ClientId),
    /// Some connection of the client, maybe one that is gone: granted by a call whose answer
    /// the client never got, or a hold of the client's that became at risk. The job may be let
    /// go at any time, and the client's calls may or may not find it theirs.
    Ghost(ClientId),
}

/// The model's view of the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    /// Not put yet.
    Absent,
    Ready,
    /// Delayed; may become ready from `until` on.
    Delayed {
        until: Duration,
    },
    /// Reserved by `holder`; may go back to ready from `expires` on. `since` is the start of
    /// the granting call, which decides which hold risks cover the hold. Both are zero for a
    /// ghost holder, which may let the job go at any time.
    Reserved {
        holder: Holder,
        expires: Duration,
        since: Duration,
    },
    Buried,
    Deleted,
}

/// The job held by a ghost of `client`.
fn ghost(client: ClientId) -> State {
    State::Reserved { holder: Holder::Ghost(client), expires: Duration::ZERO, since: Duration::ZERO }
}

/// One job's calls and everything else that may move it.
struct Job {
    id: JobId,
    tube: String,
    ttr: Duration,
    /// The job's calls in order of start: bit `i` of a mask stands for `ops[i]`.
    ops: Vec<Op>,
    /// The calls with a known outcome, which every explanation must place.
    required: Mask,
    /// The `kick`s on the job's tube that may have kicked it: while each runs (`start..end`).
    kicks: Vec<(Duration, Duration)>,
    /// For each client that sent a reserve with an unknown outcome on the job's tube, or a
    /// reserve-job of it with an unknown outcome, the earliest start of one: from then on the
    /// job, when ready, may go to a ghost of that client.
    ghost_from_ready: BTreeMap<ClientId, Duration>,
    /// The same for reserve-jobs alone, which may also take a delayed or buried job.
    ghost_from_idle: BTreeMap<ClientId, Duration>,
    /// The hold risks: (client, from, until).
    risks: Vec<(ClientId, Duration, Option<Duration>)>,
    /// The job at the end: `None` if the cluster no longer holds it.
    end_state: Option<FinalState>,
}

impl Job {
    /// The job made by record `put`, with its `records`; `None` if it has more calls than
    /// the search can track.
    fn build(h: &History, id: JobId, put: usize, records: &[usize]) -> Result<Option<Job>, Violation> {
        let Call::Put { tube, ttr_secs, .. } = &h.records[put].call else { unreachable!("a body's record is a put") };
        let mut ops = vec![op_of(h, put, id, tube)?.expect("a put always yields a call")];
        for &i in records {
            let is_other_put = matches!(h.records[i].call, Call::Put { .. });
            if is_other_put {
                continue; // this job's put is the one found by body; another is `lost`'s concern
            }
            if let Some(op) = op_of(h, i, id, tube)? {
                ops.push(op);
            }
        }
        ops.sort_by_key(|op| (op.start, op.record));
        // A reserve-job or kick-job with an unknown outcome becomes a move the job may make on
        // its own from the call's start on, like a reserve or kick of its tube. That lets it
        // happen more than once, which the ghost's free release makes moot anyway, and keeps
        // such calls out of the placed-calls mask, where each would double the search.
        let mut kicks = kicks_on(h, tube);
        let mut ghost_from_ready = ghost_from(h, tube);
        let mut ghost_from_idle = BTreeMap::new();
        for op in ops.iter().filter(|op| op.expect == Expect::Unknown) {
            match op.kind {
                Kind::KickJob => kicks.push((op.start, Duration::MAX)),
                Kind::ReserveJob => {
                    for from in [&mut ghost_from_ready, &mut ghost_from_idle] {
                        let earliest = from.entry(op.client).or_insert(op.start);
                        *earliest = (*earliest).min(op.start);
                    }
                }
                _ => {}
            }
        }
        ops.retain(|op| op.expect != Expect::Unknown || !matches!(op.kind, Kind::KickJob | Kind::ReserveJob));
        if ops.len() > JOB_CALLS_MAX {
            return Ok(None);
        }
        let required = ops.iter().enumerate().filter(|(_, op)| op.expect != Expect::Unknown).fold(Mask::default(), |mask, (i, _)| mask.with(i));
        Ok(Some(Job {
            id,
            tube: tube.clone(),
            ttr: ttr_of(*ttr_secs),
            ops,
            required,
            kicks,
            ghost_from_ready,
            ghost_from_idle,
            risks: h.risks.iter().map(|r| (r.client, r.from, r.until)).collect(),
            end_state: h.final_jobs.get(&id).map(|job| job.state.clone()),
        }))
    }

    /// The state after `op` at `at`, if the model allows the op with its answer from `s`.
    fn apply(&self, op: &Op, s: State, at: Duration) -> Option<State> {
        match op.expect {
            Expect::NotFound => self.finds_nothing(op, s).then_some(s),
            Expect::Success => self.succeed(op, s, at, Holder::Client(op.client)),
            Expect::Unknown => self.succeed(op, s, at, Holder::Ghost(op.client)),
        }
    }

    /// The state after `op` took effect, if it could from `s`; a grant goes to `grantee`.
    fn succeed(&self, op: &Op, s: State, at: Duration, grantee: Holder) -> Option<State> {
        let idle = matches!(s, State::Ready | State::Delayed { .. } | State::Buried);
        let held_by_caller = may_hold(s, op.client);
        let reserved = match grantee {
            Holder::Ghost(c) => ghost(c),
            Holder::Client(_) => State::Reserved { holder: grantee, expires: deadline(at, self.ttr), since: op.start },
        };
        match op.kind {
            Kind::Put { delay } => (s == State::Absent).then(|| waiting(at, delay)),
            Kind::Reserve => (s == State::Ready).then_some(reserved),
            Kind::ReserveJob => idle.then_some(reserved),
            Kind::Delete => (idle || held_by_caller).then_some(State::Deleted),
            Kind::Release { delay } => held_by_caller.then(|| waiting(at, delay)),
            Kind::Bury => held_by_caller.then_some(State::Buried),
            Kind::Touch => match s {
                State::Reserved { holder: holder @ Holder::Client(c), since, .. } if c == op.client => {
                    Some(State::Reserved { holder, expires: deadline(at, self.ttr), since })
                }
                // A ghost may let the job go at any time anyway: a touch changes nothing.
                State::Reserved { holder: Holder::Ghost(c), .. } if c == op.client => Some(s),
                _ => None,
            },
            Kind::KickJob => matches!(s, State::Buried | State::Delayed { .. }).then_some(State::Ready),
            Kind::Peek => exists(s).then_some(s),
        }
    }

    /// Whether `op` answers NOT_FOUND in state `s`.
    fn finds_nothing(&self, op: &Op, s: State) -> bool {
        let idle = matches!(s, State::Ready | State::Delayed { .. } | State::Buried);
        match op.kind {
            Kind::Put { .. } | Kind::Reserve => false,
            Kind::ReserveJob => !idle,
            Kind::Delete => !idle && !surely_holds(s, op.client),
            Kind::Release { .. } | Kind::Bury | Kind::Touch => !surely_holds(s, op.client),
            Kind::KickJob => !matches!(s, State::Buried | State::Delayed { .. }),
            Kind::Peek => !exists(s),
        }
    }

    /// The moves the job may make on its own from `s` at `t` or later, each at its earliest
    /// time.
    fn spontaneous(&self, s: State, t: Duration) -> Vec<(State, Duration)> {
        let ready_at = match s {
            State::Absent | State::Deleted => None,
            State::Ready => return ghosts(&self.ghost_from_ready, t).collect(),
            State::Delayed { until } => {
                let ready = earliest(Some(until.max(t)), self.kick_at(t)).map(|at| (State::Ready, at));
                return ready.into_iter().chain(ghosts(&self.ghost_from_idle, t)).collect();
            }
            State::Buried => {
                let ready = self.kick_at(t).map(|at| (State::Ready, at));
                return ready.into_iter().chain(ghosts(&self.ghost_from_idle, t)).collect();
            }
            State::Reserved { holder: Holder::Ghost(_), .. } => Some(t),
            State::Reserved { holder: Holder::Client(c), expires, since } => {
                let at_risk = self.risk_at(c, since, t).map(|at| (ghost(c), at));
                return [Some((State::Ready, expires.max(t))), at_risk].into_iter().flatten().collect();
            }
        };
        ready_at.map(|at| (State::Ready, at)).into_iter().collect()
    }

    /// The earliest time from `t` on at which a `kick` on the tube may kick the job.
    fn kick_at(&self, t: Duration) -> Option<Duration> {
        self.kicks.iter().filter(|&&(_, end)| t <= end).map(|&(start, _)| start.max(t)).min()
    }

    /// The earliest time from `t` on at which a hold of `client` taken by a call that started
    /// at `since` is at risk: from then on it may be gone, or held by a connection of the
    /// client's that is gone.
    fn risk_at(&self, client: ClientId, since: Duration, t: Duration) -> Option<Duration> {
        self.risks.iter().filter(|&&(c, _, until)| c == client && until.is_none_or(|until| since < until)).map(|&(_, from, _)| from.max(t)).min()
    }

    /// Whether the final observation, after every call, sees `s`.
    fn ends_as(&self, s: State) -> bool {
        matches!(
            (&self.end_state, s),
            (None, State::Absent | State::Deleted)
                | (Some(FinalState::Ready), State::Ready)
                | (Some(FinalState::Delayed), State::Delayed { .. })
                | (Some(FinalState::Reserved), State::Reserved { .. })
                | (Some(FinalState::Buried), State::Buried)
        )
    }

    fn violation(&self, h: &History, furthest: Mask) -> Violation {
        let records: Vec<usize> = self.ops.iter().map(|op| op.record).collect();
        let unplaced: Vec<usize> = (0..self.ops.len()).filter(|&i| self.required.has(i) && !furthest.has(i)).map(|i| self.ops[i].record).collect();
        let end = match h.final_jobs.get(&self.id) {
            Some(job) => describe_final(self.id, job),
            None => "final state: the job is gone".to_string(),
        };
        let stuck = if unplaced.is_empty() {
            "every call fits, but not with the final state".to_string()
        } else {
            format!("the furthest explanation could not place: {}", describe_records(h, &unplaced))
        };
        let detail = format!(
            "no order of the job's calls (each at a point within its start..end; unknown outcomes \
             at any point after their start, or never) explains their answers and the final state. \
             Calls: {}; {end}. Tube {}, TTR {}s; {stuck}",
            describe_records(h, &records),
            self.tube,
            self.ttr.as_secs()
        );
        Violation { checker: NAME, job: Some(self.id), detail }
    }
}

/// The call record `i` makes about job `id` (of `tube`), `None` if it cannot change or show
/// the job, or a violation if its answer is not one the call can have.
fn op_of(h: &History, i: usize, id: JobId, tube: &str) -> Result<Option<Op>, Violation> {
    let r = &h.records[i];
    let secs = |s: u32| Duration::from_secs(u64::from(s));
    let kind = match &r.call {
        Call::Put { delay_secs, .. } => Kind::Put { delay: secs(*delay_secs) },
        Call::Reserve { tube: watched, .. } => {
            if watched != tube {
                return Err(bad_answer(h, i, id, "a reserve watching another tube got the job"));
            }
            Kind::Reserve
        }
        Call::ReserveJob(_) => Kind::ReserveJob,
        Call::Delete(_) => Kind::Delete,
        Call::Release { delay_secs, .. } => Kind::Release { delay: secs(*delay_secs) },
        Call::Bury { .. } => Kind::Bury,
        Call::Touch(_) => Kind::Touch,
        Call::KickJob(_) => Kind::KickJob,
        Call::Peek(_) => Kind::Peek,
        Call::Kick { .. } | Call::PauseTube { .. } => return Ok(None),
    };
    let expect = match &r.answer {
        None | Some(Answer::Other(_)) => Expect::Unknown,
        Some(Answer::TimedOut | Answer::DeadlineSoon | Answer::Paused | Answer::Kicked(_)) if !matches!(kind, Kind::Put { .. }) => return Ok(None),
        Some(Answer::NotFound) if !matches!(kind, Kind::Put { .. } | Kind::Reserve) => Expect::NotFound,
        Some(answer) if succeeded(kind, answer, id) => Expect::Success,
        Some(_) => return Err(bad_answer(h, i, id, "an answer this call cannot have")),
    };
    // Neither a touch nor a peek with an unknown outcome can help explain anything.
    if expect == Expect::Unknown && matches!(kind, Kind::Touch | Kind::Peek) {
        return Ok(None);
    }
    let end = if expect == Expect::Unknown { Duration::MAX } else { r.end };
    Ok(Some(Op { record: i, client: r.client, kind, expect, start: r.start, end }))
}

/// Whether `answer` is the success answer of a call of `kind` about job `id`.
fn succeeded(kind: Kind, answer: &Answer, id: JobId) -> bool {
    match (kind, answer) {
        (Kind::Put { .. }, Answer::Inserted(_)) => true,
        (Kind::Reserve | Kind::ReserveJob, Answer::Reserved { id: got, .. }) => *got == id,
        (Kind::Peek, Answer::Found { id: got, .. }) => *got == id,
        (Kind::Delete, Answer::Deleted)
        | (Kind::Release { .. }, Answer::Released)
        | (Kind::Bury, Answer::Buried)
        | (Kind::Touch, Answer::Touched)
        | (Kind::KickJob, Answer::KickedJob) => true,
        _ => false,
    }
}

fn bad_answer(h: &History, i: usize, id: JobId, what: &str) -> Violation {
    let detail = format!("{what}: {}", describe_records(h, &[i]));
    Violation { checker: NAME, job: Some(id), detail }
}

/// The `kick`s on `tube` that may have kicked something, as `start..end` (unknown: open).
fn kicks_on(h: &History, tube: &str) -> Vec<(Duration, Duration)> {
    h.records
        .iter()
        .filter(|r| matches!(&r.call, Call::Kick { tube: kicked, .. } if kicked == tube))
        .filter(|r| r.answer != Some(Answer::Kicked(0)))
        .map(|r| (r.start, if is_unknown(&r.answer) { Duration::MAX } else { r.end }))
        .collect()
}

/// The moves to a ghost of each client in `from`, each at its earliest time from `t` on.
fn ghosts(from: &BTreeMap<ClientId, Duration>, t: Duration) -> impl Iterator<Item = (State, Duration)> + '_ {
    from.iter().map(move |(&c, &from)| (ghost(c), from.max(t)))
}

/// For each client, the earliest start of its reserves on `tube` with an unknown outcome.
fn ghost_from(h: &History, tube: &str) -> BTreeMap<ClientId, Duration> {
    let mut from: BTreeMap<ClientId, Duration> = BTreeMap::new();
    let unknown_reserves =
        h.records.iter().filter(|r| matches!(&r.call, Call::Reserve { tube: watched, .. } if watched == tube)).filter(|r| is_unknown(&r.answer));
    for r in unknown_reserves {
        let earliest = from.entry(r.client).or_insert(r.start);
        *earliest = (*earliest).min(r.start);
    }
    from
}

/// A set of a job's calls, by their place in `Job::ops`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Mask([u64; MASK_WORDS]);

impl Mask {
    fn has(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    fn with(mut self, i: usize) -> Mask {
        self.0[i / 64] |= 1 << (i % 64);
        self
    }

    /// How many calls of `other` this set holds.
    fn count_of(&self, other: &Mask) -> u32 {
        self.0.iter().zip(&other.0).map(|(a, b)| (a & b).count_ones()).sum()
    }

    fn and(&self, other: &Mask) -> Mask {
        Mask(std::array::from_fn(|w| self.0[w] & other.0[w]))
    }

    fn minus(&self, other: &Mask) -> Mask {
        Mask(std::array::from_fn(|w| self.0[w] & !other.0[w]))
    }

    /// Whether this set holds every call of `other`.
    fn covers(&self, other: &Mask) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a & b == *b)
    }
}

fn exists(s: State) -> bool {
    !matches!(s, State::Absent | State::Deleted)
}

/// Whether `client`'s current connection surely holds the job in state `s`.
fn surely_holds(s: State, client: ClientId) -> bool {
    matches!(s, State::Reserved { holder: Holder::Client(c), .. } if c == client)
}

/// Whether `client`'s current connection may hold the job in state `s`.
fn may_hold(s: State, client: ClientId) -> bool {
    matches!(s, State::Reserved { holder: Holder::Client(c) | Holder::Ghost(c), .. } if c == client)
}

/// Ready, or delayed until `delay` after `at`.
fn waiting(at: Duration, delay: Duration) -> State {
    if delay.is_zero() {
        State::Ready
    } else {
        State::Delayed { until: deadline(at, delay) }
    }
}

/// The earliest moment the cluster may consider `duration` after `at` to have passed.
fn deadline(at: Duration, duration: Duration) -> Duration {
    at.saturating_add(duration).saturating_sub(CLOCK_SLACK)
}

fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

enum Verdict {
    Explained,
    Unexplained,
    /// The step bound ran out somewhere below.
    Inconclusive,
}

/// The depth-first search for one job's linearization.
struct Search<'j> {
    job: &'j Job,
    /// For each (answered calls placed, state) reached: the (unknown-outcome calls used, time)
    /// pairs it was reached with, none dominating another. Fewer calls used and an earlier
    /// time dominate: unknown-outcome calls are optional, and every deadline in a state only
    /// allows moves from it on.
    memo: BTreeMap<(Mask, State), Vec<(Mask, Duration)>>,
    steps: u64,
    /// The placed calls of the explanation that got furthest, for the report.
    furthest: Mask,
}

impl Search<'_> {
    /// Whether the calls not in `placed` can be placed from state `s` at time `t` on, so that
    /// the final observation sees the final state.
    fn explore(&mut self, placed: Mask, s: State, t: Duration) -> Verdict {
        self.steps += 1;
        if self.steps > SEARCH_STEPS_MAX {
            return Verdict::Inconclusive;
        }
        let placed = self.absorb(placed, s, t);
        let required = self.job.required;
        if placed.count_of(&required) > self.furthest.count_of(&required) {
            self.furthest = placed;
        }
        if placed.covers(&required) && self.job.ends_as(s) {
            return Verdict::Explained;
        }
        if self.seen_before(placed, s, t) {
            return Verdict::Unexplained;
        }
        // Every call still to place must be placed before its end: nothing may happen later.
        let ops = &self.job.ops;
        let open_end = (0..ops.len()).filter(|&i| required.has(i) && !placed.has(i)).map(|i| ops[i].end).min().unwrap_or(Duration::MAX);
        let mut verdict = Verdict::Unexplained;
        for (i, op) in ops.iter().enumerate() {
            if op.start > open_end {
                break; // ops are in order of start
            }
            let at = op.start.max(t);
            let Some(next) = (!placed.has(i)).then(|| self.job.apply(op, s, at)).flatten() else {
                continue;
            };
            match self.explore(placed.with(i), next, at) {
                Verdict::Explained => return Verdict::Explained,
                Verdict::Inconclusive => verdict = Verdict::Inconclusive,
                Verdict::Unexplained => {}
            }
        }
        for (next, at) in self.job.spontaneous(s, t) {
            if at > open_end {
                continue;
            }
            match self.explore(placed, next, at) {
                Verdict::Explained => return Verdict::Explained,
                Verdict::Inconclusive => verdict = Verdict::Inconclusive,
                Verdict::Unexplained => {}
            }
        }
        verdict
    }

    /// Whether a node at least as promising as (`placed`, `s`, `t`) was explored already;
    /// records this one otherwise.
    fn seen_before(&mut self, placed: Mask, s: State, t: Duration) -> bool {
        let answered = placed.and(&self.job.required);
        let used = placed.minus(&self.job.required);
        let frontier = self.memo.entry((answered, s)).or_default();
        if frontier.iter().any(|(seen_used, seen_t)| used.covers(seen_used) && *seen_t <= t) {
            return true;
        }
        frontier.retain(|(seen_used, seen_t)| !(seen_used.covers(&used) && t <= *seen_t));
        frontier.push((used, t));
        false
    }

    /// `placed` plus every known-outcome call that may be placed right now without changing
    /// the state (a NOT_FOUND that fits, a FOUND peek of a job that exists). Placing such a
    /// call at once never loses an explanation: the state and time stay, and one fewer end
    /// constrains what follows.
    fn absorb(&self, placed: Mask, s: State, t: Duration) -> Mask {
        let mut placed = placed;
        for (i, op) in self.job.ops.iter().enumerate() {
            let open = self.job.required.has(i) && !placed.has(i);
            if open && op.start <= t && self.job.apply(op, s, t) == Some(s) {
                placed = placed.with(i);
            }
        }
        placed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::check::testkit::*;
    use crate::history::Answer::*;
    use crate::history::Call::*;
    use crate::history::FinalState;

    fn passes(h: &History) {
        let stats = check_with_stats(h).unwrap_or_else(|v| panic!("should pass: {v}"));
        assert_eq!(stats.jobs_inconclusive, 0);
    }

    fn fails(h: &History) -> Violation {
        let v = check(h).expect_err("the history should break the invariant");
        assert_eq!(v.checker, NAME);
        assert_eq!(v.job, Some(1));
        v
    }

    /// Job 1 ("a", TTR 1 s) put by client 9 over 0..10 ms.
    fn put_a() -> Hist {
        Hist::new().call(9, 0, 10, put("a", 1), Inserted(1))
    }

    #[test]
    fn plain_lifecycle_passes() {
        // Put, reserve, touch, delete in sequence, then gone, is the model's own story.
        let h = put_a()
            .call(1, 20, 30, reserve(), reserved(1, "a"))
            .call(1, 40, 50, Touch(1), Touched)
            .call(2, 45, 55, Peek(1), found(1, "a"))
            .call(1, 60, 70, Delete(1), Deleted)
            .call(2, 80, 90, Peek(1), NotFound)
            .done();
        passes(&h);
    }

    #[test]
    fn ttr_expiry_then_another_reserve_passes() {
        // After the TTR ran out the job is ready again: another client gets it, the first one's delete finds nothing.
        let h = put_a()
            .call(1, 20, 30, reserve(), reserved(1, "a"))
            .call(2, 1000, 1100, reserve(), reserved(1, "a"))
            .call(1, 1200, 1210, Delete(1), NotFound)
            .call(2, 1300, 1310, Delete(1), Deleted)
            .done();
        passes(&h);
    }

    #[test]
    fn release_with_delay_passes() {
        // A job released with a 2 s delay is reserved again once those 2 s have passed.
        let h = put_a()
            .call(1, 20, 30, reserve(), reserved(1, "a"))
            .call(1, 100, 110, release(1, 2), Released)
            .call(2, 200, 2150, reserve(), reserved(1, "a"))
            .fin(1, FinalState::Reserved, "a")
            .done();
        passes(&h);
    }

    #[test]
    fn unknown_put_whose_job_shows_up_passes() {
        // A put without an answer took effect: its job is reserved, buried and stays buried.
        let h = Hist::new()
            .lost(9, 0, 10, put("a", 1))
            .call(1, 5, 500, reserve(), reserved(1, "a"))
            .call(1, 600, 610, bury(1), Buried)
            .fin(1, FinalState::Buried, "a")
            .done();
        passes(&h);
    }

    #[test]
    fn ghost_reserve_explains_not_found_delete() {
        // A reserve that got no answer may have taken the job, so a delete may find nothing; the ghost then lets it go.
        let h = put_a().lost(2, 50, 60, reserve()).call(1, 100, 110, Delete(1), NotFound).fin(1, FinalState::Ready, "a").done();
        passes(&h);
    }

    #[test]
    fn kick_passes() {
        // A buried job kicked by a tube-wide kick can be reserved again.
        let h = put_a()
            .call(1, 20, 30, reserve(), reserved(1, "a"))
            .call(1, 40, 50, bury(1), Buried)
            .call(3, 60, 70, kick(), Kicked(1))
            .call(2, 80, 90, reserve(), reserved(1, "a"))
            .fin(1, FinalState::Reserved, "a")
            .done();
        passes(&h);
    }

    #[test]
    fn kick_job_of_delayed_job_passes() {
        // kick-job readies a delayed job long before its delay ends.
        let h = Hist::new()
            .call(9, 0, 10, put_delayed("a", 100, 1), Inserted(1))
            .call(3, 20, 30, KickJob(1), KickedJob)
            .call(2, 40, 50, reserve(), reserved(1, "a"))
            .call(2, 60, 70, KickJob(1), NotFound)
            .fin(1, FinalState::Reserved, "a")
            .done();
        passes(&h);
    }

    #[test]
    fn risk_window_passes() {
        // Once client 1's holds are at risk its job may go back: client 2 gets it and client 1's touch finds nothing.
        let h = Hist::new()
            .call(9, 0, 10, put("a", 60), Inserted(1))
            .call(1, 20, 30, reserve(), reserved(1, "a"))
            .risk(1, 500, None)
            .call(2, 600, 700, reserve(), reserved(1, "a"))
            .call(1, 800, 810, Touch(1), NotFound)
            .fin(1, FinalState::Reserved, "a")
            .done();
        passes(&h);
    }

    #[test]
    fn concurrent_deletes_pass() {
        // Of two overlapping deletes one wins; the loser may even have answered first.
        let h = put_a().call(1, 100, 300, Delete(1), Deleted).call(2, 150, 200, Delete(1), NotFound).done();
        passes(&h);
    }

    #[test]
    fn peek_during_put_passes() {
        // A peek that overlaps the put may already see the job.
        let h = Hist::new().call(9, 0, 100, put("a", 1), Inserted(1)).call(2, 50, 60, Peek(1), found(1, "a")).fin(1, FinalState::Ready, "a").done();
        passes(&h);
    }

    #[test]
    fn delayed_job_ends_delayed_or_ready() {
        // A delayed job may be seen delayed at the end (timers may lag) or ready (its delay passed).
        let delayed = Hist::new().call(9, 0, 10, put_delayed("a", 5, 1), Inserted(1));
        passes(&delayed.fin(1, FinalState::Delayed, "a").done());
        let delayed = Hist::new().call(9, 0, 10, put_delayed("a", 5, 1), Inserted(1));
        passes(&delayed.fin(1, FinalState::Ready, "a").done());
    }

    #[test]
    fn unknown_release_may_have_happened() {
        // A release without an answer may have readied the job, which another client then reserves.
        let h = Hist::new()
            .call(9, 0, 10, put("a", 60), Inserted(1))
            .call(1, 20, 30, reserve(), reserved(1, "a"))
            .lost(1, 40, 50, release(1, 0))
            .call(2, 60, 70, reserve(), reserved(1, "a"))
            .fin(1, FinalState::Reserved, "a")
            .done();
        passes(&h);
    }

    #[test]
    fn reserve_job_and_pause_answers_pass() {
        // reserve-job takes a buried job; answers that are not about the job are left alone.
        let h = put_a()
            .call(1, 20, 30, reserve(), reserved(1, "a"))
            .call(1, 40, 50, bury(1), Buried)
            .call(2, 60, 70, ReserveJob(1), reserved(1, "a"))
            .call(3, 80, 90, ReserveJob(1), NotFound)
            .call(3, 80, 90, PauseTube { tube: TUBE.into(), delay_secs: 1 }, Paused)
            .call(3, 100, 110, reserve(), TimedOut)
            .fin(1, FinalState::Reserved, "a")
            .done();
        passes(&h);
    }

    #[test]
    fn error_answered_reserve_job_may_belong_to_the_caller() {
        // A reserve-job answered with an error line may have granted this connection the job, so it may release it.
        let h = put_a()
            .call(1, 20, 30, ReserveJob(1), Other("INTERNAL_ERROR".into()))
            .call(1, 40, 50, release(1, 0), Released)
            .fin(1, FinalState::Ready, "a")
            .done();
        passes(&h);
    }

    #[test]
    fn job_at_risk_may_stay_with_the_old_connection() {
        // After a reconnect the client's delete may find its old hold still held by the dead connection.
        let h = Hist::new()
            .call(9, 0, 10, put("a", 60), Inserted(1))
            .call(1, 20, 30, reserve(), reserved(1, "a"))
            .risk(1, 100, Some(150))
            .call(1, 200, 210, Delete(1), NotFound)
            .fin(1, FinalState::Reserved, "a")
            .done();
        passes(&h);
    }

    #[test]
    fn job_at_risk_may_stay_with_the_holder() {
        // A hold at risk may also survive: the holder's release still succeeds.
        let h = Hist::new()
            .call(9, 0, 10, put("a", 60), Inserted(1))
            .call(1, 20, 30, reserve(), reserved(1, "a"))
            .risk(1, 100, None)
            .call(1, 200, 210, release(1, 0), Released)
            .fin(1, FinalState::Ready, "a")
            .done();
        passes(&h);
    }

    #[test]
    fn never_put_ids_answered_not_found_pass() {
        // Calls about an id no put made are fine as long as they find nothing.
        let h = Hist::new().call(1, 0, 10, Delete(42), NotFound).call(1, 20, 30, Touch(42), NotFound).done();
        passes(&h);
    }

    #[test]
    fn busy_job_stays_fast() {
        // Fifty sequential reserve/release rounds with overlapping peeks (151 calls) are explained quickly.
        let mut h = Hist::new().call(9, 0, 10, put("a", 60), Inserted(1));
        for round in 0..50u64 {
            let at = 100 + round * 100;
            h = h.call(1, at, at + 10, reserve(), reserved(1, "a")).call(2, at + 5, at + 90, Peek(1), found(1, "a")).call(
                1,
                at + 20,
                at + 30,
                release(1, 0),
                Released,
            );
        }
        let stats = check_with_stats(&h.fin(1, FinalState::Ready, "a").done()).unwrap();
        assert_eq!(stats.jobs_checked, 1);
        assert!(stats.steps < 10_000, "{stats:?}");
    }

    #[test]
    fn many_unknown_outcomes_stay_fast() {
        // Sixteen unanswered reserve-jobs and releases amid overlapping peeks are refuted well within the step bound.
        let mut h = Hist::new().call(9, 0, 10, put("a", 1), Inserted(1));
        for c in 0..16u32 {
            let at = 20 + u64::from(c) * 7;
            h = h.lost(c, at, at + 5, ReserveJob(1)).lost(c, at + 3, at + 9, release(1, 1)).call(100 + c, at, at + 50, Peek(1), found(1, "a"));
        }
        let h = h.fin(1, FinalState::Buried, "a").done();
        let index = Index::new(&h);
        let records: Vec<usize> = (0..h.records.len()).collect();
        let job = Job::build(&h, 1, 0, &records).unwrap().unwrap();
        let mut search = Search { job: &job, memo: BTreeMap::new(), steps: 0, furthest: Mask::default() };
        assert!(matches!(search.explore(Mask::default(), State::Absent, Duration::ZERO), Verdict::Unexplained));
        assert!(search.steps < 100_000, "{} steps", search.steps);
        assert_eq!(index.put_of_job(1), Some(0));
    }

    #[test]
    fn delete_after_acked_delete_fails() {
        // A job deleted by an acknowledged delete cannot be deleted again later.
        let h = put_a().call(1, 20, 30, Delete(1), Deleted).call(2, 40, 50, Delete(1), Deleted).done();
        fails(&h);
    }

    #[test]
    fn early_not_found_touch_by_holder_fails() {
        // The holder's touch cannot find nothing before the TTR could run out.
        let h = Hist::new()
            .call(9, 0, 10, put("a", 10), Inserted(1))
            .call(1, 20, 30, reserve(), reserved(1, "a"))
            .call(1, 100, 110, Touch(1), NotFound)
            .fin(1, FinalState::Reserved, "a")
            .done();
        let v = fails(&h);
        assert!(v.detail.contains("touch 1"), "{v}");
    }

    #[test]
    fn released_job_ending_buried_fails() {
        // A released job cannot be buried at the end with no bury.
        let h = put_a().call(1, 20, 30, reserve(), reserved(1, "a")).call(1, 40, 50, release(1, 0), Released).fin(1, FinalState::Buried, "a").done();
        let v = fails(&h);
        assert!(v.detail.contains("not with the final state"), "{v}");
    }

    #[test]
    fn reserve_before_delay_ends_fails() {
        // A job put with a 5 s delay cannot be reserved 30 ms later.
        let h = Hist::new()
            .call(9, 0, 10, put_delayed("a", 5, 1), Inserted(1))
            .call(1, 20, 30, reserve(), reserved(1, "a"))
            .fin(1, FinalState::Reserved, "a")
            .done();
        fails(&h);
    }

    #[test]
    fn deleted_job_still_there_fails() {
        // A job whose delete was acknowledged cannot be there at the end.
        let h = put_a().call(1, 20, 30, Delete(1), Deleted).fin(1, FinalState::Ready, "a").done();
        fails(&h);
    }

    #[test]
    fn peek_misses_an_acked_job_fails() {
        // A peek after the put's answer must find the job.
        let h = put_a().call(2, 20, 30, Peek(1), NotFound).fin(1, FinalState::Ready, "a").done();
        fails(&h);
    }

    #[test]
    fn release_by_non_holder_fails() {
        // Only the holder may release a job.
        let h = Hist::new()
            .call(9, 0, 10, put("a", 60), Inserted(1))
            .call(1, 20, 30, reserve(), reserved(1, "a"))
            .call(2, 40, 50, release(1, 0), Released)
            .fin(1, FinalState::Ready, "a")
            .done();
        fails(&h);
    }

    #[test]
    fn double_reserve_within_ttr_fails() {
        // Two clients cannot both be granted the job before its TTR could run out.
        let h = Hist::new()
            .call(9, 0, 10, put("a", 60), Inserted(1))
            .call(1, 20, 30, reserve(), reserved(1, "a"))
            .call(2, 40, 50, ReserveJob(1), reserved(1, "a"))
            .fin(1, FinalState::Reserved, "a")
            .done();
        fails(&h);
    }

    #[test]
    fn reserve_from_another_tube_fails() {
        // A reserve watching tube `u` cannot get a job put into tube `t`.
        let other = Call::Reserve { tube: "u".into(), timeout_secs: Some(1) };
        let h = put_a().call(1, 20, 30, other, reserved(1, "a")).fin(1, FinalState::Reserved, "a").done();
        assert!(fails(&h).detail.contains("another tube"));
    }

    #[test]
    fn impossible_answer_fails() {
        // A delete answered TOUCHED is a protocol bug.
        let h = put_a().call(1, 20, 30, Delete(1), Touched).fin(1, FinalState::Ready, "a").done();
        assert!(fails(&h).detail.contains("cannot have"));
    }

    #[test]
    fn never_put_job_deleted_fails() {
        // A delete cannot succeed on an id no put made, when every put's job is accounted for.
        let h = put_a().call(1, 20, 30, Delete(1), Deleted).call(1, 40, 50, Delete(42), Deleted).done();
        let v = check(&h).expect_err("job 42 was never put");
        assert_eq!(v.job, Some(42));
    }

    #[test]
    fn never_put_job_may_be_an_unknown_put() {
        // The same delete is fine when a put without an answer may have made job 42.
        let h = put_a().call(1, 20, 30, Delete(1), Deleted).lost(3, 0, 10, put("b", 1)).call(1, 40, 50, Delete(42), Deleted);
        let stats = check_with_stats(&h.done()).unwrap();
        assert_eq!(stats.jobs_skipped, 1);
    }

    #[test]
    fn ghost_after_the_delete_does_not_explain_it() {
        // A reserve without an answer that started after the NOT_FOUND delete ended cannot explain it.
        let h = put_a().call(1, 100, 110, Delete(1), NotFound).lost(2, 200, 210, reserve()).fin(1, FinalState::Ready, "a").done();
        fails(&h);
    }

    #[test]
    fn kick_of_nothing_does_not_kick() {
        // A kick answered KICKED 0 cannot have kicked the buried job that is then reserved.
        let h = put_a()
            .call(1, 20, 30, reserve(), reserved(1, "a"))
            .call(1, 40, 50, bury(1), Buried)
            .call(3, 60, 70, kick(), Kicked(0))
            .call(2, 80, 90, reserve(), reserved(1, "a"))
            .fin(1, FinalState::Reserved, "a")
            .done();
        fails(&h);
    }

    #[test]
    fn risk_that_ended_before_the_hold_does_not_release_it() {
        // A hold risk that closed before the reserve started does not cover that hold.
        let h = Hist::new()
            .call(9, 0, 10, put("a", 60), Inserted(1))
            .risk(1, 5, Some(15))
            .call(1, 20, 30, reserve(), reserved(1, "a"))
            .call(2, 600, 700, reserve(), reserved(1, "a"))
            .fin(1, FinalState::Reserved, "a")
            .done();
        fails(&h);
    }

    #[test]
    fn final_delayed_without_delay_fails() {
        // A job put without delay and never released cannot be delayed at the end.
        let h = put_a().fin(1, FinalState::Delayed, "a").done();
        fails(&h);
    }

    #[test]
    fn lost_acked_put_fails_here_too() {
        // An acknowledged put's job missing at the end with no delete is not explained either.
        let h = put_a().done();
        fails(&h);
    }
}
