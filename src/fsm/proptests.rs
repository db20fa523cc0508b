//! Property tests of the job state machine: against the naive reference model in
//! `reference.rs`, across a snapshot and restore, and for determinism of the digest.
//!
//! The universe is kept small (six clients, three tubes, twelve generated job ids, a few
//! priorities and durations of a few seconds) so that random sequences collide often: the same
//! job touched by several clients, waits racing with timers, tubes created, dropped and
//! created again. Each case also draws its own mix of op kinds (swarm testing), and some ops
//! are aimed at run time at jobs that exist or are held (see `Aim`).
//!
//! A failure of the model comparison prints the concrete (now_ms, op) sequence it applied
//! and, when short, a minimised one: paste either into a unit test to reproduce it.

use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::strategy::Union;
use prost::Message;

use super::reference::Model;
use super::types::{Applied, ClientKey, FsmError, JobId, JobState, JobView, Millis, Op};
use super::Fsm;
use crate::protocol::{stats_yaml, tube_stats_yaml, Stats};

const PROXIES: [&str; 2] = ["p1", "p2"];
const CLIENTS: [&str; 3] = ["c1", "c2", "c3"];
const TUBES: [&str; 3] = ["default", "a", "b"];
/// Names the tube-name rule refuses: empty, leading hyphen, a space.
const BAD_TUBES: [&str; 3] = ["", "-a", "a b"];
const MAX_JOB_ID: JobId = 12;
const PRIORITIES: [u32; 6] = [0, 1, 1023, 1024, 5000, u32::MAX];
/// Few request ids, so that a client reuses one while an older wait with it is pending.
const REQUEST_IDS: [&str; 2] = ["r1", "r2"];
const MAX_OPS: usize = 80;
/// Cases per run of the model comparison, which finds the most; it costs about 10 ms a case
/// in a debug build.
const MODEL_CASES: u32 = 1024;
/// Cases per run of the snapshot and digest properties, which cost about 2 ms a case.
const REPLAY_CASES: u32 = 256;

/// Every client of the universe, in `ClientKey` order.
fn all_clients() -> Vec<ClientKey> {
    PROXIES.iter().flat_map(|p| CLIENTS.iter().map(move |c| ClientKey::new(p, c))).collect()
}

/// `default_cases`, or PROPTEST_CASES when set: the defaults keep the three properties
/// together under about 15 s in a debug build on two cores.
fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    // No regression files in the source tree: a failure prints the concrete ops it applied,
    // which is what a regression test is written from.
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---- generators ----

/// How the time stamped on an op is derived from the machine's clock.
#[derive(Clone, Debug)]
enum Time {
    /// Clock plus this many milliseconds.
    Advance(Millis),
    /// Exactly the next pending timer (or the clock when there is none): the leader's Tick.
    NextDeadline,
    /// Clock minus this many milliseconds: the clock must not run backwards.
    Behind(Millis),
}

impl Time {
    fn resolve(&self, fsm: &Fsm) -> Millis {
        let clock = fsm.now_ms();
        match self {
            Time::Advance(ms) => clock + ms,
            Time::NextDeadline => fsm.next_deadline().unwrap_or(clock),
            Time::Behind(ms) => clock.saturating_sub(*ms),
        }
    }
}

/// Where an op's job id (and, for a holder's ops, its client; for kick and pause-tube, its
/// tube) comes from. Generated ids rarely name a job the generated client holds, so some
/// ops are re-aimed at run time at a job that exists, or at a (client, job) pair where the
/// client holds the job: that way release, bury, touch, kick-job and friends take their
/// successful paths often, a reserve aimed at a holder meets the DEADLINE_SOON rules, and a
/// holder that goes hands its jobs on.
#[derive(Clone, Debug)]
enum Aim {
    AsGenerated,
    /// Some existing job, chosen by index among them in id order.
    Existing(Index),
    /// Some held job and its holder, chosen by index among such pairs in client order.
    Held(Index),
}

/// One op, how to aim it, and the time it is applied at.
#[derive(Clone, Debug)]
struct Step {
    time: Time,
    aim: Aim,
    op: Op,
}

