//! One unit test per state-machine point of `/work/shared/spec/beanstalkd-semantics.md` (and
//! the rules in `mod.rs`), driven through `Fsm::apply` and the read methods only. Every apply
//! is followed by a full invariant check.

use bytes::Bytes;
use prost::Message;

use super::*;
use crate::storage::format::{JobStateProto, SnapshotProto};

const BODY: &[u8] = b"hello";

fn key(client: &str) -> ClientKey {
    ClientKey::new("proxy", client)
}

/// Applies `op` at `now` and checks every invariant afterwards.
fn run(fsm: &mut Fsm, now: Millis, op: Op) -> Applied {
    let applied = fsm.apply(op, now);
    if let Err(broken) = fsm.check_invariants() {
        panic!("invariant broken after apply at {now} ms: {broken}");
    }
    applied
}

/// Applies `op`, asserts it answered no reservation, and returns its reply.
fn quiet(fsm: &mut Fsm, now: Millis, op: Op) -> Result<Reply, FsmError> {
    let applied = run(fsm, now, op);
    assert_eq!(applied.events, vec![], "unexpected reservation events");
    applied.reply
}

fn put_op(tube: &str, pri: u32, delay_secs: u32, ttr_secs: u32) -> Op {
    Op::Put { client: None, tube: tube.into(), pri, delay_secs, ttr_secs, body: Bytes::from_static(BODY) }
}

/// Puts a job that no waiter takes and returns its id.
fn put(fsm: &mut Fsm, now: Millis, tube: &str, pri: u32, delay_secs: u32, ttr_secs: u32) -> JobId {
    match quiet(fsm, now, put_op(tube, pri, delay_secs, ttr_secs)) {
        Ok(Reply::Put { id }) => id,
        other => panic!("put answered {other:?}"),
    }
}

fn reserve(client: &ClientKey, request_id: &str) -> Op {
    Op::Reserve { client: client.clone(), request_id: request_id.into(), timeout_secs: None, tubes: vec![] }
}

fn reserve_within(client: &ClientKey, request_id: &str, secs: u32) -> Op {
    Op::Reserve { client: client.clone(), request_id: request_id.into(), timeout_secs: Some(secs), tubes: vec![] }
}

fn reserve_job(client: &ClientKey, id: JobId) -> Op {
    Op::ReserveJob { client: client.clone(), id }
}

fn watch(client: &ClientKey, tube: &str) -> Op {
    Op::Watch { client: client.clone(), tube: tube.into() }
}

fn ignore(client: &ClientKey, tube: &str) -> Op {
    Op::Ignore { client: client.clone(), tube: tube.into() }
}

fn use_tube(client: &ClientKey, tube: &str) -> Op {
    Op::Use { client: client.clone(), tube: tube.into() }
}

fn bury(client: &ClientKey, id: JobId, pri: u32) -> Op {
    Op::Bury { client: client.clone(), id, pri }
}

fn release(client: &ClientKey, id: JobId, pri: u32, delay_secs: u32) -> Op {
    Op::Release { client: client.clone(), id, pri, delay_secs }
}

fn kick(tube: &str, bound: u32) -> Op {
    Op::Kick { tube: tube.into(), bound }
}

fn pause(tube: &str, delay_secs: u32) -> Op {
    Op::PauseTube { tube: tube.into(), delay_secs }
}

fn got(id: JobId) -> ReserveOutcome {
    ReserveOutcome::Reserved { id, body: Bytes::from_static(BODY) }
}

fn event(client: &ClientKey, request_id: &str, outcome: ReserveOutcome) -> ReservationEvent {
    ReservationEvent { client: client.clone(), request_id: request_id.into(), outcome }
}

/// What a reserve answered within its own apply looks like.
fn answered(client: &ClientKey, request_id: &str, outcome: ReserveOutcome) -> Applied {
    Applied { reply: Ok(Reply::Reserve(Some(outcome.clone()))), events: vec![event(client, request_id, outcome)] }
}

/// What a reserve that waits looks like.
fn waits() -> Applied {
    Applied { reply: Ok(Reply::Reserve(None)), events: vec![] }
}

/// An operation answered `reply` and woke `events`.
fn woke(reply: Reply, events: Vec<ReservationEvent>) -> Applied {
    Applied { reply: Ok(reply), events }
}

fn state(fsm: &Fsm, id: JobId) -> JobState {
    fsm.job(id).unwrap_or_else(|| panic!("job {id} is missing")).state
}

fn held(by: &ClientKey, deadline: Millis) -> JobState {
    JobState::Reserved { by: by.clone(), deadline }
}

/// A job's stats at `now`.
fn job_stats(fsm: &Fsm, id: JobId, now: Millis) -> JobStats {
    fsm.stats_job(id, now).unwrap_or_else(|| panic!("job {id} is missing"))
}

/// A tube's stats at `now`.
fn tube_stats(fsm: &Fsm, name: &str, now: Millis) -> TubeStats {
    fsm.stats_tube(name, now).unwrap_or_else(|| panic!("tube {name} is missing"))
}

// ---- ids, ttr, priority ----

/// Ids are one global sequence from 1: puts into different tubes, and after a delete, take
/// the next number and never reuse one.
#[test]
fn ids_are_one_global_sequence_from_one() {
    let mut f = Fsm::new();
    assert_eq!(put(&mut f, 0, "default", 0, 0, 10), 1);
    assert_eq!(put(&mut f, 0, "other", 0, 0, 10), 2);
    assert_eq!(quiet(&mut f, 0, Op::Delete { client: None, id: 2 }), Ok(Reply::Done));
    assert_eq!(put(&mut f, 0, "third", 0, 5, 10), 3);
    assert_eq!(put(&mut f, 0, "default", 0, 0, 10), 4);
}

/// A put refused after its body was read uses up an id, counts as a put and makes its client
/// a producer, as in beanstalkd, and keeps no job.
#[test]
fn discarded_put_uses_up_an_id() {
    let mut f = Fsm::new();
    let c = key("c");
    assert_eq!(quiet(&mut f, 0, Op::DiscardPut { client: c.clone() }), Ok(Reply::Done));
    assert_eq!(f.job_count(), 0);
    assert_eq!(put(&mut f, 0, "default", 0, 0, 10), 2);
    let stats = f.stats();
    assert_eq!((stats.counters.cmd_put, stats.counters.total_jobs, stats.producers), (2, 1, 1));
}

/// A job keeps a copy of its body, not a slice of the buffer it came in (a socket read, a log
/// entry of many writes), which it would otherwise keep alive for as long as it lives.
#[test]
fn job_body_is_its_own_copy() {
    let mut f = Fsm::new();
    let buffer = Bytes::from(vec![b'x'; 64 * 1024]);
    let body = buffer.slice(100..110);
    let op = Op::Put { client: None, tube: "default".into(), pri: 0, delay_secs: 0, ttr_secs: 10, body: body.clone() };
    let Ok(Reply::Put { id }) = quiet(&mut f, 0, op) else { panic!("put failed") };
    let kept = f.job(id).unwrap().body;
    assert_eq!(kept, body);
    assert!(!buffer.as_ptr_range().contains(&kept.as_ptr()), "the job's body points into the buffer it came in");
}

/// A new leader renews every lease for its own length before anything due fires, so a
/// cluster that went without a leader for longer than a lease keeps its proxies' sessions;
/// without one, the first time stamp past the lease ends them.
#[test]
fn new_leader_renews_leases() {
    let c = key("c");
    let start = |f: &mut Fsm| {
        quiet(f, 0, Op::ProxyLease { proxy: c.proxy.to_string(), lease_secs: 10 }).unwrap();
        quiet(f, 0, Op::ClientHello { client: c.clone() }).unwrap();
        assert_eq!(run(f, 0, reserve_within(&c, "r1", 3600)), waits());
    };
    let mut f = Fsm::new();
    start(&mut f);
    assert_eq!(run(&mut f, 25_000, Op::NewLeader), woke(Reply::Done, Vec::new()));
    quiet(&mut f, 34_999, Op::Tick).unwrap();
    assert!(f.check_client_state(&c.proxy, &[c.client.to_string()]).missing.is_empty(), "the session lives on");
    assert_eq!(quiet(&mut f, 35_000, Op::ProxyLease { proxy: c.proxy.to_string(), lease_secs: 10 }), Ok(Reply::Lease { was_live: false }));
    assert_eq!(f.check_client_state(&c.proxy, &[c.client.to_string()]).missing, vec![c.client.to_string()]);

    let mut without = Fsm::new();
    start(&mut without);
    assert_eq!(quiet(&mut without, 25_000, Op::ProxyLease { proxy: c.proxy.to_string(), lease_secs: 10 }), Ok(Reply::Lease { was_live: false }));

    let mut long = Fsm::new();
    quiet(&mut long, 0, Op::ProxyLease { proxy: "p".into(), lease_secs: 60 }).unwrap();
    quiet(&mut long, 1_000, Op::NewLeader).unwrap();
    assert_eq!(long.next_deadline(), Some(61_000), "renewed for its own length from the new leader's time");
}

/// A put with ttr 0 gets ttr 1: the job reports 1 and a reservation runs out after 1000 ms.
#[test]
fn ttr_zero_becomes_one() {
    let mut f = Fsm::new();
    let a = key("a");
    let id = put(&mut f, 0, "default", 0, 0, 0);
    assert_eq!(f.job(id).unwrap().ttr_secs, 1);
    assert_eq!(run(&mut f, 0, reserve(&a, "r1")), answered(&a, "r1", got(id)));
    assert_eq!(state(&f, id), held(&a, 1000));
    assert_eq!(job_stats(&f, id, 0).ttr_secs, 1);
    quiet(&mut f, 1000, Op::Tick).unwrap();
    assert_eq!(state(&f, id), JobState::Ready);
}

/// Priority 4294967295 is valid: it is kept, and it sorts after 4294967294.
#[test]
fn max_priority_is_valid() {
    let mut f = Fsm::new();
    let a = key("a");
    let lowest = put(&mut f, 0, "default", u32::MAX, 0, 10);
    let next = put(&mut f, 0, "default", u32::MAX - 1, 0, 10);
    assert_eq!(f.job(lowest).unwrap().pri, u32::MAX);
    assert_eq!(run(&mut f, 0, reserve(&a, "r1")), answered(&a, "r1", got(next)));
    assert_eq!(run(&mut f, 0, reserve(&a, "r2")), answered(&a, "r2", got(lowest)));
    assert_eq!(quiet(&mut f, 0, release(&a, lowest, u32::MAX, 0)), Ok(Reply::Done));
    assert_eq!(f.job(lowest).unwrap().pri, u32::MAX);
}

