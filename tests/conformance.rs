#![cfg(not(madsim))]
//! The beanstalkd conformance suite: every conversation in `tests/conversations/*.conv` is
//! played against every available server, each conversation on a fresh server process, and
//! the answers must match byte for byte (modulo the normaliser in `support::matching`).
//!
//! Targets, one test each:
//! - the real `beanstalkd`, if it is on PATH: the oracle the conversations were written against;
//! - `coolbeans serve -l 127.0.0.1 -p PORT`: one node with the beanstalkd proxy;
//! - three `coolbeans cluster-node`s behind `coolbeans beanstalkd --listen ... --upstreams ...`.
//!
//! A coolbeans target whose subcommand does not exist yet is skipped, loudly. The format of
//! conversations is described in `support/conv.rs`. Environment:
//! `CONFORMANCE_ONLY=a,b` plays only conversations whose names contain one of the words;
//! `CONFORMANCE_JOBS=N` plays N conversations at once (default 12, 4 for clusters);
//! `CONFORMANCE_VERBOSE=1` prints every transcript;
//! `CONFORMANCE_BEANSTALKD=/path/to/beanstalkd` picks the oracle binary (default: PATH), for
//! example a 1.13 built from source, which plays the 1.13-only conversations too.

mod support;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::conv::{self, Action, Conversation};
use support::matching::Dialect;
use support::runner::{self, Failure};
use support::server::{self, Server, StartError};

/// Conversations played at once against a single-process server. Most of a conversation's time
/// is spent waiting on timers, so this is well above the core count.
const PARALLEL_CONVERSATIONS_DEFAULT: usize = 12;

/// Conversations played at once against clusters: each is four processes with Raft timers, and
/// a starved cluster answers late enough to upset the conversations' timers.
const PARALLEL_CLUSTERS_DEFAULT: usize = 4;

/// How long a single server may take to accept its first connection.
const SERVE_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A cluster elects a leader before the proxy can answer.
const CLUSTER_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts of a target on fresh ports before its failure counts.
const PORT_TRIES: usize = 3;

/// coolbeans follows beanstalkd 1.13.
const COOLBEANS_DIALECT: Dialect = Dialect { version: (1, 13), quote_bare_strings: false, loses_ttr_timers: false };

/// A kind of server to play conversations against.
struct Target {
    /// For reports: `beanstalkd 1.12`, `coolbeans serve`, ...
    label: String,
    dialect: Dialect,
    /// Starts a fresh server; its logs go under the given directory, prefixed by the name.
    start: fn(&Path, &str) -> Result<Server, StartError>,
    /// Conversations played at once, unless `CONFORMANCE_JOBS` says otherwise.
    parallel: usize,
}

/// What became of one conversation.
enum Verdict {
    Passed,
    Skipped(String),
    Failed(Failure),
}

/// Every conversation file parses, so a script error shows even where no server is installed.
#[test]
fn conversations_parse() {
    let conversations = load_conversations();
    assert!(conversations.len() >= 30, "only {} conversations found", conversations.len());
}

/// The conversations hold for the real beanstalkd: they describe beanstalkd, not our reading of it.
#[test]
fn beanstalkd_oracle() {
    let Some(dialect) = beanstalkd_dialect() else {
        eprintln!("SKIPPED: beanstalkd is not on PATH (CI installs it; `apt-get install beanstalkd`)");
        return;
    };
    let label = format!("beanstalkd {}.{}", dialect.version.0, dialect.version.1);
    run_target(&Target { label, dialect, start: start_beanstalkd, parallel: PARALLEL_CONVERSATIONS_DEFAULT });
}

/// `coolbeans serve` answers every conversation as beanstalkd 1.13 does.
#[test]
fn coolbeans_serve() {
    run_target(&Target {
        label: "coolbeans serve".into(),
        dialect: COOLBEANS_DIALECT,
        start: start_coolbeans_serve,
        parallel: PARALLEL_CONVERSATIONS_DEFAULT,
    });
}