impl Step {
    /// The concrete op and time to apply next to `fsm` (read only, to aim and to stamp).
    fn resolve(&self, fsm: &Fsm) -> (Op, Millis) {
        (aimed(self.op.clone(), &self.aim, fsm), self.time.resolve(fsm))
    }
}

/// Existing jobs in id order; those `preferred` picks if there are any.
fn existing_jobs(fsm: &Fsm, preferred: fn(&JobState) -> bool) -> Vec<JobId> {
    let jobs: Vec<JobView> = (1..=MAX_OPS as JobId).filter_map(|id| fsm.job(id)).collect();
    let picked: Vec<JobId> = jobs.iter().filter(|j| preferred(&j.state)).map(|j| j.id).collect();
    if picked.is_empty() {
        jobs.iter().map(|j| j.id).collect()
    } else {
        picked
    }
}

/// The jobs an op aimed at an existing job is best aimed at: kicks at buried and delayed
/// ones; a pause at a ready one's tube, where waiters and ready jobs can pile up together.
fn aim_preference(op: &Op) -> fn(&JobState) -> bool {
    match op {
        Op::Kick { .. } | Op::KickJob { .. } => |s| matches!(s, JobState::Buried { .. } | JobState::Delayed { .. }),
        Op::PauseTube { .. } => |s| *s == JobState::Ready,
        _ => |_| true,
    }
}

/// The op re-aimed as `aim` says; unchanged when there is nothing to aim at.
fn aimed(mut op: Op, aim: &Aim, fsm: &Fsm) -> Op {
    let (holder, job) = match aim {
        Aim::AsGenerated => return op,
        Aim::Existing(ix) => {
            let ids = existing_jobs(fsm, aim_preference(&op));
            if ids.is_empty() {
                return op;
            }
            (None, *ix.get(&ids))
        }
        Aim::Held(ix) => {
            let held: Vec<(ClientKey, JobId)> =
                all_clients().into_iter().flat_map(|c| fsm.reserved_by(&c).into_iter().map(move |id| (c.clone(), id))).collect();
            if held.is_empty() {
                // Nothing is held: an existing job still beats an id that names none.
                return aimed(op, &Aim::Existing(*ix), fsm);
            }
            let (client, id) = ix.get(&held).clone();
            (Some(client), id)
        }
    };
    match &mut op {
        Op::ReserveJob { id, .. } | Op::KickJob { id } | Op::MoveJob { id, .. } => *id = job,
        Op::Kick { tube, .. } | Op::PauseTube { tube, .. } => {
            *tube = fsm.job(job).expect("an aimed-at job exists").tube;
        }
        Op::Release { client, id, .. } | Op::Bury { client, id, .. } | Op::Touch { client, id } => {
            *id = job;
            if let Some(holder) = holder {
                *client = holder;
            }
        }
        Op::Reserve { client, .. } | Op::ClientGone { client } => {
            if let Some(holder) = holder {
                *client = holder;
            }
        }
        Op::ProxyGone { proxy } => {
            if let Some(holder) = holder {
                *proxy = holder.proxy.to_string();
            }
        }
        Op::Delete { client, id } => {
            *id = job;
            if holder.is_some() {
                *client = holder;
            }
        }
        _ => {}
    }
    op
}

/// Every way to stamp an op with its base weight: mostly small steps, some large ones, the
/// leader's Tick at the next deadline, and now and then a stale time.
fn time_kinds() -> Vec<(u32, BoxedStrategy<Time>)> {
    vec![
        (6, (0..100u64).prop_map(Time::Advance).boxed()),
        (3, (0..2500u64).prop_map(Time::Advance).boxed()),
        (2, Just(Time::NextDeadline).boxed()),
        (1, (1..3000u64).prop_map(Time::Behind).boxed()),
    ]
}

fn client() -> impl Strategy<Value = ClientKey> {
    (select(&PROXIES[..]), select(&CLIENTS[..])).prop_map(|(p, c)| ClientKey::new(p, c))
}