// ---- reserve ----

/// Reserve takes the smallest (priority, id) across all watched tubes, ties to the smaller
/// id, and never a job of an unwatched tube: four reserves come out in that order, a fifth
/// times out although an unwatched tube holds a priority-0 job.
#[test]
fn reserve_takes_smallest_priority_then_id_across_watched_tubes() {
    let mut f = Fsm::new();
    let a = key("a");
    assert_eq!(quiet(&mut f, 0, watch(&a, "x")), Ok(Reply::Watching { count: 2 }));
    assert_eq!(quiet(&mut f, 0, watch(&a, "y")), Ok(Reply::Watching { count: 3 }));
    let x5 = put(&mut f, 0, "x", 5, 0, 60);
    let y3 = put(&mut f, 0, "y", 3, 0, 60);
    let x3 = put(&mut f, 0, "x", 3, 0, 60);
    let _unwatched = put(&mut f, 0, "z", 0, 0, 60);
    let d3 = put(&mut f, 0, "default", 3, 0, 60);
    assert_eq!(run(&mut f, 0, reserve(&a, "r1")), answered(&a, "r1", got(y3)));
    assert_eq!(run(&mut f, 0, reserve(&a, "r2")), answered(&a, "r2", got(x3)));
    assert_eq!(run(&mut f, 0, reserve(&a, "r3")), answered(&a, "r3", got(d3)));
    assert_eq!(run(&mut f, 0, reserve(&a, "r4")), answered(&a, "r4", got(x5)));
    assert_eq!(run(&mut f, 0, reserve_within(&a, "r5", 0)), answered(&a, "r5", ReserveOutcome::TimedOut));
}

/// A paused tube is skipped until its pause ends: a reserve takes a worse job from an
/// unpaused tube, then waits, and is answered with the paused tube's job exactly when the
/// pause ends (not 1 ms before).
#[test]
fn paused_tube_is_skipped_until_the_pause_ends() {
    let mut f = Fsm::new();
    let a = key("a");
    quiet(&mut f, 0, watch(&a, "x")).unwrap();
    let best = put(&mut f, 0, "x", 0, 0, 60);
    let worse = put(&mut f, 0, "default", 100, 0, 60);
    assert_eq!(quiet(&mut f, 0, pause("x", 10)), Ok(Reply::Done));
    assert_eq!(run(&mut f, 0, reserve(&a, "r1")), answered(&a, "r1", got(worse)));
    assert_eq!(run(&mut f, 100, reserve(&a, "r2")), waits());
    assert_eq!(f.peek_ready("x").unwrap().id, best);
    assert_eq!(f.next_deadline(), Some(10_000));
    assert_eq!(run(&mut f, 9_999, Op::Tick), woke(Reply::Done, vec![]));
    assert_eq!(f.waiting_request(&a), Some("r2"));
    assert_eq!(run(&mut f, 10_000, Op::Tick), woke(Reply::Done, vec![event(&a, "r2", got(best))]));
    assert_eq!(state(&f, best), held(&a, 70_000));
}

/// A put wakes a waiting reserve within the same apply: the put's reply and the waiter's
/// event come together, and the job is reserved from that moment.
#[test]
fn put_wakes_a_waiting_reserve_at_once() {
    let mut f = Fsm::new();
    let a = key("a");
    assert_eq!(run(&mut f, 0, reserve(&a, "r1")), waits());
    assert_eq!(f.waiting_request(&a), Some("r1"));
    assert_eq!(run(&mut f, 500, put_op("default", 7, 0, 10)), woke(Reply::Put { id: 1 }, vec![event(&a, "r1", got(1))]));
    assert_eq!(state(&f, 1), held(&a, 10_500));
    assert_eq!(f.waiting_request(&a), None);
}

/// Waiters on one tube are served first come, first served (not in client-name order): three
/// clients wait, two puts go to the first two in the order they began waiting.
#[test]
fn waiters_on_a_tube_are_served_fifo() {
    let (c1, c2, c3) = (key("c1"), key("c2"), key("c3"));
    let mut f = Fsm::new();
    assert_eq!(run(&mut f, 0, reserve(&c3, "r3")), waits());
    assert_eq!(run(&mut f, 1, reserve(&c1, "r1")), waits());
    assert_eq!(run(&mut f, 2, reserve(&c2, "r2")), waits());
    assert_eq!(run(&mut f, 3, put_op("default", 0, 0, 60)), woke(Reply::Put { id: 1 }, vec![event(&c3, "r3", got(1))]));
    assert_eq!(run(&mut f, 4, put_op("default", 0, 0, 60)), woke(Reply::Put { id: 2 }, vec![event(&c1, "r1", got(2))]));
    assert_eq!(f.waiting_request(&c2), Some("r2"));
}

/// A waiter watching two tubes is woken by a put into either, in FIFO order with a waiter on
/// just one of them.
#[test]
fn a_waiter_watching_two_tubes_is_woken_by_either() {
    let mut f = Fsm::new();
    let (w, u) = (key("w"), key("u"));
    quiet(&mut f, 0, watch(&w, "x")).unwrap();
    quiet(&mut f, 0, watch(&w, "y")).unwrap();
    quiet(&mut f, 0, watch(&u, "y")).unwrap();
    quiet(&mut f, 0, ignore(&u, "default")).unwrap();
    assert_eq!(run(&mut f, 0, reserve(&w, "w1")), waits());
    assert_eq!(run(&mut f, 0, reserve(&u, "u1")), waits());
    assert_eq!(run(&mut f, 1, put_op("y", 0, 0, 60)), woke(Reply::Put { id: 1 }, vec![event(&w, "w1", got(1))]));
    assert_eq!(run(&mut f, 2, put_op("y", 0, 0, 60)), woke(Reply::Put { id: 2 }, vec![event(&u, "u1", got(2))]));
    assert_eq!(run(&mut f, 3, reserve(&w, "w2")), waits());
    assert_eq!(run(&mut f, 4, put_op("x", 0, 0, 60)), woke(Reply::Put { id: 3 }, vec![event(&w, "w2", got(3))]));
}

/// A release to ready wakes a waiter in the same apply, with the new priority.
#[test]
fn release_wakes_a_waiter() {
    let mut f = Fsm::new();
    let (a, b) = (key("a"), key("b"));
    let id = put(&mut f, 0, "default", 1, 0, 60);
    assert_eq!(run(&mut f, 0, reserve(&a, "ra")), answered(&a, "ra", got(id)));
    assert_eq!(run(&mut f, 0, reserve(&b, "rb")), waits());
    assert_eq!(run(&mut f, 1000, release(&a, id, 7, 0)), woke(Reply::Done, vec![event(&b, "rb", got(id))]));
    assert_eq!(state(&f, id), held(&b, 61_000));
    assert_eq!(f.job(id).unwrap().pri, 7);
}

/// A kick (of a buried job) and a kick-job (of a delayed one) wake a waiter in the same apply.
#[test]
fn kick_wakes_a_waiter() {
    let mut f = Fsm::new();
    let (a, b) = (key("a"), key("b"));
    let buried = put(&mut f, 0, "default", 0, 0, 60);
    quiet(&mut f, 0, reserve_job(&a, buried)).unwrap();
    quiet(&mut f, 0, bury(&a, buried, 0)).unwrap();
    let delayed = put(&mut f, 0, "default", 0, 100, 60);
    assert_eq!(run(&mut f, 0, reserve(&b, "b1")), waits());
    assert_eq!(run(&mut f, 10, kick("default", 5)), woke(Reply::Kicked { count: 1 }, vec![event(&b, "b1", got(buried))]));
    assert_eq!(run(&mut f, 20, reserve(&b, "b2")), waits());
    assert_eq!(run(&mut f, 30, Op::KickJob { id: delayed }), woke(Reply::Done, vec![event(&b, "b2", got(delayed))]));
}

/// The end of a delay wakes a waiter exactly at the delay's end.
#[test]
fn delay_end_wakes_a_waiter() {
    let mut f = Fsm::new();
    let b = key("b");
    let id = put(&mut f, 0, "default", 0, 3, 60);
    assert_eq!(run(&mut f, 0, reserve(&b, "b1")), waits());
    assert_eq!(f.next_deadline(), Some(3000));
    assert_eq!(run(&mut f, 2999, Op::Tick), woke(Reply::Done, vec![]));
    assert_eq!(run(&mut f, 3000, Op::Tick), woke(Reply::Done, vec![event(&b, "b1", got(id))]));
    assert_eq!(state(&f, id), held(&b, 63_000));
}

/// A TTR expiry wakes a waiter (another client) with the job that ran out.
#[test]
fn ttr_expiry_wakes_a_waiter() {
    let mut f = Fsm::new();
    let (a, b) = (key("a"), key("b"));
    let id = put(&mut f, 0, "default", 0, 0, 2);
    assert_eq!(run(&mut f, 0, reserve(&a, "a1")), answered(&a, "a1", got(id)));
    assert_eq!(run(&mut f, 0, reserve(&b, "b1")), waits());
    assert_eq!(run(&mut f, 1999, Op::Tick), woke(Reply::Done, vec![]));
    assert_eq!(run(&mut f, 2000, Op::Tick), woke(Reply::Done, vec![event(&b, "b1", got(id))]));
    let job = f.job(id).unwrap();
    assert_eq!((job.state, job.timeouts, job.reserves), (held(&b, 4000), 1, 2));
    assert_eq!(f.reserved_by(&a), Vec::<JobId>::new());
}

/// `reserve-with-timeout 0` answers within its own apply: TIMED_OUT when nothing is ready
/// (leaving no wait and no timer), the job when one is.
#[test]
fn reserve_with_timeout_zero_answers_at_once() {
    let mut f = Fsm::new();
    let a = key("a");
    assert_eq!(run(&mut f, 0, reserve_within(&a, "r1", 0)), answered(&a, "r1", ReserveOutcome::TimedOut));
    assert_eq!(f.waiting_request(&a), None);
    assert_eq!(f.next_deadline(), None);
    let id = put(&mut f, 0, "default", 0, 0, 60);
    assert_eq!(run(&mut f, 0, reserve_within(&a, "r2", 0)), answered(&a, "r2", got(id)));
}

