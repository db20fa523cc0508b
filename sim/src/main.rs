//! `coolbeans-sim`: runs seeds of the simulated cluster.
//!
//! - `--seed N`: one seed, in this process, printing its configuration first.
//! - `--seeds COUNT [--start S]`: seeds S, S+1, ... (S may be a commit hash: its first 12 hex
//!   digits are the start seed).
//! - `--seeds-file PATH`: the seeds listed in a file (one per line, `#` comments), e.g. the
//!   regression list.
//! - `--repeat K`: also runs the first K seeds a second time and fails if a trace differs.
//! - `--jobs J`: seeds run at once (default: the machine's cores).
//! - `--shape NODES,PROXIES,CLIENTS`: overrides the seeds' shape (for speed figures).
//! - `--expect-failure`: for planted bugs: stops at the first failing seed and exits 0 only
//!   if some seed failed.
//!
//! A sweep runs every seed in a child process (`--seed N`), exactly as a rerun would: tokio
//! seeds some choices (`watch` wake-ups, `select!`) from a process-wide counter, so two runs
//! in one process would not be alike. Each seed prints, as its last line,
//! `seed=<n> trace=<hex>`; a failing seed prints the command that reproduces it, and the
//! process exits non-zero.

/// mimalloc rather than glibc's malloc: a simulated run spent a fifth of its time in malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(not(madsim))]
fn main() {
    eprintln!("coolbeans-sim needs the simulator build: RUSTFLAGS=\"--cfg madsim\" (see `make sim`)");
    std::process::exit(2);
}

#[cfg(madsim)]
use std::collections::VecDeque;
#[cfg(madsim)]
use std::process::{Child, Command, Stdio};
#[cfg(madsim)]
use std::time::{Duration, Instant};

#[cfg(madsim)]
const USAGE: &str = "usage: coolbeans-sim --seed N | --seeds COUNT [--start S|COMMIT] | --seeds-file PATH \
                     [--repeat K] [--jobs J] [--shape N,F,C] [--expect-failure]";

#[cfg(madsim)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let shape = value("--shape");
    if let Some(seed) = value("--seed") {
        let Ok(seed) = seed.parse() else {
            eprintln!("not a seed: {seed}\n{USAGE}");
            std::process::exit(2);
        };
        std::process::exit(run_here(seed, shape.as_deref()));
    }
    let seeds = seeds_from(&value).unwrap_or_else(|why| {
        eprintln!("{why}\n{USAGE}");
        std::process::exit(2);
    });
    let number = |name: &str| value(name).and_then(|v| v.parse::<usize>().ok());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let sweep = Sweep { shape, jobs: number("--jobs").unwrap_or(cores).max(1), stop_at_failure: args.iter().any(|a| a == "--expect-failure") };
    std::process::exit(sweep.run(&seeds, number("--repeat").unwrap_or(0)));
}

/// Runs one seed in this process; answers the exit code.
#[cfg(madsim)]
fn run_here(seed: u64, shape: Option<&str>) -> i32 {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let mut config = coolbeans_sim::config::SeedConfig::derive(seed);
    let shape: Vec<u64> = shape.map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect()).unwrap_or_default();
    if let [nodes, proxies, clients] = shape[..] {
        (config.nodes, config.proxies, config.clients) = (nodes, proxies as u32, clients as u32);
    }
    println!("{config}");
    match coolbeans_sim::run_config(config) {
        Ok((trace, stats)) => {
            let sim_s = stats.sim_time.as_secs_f64();
            println!(
                "ok: {} calls ({} unknown), {} entries, {} snapshots received in chunks ({} resumed), {sim_s:.1} simulated s",
                stats.calls, stats.unknown, stats.entries, stats.snapshots, stats.snapshots_resumed
            );
            println!("seed={seed} trace={trace:016x}");
            0
        }
        Err((why, trace)) => {
            println!("FAILED seed {seed}: {why}");
            println!("reproduce: make sim SEED={seed}");
            println!("seed={seed} trace={trace:016x}");
            1
        }
    }
}

/// Seeds run as child processes, `jobs` at a time, their output printed in seed order.
#[cfg(madsim)]
struct Sweep {
    shape: Option<String>,
    jobs: usize,
    stop_at_failure: bool,
}

/// What a child printed about its seed.
#[cfg(madsim)]
struct Outcome {
    seed: u64,
    passed: bool,
    trace: Option<String>,
    sim_time: Duration,
}

