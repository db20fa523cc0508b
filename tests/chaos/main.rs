//! Chaos on real processes: three `cluster-node`s with proxies inside them and a `coolbeans
//! beanstalkd` proxy serve clients that put, reserve, delete, release, bury, touch and
//! kick, while a bounded loop SIGKILLs, SIGTERMs and restarts random processes; then every
//! process is brought back, every job is drained, and the simulator's own checkers judge what
//! the clients saw: no acknowledged put lost, no job that was never put, no job held by two
//! clients at once, each job's history linearizable.
//!
//! `CHAOS_SECONDS` (default 20, what CI runs) is how long the faults last, `make chaos
//! SECONDS=60` a longer run; `CHAOS_SEED` replays a fault schedule and the clients' choices
//! (not the processes' timing). The run prints its figures and verdicts to stderr, uncaptured.
#![cfg(not(madsim))]

#[path = "../common/mod.rs"]
mod common;
mod conn;
mod drain;
mod faults;
mod record;
mod worker;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use coolbeans::history::check::{holders, linearizable, lost, Violation};
use coolbeans::history::{Answer, Call, History};

use common::{free_port, loopback, Proc};
use faults::{Chaos, Target};
use record::Recorder;
use worker::Worker;

/// Clients making calls during the faults.
const CLIENTS: u32 = 6;
/// Tubes they spread over (client `i` uses tube `i % TUBES`).
const TUBES: u32 = 3;
/// Load on a healed cluster after the faults, before the clients stop.
const CALM: Duration = Duration::from_secs(3);
/// Bounds on the phases after the faults, generous for a loaded 2-core machine.
const HEAL_LIMIT: Duration = Duration::from_secs(90);
const CLIENTS_DONE_LIMIT: Duration = Duration::from_secs(90);
/// How long the drain may go without deleting a job: jobs held by sessions of a killed proxy
/// come back only when its 10 s lease runs out.
const DRAIN_STALL: Duration = Duration::from_secs(60);
/// The string a proxy logs when its lease ran out while it lived.
const LEASE_LOST: &str = "the lease ran out before it was renewed";

/// One line of the run's report on stderr, past the test harness's capture, so CI shows it.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "chaos: {line}");
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