/// A reserve timeout fires at exactly timeout × 1000 ms after the reserve: still waiting 1 ms
/// before, TIMED_OUT at that millisecond.
#[test]
fn reserve_timeout_fires_exactly_on_time() {
    let mut f = Fsm::new();
    let a = key("a");
    assert_eq!(run(&mut f, 1000, reserve_within(&a, "r1", 5)), waits());
    assert_eq!(f.next_deadline(), Some(6000));
    assert_eq!(run(&mut f, 5999, Op::Tick), woke(Reply::Done, vec![]));
    assert_eq!(f.waiting_request(&a), Some("r1"));
    assert_eq!(run(&mut f, 6000, Op::Tick), woke(Reply::Done, vec![event(&a, "r1", ReserveOutcome::TimedOut)]));
    assert_eq!(f.waiting_request(&a), None);
    assert_eq!(f.next_deadline(), None);
}

// ---- DEADLINE_SOON ----

/// A reserve answers DEADLINE_SOON at once from deadline − 1000 ms when no watched tube has a
/// ready job (a ready job in an unwatched tube does not count), but reserves a ready job of a
/// watched tube; the held job stays reserved.
#[test]
fn deadline_soon_at_reserve_time() {
    let mut f = Fsm::new();
    let a = key("a");
    let id = put(&mut f, 0, "default", 0, 0, 5);
    assert_eq!(run(&mut f, 0, reserve(&a, "r1")), answered(&a, "r1", got(id)));
    assert_eq!(run(&mut f, 3999, reserve_within(&a, "r2", 0)), answered(&a, "r2", ReserveOutcome::TimedOut));
    assert_eq!(run(&mut f, 4000, reserve(&a, "r3")), answered(&a, "r3", ReserveOutcome::DeadlineSoon));
    assert_eq!(state(&f, id), held(&a, 5000));
    assert_eq!(f.waiting_request(&a), None);
    put(&mut f, 4100, "unwatched", 0, 0, 60);
    assert_eq!(run(&mut f, 4100, reserve(&a, "r4")), answered(&a, "r4", ReserveOutcome::DeadlineSoon));
    let ready = put(&mut f, 4200, "default", 9, 0, 60);
    assert_eq!(run(&mut f, 4200, reserve(&a, "r5")), answered(&a, "r5", got(ready)));
    assert_eq!(f.reserved_by(&a), vec![id, ready]);
}

/// A client already waiting is answered DEADLINE_SOON exactly when its job's margin starts
/// (deadline − 1000 ms, not 1 ms before); the job stays reserved until its TTR runs out.
#[test]
fn deadline_soon_answers_a_waiting_holder_when_the_margin_starts() {
    let mut f = Fsm::new();
    let a = key("a");
    let id = put(&mut f, 0, "default", 0, 0, 5);
    assert_eq!(run(&mut f, 0, reserve(&a, "r1")), answered(&a, "r1", got(id)));
    assert_eq!(run(&mut f, 100, reserve(&a, "r2")), waits());
    assert_eq!(f.next_deadline(), Some(4000));
    assert_eq!(run(&mut f, 3999, Op::Tick), woke(Reply::Done, vec![]));
    assert_eq!(run(&mut f, 4000, Op::Tick), woke(Reply::Done, vec![event(&a, "r2", ReserveOutcome::DeadlineSoon)]));
    assert_eq!(state(&f, id), held(&a, 5000));
    assert_eq!(f.reserved_by(&a), vec![id]);
    assert_eq!(f.waiting_request(&a), None);
    assert_eq!(f.next_deadline(), Some(5000));
    assert_eq!(run(&mut f, 5000, Op::Tick), woke(Reply::Done, vec![]));
    assert_eq!(state(&f, id), JobState::Ready);
}

/// A client inside its margin whose only watched ready job sits in a paused tube is answered
/// DEADLINE_SOON, as beanstalkd does on its next tick (checked on a live beanstalkd 1.12),
/// rather than waiting until its own job's TTR runs out.
#[test]
fn deadline_soon_for_a_holder_that_starts_waiting_inside_the_margin() {
    let mut f = Fsm::new();
    let a = key("a");
    quiet(&mut f, 0, watch(&a, "p")).unwrap();
    let id = put(&mut f, 0, "default", 0, 0, 5);
    put(&mut f, 0, "p", 0, 0, 60);
    quiet(&mut f, 0, pause("p", 60)).unwrap();
    assert_eq!(run(&mut f, 0, reserve(&a, "r1")), answered(&a, "r1", got(id)));
    // Inside the margin (deadline 5000), with a ready job only in the paused tube, beanstalkd
    // answers DEADLINE_SOON right away (on its next tick), long before the TTR ends at 5000:
    // either within the reserve's own apply or by the next one, and the job stays reserved.
    let mut events = run(&mut f, 4500, reserve(&a, "r2")).events;
    events.extend(run(&mut f, 4501, Op::Tick).events);
    assert_eq!(events, vec![event(&a, "r2", ReserveOutcome::DeadlineSoon)]);
    assert_eq!(state(&f, id), held(&a, 5000));
}

// ---- TTR ----

/// A TTR expiry puts the job back to ready at exactly its deadline and counts a timeout in
/// stats-job (exact body) and in the server's job-timeouts.
#[test]
fn ttr_expiry_returns_the_job_to_ready_and_counts_a_timeout() {
    let mut f = Fsm::new();
    let a = key("a");
    let id = put(&mut f, 0, "default", 0, 0, 2);
    assert_eq!(run(&mut f, 0, reserve(&a, "r1")), answered(&a, "r1", got(id)));
    assert_eq!(run(&mut f, 1999, Op::Tick), woke(Reply::Done, vec![]));
    assert_eq!(state(&f, id), held(&a, 2000));
    assert_eq!(run(&mut f, 2000, Op::Tick), woke(Reply::Done, vec![]));
    assert_eq!(state(&f, id), JobState::Ready);
    assert_eq!(f.reserved_by(&a), Vec::<JobId>::new());
    let stats = job_stats(&f, id, 2000);
    assert_eq!((stats.state, stats.age_secs, stats.ttr_secs, stats.time_left_secs), (BrowseState::Ready, 2, 2, 0));
    assert_eq!((stats.reserves, stats.timeouts, stats.releases, stats.buries, stats.kicks), (1, 1, 0, 0, 0));
    assert_eq!(f.stats().counters.job_timeouts, 1);
}

/// `touch` sets the deadline to now + ttr: the job survives its old deadline and runs out at
/// the new one; only the holder may touch (others NotYours, a ready job WrongState, a missing
/// one NotFound).
#[test]
fn touch_restarts_the_ttr() {
    let mut f = Fsm::new();
    let (a, b) = (key("a"), key("b"));
    let id = put(&mut f, 0, "default", 0, 0, 10);
    assert_eq!(run(&mut f, 0, reserve(&a, "r1")), answered(&a, "r1", got(id)));
    let ready = put(&mut f, 0, "default", 0, 0, 10);
    assert_eq!(quiet(&mut f, 1000, Op::Touch { client: b.clone(), id }), Err(FsmError::NotYours));
    assert_eq!(quiet(&mut f, 1000, Op::Touch { client: a.clone(), id: ready }), Err(FsmError::WrongState));
    assert_eq!(quiet(&mut f, 1000, Op::Touch { client: a.clone(), id: 99 }), Err(FsmError::NotFound));
    assert_eq!(quiet(&mut f, 5000, Op::Touch { client: a.clone(), id }), Ok(Reply::Done));
    assert_eq!(state(&f, id), held(&a, 15_000));
    assert_eq!(f.next_deadline(), Some(14_000));
    quiet(&mut f, 10_000, Op::Tick).unwrap();
    assert_eq!(state(&f, id), held(&a, 15_000));
    quiet(&mut f, 14_999, Op::Tick).unwrap();
    assert_eq!(state(&f, id), held(&a, 15_000));
    quiet(&mut f, 15_000, Op::Tick).unwrap();
    assert_eq!(state(&f, id), JobState::Ready);
    assert_eq!(f.job(id).unwrap().timeouts, 1);
}

// ---- release, bury, delete ----

/// Only the holder may release (others NotYours, a job not reserved WrongState, a missing one
/// NotFound); delay 0 makes it ready, a delay makes it delayed until now + delay; either way
/// with the new priority, and the release is counted.
#[test]
fn release_only_by_the_holder_to_ready_or_delayed() {
    let mut f = Fsm::new();
    let (a, b) = (key("a"), key("b"));
    let id = put(&mut f, 0, "default", 10, 0, 60);
    let other = put(&mut f, 0, "default", 50, 0, 60);
    assert_eq!(quiet(&mut f, 0, reserve_job(&a, id)), Ok(Reply::ReservedJob { id, body: Bytes::from_static(BODY) }));
    assert_eq!(quiet(&mut f, 0, release(&b, id, 1, 0)), Err(FsmError::NotYours));
    assert_eq!(quiet(&mut f, 0, release(&a, other, 1, 0)), Err(FsmError::WrongState));
    assert_eq!(quiet(&mut f, 0, release(&a, 99, 1, 0)), Err(FsmError::NotFound));
    assert_eq!(state(&f, id), held(&a, 60_000));

    assert_eq!(quiet(&mut f, 1000, release(&a, id, 20, 0)), Ok(Reply::Done));
    let job = f.job(id).unwrap();
    assert_eq!((job.state, job.pri, job.releases, job.delay_secs), (JobState::Ready, 20, 1, 0));
    assert_eq!(f.reserved_by(&a), Vec::<JobId>::new());

    assert_eq!(run(&mut f, 1000, reserve(&a, "r1")), answered(&a, "r1", got(id)));
    assert_eq!(quiet(&mut f, 2000, release(&a, id, 30, 3)), Ok(Reply::Done));
    let job = f.job(id).unwrap();
    assert_eq!((job.state, job.pri, job.releases, job.delay_secs), (JobState::Delayed { until: 5000 }, 30, 2, 3));
    assert_eq!(f.peek_delayed("default").unwrap().id, id);
    assert_eq!(f.next_deadline(), Some(5000));
    quiet(&mut f, 5000, Op::Tick).unwrap();
    assert_eq!(state(&f, id), JobState::Ready);
}

