//! State-machine throughput: `cargo bench --bench fsm` (or `make bench-fsm`).
//!
//! Measures the pure machine on one core, no I/O: put/reserve/delete cycles with 100k stored
//! jobs across 100 tubes and 10k clients waiting, and the cost of one operation with 1k, 100k
//! and 1M jobs stored. Wall-clock time is read here, in the benchmark, never in the machine.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use coolbeans::fsm::{ClientKey, Fsm, Op, Reply, ReserveOutcome};

const TUBES: usize = 100;
const BODY: &[u8] = b"a job body of about sixty bytes, as small jobs usually are...";

fn tube_name(i: usize) -> String {
    format!("tube-{}", i % TUBES)
}

fn put(tube: String, time: u64) -> (Op, u64) {
    let op = Op::Put { client: None, tube, pri: 100, delay_secs: 0, ttr_secs: 60, body: Bytes::from_static(BODY) };
    (op, time)
}

/// A machine holding `jobs` ready jobs spread over the tubes, and one worker per tube watching
/// only its tube.
fn preload(jobs: usize) -> (Fsm, Vec<ClientKey>) {
    let mut fsm = Fsm::new();
    let workers: Vec<ClientKey> = (0..TUBES).map(|i| ClientKey::new("bench", &format!("worker-{i}"))).collect();
    for (i, worker) in workers.iter().enumerate() {
        fsm.apply(Op::Watch { client: worker.clone(), tube: tube_name(i) }, 0);
        fsm.apply(Op::Ignore { client: worker.clone(), tube: "default".into() }, 0);
    }
    for i in 0..jobs {
        let (op, now) = put(tube_name(i), 0);
        fsm.apply(op, now);
    }
    (fsm, workers)
}

/// Adds `count` clients waiting (with a timeout) on tubes no job is put into.
fn add_waiters(fsm: &mut Fsm, count: usize) {
    for i in 0..count {
        let client = ClientKey::new("bench", &format!("waiter-{i}"));
        let op = Op::Reserve { client, request_id: format!("r{i}"), timeout_secs: Some(3600), tubes: vec![format!("idle-{}", i % TUBES)] };
        let applied = fsm.apply(op, 0);
        assert_eq!(applied.reply, Ok(Reply::Reserve(None)), "waiter {i} waits");
    }
}

/// One put, one reserve and one delete by the tube's worker: three operations. The clock
/// moves 1 ms a cycle, so the timer queue sees inserts, removals and real deadlines.
fn cycle(fsm: &mut Fsm, workers: &[ClientKey], i: usize, now: u64) {
    let (op, _) = put(tube_name(i), now);
    black_box(fsm.apply(op, now));
    let worker = &workers[i % TUBES];
    let reserve = Op::Reserve { client: worker.clone(), request_id: String::new(), timeout_secs: Some(0), tubes: Vec::new() };
    let applied = fsm.apply(reserve, now);
    let Ok(Reply::Reserve(Some(ReserveOutcome::Reserved { id, .. }))) = applied.reply else {
        panic!("cycle {i}: the worker got no job: {:?}", applied.reply)
    };
    let delete = fsm.apply(Op::Delete { client: Some(worker.clone()), id }, now);
    assert_eq!(delete.reply, Ok(Reply::Done));
}

/// Runs `cycles` cycles and returns nanoseconds per operation.
fn measure(fsm: &mut Fsm, workers: &[ClientKey], cycles: usize) -> f64 {
    let start_ms = fsm.now_ms();
    let started = Instant::now();
    for i in 0..cycles {
        cycle(fsm, workers, i, start_ms + i as u64);
    }
    started.elapsed().as_nanos() as f64 / (cycles * 3) as f64
}

fn main() {
    // Cargo passes --bench; a filter argument is accepted and ignored.
    let quick = std::env::args().any(|a| a == "--quick");
    let cycles = if quick { 50_000 } else { 300_000 };

    println!("scenario: put+reserve+delete cycles, 100k jobs stored across {TUBES} tubes, 10k clients waiting");
    let (mut fsm, workers) = preload(100_000);
    add_waiters(&mut fsm, 10_000);
    measure(&mut fsm, &workers, cycles / 10); // warm-up
    let ns = measure(&mut fsm, &workers, cycles);
    println!("  {:>10.0} ops/s  ({ns:.0} ns/op)", 1e9 / ns);
    fsm.check_invariants().expect("invariants hold after the run");

    println!("per-operation cost by jobs stored (same cycle, no waiters):");
    let mut costs = Vec::new();
    for jobs in [1_000, 100_000, 1_000_000] {
        let (mut fsm, workers) = preload(jobs);
        measure(&mut fsm, &workers, cycles / 10);
        let ns = measure(&mut fsm, &workers, cycles);
        println!("  {jobs:>9} jobs: {ns:>7.0} ns/op  {:>10.0} ops/s", 1e9 / ns);
        costs.push(ns);
    }
    println!("  cost ratio 1M/1k: {:.2}x", costs[2] / costs[0]);

    println!("snapshot of 1M jobs: each step a driver would take (ms)");
    let (fsm, _) = preload(1_000_000);
    let started = Instant::now();
    let copy = black_box(fsm.clone());
    let clone_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    let proto = black_box(copy.snapshot());
    let proto_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    let bytes = black_box(prost::Message::encode_to_vec(&proto));
    let encode_ms = started.elapsed().as_secs_f64() * 1e3;
    println!("  clone {clone_ms:.0}  to proto {proto_ms:.0}  encode {encode_ms:.0} ({} MB)", bytes.len() / 1_000_000);
}