#[cfg(madsim)]
impl Sweep {
    fn run(&self, seeds: &[u64], repeat: usize) -> i32 {
        let started = Instant::now();
        let outcomes = self.run_all(seeds, true);
        let mut failed: Vec<u64> = outcomes.iter().filter(|o| !o.passed).map(|o| o.seed).collect();
        let first: Vec<&Outcome> = outcomes.iter().filter(|o| o.passed).take(repeat).collect();
        let again = self.run_all(&first.iter().map(|o| o.seed).collect::<Vec<_>>(), false);
        for (a, b) in first.iter().zip(&again) {
            println!("repeat seed={} trace={}", b.seed, b.trace.as_deref().unwrap_or("none"));
            if a.trace != b.trace {
                println!("FAILED seed {}: not deterministic: trace {:?} then {:?}", a.seed, a.trace, b.trace);
                println!("reproduce: make sim SEED={}", a.seed);
                failed.push(a.seed);
            }
        }
        let real = started.elapsed().as_secs_f64().max(1e-9);
        let sim: f64 = outcomes.iter().chain(&again).map(|o| o.sim_time.as_secs_f64()).sum();
        let ran = outcomes.len() + again.len();
        println!(
            "{ran} runs of {} seeds, {} failed, {sim:.0} simulated s in {real:.1} real s with {} jobs: {:.0}x real time, {:.0} seeds per minute",
            seeds.len(),
            failed.len(),
            self.jobs,
            sim / real,
            ran as f64 * 60.0 / real
        );
        if self.stop_at_failure {
            return match failed.first() {
                Some(seed) => {
                    println!("caught: seed {seed} fails");
                    0
                }
                None => {
                    println!("NOT caught: every seed passed");
                    1
                }
            };
        }
        if failed.is_empty() {
            0
        } else {
            eprintln!("{} of {} seeds failed: {failed:?}", failed.len(), seeds.len());
            1
        }
    }

    /// Runs `seeds`, printing each child's output (all of it when `print` is set, else only
    /// failures) in seed order.
    fn run_all(&self, seeds: &[u64], print: bool) -> Vec<Outcome> {
        let mut running: VecDeque<(u64, Child)> = VecDeque::new();
        let mut outcomes = Vec::new();
        let mut next = seeds.iter();
        loop {
            while running.len() < self.jobs {
                let Some(&seed) = next.next() else { break };
                running.push_back((seed, self.spawn(seed)));
            }
            let Some((seed, child)) = running.pop_front() else { break };
            let output = child.wait_with_output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
            let output = output.unwrap_or_else(|e| format!("FAILED seed {seed}: could not run: {e}\n"));
            let outcome = parse(seed, &output);
            if print || !outcome.passed {
                print!("{output}");
            }
            let stop = self.stop_at_failure && !outcome.passed;
            outcomes.push(outcome);
            if stop {
                for (_, mut child) in running {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                break;
            }
        }
        outcomes
    }

    fn spawn(&self, seed: u64) -> Child {
        let exe = std::env::current_exe().expect("the simulator knows its own path");
        let mut command = Command::new(exe);
        command.arg("--seed").arg(seed.to_string()).stdout(Stdio::piped());
        if let Some(shape) = &self.shape {
            command.arg("--shape").arg(shape);
        }
        command.spawn().expect("the simulator can start itself")
    }
}

/// Reads a child's verdict, trace and simulated time from its output.
#[cfg(madsim)]
fn parse(seed: u64, output: &str) -> Outcome {
    let trace = output.lines().rev().find_map(|l| l.strip_prefix(&format!("seed={seed} trace="))).map(str::to_string);
    let ok = output.lines().find(|l| l.starts_with("ok: "));
    let sim_secs = ok.and_then(|l| l.split(", ").last()).and_then(|s| s.split(' ').next()).and_then(|s| s.parse::<f64>().ok());
    let passed = ok.is_some() && !output.contains("FAILED");
    if ok.is_none() && !output.contains("FAILED") {
        println!("FAILED seed {seed}: the run ended without a verdict (crashed?)\nreproduce: make sim SEED={seed}");
    }
    Outcome { seed, passed, trace, sim_time: Duration::from_secs_f64(sim_secs.unwrap_or(0.0)) }
}

/// The seeds the arguments name.
#[cfg(madsim)]
fn seeds_from(value: &dyn Fn(&str) -> Option<String>) -> Result<Vec<u64>, String> {
    let number = |v: String| v.parse::<u64>().map_err(|_| format!("not a number: {v}"));
    if let Some(path) = value("--seeds-file") {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let lines = text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty());
        return lines.map(|l| number(l.to_string())).collect();
    }
    let count = number(value("--seeds").ok_or("no seeds named")?)?;
    let start = match value("--start") {
        None => 1,
        Some(s) => s.parse::<u64>().or_else(|_| {
            let hex: String = s.chars().take(12).collect();
            u64::from_str_radix(&hex, 16).map_err(|_| format!("--start takes a number or a commit hash, not {s}"))
        })?,
    };
    Ok((start..start.saturating_add(count)).collect())
}