/// Only the holder may bury (others NotYours, a job not reserved WrongState, a missing one
/// NotFound); the buried job takes the new priority and counts the bury.
#[test]
fn bury_only_by_the_holder() {
    let mut f = Fsm::new();
    let (a, b) = (key("a"), key("b"));
    let id = put(&mut f, 0, "default", 10, 0, 60);
    let ready = put(&mut f, 0, "default", 10, 0, 60);
    quiet(&mut f, 0, reserve_job(&a, id)).unwrap();
    assert_eq!(quiet(&mut f, 0, bury(&b, id, 42)), Err(FsmError::NotYours));
    assert_eq!(quiet(&mut f, 0, bury(&a, ready, 42)), Err(FsmError::WrongState));
    assert_eq!(quiet(&mut f, 0, bury(&a, 99, 42)), Err(FsmError::NotFound));
    assert_eq!(quiet(&mut f, 0, bury(&a, id, 42)), Ok(Reply::Done));
    let job = f.job(id).unwrap();
    assert!(matches!(job.state, JobState::Buried { .. }), "{:?}", job.state);
    assert_eq!((job.pri, job.buries), (42, 1));
    assert_eq!(f.peek_buried("default").unwrap().id, id);
    assert_eq!(f.reserved_by(&a), Vec::<JobId>::new());
    assert_eq!(quiet(&mut f, 0, bury(&a, id, 42)), Err(FsmError::WrongState));
}

/// Delete takes a ready, delayed or buried job and one reserved by the deleting client; a job
/// reserved by another client is NotYours (NOT_FOUND on the wire) and stays reserved; a
/// missing job is NotFound.
#[test]
fn delete_takes_any_job_but_another_clients_reservation() {
    let mut f = Fsm::new();
    let (a, b) = (key("a"), key("b"));
    let ready = put(&mut f, 0, "default", 0, 0, 60);
    let delayed = put(&mut f, 0, "default", 0, 10, 60);
    let buried = put(&mut f, 0, "default", 0, 0, 60);
    let mine = put(&mut f, 0, "default", 0, 0, 60);
    let theirs = put(&mut f, 0, "default", 0, 0, 60);
    quiet(&mut f, 0, reserve_job(&a, buried)).unwrap();
    quiet(&mut f, 0, bury(&a, buried, 0)).unwrap();
    quiet(&mut f, 0, reserve_job(&a, mine)).unwrap();
    quiet(&mut f, 0, reserve_job(&b, theirs)).unwrap();

    assert_eq!(quiet(&mut f, 0, Op::Delete { client: Some(a.clone()), id: theirs }), Err(FsmError::NotYours));
    assert_eq!(quiet(&mut f, 0, Op::Delete { client: None, id: theirs }), Err(FsmError::NotYours));
    assert_eq!(state(&f, theirs), held(&b, 60_000));
    for id in [ready, delayed, buried, mine] {
        assert_eq!(quiet(&mut f, 0, Op::Delete { client: Some(a.clone()), id }), Ok(Reply::Done), "delete {id}");
        assert_eq!(f.job(id), None);
    }
    assert_eq!(quiet(&mut f, 0, Op::Delete { client: Some(b.clone()), id: theirs }), Ok(Reply::Done));
    assert_eq!(quiet(&mut f, 0, Op::Delete { client: Some(a.clone()), id: ready }), Err(FsmError::NotFound));
    assert_eq!(f.job_count(), 0);
    assert_eq!(f.next_deadline(), None);
}

/// Deleting a buried job takes it out of the buried index: peek-buried moves on to the next
/// oldest and a kick counts only the buried jobs left.
#[test]
fn deleting_a_buried_job_removes_it_from_peek_buried_and_kick() {
    let mut f = Fsm::new();
    let a = key("a");
    let ids: Vec<JobId> = (0..3).map(|_| put(&mut f, 0, "default", 0, 0, 60)).collect();
    for &id in &ids {
        quiet(&mut f, 0, reserve_job(&a, id)).unwrap();
    }
    for id in [ids[1], ids[0], ids[2]] {
        quiet(&mut f, 0, bury(&a, id, 0)).unwrap();
    }
    assert_eq!(f.peek_buried("default").unwrap().id, ids[1]);
    quiet(&mut f, 0, Op::Delete { client: None, id: ids[1] }).unwrap();
    assert_eq!(f.peek_buried("default").unwrap().id, ids[0]);
    quiet(&mut f, 0, Op::Delete { client: None, id: ids[2] }).unwrap();
    assert_eq!(quiet(&mut f, 0, kick("default", 10)), Ok(Reply::Kicked { count: 1 }));
    assert_eq!(state(&f, ids[0]), JobState::Ready);
    assert_eq!(f.peek_buried("default"), None);
    assert_eq!(quiet(&mut f, 0, kick("default", 10)), Ok(Reply::Kicked { count: 0 }));
}

// ---- kick ----

/// `kick n` kicks only buried jobs while the tube has any, oldest buried first, else delayed
/// jobs, soonest first; it answers the count, and a bound of 0 kicks nothing.
#[test]
fn kick_takes_buried_oldest_first_else_delayed_soonest_first() {
    let mut f = Fsm::new();
    let a = key("a");
    let b1 = put(&mut f, 0, "k", 0, 0, 60);
    let b2 = put(&mut f, 0, "k", 0, 0, 60);
    let d30 = put(&mut f, 0, "k", 0, 30, 60);
    let d10 = put(&mut f, 0, "k", 0, 10, 60);
    let d20 = put(&mut f, 0, "k", 0, 20, 60);
    quiet(&mut f, 0, reserve_job(&a, b1)).unwrap();
    quiet(&mut f, 0, reserve_job(&a, b2)).unwrap();
    quiet(&mut f, 0, bury(&a, b2, 0)).unwrap();
    quiet(&mut f, 0, bury(&a, b1, 0)).unwrap();

    assert_eq!(quiet(&mut f, 0, kick("k", 0)), Ok(Reply::Kicked { count: 0 }));
    assert!(matches!(state(&f, b2), JobState::Buried { .. }));
    assert_eq!(quiet(&mut f, 0, kick("k", 1)), Ok(Reply::Kicked { count: 1 }));
    assert_eq!(state(&f, b2), JobState::Ready);
    assert_eq!(f.job(b2).unwrap().kicks, 1);
    assert!(matches!(state(&f, b1), JobState::Buried { .. }));
    assert_eq!(quiet(&mut f, 0, kick("k", 5)), Ok(Reply::Kicked { count: 1 }));
    assert_eq!(state(&f, b1), JobState::Ready);
    assert_eq!(state(&f, d10), JobState::Delayed { until: 10_000 });
    assert_eq!(quiet(&mut f, 0, kick("k", 2)), Ok(Reply::Kicked { count: 2 }));
    assert_eq!((state(&f, d10), state(&f, d20)), (JobState::Ready, JobState::Ready));
    assert_eq!(state(&f, d30), JobState::Delayed { until: 30_000 });
    assert_eq!(quiet(&mut f, 0, kick("k", 5)), Ok(Reply::Kicked { count: 1 }));
    assert_eq!(state(&f, d30), JobState::Ready);
    assert_eq!(f.job(d30).unwrap().kicks, 1);
    assert_eq!(quiet(&mut f, 0, kick("k", 5)), Ok(Reply::Kicked { count: 0 }));
    assert_eq!(f.next_deadline(), None);
}

/// `kick-job` kicks a buried or a delayed job to ready (counting the kick); a ready or
/// reserved job is WrongState and a missing one NotFound (both NOT_FOUND on the wire).
#[test]
fn kick_job_takes_buried_and_delayed_jobs_only() {
    let mut f = Fsm::new();
    let a = key("a");
    let buried = put(&mut f, 0, "default", 0, 0, 60);
    let delayed = put(&mut f, 0, "default", 0, 10, 60);
    let ready = put(&mut f, 0, "default", 0, 0, 60);
    let reserved = put(&mut f, 0, "default", 0, 0, 60);
    quiet(&mut f, 0, reserve_job(&a, buried)).unwrap();
    quiet(&mut f, 0, bury(&a, buried, 0)).unwrap();
    quiet(&mut f, 0, reserve_job(&a, reserved)).unwrap();
    assert_eq!(quiet(&mut f, 0, Op::KickJob { id: buried }), Ok(Reply::Done));
    assert_eq!((state(&f, buried), f.job(buried).unwrap().kicks), (JobState::Ready, 1));
    assert_eq!(quiet(&mut f, 0, Op::KickJob { id: delayed }), Ok(Reply::Done));
    assert_eq!((state(&f, delayed), f.job(delayed).unwrap().kicks), (JobState::Ready, 1));
    assert_eq!(quiet(&mut f, 0, Op::KickJob { id: ready }), Err(FsmError::WrongState));
    assert_eq!(quiet(&mut f, 0, Op::KickJob { id: reserved }), Err(FsmError::WrongState));
    assert_eq!(quiet(&mut f, 0, Op::KickJob { id: 99 }), Err(FsmError::NotFound));
    assert_eq!(f.next_deadline(), Some(59_000));
}

// ---- reserve-job ----

/// `reserve-job` reserves a ready, a delayed (cancelling its delay) or a buried job by id with a
/// fresh TTR; a reserved job (even one's own) is WrongState, a missing one NotFound.
#[test]
fn reserve_job_takes_ready_delayed_and_buried_jobs() {
    let mut f = Fsm::new();
    let (a, b) = (key("a"), key("b"));
    let ready = put(&mut f, 0, "default", 0, 0, 60);
    let delayed = put(&mut f, 0, "default", 0, 10, 60);
    let buried = put(&mut f, 0, "default", 0, 0, 60);
    quiet(&mut f, 0, reserve_job(&b, buried)).unwrap();
    quiet(&mut f, 0, bury(&b, buried, 0)).unwrap();
    for id in [ready, delayed, buried] {
        assert_eq!(quiet(&mut f, 1000, reserve_job(&a, id)), Ok(Reply::ReservedJob { id, body: Bytes::from_static(BODY) }));
        assert_eq!(state(&f, id), held(&a, 61_000));
    }
    assert_eq!(f.job(buried).unwrap().reserves, 2);
    assert_eq!(quiet(&mut f, 1000, reserve_job(&b, ready)), Err(FsmError::WrongState));
    assert_eq!(quiet(&mut f, 1000, reserve_job(&a, ready)), Err(FsmError::WrongState));
    assert_eq!(quiet(&mut f, 1000, reserve_job(&a, 99)), Err(FsmError::NotFound));
    assert_eq!(f.reserved_by(&a), vec![ready, delayed, buried]);
    assert_eq!(f.next_deadline(), Some(60_000));
}