/// The proxy before a three-node cluster answers every conversation as beanstalkd 1.13 does.
#[test]
fn coolbeans_cluster() {
    run_target(&Target {
        label: "coolbeans cluster".into(),
        dialect: COOLBEANS_DIALECT,
        start: start_coolbeans_cluster,
        parallel: PARALLEL_CLUSTERS_DEFAULT,
    });
}

fn conversations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("conversations")
}

fn load_conversations() -> Vec<Conversation> {
    conv::load_dir(&conversations_dir()).unwrap_or_else(|e| panic!("bad conversation files:\n{e}"))
}

/// The oracle binary: `CONFORMANCE_BEANSTALKD`, else `beanstalkd` on PATH.
fn beanstalkd_program() -> PathBuf {
    std::env::var_os("CONFORMANCE_BEANSTALKD").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("beanstalkd"))
}

/// The dialect of the oracle, from `beanstalkd -v` ("beanstalkd 1.12").
fn beanstalkd_dialect() -> Option<Dialect> {
    let output = std::process::Command::new(beanstalkd_program()).arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    let version = text
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split_once('.'))
        .and_then(|(major, minor)| Some((major.parse().ok()?, minor.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok()?)))
        .unwrap_or_else(|| panic!("cannot read a version in `beanstalkd -v`: {text:?}"));
    Some(Dialect { version, quote_bare_strings: version < (1, 13), loses_ttr_timers: true })
}

/// Starts a target again on fresh ports when it fails, at most `PORT_TRIES` times in all: a
/// port can be taken by another process between its choice and its bind (the server then
/// exits). `start` gets the name to give this try's logs and data.
fn on_fresh_ports(name: &str, start: impl Fn(&str) -> Result<Server, StartError>) -> Result<Server, StartError> {
    let mut last_error = String::new();
    for port_try in 0..PORT_TRIES {
        let try_name = if port_try == 0 { name.to_string() } else { format!("{name}.port-{port_try}") };
        match start(&try_name) {
            Err(StartError::Failed(e)) => last_error = e,
            started => return started,
        }
    }
    Err(StartError::Failed(last_error))
}

/// One process that listens where beanstalkd's `-l 127.0.0.1 -p PORT` say, after `leading`
/// arguments.
fn start_single(program: &Path, leading: &[&str], logs: &Path, name: &str) -> Result<Server, StartError> {
    on_fresh_ports(name, |name| {
        let port = server::free_port();
        let mut args: Vec<String> = leading.iter().map(|s| s.to_string()).collect();
        args.extend(["-l".into(), "127.0.0.1".into(), "-p".into(), port.to_string()]);
        let spawned = server::spawn(program, &args, &logs.join(format!("{name}.log")))?;
        server::wait_until_serving(([127, 0, 0, 1], port).into(), vec![spawned], 0, SERVE_STARTUP_TIMEOUT)
    })
}

fn start_beanstalkd(logs: &Path, name: &str) -> Result<Server, StartError> {
    start_single(&beanstalkd_program(), &[], logs, name)
}

fn coolbeans_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_coolbeans"))
}

fn start_coolbeans_serve(logs: &Path, name: &str) -> Result<Server, StartError> {
    start_single(coolbeans_binary(), &["serve"], logs, name)
}

/// CLUSTER TARGET: three `cluster-node`s (flags as in `tests/cluster_failover.rs`) and the
/// beanstalkd proxy before them. Signals go to the proxy. Until the proxy exists
/// (`coolbeans beanstalkd` is rejected by clap) the target is skipped. Adjust the flags here if
/// they change. The conversation starts once a node says it leads, so that an election does not
/// count against the conversation's timers.
fn start_coolbeans_cluster(logs: &Path, name: &str) -> Result<Server, StartError> {
    on_fresh_ports(name, |name| start_cluster_once(logs, name))
}