/// Mostly valid names, sometimes one the tube-name rule refuses.
fn tube() -> impl Strategy<Value = String> {
    prop_oneof![30 => select(&TUBES[..]), 1 => select(&BAD_TUBES[..])].prop_map(String::from)
}

/// Ids in the universe, plus 0 (never a job) now and then.
fn job_id() -> impl Strategy<Value = JobId> {
    prop_oneof![20 => 1..=MAX_JOB_ID, 1 => Just(0)]
}

fn pri() -> impl Strategy<Value = u32> {
    select(&PRIORITIES[..])
}

fn delay_secs() -> impl Strategy<Value = u32> {
    prop_oneof![3 => Just(0u32), 2 => 1..3u32]
}

fn ttr_secs() -> impl Strategy<Value = u32> {
    0..4u32
}

/// 0 unpauses; pauses run a little longer than other durations so that waiters and ready
/// jobs pile up behind them.
fn pause_secs() -> impl Strategy<Value = u32> {
    prop_oneof![1 => Just(0u32), 2 => 1..6u32]
}

fn timeout_secs() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![2 => Just(None), 1 => Just(Some(0u32)), 2 => (1..3u32).prop_map(Some)]
}

fn body() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..3).prop_map(Bytes::from)
}

/// An explicit tube list for a reserve: usually empty (the watch list), sometimes with
/// repeats.
fn reserve_tubes() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![3 => Just(Vec::new()), 2 => prop::collection::vec(tube(), 1..4)]
}

fn put() -> impl Strategy<Value = Op> {
    let args = (prop::option::weighted(0.7, client()), tube(), pri(), delay_secs(), ttr_secs(), body());
    args.prop_map(|(client, tube, pri, delay_secs, ttr_secs, body)| Op::Put { client, tube, pri, delay_secs, ttr_secs, body })
}

fn reserve() -> impl Strategy<Value = Op> {
    let args = (client(), select(&REQUEST_IDS[..]), timeout_secs(), reserve_tubes());
    args.prop_map(|(client, request_id, timeout_secs, tubes)| Op::Reserve { client, request_id: request_id.to_string(), timeout_secs, tubes })
}

fn release() -> impl Strategy<Value = Op> {
    (client(), job_id(), pri(), delay_secs()).prop_map(|(client, id, pri, delay_secs)| Op::Release { client, id, pri, delay_secs })
}

/// Every op kind with its base weight (how often it comes in an even mix).
fn op_kinds() -> Vec<(u32, BoxedStrategy<Op>)> {
    let some_client = || prop::option::weighted(0.8, client());
    vec![
        (8, put().boxed()),
        (8, reserve().boxed()),
        (2, (client(), job_id()).prop_map(|(client, id)| Op::ReserveJob { client, id }).boxed()),
        (3, (some_client(), job_id()).prop_map(|(client, id)| Op::Delete { client, id }).boxed()),
        (3, release().boxed()),
        (3, (client(), job_id(), pri()).prop_map(|(client, id, pri)| Op::Bury { client, id, pri }).boxed()),
        (2, (client(), job_id()).prop_map(|(client, id)| Op::Touch { client, id }).boxed()),
        (2, (tube(), 0..4u32).prop_map(|(tube, bound)| Op::Kick { tube, bound }).boxed()),
        (1, job_id().prop_map(|id| Op::KickJob { id }).boxed()),
        (2, (job_id(), tube()).prop_map(|(id, tube)| Op::MoveJob { id, tube }).boxed()),
        (2, (tube(), pause_secs()).prop_map(|(tube, delay_secs)| Op::PauseTube { tube, delay_secs }).boxed()),
        (2, (client(), tube()).prop_map(|(client, tube)| Op::Use { client, tube }).boxed()),
        (3, (client(), tube()).prop_map(|(client, tube)| Op::Watch { client, tube }).boxed()),
        (2, (client(), tube()).prop_map(|(client, tube)| Op::Ignore { client, tube }).boxed()),
        (1, client().prop_map(|client| Op::ClientGone { client }).boxed()),
        (1, select(&PROXIES[..]).prop_map(|p| Op::ProxyGone { proxy: p.to_string() }).boxed()),
        (1, client().prop_map(|client| Op::ClientHello { client }).boxed()),
        (1, client().prop_map(|client| Op::DiscardPut { client }).boxed()),
        (
            1,
            (select(&PROXIES[..]), prop_oneof![Just(0u32), 1u32..4])
                .prop_map(|(p, lease_secs)| Op::ProxyLease { proxy: p.to_string(), lease_secs })
                .boxed(),
        ),
        (3, Just(Op::Tick).boxed()),
        (1, Just(Op::NewLeader).boxed()),
    ]
}