// ---- pause-tube ----

/// `pause-tube t 0` ends a pause at once and wakes the tube's waiters in the same apply, and
/// drops the pause's timer.
#[test]
fn pause_tube_zero_unpauses_and_wakes_waiters() {
    let mut f = Fsm::new();
    let a = key("a");
    let id = put(&mut f, 0, "default", 0, 0, 60);
    assert_eq!(quiet(&mut f, 0, pause("default", 100)), Ok(Reply::Done));
    assert_eq!(run(&mut f, 0, reserve(&a, "r1")), waits());
    assert_eq!(run(&mut f, 500, pause("default", 0)), woke(Reply::Done, vec![event(&a, "r1", got(id))]));
    assert_eq!(f.next_deadline(), Some(59_500));
    let tube = tube_stats(&f, "default", 500);
    assert_eq!((tube.pause_secs, tube.pause_left_secs), (0, 0));
}

/// `pause-tube` of a tube that does not exist is NotFound and does not create it.
#[test]
fn pause_tube_of_a_missing_tube_is_not_found() {
    let mut f = Fsm::new();
    assert_eq!(quiet(&mut f, 0, pause("nope", 10)), Err(FsmError::NotFound));
    assert!(!f.has_tube("nope"));
    assert_eq!(f.next_deadline(), None);
}

// ---- sessions ----

/// A client gone releases its reserved jobs (in id order, so the first waiter gets the first)
/// and ends its session; a waiting client gone drops its wait and the tubes it kept alive.
#[test]
fn client_gone_releases_its_jobs_to_waiters_and_drops_its_wait() {
    let mut f = Fsm::new();
    let (a, b, c) = (key("a"), key("b"), key("c"));
    let j1 = put(&mut f, 0, "default", 5, 0, 60);
    let j2 = put(&mut f, 0, "default", 1, 0, 60);
    quiet(&mut f, 0, reserve_job(&a, j1)).unwrap();
    quiet(&mut f, 0, reserve_job(&a, j2)).unwrap();
    assert_eq!(run(&mut f, 0, reserve(&b, "b1")), waits());
    quiet(&mut f, 0, watch(&c, "solo")).unwrap();
    quiet(&mut f, 0, ignore(&c, "default")).unwrap();
    assert_eq!(run(&mut f, 0, reserve(&c, "c1")), waits());

    assert_eq!(run(&mut f, 100, Op::ClientGone { client: a.clone() }), woke(Reply::Done, vec![event(&b, "b1", got(j1))]));
    assert_eq!(state(&f, j2), JobState::Ready);
    assert_eq!(state(&f, j1), held(&b, 60_100));
    assert_eq!(f.check_client_state("proxy", &["a".into()]).missing, vec!["a".to_string()]);

    assert_eq!(quiet(&mut f, 100, Op::ClientGone { client: c.clone() }), Ok(Reply::Done));
    assert_eq!(f.waiting_request(&c), None);
    assert!(!f.has_tube("solo"));
    assert_eq!(f.stats().waiting, 0);
    assert_eq!(quiet(&mut f, 100, Op::ClientGone { client: c.clone() }), Ok(Reply::Done));
}

/// A proxy gone ends every session of that proxy (jobs released, waits dropped) and none of
/// another proxy, even one whose name extends it ("p10") or prefixes it ("p").
#[test]
fn proxy_gone_ends_every_client_of_that_proxy_only() {
    let mut f = Fsm::new();
    let (p1a, p1b, p1w) = (ClientKey::new("p1", "a"), ClientKey::new("p1", "b"), ClientKey::new("p1", "w"));
    let (p2a, p10a, pa, p2w) = (ClientKey::new("p2", "a"), ClientKey::new("p10", "a"), ClientKey::new("p", "a"), ClientKey::new("p2", "w"));
    let ids: Vec<JobId> = (0..5).map(|_| put(&mut f, 0, "default", 0, 0, 60)).collect();
    for (client, &id) in [&p1a, &p1b, &p2a, &p10a, &pa].into_iter().zip(&ids) {
        quiet(&mut f, 0, reserve_job(client, id)).unwrap();
    }
    let wait_on_q = Op::Reserve { client: p1w.clone(), request_id: "w".into(), timeout_secs: None, tubes: vec!["q".into()] };
    assert_eq!(run(&mut f, 0, wait_on_q), waits());
    assert_eq!(run(&mut f, 0, reserve(&p2w, "w")), waits());

    assert_eq!(run(&mut f, 100, Op::ProxyGone { proxy: "p1".into() }), woke(Reply::Done, vec![event(&p2w, "w", got(ids[0]))]));
    assert_eq!(state(&f, ids[1]), JobState::Ready);
    assert!(!f.has_tube("q"));
    let p1 = f.check_client_state("p1", &["a".into(), "b".into(), "w".into()]);
    assert_eq!(p1.missing, vec!["a".to_string(), "b".into(), "w".into()]);
    for (client, &id) in [&p2a, &p10a, &pa].into_iter().zip(&ids[2..]) {
        assert_eq!(state(&f, id), held(client, 60_000));
    }
}

/// A proxy's jobs never go to one of its own waiting clients as it leaves: every wait of the
/// proxy ends before any of its jobs is released.
#[test]
fn proxy_gone_hands_nothing_to_its_own_waiters() {
    let mut f = Fsm::new();
    let (holder, waiter) = (ClientKey::new("p1", "a"), ClientKey::new("p1", "w"));
    let id = put(&mut f, 0, "default", 0, 0, 60);
    quiet(&mut f, 0, reserve_job(&holder, id)).unwrap();
    assert_eq!(run(&mut f, 0, reserve(&waiter, "w")), waits());
    assert_eq!(quiet(&mut f, 10, Op::ProxyGone { proxy: "p1".into() }), Ok(Reply::Done));
    assert_eq!(state(&f, id), JobState::Ready);
    assert_eq!(f.job(id).unwrap().reserves, 1);
}

// ---- tubes ----

/// A tube exists while a session uses or watches it, it holds jobs, or a reserve waits on
/// it — pausing does not keep it (its pause timer goes with it) — and `default` always exists.
#[test]
fn tubes_live_while_used_watched_holding_jobs_or_waited_on() {
    let mut f = Fsm::new();
    let a = key("a");
    assert_eq!(f.list_tubes(), vec!["default"]);
    quiet(&mut f, 0, use_tube(&a, "u")).unwrap();
    assert!(f.has_tube("u"));
    quiet(&mut f, 0, pause("u", 30)).unwrap();
    quiet(&mut f, 0, use_tube(&a, "default")).unwrap();
    assert!(!f.has_tube("u"));
    assert_eq!(f.next_deadline(), None);

    quiet(&mut f, 0, watch(&a, "w")).unwrap();
    assert!(f.has_tube("w"));
    quiet(&mut f, 0, ignore(&a, "w")).unwrap();
    assert!(!f.has_tube("w"));

    let id = put(&mut f, 0, "j", 0, 0, 60);
    assert!(f.has_tube("j"));
    quiet(&mut f, 0, Op::Delete { client: None, id }).unwrap();
    assert!(!f.has_tube("j"));

    let wait = Op::Reserve { client: a.clone(), request_id: "r".into(), timeout_secs: Some(2), tubes: vec!["r".into()] };
    assert_eq!(run(&mut f, 0, wait), waits());
    assert!(f.has_tube("r"));
    assert_eq!(run(&mut f, 2000, Op::Tick), woke(Reply::Done, vec![event(&a, "r", ReserveOutcome::TimedOut)]));
    assert!(!f.has_tube("r"));

    quiet(&mut f, 2000, Op::ClientGone { client: a }).unwrap();
    assert_eq!(f.list_tubes(), vec!["default"]);
}

/// list-tubes answers in creation order (list-tube-used the used one); a tube dropped and
/// made again goes to the end.
#[test]
fn list_tubes_in_creation_order() {
    let mut f = Fsm::new();
    let (a, b) = (key("a"), key("b"));
    quiet(&mut f, 0, use_tube(&a, "c")).unwrap();
    quiet(&mut f, 0, watch(&b, "a")).unwrap();
    put(&mut f, 0, "b", 0, 0, 60);
    assert_eq!(f.list_tubes(), vec!["default", "c", "a", "b"]);
    assert_eq!((f.used_tube(&a), f.used_tube(&b)), ("c".to_string(), "default".to_string()));
    quiet(&mut f, 0, use_tube(&a, "default")).unwrap();
    quiet(&mut f, 0, use_tube(&a, "c")).unwrap();
    assert_eq!(f.list_tubes(), vec!["default", "a", "b", "c"]);
}

/// watch answers the watch count (watching a tube twice counts it once); ignore answers the
/// count left, refuses the only watched tube (LastWatchedTube), and ignoring an unwatched or
/// missing tube is a no-op that creates nothing.
#[test]
fn watch_counts_and_ignore() {
    let mut f = Fsm::new();
    let a = key("a");
    assert_eq!(quiet(&mut f, 0, watch(&a, "x")), Ok(Reply::Watching { count: 2 }));
    assert_eq!(quiet(&mut f, 0, watch(&a, "x")), Ok(Reply::Watching { count: 2 }));
    assert_eq!(f.watched_tubes(&a), vec!["default", "x"]);
    assert_eq!(quiet(&mut f, 0, ignore(&a, "default")), Ok(Reply::Watching { count: 1 }));
    assert_eq!(quiet(&mut f, 0, ignore(&a, "x")), Err(FsmError::LastWatchedTube));
    assert_eq!(f.watched_tubes(&a), vec!["x"]);
    assert_eq!(quiet(&mut f, 0, ignore(&a, "nope")), Ok(Reply::Watching { count: 1 }));
    assert!(!f.has_tube("nope"));
    assert_eq!(quiet(&mut f, 0, ignore(&a, "default")), Ok(Reply::Watching { count: 1 }));
    assert_eq!(f.watched_tubes(&a), vec!["x"]);
}