/// Kills, stops and restarts under load lose no acknowledged put, invent no job and give no
/// job to two clients at once: the simulator's checkers judge every call of the run after a
/// drain that leaves the cluster empty.
#[test]
fn chaos_on_real_processes() {
    let seconds = env_number("CHAOS_SECONDS").unwrap_or(20);
    let seed = env_number("CHAOS_SEED").unwrap_or_else(|| u64::from(std::process::id()) ^ coolbeans::clock::now_ms());
    say(&format!("seed {seed}, {seconds} s of faults, {CLIENTS} clients; again: CHAOS_SEED={seed} CHAOS_SECONDS={seconds}"));
    let dir = common::temp_dir("chaos");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime for the helpers");
    let record = Arc::new(Recorder::new());
    let (mut chaos, addrs, members) = start(&dir, seed, &runtime, record.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<JoinHandle<()>> = (0..CLIENTS)
        .map(|id| {
            let worker = Worker::new(id, format!("tube{}", id % TUBES), addrs.clone(), seed, record.clone(), stop.clone());
            std::thread::spawn(move || worker.run())
        })
        .collect();

    chaos.run(Duration::from_secs(seconds));
    chaos.heal(HEAL_LIMIT).unwrap_or_else(|why| panic!("{why}; logs in {}", dir.display()));
    runtime.block_on(common::await_leader(&members, HEAL_LIMIT, &dir));
    for addr in &addrs {
        runtime.block_on(common::wait_for_port(*addr, HEAL_LIMIT));
    }
    say(&format!("{:7.2}s every process runs again; {CALM:?} of calm", record.now().as_secs_f64()));
    std::thread::sleep(CALM);
    stop.store(true, Ordering::Relaxed);
    await_clients(clients, &dir);

    let drained_at = Instant::now();
    let mut drainer = drain::Drainer::new(CLIENTS, &record, &addrs);
    drainer.drain(DRAIN_STALL).unwrap_or_else(|why| panic!("{why}; logs in {}", dir.display()));
    say(&format!("drained {} jobs in {:.1}s; the cluster holds none", drainer.deleted, drained_at.elapsed().as_secs_f64()));

    for &(proxy, at) in &chaos.tally.stopped_proxies {
        record.proxy_stopped(proxy, at);
    }
    lost_leases(&chaos, &record, &dir);
    let history = record.history();
    report(&history, &chaos);
    let verdicts = judge(&history);
    assert!(chaos.tally.misbehaved.is_empty(), "processes misbehaved: {:?}; logs in {}", chaos.tally.misbehaved, dir.display());
    if let Err(v) = verdicts {
        let dump = dir.join("history.txt");
        let _ = std::fs::write(&dump, format!("{history:#?}"));
        panic!("{v}\nthe history is in {}; logs in {}", dump.display(), dir.display());
    }
    assert_no_panics(&dir);
    drop(chaos);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts the cluster (proxies inside its nodes) and the standalone proxy; answers the
/// fault loop over them, the proxies' addresses (the nodes' first) and the members.
fn start(dir: &Path, seed: u64, runtime: &tokio::runtime::Runtime, record: Arc<Recorder>) -> (Chaos, Vec<SocketAddr>, Vec<(u64, SocketAddr)>) {
    let led = runtime.block_on(common::start_cluster_with(dir, "--beanstalkd-listen"));
    let upstreams = led.members.iter().map(|(_, a)| a.to_string()).collect::<Vec<_>>().join(",");
    let standalone = loopback(free_port());
    let args = vec!["beanstalkd".into(), "--listen".into(), standalone.to_string(), "--upstreams".into(), upstreams];
    let mut proxy = Proc::new(args, dir.join("proxy.log"));
    proxy.start();
    let mut addrs = led.flagged.clone();
    addrs.push(standalone);
    for addr in &addrs {
        runtime.block_on(common::wait_for_port(*addr, Duration::from_secs(30)));
    }
    let mut targets: Vec<Target> =
        led.nodes.into_iter().enumerate().map(|(i, node)| Target::running(format!("node {}", node.id), node.proc, true, i, addrs[i])).collect();
    targets.push(Target::running("proxy".into(), proxy, false, addrs.len() - 1, standalone));
    (Chaos::new(targets, seed, record), addrs, led.members)
}

/// Waits for every client to hang up; fails after `CLIENTS_DONE_LIMIT` (each call's patience
/// bounds how long a client takes to notice the stop).
fn await_clients(clients: Vec<JoinHandle<()>>, dir: &Path) {
    let deadline = Instant::now() + CLIENTS_DONE_LIMIT;
    while !clients.iter().all(JoinHandle::is_finished) {
        assert!(Instant::now() < deadline, "clients still busy {CLIENTS_DONE_LIMIT:?} after the stop; logs in {}", dir.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    for client in clients {
        client.join().expect("a client thread");
    }
}

/// A proxy whose lease ran out while it lived had its clients' sessions ended at a time
/// the test does not know: every hold taken through it counts as at risk.
fn lost_leases(chaos: &Chaos, record: &Recorder, dir: &Path) {
    for target in &chaos.targets {
        let log = std::fs::read_to_string(&target.proc.log).unwrap_or_default();
        let times = log.matches(LEASE_LOST).count();
        if times > 0 {
            say(&format!("{}'s lease ran out {times} times (see {}): its clients' holds count as at risk", target.name, dir.display()));
            record.proxy_lost_lease(target.proxy);
        }
    }
}

/// Prints what the run did: faults, calls by kind, acknowledged puts, unknown outcomes.
fn report(history: &History, chaos: &Chaos) {
    let t = &chaos.tally;
    say(&format!("faults: {} SIGKILL, {} SIGTERM, {} restarts", t.kills, t.stops, t.restarts));
    let mut kinds: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for r in &history.records {
        let kind = match r.call {
            Call::Put { .. } => "put",
            Call::Reserve { .. } => "reserve",
            Call::Delete(_) => "delete",
            Call::Release { .. } => "release",
            Call::Bury { .. } => "bury",
            Call::Touch(_) => "touch",
            Call::Kick { .. } => "kick",
            Call::Peek(_) => "peek",
            _ => "other",
        };
        let entry = kinds.entry(kind).or_default();
        entry.0 += 1;
        entry.1 += u64::from(matches!(r.answer, None | Some(Answer::Other(_))));
    }
    let calls: Vec<String> = kinds.iter().map(|(kind, (n, unknown))| format!("{kind} {n} ({unknown} unknown)")).collect();
    say(&format!("calls: {}", calls.join(", ")));
    let acknowledged = history.records.iter().filter(|r| matches!(r.answer, Some(Answer::Inserted(_)))).count();
    say(&format!("acknowledged puts: {acknowledged}; hold risks: {}", history.risks.len()));
}

/// Runs the simulator's checkers on the history, printing each verdict; answers the first
/// violation.
fn judge(history: &History) -> Result<(), Violation> {
    let lost = lost::check(history);
    say(&format!("checker lost (no acknowledged put lost, no job never put): {}", verdict(&lost)));
    let holders = holders::check(history);
    say(&format!("checker holders (no job held by two clients at once): {}", verdict(&holders)));
    let linear = linearizable::check_with_stats(history);
    let shown = match &linear {
        Ok(s) => format!("ok ({} jobs explained, {} inconclusive, {} skipped)", s.jobs_checked, s.jobs_inconclusive, s.jobs_skipped),
        Err(v) => format!("FAILED: {v}"),
    };
    say(&format!("checker linearizable (each job's history): {shown}"));
    lost.and(holders).and(linear.map(|_| ()))
}

fn verdict<T>(result: &Result<T, Violation>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(v) => format!("FAILED: {v}"),
    }
}

/// No process panicked: a panic in a log is a bug, even if the run went on.
fn assert_no_panics(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("the run's dir").flatten() {
        let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(!log.contains("panicked"), "a process panicked: see {}", entry.path().display());
    }
}