/// Swarm testing: each case scales the weight of every kind of op, of aim and of time step
/// by 0, 1 or 3 of its own, so some cases leave kinds out altogether. One fixed mix rarely
/// both piles jobs up and drains tubes; varied mixes reach states that a fixed mix almost
/// never does (a tube emptied and let go; time nearly frozen while a client collects jobs
/// and others queue up behind it).
fn mix(kinds: usize) -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(prop_oneof![1 => Just(0u32), 2 => Just(1u32), 1 => Just(3u32)], kinds)
}

/// Values drawn from the kinds `mix` keeps, at their scaled weights (at their base weights
/// if it keeps none).
fn mixed<T: std::fmt::Debug>(kinds: Vec<(u32, BoxedStrategy<T>)>, mix: &[u32]) -> Union<BoxedStrategy<T>> {
    let kept: Vec<(u32, BoxedStrategy<T>)> = kinds.iter().zip(mix).filter(|&(_, &m)| m > 0).map(|((w, kind), &m)| (w * m, kind.clone())).collect();
    Union::new_weighted(if kept.is_empty() { kinds } else { kept })
}

fn aim_kinds() -> Vec<(u32, BoxedStrategy<Aim>)> {
    vec![(1, Just(Aim::AsGenerated).boxed()), (1, any::<Index>().prop_map(Aim::Existing).boxed()), (3, any::<Index>().prop_map(Aim::Held).boxed())]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let mixes = (mix(time_kinds().len()), mix(aim_kinds().len()), mix(op_kinds().len()));
    mixes.prop_flat_map(|(time_mix, aim_mix, op_mix)| {
        let step = (mixed(time_kinds(), &time_mix), mixed(aim_kinds(), &aim_mix), mixed(op_kinds(), &op_mix)).prop_map(|(time, aim, op)| Step {
            time,
            aim,
            op,
        });
        prop::collection::vec(step, 0..=MAX_OPS)
    })
}

// ---- comparisons ----

/// Errors compared by variant: the model may word a bad argument differently.
fn normalised(mut applied: Applied) -> Applied {
    if let Err(FsmError::BadArgument(_)) = applied.reply {
        applied.reply = Err(FsmError::BadArgument(""));
    }
    applied
}