/// peek-ready shows the tube's best (priority, id) ready job, peek-delayed the one ready
/// soonest (not the smallest id), peek-buried the oldest buried (not the smallest id); a
/// tube with none, or no such tube, peeks nothing.
#[test]
fn peeks_show_best_ready_soonest_delayed_and_oldest_buried() {
    let mut f = Fsm::new();
    let a = key("a");
    put(&mut f, 0, "t", 5, 0, 60);
    let best = put(&mut f, 0, "t", 3, 0, 60);
    put(&mut f, 0, "t", 3, 0, 60);
    put(&mut f, 0, "t", 0, 30, 60);
    let soonest = put(&mut f, 0, "t", 9, 10, 60);
    put(&mut f, 0, "t", 0, 20, 60);
    let younger = put(&mut f, 0, "t", 0, 0, 60);
    let older = put(&mut f, 0, "t", 0, 0, 60);
    quiet(&mut f, 0, reserve_job(&a, younger)).unwrap();
    quiet(&mut f, 0, reserve_job(&a, older)).unwrap();
    quiet(&mut f, 0, bury(&a, older, 0)).unwrap();
    quiet(&mut f, 0, bury(&a, younger, 0)).unwrap();
    assert_eq!(f.peek_ready("t").unwrap().id, best);
    assert_eq!(f.peek_delayed("t").unwrap().id, soonest);
    assert_eq!(f.peek_buried("t").unwrap().id, older);
    assert_eq!((f.peek_ready("default"), f.peek_delayed("default"), f.peek_buried("default")), (None, None, None));
    assert_eq!(f.peek_ready("missing"), None);
    assert_eq!(f.job(soonest).unwrap().state, JobState::Delayed { until: 10_000 });
    assert_eq!(f.job(99), None);
}

// ---- time ----

/// The clock never runs backwards: an op stamped earlier than the clock runs at the clock
/// (a delay counts from the clock, the job's age too), and the clock stays put.
#[test]
fn the_clock_never_runs_backwards() {
    let mut f = Fsm::new();
    let a = key("a");
    quiet(&mut f, 5000, Op::Tick).unwrap();
    let id = put(&mut f, 3000, "default", 0, 1, 60);
    assert_eq!(f.now_ms(), 5000);
    let job = f.job(id).unwrap();
    assert_eq!((job.state, job.created_ms), (JobState::Delayed { until: 6000 }, 5000));
    quiet(&mut f, 5999, Op::Tick).unwrap();
    quiet(&mut f, 1000, Op::Tick).unwrap();
    assert_eq!(f.now_ms(), 5999);
    assert_eq!(state(&f, id), JobState::Delayed { until: 6000 });
    assert_eq!(job_stats(&f, id, 0).age_secs, 0);
    quiet(&mut f, 6000, Op::Tick).unwrap();
    assert_eq!(state(&f, id), JobState::Ready);
    assert_eq!(run(&mut f, 2000, reserve(&a, "r")), answered(&a, "r", got(id)));
    assert_eq!(state(&f, id), held(&a, 66_000));
}

/// next_deadline() is the earliest pending timer (delay end, reserve timeout, pause end, TTR
/// margin), and None when nothing is pending, so an idle machine needs no Tick.
#[test]
fn next_deadline_is_the_earliest_pending_timer_and_none_when_idle() {
    let mut f = Fsm::new();
    let (a, b) = (key("a"), key("b"));
    assert_eq!(f.next_deadline(), None);
    put(&mut f, 0, "default", 0, 0, 60);
    assert_eq!(f.next_deadline(), None);
    let delayed = put(&mut f, 0, "default", 0, 10, 60);
    assert_eq!(f.next_deadline(), Some(10_000));
    quiet(&mut f, 0, pause("default", 20)).unwrap();
    assert_eq!(f.next_deadline(), Some(10_000));
    assert_eq!(run(&mut f, 0, reserve_within(&a, "a1", 3)), waits());
    assert_eq!(f.next_deadline(), Some(3000));
    assert_eq!(run(&mut f, 3000, Op::Tick), woke(Reply::Done, vec![event(&a, "a1", ReserveOutcome::TimedOut)]));
    assert_eq!(f.next_deadline(), Some(10_000));
    quiet(&mut f, 10_000, Op::Tick).unwrap();
    assert_eq!(state(&f, delayed), JobState::Ready);
    assert_eq!(f.next_deadline(), Some(20_000));
    quiet(&mut f, 20_000, Op::Tick).unwrap();
    assert_eq!(f.next_deadline(), None);
    assert_eq!(run(&mut f, 20_000, reserve(&b, "b1")), answered(&b, "b1", got(1)));
    assert_eq!(f.next_deadline(), Some(79_000));
    quiet(&mut f, 20_000, Op::Delete { client: Some(b), id: 1 }).unwrap();
    assert_eq!(f.next_deadline(), None);
}

// ---- YAML ----

/// The state used by the YAML tests, at clock 1000: in `default` (paused 30 s at 1000) job 1
/// reserved by w (touched at 1000, ttr 60), job 2 buried, jobs 3 (pri 5) and 4 (pri 2000)
/// ready, job 5 delayed until 5000, job 6 deleted; v waits, x timed out; p put job 1.
fn known_state() -> Fsm {
    let mut f = Fsm::new();
    let (p, w, v, x) = (key("p"), key("w"), key("v"), key("x"));
    let first = Op::Put { client: Some(p.clone()), tube: "default".into(), pri: 1, delay_secs: 0, ttr_secs: 60, body: Bytes::from_static(BODY) };
    assert_eq!(quiet(&mut f, 0, first), Ok(Reply::Put { id: 1 }));
    put(&mut f, 0, "default", 3, 0, 60);
    assert_eq!(run(&mut f, 0, reserve(&w, "w1")), answered(&w, "w1", got(1)));
    assert_eq!(run(&mut f, 0, reserve(&w, "w2")), answered(&w, "w2", got(2)));
    quiet(&mut f, 0, bury(&w, 2, 3)).unwrap();
    put(&mut f, 0, "default", 5, 0, 60);
    put(&mut f, 0, "default", 2000, 0, 60);
    put(&mut f, 0, "default", 7, 5, 60);
    put(&mut f, 0, "default", 9, 0, 60);
    quiet(&mut f, 0, Op::Delete { client: None, id: 6 }).unwrap();
    quiet(&mut f, 1000, pause("default", 30)).unwrap();
    assert_eq!(run(&mut f, 1000, reserve(&v, "v1")), waits());
    assert_eq!(run(&mut f, 1000, reserve_within(&x, "x1", 0)), answered(&x, "x1", ReserveOutcome::TimedOut));
    quiet(&mut f, 1000, watch(&v, "default")).unwrap();
    quiet(&mut f, 1000, use_tube(&p, "default")).unwrap();
    quiet(&mut f, 1000, ignore(&x, "nope")).unwrap();
    quiet(&mut f, 1000, Op::Touch { client: w.clone(), id: 1 }).unwrap();
    assert_eq!(quiet(&mut f, 1000, kick("other", 1)), Ok(Reply::Kicked { count: 0 }));
    f
}

/// A job's stats: one made for the checks below, from `(id, state, pri, age, delay, ttr,
/// time left)` and `(reserves, timeouts, releases, buries, kicks)`.
fn job_stats_of(j: (JobId, BrowseState, u32, u64, u32, u32, i64), h: (u32, u32, u32, u32, u32)) -> JobStats {
    let (id, state, pri, age_secs, delay_secs, ttr_secs, time_left_secs) = j;
    let (reserves, timeouts, releases, buries, kicks) = h;
    JobStats { id, tube: "default".into(), state, pri, age_secs, delay_secs, ttr_secs, time_left_secs, reserves, timeouts, releases, buries, kicks }
}

/// stats-job gives what beanstalkd's does (age and time left in whole seconds, truncated) for
/// a fresh, a reserved, a delayed and a buried job.
#[test]
fn stats_job_is_exact() {
    let mut f = Fsm::new();
    put(&mut f, 0, "default", 5, 0, 10);
    assert_eq!(job_stats(&f, 1, 0), job_stats_of((1, BrowseState::Ready, 5, 0, 0, 10, 0), (0, 0, 0, 0, 0)));
    assert_eq!(f.stats_job(2, 0), None);

    let f = known_state();
    assert_eq!(job_stats(&f, 1, 3500), job_stats_of((1, BrowseState::Reserved, 1, 3, 0, 60, 57), (1, 0, 0, 0, 0)));
    assert_eq!(job_stats(&f, 5, 3500), job_stats_of((5, BrowseState::Delayed, 7, 3, 5, 60, 1), (0, 0, 0, 0, 0)));
    assert_eq!(job_stats(&f, 2, 3500), job_stats_of((2, BrowseState::Buried, 3, 3, 0, 60, 0), (1, 0, 0, 1, 0)));
}

/// stats-tube gives what beanstalkd's does for a known state (urgent counts only ready jobs
/// below 1024; the pause and its truncated time left).
#[test]
fn stats_tube_is_exact() {
    let f = known_state();
    let expected = TubeStats {
        name: "default".into(),
        jobs: JobCounts { urgent: 1, ready: 2, reserved: 1, delayed: 1, buried: 1 },
        total_jobs: 6,
        using: 4,
        watching: 4,
        waiting: 1,
        cmd_delete: 1,
        cmd_pause_tube: 1,
        pause_secs: 30,
        pause_left_secs: 27,
    };
    assert_eq!(tube_stats(&f, "default", 3500), expected);
    assert_eq!(f.stats_tube("other", 3500), None);
}

/// The machine's part of stats for a known state: jobs by state, the logged commands'
/// counters, tubes, producers, workers and waiting reserves.
#[test]
fn stats_is_exact() {
    let f = known_state();
    let counters = Counters {
        cmd_put: 6,
        cmd_reserve: 3,
        cmd_reserve_with_timeout: 1,
        cmd_reserve_job: 0,
        cmd_delete: 1,
        cmd_release: 0,
        cmd_use: 1,
        cmd_watch: 1,
        cmd_ignore: 1,
        cmd_bury: 1,
        cmd_kick: 1,
        cmd_touch: 1,
        cmd_pause_tube: 1,
        job_timeouts: 0,
        total_jobs: 6,
    };
    let jobs = JobCounts { urgent: 1, ready: 2, reserved: 1, delayed: 1, buried: 1 };
    assert_eq!(f.stats(), MachineStats { jobs, counters, tubes: 1, producers: 1, workers: 3, waiting: 1 });
}