fn start_cluster_once(logs: &Path, name: &str) -> Result<Server, StartError> {
    let proxy_port = server::free_port();
    let node_addrs: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", server::free_port())).collect();
    // Start the proxy first: if the subcommand does not exist, no node is started at all.
    let proxy_args = vec!["beanstalkd".into(), "--listen".into(), format!("127.0.0.1:{proxy_port}"), "--upstreams".into(), node_addrs.join(",")];
    let mut processes = vec![server::spawn(coolbeans_binary(), &proxy_args, &logs.join(format!("{name}.proxy.log")))?];
    let peers: Vec<String> = node_addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
    for (i, addr) in node_addrs.iter().enumerate() {
        let id = (i + 1).to_string();
        let data = logs.join(format!("{name}.data")).join(format!("node-{id}"));
        let args: Vec<String> = vec![
            "cluster-node".into(),
            "--node-id".into(),
            id.clone(),
            "--listen".into(),
            addr.clone(),
            "--data-dir".into(),
            data.display().to_string(),
            "--peers".into(),
            peers.join(","),
        ];
        match server::spawn(coolbeans_binary(), &args, &logs.join(format!("{name}.node-{id}.log"))) {
            Ok(p) => processes.push(p),
            Err(e) => {
                server::kill_all(&mut processes);
                return Err(e);
            }
        }
    }
    if let Err(e) = wait_for_leader(&node_addrs, &mut processes) {
        server::kill_all(&mut processes);
        return Err(e);
    }
    server::wait_until_serving(([127, 0, 0, 1], proxy_port).into(), processes, 0, CLUSTER_STARTUP_TIMEOUT)
}