/// Each field the model reports must appear with the same value in the real `key: value`
/// YAML body.
fn compare_stats(what: &str, real_yaml: &str, model: &[(&'static str, i64)]) -> Result<(), TestCaseError> {
    let real: Vec<(&str, &str)> = real_yaml.split('\n').filter_map(|line| line.split_once(": ")).collect();
    for &(key, want) in model {
        let got = real.iter().find(|&&(k, _)| k == key).map(|&(_, v)| v.to_string());
        prop_assert_eq!(got, Some(want.to_string()), "{} field {}", what, key);
    }
    Ok(())
}

/// Everything a reader can see must agree: jobs, tubes, peeks, the next deadline, clients'
/// tubes, and the counters the stats show.
fn compare_reads(fsm: &Fsm, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(fsm.now_ms(), model.now_ms(), "clock");
    for id in 0..=model.next_job_id() {
        prop_assert_eq!(fsm.job(id), model.job(id), "job {}", id);
    }
    prop_assert_eq!(fsm.list_tubes(), model.list_tubes(), "list-tubes");
    for tube in TUBES {
        prop_assert_eq!(fsm.peek_ready(tube), model.peek_ready(tube), "peek-ready {}", tube);
        prop_assert_eq!(fsm.peek_delayed(tube), model.peek_delayed(tube), "peek-delayed {}", tube);
        prop_assert_eq!(fsm.peek_buried(tube), model.peek_buried(tube), "peek-buried {}", tube);
        // Written as YAML: the model keeps the stats by their keys.
        match (fsm.stats_tube(tube, fsm.now_ms()).map(|t| tube_stats_yaml(&t)), model.tube_stats(tube)) {
            (Some(real), Some(want)) => compare_stats(tube, &real, &want)?,
            (real, want) => prop_assert_eq!(real.is_some(), want.is_some(), "whether tube {} exists", tube),
        }
    }
    prop_assert_eq!(fsm.next_deadline(), model.next_deadline(), "next deadline");
    for client in all_clients() {
        prop_assert_eq!(fsm.used_tube(&client), model.used_tube(&client), "used tube of {}", client);
        prop_assert_eq!(fsm.watched_tubes(&client), model.watched_tubes(&client), "watched tubes of {}", client);
    }
    let stats = Stats { machine: fsm.stats(), ..Stats::default() };
    compare_stats("stats", &stats_yaml(&stats), &model.server_stats())?;
    let reserve_job = fsm.snapshot().counters.map(|c| c.cmd_reserve_job);
    prop_assert_eq!(reserve_job, Some(model.cmd_reserve_job()), "cmd-reserve-job");
    Ok(())
}

// ---- the properties ----

/// Concrete ops as (now_ms, op) lines, ready to paste into a regression test.
fn listing(ops: &[(Millis, Op)]) -> String {
    ops.iter().map(|(now, op)| format!("  {now:>7} {op:?}\n")).collect()
}

/// A failure's message, without the "Case failed" prefix its Display adds.
fn message(e: &TestCaseError) -> &str {
    match e {
        TestCaseError::Fail(reason) | TestCaseError::Reject(reason) => reason.message(),
    }
}

/// Adds the concrete ops applied so far to a failure: the shrunk input proptest prints holds
/// the unaimed ops with relative times, this list is what to replay.
fn with_history(e: TestCaseError, history: &[(Millis, Op)]) -> TestCaseError {
    let e = message(&e);
    TestCaseError::fail(format!("{e}\nops applied as (now_ms, op), the last one failing:\n{}", listing(history)))
}

/// Applies one op to both and compares the outcome, the invariants and every read.
fn step_both(fsm: &mut Fsm, model: &mut Model, op: Op, now: Millis) -> Result<(), TestCaseError> {
    let real = normalised(fsm.apply(op.clone(), now));
    let want = normalised(model.apply(op, now));
    prop_assert_eq!(real, want, "applied (left: real machine, right: model)");
    fsm.check_invariants().map_err(|broken| TestCaseError::fail(format!("invariant broken: {broken}")))?;
    compare_reads(fsm, model)
}

/// Replays concrete ops on a fresh machine and model; the first disagreement, if any (a
/// panic counts as one).
fn replay_against_model(ops: &[(Millis, Op)]) -> Result<(), TestCaseError> {
    let run = || {
        let (mut fsm, mut model) = (Fsm::new(), Model::new());
        ops.iter().try_for_each(|(now, op)| step_both(&mut fsm, &mut model, op.clone(), *now))
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| Err(TestCaseError::fail("panicked")))
}

/// Histories at most this long are minimised on failure. proptest shrinks a failure to a
/// short history first, but removing a step shifts the times of those after it (steps
/// advance time relative to the clock), so its result is often not minimal.
const MINIMISE_UP_TO: usize = 24;

/// Drops ops one at a time, keeping their times, while the rest still disagrees.
fn minimised(ops: &[(Millis, Op)]) -> Vec<(Millis, Op)> {
    let mut ops = ops.to_vec();
    let mut i = 0;
    while i < ops.len() {
        let mut shorter = ops.clone();
        shorter.remove(i);
        if replay_against_model(&shorter).is_err() {
            ops = shorter;
        } else {
            i += 1;
        }
    }
    ops
}

/// A disagreement with its history, and for a short history also a minimal reproduction.
fn model_failure(e: TestCaseError, history: &[(Millis, Op)]) -> TestCaseError {
    let e = with_history(e, history);
    if history.len() > MINIMISE_UP_TO {
        return e;
    }
    let minimal = minimised(history);
    let why = replay_against_model(&minimal).err().map_or_else(String::new, |e| message(&e).to_string());
    let e = message(&e);
    TestCaseError::fail(format!("{e}\nminimal reproduction (times kept): {why}\n{}", listing(&minimal)))
}

/// Runs `steps` on the real machine and the model side by side, comparing after each op.
fn check_against_model(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut fsm = Fsm::new();
    let mut model = Model::new();
    let mut history = Vec::new();
    for step in steps {
        let (op, now) = step.resolve(&fsm);
        history.push((now, op.clone()));
        step_both(&mut fsm, &mut model, op, now).map_err(|e| model_failure(e, &history))?;
    }
    Ok(())
}

/// A snapshot taken after `steps[..cut]`, sent through protobuf and restored, must be the
/// same machine: same digest then, and the same replies and digest after the rest.
fn check_snapshot_restore(steps: &[Step], cut: usize) -> Result<(), TestCaseError> {
    let (before, after) = steps.split_at(cut);
    let mut original = Fsm::new();
    let mut history = Vec::new();
    for step in before {
        let (op, now) = step.resolve(&original);
        history.push((now, op.clone()));
        original.apply(op, now);
    }
    // Restored as a node restores one: from the encoding, a job at a time.
    let bytes = bytes::Bytes::from(original.snapshot().encode_to_vec());
    let mut restored = Fsm::restore_encoded(&bytes)
        .map_err(|e| with_history(TestCaseError::fail(format!("restore after {cut} ops refused the snapshot: {e}")), &history))?;
    if restored.digest() != original.digest() {
        return Err(with_history(TestCaseError::fail(format!("digest differs right after restore at op #{cut}")), &history));
    }
    for step in after {
        let (op, now) = step.resolve(&original);
        history.push((now, op.clone()));
        let want = original.apply(op.clone(), now);
        let got = restored.apply(op, now);
        if got != want {
            let e = TestCaseError::fail(format!("restored machine answered {got:?}, uninterrupted {want:?}"));
            return Err(with_history(e, &history));
        }
    }
    if restored.digest() != original.digest() {
        return Err(with_history(TestCaseError::fail("final digests differ"), &history));
    }
    Ok(())
}

/// Two fresh machines given the same ops must agree on the digest after every op.
fn check_same_digest(steps: &[Step]) -> Result<(), TestCaseError> {
    let (mut a, mut b) = (Fsm::new(), Fsm::new());
    prop_assert_eq!(a.digest(), b.digest(), "fresh machines");
    let mut history = Vec::new();
    for step in steps {
        let (op, now) = step.resolve(&a);
        history.push((now, op.clone()));
        let (got_a, got_b) = (a.apply(op.clone(), now), b.apply(op, now));
        if got_a != got_b || a.digest() != b.digest() {
            return Err(with_history(TestCaseError::fail("the two machines diverged"), &history));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(MODEL_CASES))]

    // Shows the indexed machine implements the contract: every op's reply and events, the
    // invariants and every read are compared against the naive reference model.
    #[test]
    fn matches_reference_model(steps in steps()) {
        check_against_model(&steps)?;
    }
}

proptest! {
    #![proptest_config(config(REPLAY_CASES))]

    // Shows a snapshot loses nothing: a machine restored mid-run (through protobuf bytes)
    // answers the remaining ops exactly as the uninterrupted one and ends in the same state.
    #[test]
    fn snapshot_restore_then_continue_equals_uninterrupted(steps in steps(), cut in any::<Index>()) {
        let cut = cut.index(steps.len() + 1);
        check_snapshot_restore(&steps, cut)?;
    }

    // Shows the machine is deterministic: two replicas fed the same ops hold equal digests
    // after every op.
    #[test]
    fn same_ops_same_digest(steps in steps()) {
        check_same_digest(&steps)?;
    }
}