/// The stats counters move as beanstalkd's do: cmd-put, cmd-reserve apart from
/// cmd-reserve-with-timeout, cmd-delete (failed ones too), producers (puts naming a client),
/// workers (reserves), waiting, tubes, and urgent = ready jobs with priority below 1024.
#[test]
fn stats_counters() {
    let mut f = Fsm::new();
    let (p, a, b) = (key("p"), key("a"), key("b"));
    let by_p = Op::Put { client: Some(p.clone()), tube: "t".into(), pri: 1023, delay_secs: 0, ttr_secs: 60, body: Bytes::from_static(BODY) };
    quiet(&mut f, 0, by_p).unwrap();
    put(&mut f, 0, "t", 1024, 0, 60);
    put(&mut f, 0, "default", 0, 0, 60);
    put(&mut f, 0, "default", 0, 5, 60);
    assert_eq!(f.stats().counters.cmd_put, 4);
    assert_eq!(f.stats().jobs.urgent, 2);
    assert_eq!(tube_stats(&f, "t", 0).jobs.urgent, 1);
    assert_eq!((f.stats().producers, f.stats().tubes), (1, 2));

    assert_eq!(run(&mut f, 0, reserve(&a, "a1")), answered(&a, "a1", got(3)));
    assert_eq!(f.stats().jobs.urgent, 1);
    assert_eq!(run(&mut f, 0, reserve_within(&a, "a2", 10)), waits());
    assert_eq!((f.stats().counters.cmd_reserve, f.stats().counters.cmd_reserve_with_timeout), (1, 1));
    assert_eq!((f.stats().workers, f.stats().waiting), (1, 1));
    assert_eq!(tube_stats(&f, "default", 0).waiting, 1);
    quiet(&mut f, 0, reserve_job(&b, 1)).unwrap();
    assert_eq!(f.stats().workers, 2);
    assert_eq!(f.stats().jobs.urgent, 0);

    quiet(&mut f, 0, Op::Delete { client: None, id: 2 }).unwrap();
    assert_eq!(quiet(&mut f, 0, Op::Delete { client: None, id: 2 }), Err(FsmError::NotFound));
    assert_eq!(f.stats().counters.cmd_delete, 2);
    assert_eq!(tube_stats(&f, "t", 0).cmd_delete, 1);
    quiet(&mut f, 0, Op::ClientGone { client: p }).unwrap();
    quiet(&mut f, 0, Op::ClientGone { client: a }).unwrap();
    assert_eq!((f.stats().producers, f.stats().workers, f.stats().waiting), (0, 1, 0));
    assert_eq!(f.stats().counters.total_jobs, 4);
}

// ---- snapshot ----

/// A snapshot restores to the same state (equal digest, equal snapshot, equal stats) and the
/// same behaviour: a restored waiter on two named tubes still gets the next put, the restored
/// pause still ends on time and wakes its waiter, delays and TTRs still end on time, and the
/// next id and clock carry on.
#[test]
fn snapshot_restore_keeps_waiters_pauses_counters_ids_and_clock() {
    let mut f = known_state();
    let n = key("n");
    let on_two = Op::Reserve { client: n.clone(), request_id: "n1".into(), timeout_secs: Some(100), tubes: vec!["a".into(), "b".into()] };
    assert_eq!(run(&mut f, 1200, on_two), waits());
    let mut g = Fsm::restore(&f.snapshot()).expect("restore");
    g.check_invariants().unwrap();
    assert_eq!(g.digest(), f.digest());
    assert_eq!(g.snapshot(), f.snapshot());
    assert_eq!(g.now_ms(), 1200);
    assert_eq!(g.next_deadline(), f.next_deadline());
    assert_eq!(g.stats(), f.stats());
    assert_eq!(g.stats_tube("default", 1200), f.stats_tube("default", 1200));
    assert_eq!(g.list_tubes(), vec!["default", "a", "b"]);
    assert_eq!(g.waiting_request(&n), Some("n1"));

    let (v, w) = (key("v"), key("w"));
    let script: Vec<(Millis, Op, Applied)> = vec![
        (1300, put_op("b", 0, 0, 60), woke(Reply::Put { id: 7 }, vec![event(&n, "n1", got(7))])),
        (4999, Op::Tick, woke(Reply::Done, vec![])),
        (5000, Op::Tick, woke(Reply::Done, vec![])),
        (30_999, Op::Tick, woke(Reply::Done, vec![])),
        (31_000, Op::Tick, woke(Reply::Done, vec![event(&v, "v1", got(3))])),
        (61_000, Op::Tick, woke(Reply::Done, vec![])),
    ];
    for (now, op, expected) in script {
        let from_f = run(&mut f, now, op.clone());
        let from_g = run(&mut g, now, op);
        assert_eq!(from_f, expected, "original at {now}");
        assert_eq!(from_g, expected, "restored at {now}");
        assert_eq!(g.digest(), f.digest(), "digests differ after {now}");
    }
    assert_eq!(g.job(1).unwrap().timeouts, 1);
    assert!(g.reserved_by(&w).is_empty());
    assert_eq!(state(&g, 5), JobState::Ready);
}