/// Polls `coolbeans cluster-client is-leader` on every node until one answers `true`.
fn wait_for_leader(node_addrs: &[String], processes: &mut [server::Spawned]) -> Result<(), StartError> {
    let started = Instant::now();
    while started.elapsed() < CLUSTER_STARTUP_TIMEOUT {
        if let Some(error) = server::exited(processes) {
            return Err(error);
        }
        for addr in node_addrs {
            let output = std::process::Command::new(coolbeans_binary())
                .args(["cluster-client", "is-leader", "--node-addr", addr])
                .output()
                .map_err(|e| StartError::Failed(format!("cluster-client is-leader: {e}")))?;
            if String::from_utf8_lossy(&output.stdout).trim() == "true" {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(StartError::Failed(format!("no node of {node_addrs:?} led within {CLUSTER_STARTUP_TIMEOUT:?}")))
}

/// Plays every conversation against `target` and fails the test if any differs.
fn run_target(target: &Target) {
    let conversations = selected(load_conversations());
    let logs = std::env::temp_dir().join(format!("coolbeans-conformance-{}", std::process::id())).join(target.label.replace(' ', "-"));
    std::fs::create_dir_all(&logs).expect("create the log directory");
    match (target.start)(&logs, "probe") {
        Ok(probe) => drop(probe),
        Err(StartError::Unavailable(why)) => {
            eprintln!(
                "\n==========\nSKIPPED: {} not available ({why}); {} conversations not played\n==========\n",
                target.label,
                conversations.len()
            );
            return;
        }
        Err(StartError::Failed(why)) => panic!("{} does not start: {why}", target.label),
    }
    let started = Instant::now();
    let verdicts = play_all(target, &conversations, &logs);
    let failures = report(target, &verdicts, started.elapsed());
    if failures > 0 {
        panic!("{failures} of {} conversations differ against {}; logs in {}", conversations.len(), target.label, logs.display());
    }
    let _ = std::fs::remove_dir_all(&logs);
    if let Some(parent) = logs.parent() {
        let _ = std::fs::remove_dir(parent); // only once empty: other targets may still be running
    }
}

/// The conversations named by `CONFORMANCE_ONLY`, longest first so the pool drains evenly.
fn selected(conversations: Vec<Conversation>) -> Vec<Conversation> {
    let only = std::env::var("CONFORMANCE_ONLY").unwrap_or_default();
    let words: Vec<&str> = only.split(',').map(str::trim).filter(|w| !w.is_empty()).collect();
    let mut chosen: Vec<Conversation> = conversations.into_iter().filter(|c| words.is_empty() || words.iter().any(|w| c.name.contains(w))).collect();
    chosen.sort_by_key(|c| std::cmp::Reverse(waiting_ms(c)));
    chosen
}

/// The time a conversation spends in `sleep` and `silent`: a lower bound of its duration.
fn waiting_ms(conversation: &Conversation) -> u64 {
    conversation
        .steps
        .iter()
        .map(|s| match s.action {
            Action::Sleep { wait_ms } | Action::Silent { wait_ms, .. } => wait_ms,
            _ => 0,
        })
        .sum()
}

fn play_all<'a>(target: &Target, conversations: &'a [Conversation], logs: &Path) -> Vec<(&'a Conversation, Verdict, Duration)> {
    let jobs = std::env::var("CONFORMANCE_JOBS").ok().and_then(|j| j.parse().ok()).unwrap_or(target.parallel).max(1);
    let queue: Mutex<VecDeque<&Conversation>> = Mutex::new(conversations.iter().collect());
    let done = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(conversations.len()) {
            scope.spawn(|| loop {
                let Some(conversation) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else { break };
                let started = Instant::now();
                let verdict = play_one(target, conversation, logs);
                done.lock().unwrap_or_else(|e| e.into_inner()).push((conversation, verdict, started.elapsed()));
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    done
}

fn play_one(target: &Target, conversation: &Conversation, logs: &Path) -> Verdict {
    if let Some(since) = &conversation.since {
        if target.dialect.version < since.version {
            return Verdict::Skipped(format!("{}.{}-only: {}", since.version.0, since.version.1, since.reason));
        }
    }
    let mut server = match (target.start)(logs, &conversation.name) {
        Ok(server) => server,
        Err(StartError::Unavailable(why) | StartError::Failed(why)) => {
            return Verdict::Failed(Failure { step: None, reason: format!("the server did not start: {why}"), transcript: Vec::new() })
        }
    };
    match runner::run(conversation, &mut server, target.dialect) {
        Ok(transcript) => {
            if std::env::var_os("CONFORMANCE_VERBOSE").is_some() {
                eprintln!("--- {} [{}]\n{}", conversation.name, target.label, transcript.join("\n"));
            }
            Verdict::Passed
        }
        Err(mut failure) => {
            failure.reason = format!("{} (server logs: {:?})", failure.reason, server.logs);
            Verdict::Failed(failure)
        }
    }
}

/// Prints one line per conversation and the details of each failure; answers the failures.
fn report(target: &Target, verdicts: &[(&Conversation, Verdict, Duration)], elapsed: Duration) -> usize {
    let (mut passed, mut skipped, mut failed) = (0, 0, 0);
    for (conversation, verdict, took) in verdicts {
        match verdict {
            Verdict::Passed => {
                passed += 1;
                eprintln!("ok      {:<40} {:>6.2} s", conversation.name, took.as_secs_f64());
            }
            Verdict::Skipped(why) => {
                skipped += 1;
                eprintln!("skipped {:<40} {why}", conversation.name);
            }
            Verdict::Failed(_) => {
                failed += 1;
                eprintln!("FAILED  {:<40} {:>6.2} s", conversation.name, took.as_secs_f64());
            }
        }
    }
    for (conversation, verdict, _) in verdicts {
        if let Verdict::Failed(failure) = verdict {
            eprintln!("\n=== FAILED: {} against {}", conversation.name, target.label);
            eprintln!("    {}: {}", conversation.path.display(), conversation.summary);
            if let Some((line_no, source)) = &failure.step {
                eprintln!("    first difference at script line {line_no}: `{source}`");
            }
            eprintln!("    {}", failure.reason);
            eprintln!("    transcript:");
            for line in &failure.transcript {
                eprintln!("      {line}");
            }
        }
    }
    eprintln!("\n{}: {passed} passed, {skipped} skipped, {failed} failed, in {:.1} s\n", target.label, elapsed.as_secs_f64());
    failed
}