/// Restore refuses, with an error and without a panic, snapshots that break the machine's
/// invariants: a reserved job whose holder has no session, a job in an unlisted tube, a job
/// listed twice, a job in no state, a reservation already past its deadline, a negative
/// pause, and no `default` tube.
#[test]
fn restore_rejects_corrupt_snapshots() {
    let good = known_state().snapshot();
    assert!(Fsm::restore(&good).is_ok());
    let holder = |snap: &SnapshotProto| snap.jobs.iter().position(|j| j.state() == JobStateProto::Reserved).unwrap();
    type Corruption = (&'static str, Box<dyn Fn(&mut SnapshotProto)>);
    let corruptions: Vec<Corruption> = vec![
        (
            "holder session missing",
            Box::new(move |s| {
                let by = s.jobs[holder(s)].reserved_by.clone();
                s.reservations.retain(|r| r.client_id != by);
            }),
        ),
        ("job in an unlisted tube", Box::new(|s| s.jobs[0].tube_name = "ghost".into())),
        (
            "job listed twice",
            Box::new(|s| {
                let dup = s.jobs[0].clone();
                s.jobs.push(dup);
            }),
        ),
        ("job in no state", Box::new(|s| s.jobs[0].set_state(JobStateProto::Initial))),
        (
            "reservation past its deadline",
            Box::new(move |s| {
                let i = holder(s);
                s.jobs[i].expires_at = 500;
            }),
        ),
        ("negative pause", Box::new(|s| s.tubes[0].pause_secs = -1)),
        (
            "no default tube",
            Box::new(|s| {
                s.tubes.clear();
                s.reservations.clear();
                s.jobs.clear();
            }),
        ),
    ];
    for (what, corrupt) in corruptions {
        let mut snap = good.clone();
        corrupt(&mut snap);
        assert!(Fsm::restore(&snap).is_err(), "restore accepted a snapshot with {what}");
        assert!(Fsm::restore_encoded(&snap.encode_to_vec().into()).is_err(), "restore_encoded accepted a snapshot with {what}");
    }
    let bytes = good.encode_to_vec();
    let cut = bytes.len() - 3;
    assert!(Fsm::restore_encoded(&Bytes::copy_from_slice(&bytes[..cut])).is_err(), "a cut encoding restored");
    let mut not_a_message = bytes.clone();
    not_a_message.extend_from_slice(&[1 << 3, 5]);
    assert!(Fsm::restore_encoded(&not_a_message.into()).is_err(), "a job that is a number restored");
}

/// A snapshot restores from its encoding, a job at a time, to the machine it restores to once
/// decoded, and every body restored is a copy: no job keeps the encoding's buffer alive.
#[test]
fn restore_from_the_encoding_copies_bodies() {
    let f = known_state();
    let bytes = Bytes::from(f.snapshot().encode_to_vec());
    let g = Fsm::restore_encoded(&bytes).expect("restores");
    assert_eq!(g.digest(), f.digest());
    assert_eq!(g.snapshot(), f.snapshot());
    assert_eq!(g.next_deadline(), f.next_deadline());
    let buffer = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
    for id in 1..=f.snapshot().next_job_id {
        if let Some(job) = g.job(id) {
            assert_eq!(Some(&job.body), f.job(id).as_ref().map(|j| &j.body));
            assert!(!buffer.contains(&(job.body.as_ptr() as usize)), "job {id}'s body points into the snapshot");
        }
    }
}

// ---- proxy leases ----

/// A proxy whose lease runs out counts as gone: exactly at the lease end its clients' jobs go
/// back to ready and their waits end; a renewal before then pushes the end out.
#[test]
fn lease_end_ends_the_proxys_sessions() {
    let mut f = Fsm::new();
    let (holder, waiter) = (ClientKey::new("p1", "a"), ClientKey::new("p1", "w"));
    let id = put(&mut f, 0, "default", 0, 0, 600);
    quiet(&mut f, 0, Op::ProxyLease { proxy: "p1".into(), lease_secs: 10 }).unwrap();
    quiet(&mut f, 0, reserve_job(&holder, id)).unwrap();
    quiet(&mut f, 0, watch(&waiter, "other")).unwrap();
    assert_eq!(run(&mut f, 0, reserve(&waiter, "w")), waits());
    quiet(&mut f, 8000, Op::ProxyLease { proxy: "p1".into(), lease_secs: 10 }).unwrap();
    assert_eq!(f.next_deadline(), Some(18_000));
    quiet(&mut f, 17_999, Op::Tick).unwrap();
    assert_eq!(state(&f, id), held(&holder, 600_000));
    quiet(&mut f, 18_000, Op::Tick).unwrap();
    assert_eq!(state(&f, id), JobState::Ready);
    assert_eq!(f.waiting_request(&waiter), None);
    assert!(!f.has_tube("other"));
    assert_eq!(f.next_deadline(), None);
}

/// A renewal says whether the lease was still live: a proxy learns that its lease ran out
/// (and with it every session) from the first renewal after the end.
#[test]
fn renewal_tells_whether_the_lease_was_live() {
    let mut f = Fsm::new();
    let renew = |f: &mut Fsm, at| quiet(f, at, Op::ProxyLease { proxy: "p1".into(), lease_secs: 10 }).unwrap();
    assert_eq!(renew(&mut f, 0), Reply::Lease { was_live: false });
    assert_eq!(renew(&mut f, 5_000), Reply::Lease { was_live: true });
    quiet(&mut f, 15_000, Op::Tick).unwrap();
    assert_eq!(renew(&mut f, 16_000), Reply::Lease { was_live: false });
}

/// A lease of 0 seconds cancels the lease: the sessions then outlive any deadline.
#[test]
fn zero_lease_cancels() {
    let mut f = Fsm::new();
    let holder = ClientKey::new("p1", "a");
    let id = put(&mut f, 0, "default", 0, 0, 600);
    quiet(&mut f, 0, Op::ProxyLease { proxy: "p1".into(), lease_secs: 5 }).unwrap();
    quiet(&mut f, 0, reserve_job(&holder, id)).unwrap();
    quiet(&mut f, 1000, Op::ProxyLease { proxy: "p1".into(), lease_secs: 0 }).unwrap();
    quiet(&mut f, 100_000, Op::Tick).unwrap();
    assert_eq!(state(&f, id), held(&holder, 600_000));
}

/// A lease survives snapshot and restore: the restored machine ends the sessions on time.
#[test]
fn lease_survives_snapshot() {
    let mut f = Fsm::new();
    let holder = ClientKey::new("p1", "a");
    let id = put(&mut f, 0, "default", 0, 0, 600);
    quiet(&mut f, 0, Op::ProxyLease { proxy: "p1".into(), lease_secs: 10 }).unwrap();
    quiet(&mut f, 0, reserve_job(&holder, id)).unwrap();
    let mut restored = Fsm::restore(&f.snapshot()).expect("restores");
    assert_eq!(restored.digest(), f.digest());
    quiet(&mut restored, 10_000, Op::Tick).unwrap();
    assert_eq!(state(&restored, id), JobState::Ready);
}

// ---- asking again after a lost answer ----

/// The job a reserve was given, as its event says.
fn given(applied: &Applied) -> Option<JobId> {
    applied.events.iter().find_map(|e| match e.outcome {
        ReserveOutcome::Reserved { id, .. } => Some(id),
        _ => None,
    })
}

/// A reserve asked again with the request id of a wait still going leaves the wait as it was
/// (its timeout is not pushed out).
#[test]
fn asking_again_while_waiting_keeps_the_wait() {
    let mut f = Fsm::new();
    let c = ClientKey::new("p1", "a");
    assert_eq!(run(&mut f, 0, reserve_within(&c, "r1", 10)), waits());
    assert_eq!(run(&mut f, 4_000, reserve_within(&c, "r1", 10)), waits());
    assert_eq!(f.next_deadline(), Some(10_000));
    assert_eq!(f.waiting_request(&c), Some("r1"));
}

/// A proxy that lost an answer asks again with the same request id and gets the same
/// job once more, without a second job leaving the queue.
#[test]
fn asking_again_after_the_answer_gives_the_same_job() {
    let mut f = Fsm::new();
    let c = ClientKey::new("p1", "a");
    assert_eq!(run(&mut f, 0, reserve(&c, "r1")), waits());
    let first = given(&run(&mut f, 10, put_op("default", 0, 0, 60))).expect("the waiter gets the put");
    let second = put(&mut f, 20, "default", 0, 0, 60);
    let again = run(&mut f, 30, reserve(&c, "r1"));
    assert_eq!(given(&again), Some(first));
    assert_eq!(again.reply, Ok(Reply::Reserve(Some(ReserveOutcome::Reserved { id: first, body: Bytes::from_static(BODY) }))));
    assert_eq!(state(&f, second), JobState::Ready);
    let next = run(&mut f, 40, reserve(&c, "r2"));
    assert_eq!(given(&next), Some(second), "a new request id is a new reserve");
}

/// Asking again once the job of the lost answer is no longer the client's (its TTR ran out,
/// another client took it) gets the same answer and leaves the job as it is: the reservation
/// took place when first answered, and the client is as one too slow for its TTR. Serving it
/// afresh would have held a job for it that it never learns of. Only a job gone altogether is
/// served afresh. The answer survives snapshot and restore.
#[test]
fn asking_again_answers_the_same_job_while_it_exists() {
    let mut f = Fsm::new();
    let (c, b) = (ClientKey::new("p1", "a"), ClientKey::new("p1", "b"));
    let id = put(&mut f, 0, "default", 0, 0, 1);
    assert_eq!(given(&run(&mut f, 0, reserve(&c, "r1"))), Some(id));
    let mut restored = Fsm::restore(&f.snapshot()).expect("restores");
    assert_eq!(restored.digest(), f.digest());
    assert_eq!(given(&run(&mut restored, 100, reserve(&c, "r1"))), Some(id));
    quiet(&mut f, 1_000, Op::Tick).unwrap();
    assert_eq!(state(&f, id), JobState::Ready);
    assert_eq!(given(&run(&mut f, 1_100, reserve(&c, "r1"))), Some(id), "the same answer");
    assert_eq!(state(&f, id), JobState::Ready, "the job is left as it was");
    assert_eq!(given(&run(&mut f, 1_200, reserve(&b, "s1"))), Some(id));
    assert_eq!(given(&run(&mut f, 1_300, reserve(&c, "r1"))), Some(id), "the same answer");
    assert_eq!(state(&f, id), held(&b, 2_200));
    quiet(&mut f, 1_400, Op::Delete { client: Some(b.clone()), id }).unwrap();
    let next = put(&mut f, 1_400, "default", 0, 0, 1);
    assert_eq!(given(&run(&mut f, 1_500, reserve(&c, "r1"))), Some(next), "the job is gone: served afresh");
    assert_eq!(state(&f, next), held(&c, 2_500));
}

/// What the jobs count for against a node's `--max-jobs-bytes` follows puts and deletes, and
/// a restored machine counts the same.
#[test]
fn jobs_bytes_count_bodies_tube_names_and_overhead() {
    let mut f = Fsm::new();
    assert_eq!(f.jobs_bytes(), 0);
    let body = Bytes::from_static(b"0123456789");
    let put = |tube: &str| Op::Put { client: None, tube: tube.into(), pri: 0, delay_secs: 0, ttr_secs: 5, body: body.clone() };
    let Ok(Reply::Put { id: first }) = quiet(&mut f, 0, put("default")) else { panic!("put") };
    quiet(&mut f, 0, put("emails")).expect("put");
    let both = crate::limits::job_bytes(10, 7) + crate::limits::job_bytes(10, 6);
    assert_eq!(f.jobs_bytes(), both);
    assert_eq!(Fsm::restore(&f.snapshot()).expect("restore").jobs_bytes(), both);
    quiet(&mut f, 0, Op::Delete { client: None, id: first }).expect("delete");
    assert_eq!(f.jobs_bytes(), crate::limits::job_bytes(10, 6));
    f.check_invariants().expect("the count is the jobs'");
}

// A move takes a job from one tube to another in one operation: it keeps its state and place
// in time, a waiter on the new tube gets a ready job at once, the emptied tube goes, and a
// reserved job is refused.
// A job moved out of a paused tube to a waiter's other tube wakes the waiter, whose wait on
// the named tubes ends and lets the emptied paused tube go before the move is done with it
// (found by the property test: the move dropped the tube a second time and panicked).
#[test]
fn move_job_to_a_waiter_of_its_tube_drops_that_tube_once() {
    let mut fsm = Fsm::new();
    let waiter = key("w");
    let named = Op::Reserve { client: waiter.clone(), request_id: "r".into(), timeout_secs: None, tubes: vec!["b".into(), "a".into()] };
    assert_eq!(run(&mut fsm, 1_000, named), waits());
    assert_eq!(quiet(&mut fsm, 1_000, Op::PauseTube { tube: "b".into(), delay_secs: 60 }), Ok(Reply::Done));
    let id = put(&mut fsm, 1_000, "b", 5, 0, 60);
    let moved = run(&mut fsm, 2_000, Op::MoveJob { id, tube: "a".into() });
    assert_eq!(moved, woke(Reply::Done, vec![event(&waiter, "r", got(id))]));
    assert!(!fsm.has_tube("b"), "the emptied tube is gone");
    assert_eq!(fsm.job(id).map(|j| j.tube), Some("a".to_string()));
}

#[test]
fn move_job_keeps_state_and_feeds_waiters() {
    let mut fsm = Fsm::new();
    let ready = put(&mut fsm, 1_000, "a", 5, 0, 60);
    let delayed = put(&mut fsm, 1_000, "a", 5, 30, 60);
    let waiter = key("w");
    run(&mut fsm, 1_000, watch(&waiter, "b"));
    run(&mut fsm, 1_000, ignore(&waiter, "default"));
    assert_eq!(run(&mut fsm, 1_000, reserve(&waiter, "r")), waits());

    let moved = run(&mut fsm, 2_000, Op::MoveJob { id: ready, tube: "b".into() });
    assert_eq!(moved, woke(Reply::Done, vec![event(&waiter, "r", got(ready))]));
    assert_eq!(fsm.job(ready).map(|j| j.tube), Some("b".to_string()));

    assert_eq!(quiet(&mut fsm, 2_000, Op::MoveJob { id: delayed, tube: "c".into() }), Ok(Reply::Done));
    assert_eq!(state(&fsm, delayed), JobState::Delayed { until: 31_000 });
    assert!(!fsm.has_tube("a"), "the emptied tube is gone");
    assert_eq!(fsm.peek_delayed("c").map(|j| j.id), Some(delayed));

    assert_eq!(quiet(&mut fsm, 2_000, Op::MoveJob { id: ready, tube: "c".into() }), Err(FsmError::WrongState));
    assert_eq!(quiet(&mut fsm, 2_000, Op::MoveJob { id: 999, tube: "c".into() }), Err(FsmError::NotFound));
    assert!(quiet(&mut fsm, 2_000, Op::MoveJob { id: delayed, tube: "bad name!".into() }).is_err());
}
