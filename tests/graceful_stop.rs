//! A graceful stop on real processes: the leader of a 3-node cluster gets SIGTERM while
//! clients put, reserve and delete through a `coolbeans beanstalkd` proxy. A new leader
//! is in place before the old one exits, the old one exits 0 saying it stopped, it is still a
//! member, and no client sees an error line.
#![cfg(not(madsim))]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{cluster, free_port, loopback, status, temp_dir, Proc};

/// What the clients saw: completed put+reserve+delete rounds, and every unexpected answer.
#[derive(Default)]
struct Seen {
    rounds: AtomicU64,
    errors: Mutex<Vec<String>>,
}

/// One client: put a job, reserve one, delete it, until told to stop; an answer other than
/// the expected one is noted (and the client stops, its connection out of step).
fn client(addr: SocketAddr, name: usize, stop: Arc<AtomicBool>, seen: Arc<Seen>) {
    let stream = TcpStream::connect(addr).expect("connect to the proxy");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let mut line = |writer: &mut TcpStream, command: &[u8]| -> String {
        writer.write_all(command).expect("write");
        let mut line = String::new();
        if let Err(e) = reader.read_line(&mut line) {
            return format!("read failed: {e}");
        }
        if let Some(len) = line.strip_prefix("RESERVED ").and_then(|rest| rest.split_whitespace().nth(1)) {
            let mut body = vec![0; len.trim().parse::<usize>().unwrap_or(0) + 2];
            if reader.read_exact(&mut body).is_err() {
                return "body cut".into();
            }
        }
        line.trim_end().to_string()
    };
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let body = format!("client {name} round {round}");
        let put = line(&mut writer, format!("put 10 0 60 {}\r\n{body}\r\n", body.len()).as_bytes());
        let reserved = if put.starts_with("INSERTED ") {
            line(&mut writer, b"reserve-with-timeout 10\r\n")
        } else {
            put
        };
        let deleted = match reserved.strip_prefix("RESERVED ").and_then(|rest| rest.split(' ').next()) {
            Some(id) => line(&mut writer, format!("delete {id}\r\n").as_bytes()),
            None => reserved,
        };
        if deleted != "DELETED" {
            seen.errors.lock().expect("lock").push(format!("client {name} round {round}: {deleted}"));
            return;
        }
        seen.rounds.fetch_add(1, Ordering::Relaxed);
        round += 1;
    }
}

/// A node's log written with `--log-format json`: one object per line.
struct Log(Vec<serde_json::Value>);

impl Log {
    fn read(path: &std::path::Path) -> Log {
        let text = std::fs::read_to_string(path).expect("the node's log");
        Log(text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))).collect())
    }

    fn position(&self, message: &str) -> Option<usize> {
        self.0.iter().position(|event| event["message"] == message)
    }

    fn event(&self, message: &str) -> &serde_json::Value {
        let at = self.position(message).unwrap_or_else(|| panic!("no {message:?} in the log: {:?}", self.0));
        &self.0[at]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_leadership_over_and_no_client_sees_an_error() {
    let dir = temp_dir("graceful-stop");
    let mut nodes = cluster(&dir, |_| vec!["--log-format".into(), "json".into()]);
    for n in &mut nodes {
        n.proc.start();
    }
    let members: Vec<(u64, SocketAddr)> = nodes.iter().map(|n| (n.id, n.addr)).collect();
    let old = common::await_leader(&members, Duration::from_secs(15), &dir).await;
    let (_proxy, proxy_addr) = common::start_proxy(&dir, &members).await;

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let clients: Vec<_> = (0..4)
        .map(|name| {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || client(proxy_addr, name, stop, seen))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = seen.rounds.load(Ordering::Relaxed);
    assert!(before > 0, "the clients make progress before the stop; logs in {}", dir.display());

    // The log must show a snapshot before the stop: under load, 200 entries may take longer
    // than the second above.
    let leader_log = dir.join(format!("node-{old}.log"));
    let waited = Instant::now();
    while !std::fs::read_to_string(&leader_log).is_ok_and(|log| log.contains("snapshot taken; log compacted")) {
        assert!(waited.elapsed() < Duration::from_secs(30), "the leader took no snapshot under load; logs in {}", dir.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let leader = nodes.iter_mut().find(|n| n.id == old).expect("the leader's process");
    let child = leader.proc.child.as_mut().expect("running");
    // SAFETY: kill(2) on a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let others: Vec<(u64, SocketAddr)> = members.iter().copied().filter(|(id, _)| *id != old).collect();
    let signalled = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(signalled.elapsed() < Duration::from_secs(20), "the old leader did not exit; logs in {}", dir.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let stopped_in = signalled.elapsed();
    assert!(exit.success(), "the old leader exits 0 after SIGTERM, not {exit}; logs in {}", dir.display());
    // The old leader logs the leader it saw take over, before it stops; the survivors agree.
    let log = Log::read(&dir.join(format!("node-{old}.log")));
    let handed = log.event("leadership handed over");
    let (new, term) = (handed["leader"].as_u64().expect("leader"), handed["term"].as_u64().expect("term"));
    assert!(new != old && new != 0, "{handed}");
    let survivors = common::await_leader(&others, Duration::from_secs(10), &dir).await;
    assert_eq!(survivors, new, "the survivors follow the leader the old one handed over to");
    assert!(log.position("leadership handed over") < log.position("stopped; everything written is durable"), "handed over, then stopped");
    // Each line a JSON object; the events an operator follows carry the node and its term.
    for message in [
        "log recovered",
        "leadership changed",
        "snapshot taken; log compacted",
        "handing leadership over before stopping",
        "stopped; everything written is durable",
    ] {
        let event = log.event(message);
        assert_eq!(event["node"].as_u64(), Some(old), "{event}");
        assert!(event["term"].as_u64().is_some_and(|t| t > 0), "{event}");
    }
    assert!(log.event("log recovered")["entries"].is_u64() && log.event("log recovered")["ms"].is_u64());
    assert_eq!(log.event("stopping")["signal"], "SIGTERM");
    let status = status(others[0].1).await.expect("a survivor's status");
    assert!(status.term >= term);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = seen.rounds.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }
    let errors = seen.errors.lock().expect("lock").clone();
    assert!(errors.is_empty(), "clients saw errors: {errors:?}; logs in {}", dir.display());
    assert!(after > before, "the clients go on after the stop ({before} then {after} rounds)");

    assert!(status.members.iter().any(|m| m.node_id == old && m.voter), "the stopped node is still a voter: {status:?}");
    println!("leader {old} stopped in {stopped_in:?}; {new} leads; clients did {before} rounds before and {after} in all");
}

/// `serve` on SIGTERM: a connected client's puts answer DRAINING, the process exits 0 as soon
/// as the client hangs up (not after the bound), and what it acknowledged is there on restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_finishes_its_connections_then_exits_0() {
    let dir = temp_dir("graceful-serve");
    let port = free_port();
    let args: Vec<String> =
        vec!["serve".into(), "-l".into(), "127.0.0.1".into(), "-p".into(), port.to_string(), "-b".into(), dir.join("data").display().to_string()];
    let mut serve = Proc::new(args.clone(), dir.join("serve.log"));
    serve.start();
    common::wait_for_port(loopback(port), Duration::from_secs(10)).await;
    let stream = TcpStream::connect(loopback(port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let mut ask = move |command: &str| {
        writer.write_all(command.as_bytes()).expect("write");
        let mut line = String::new();
        reader.read_line(&mut line).expect("read");
        line.trim_end().to_string()
    };
    assert_eq!(ask("put 1 0 60 4\r\nkept\r\n"), "INSERTED 1");
    let child = serve.child.as_mut().expect("running");
    // SAFETY: kill(2) on a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let signalled = Instant::now();
    let mut answer = String::new();
    while signalled.elapsed() < Duration::from_secs(3) {
        answer = ask("put 1 0 60 4\r\nlate\r\n");
        if answer == "DRAINING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(answer, "DRAINING", "a stopping server takes no new jobs");
    assert!(child.try_wait().expect("wait").is_none(), "it waits for its client");
    drop(ask);
    let hung_up = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(hung_up.elapsed() < Duration::from_secs(10), "serve did not exit");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(exit.success(), "serve exits 0 after SIGTERM, not {exit}");
    assert!(hung_up.elapsed() < Duration::from_secs(3), "serve exits once its client hangs up, took {:?}", hung_up.elapsed());
    let log = std::fs::read_to_string(dir.join("serve.log")).expect("log");
    assert!(log.contains("stopped; everything written is durable"), "serve says it stopped:\n{log}");

    let mut again = Proc::new(args, dir.join("serve-again.log"));
    again.start();
    common::wait_for_port(loopback(port), Duration::from_secs(10)).await;
    let stream = TcpStream::connect(loopback(port)).expect("connect");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    (&stream).write_all(b"peek-ready\r\n").expect("write");
    let mut line = String::new();
    reader.read_line(&mut line).expect("read");
    assert_eq!(line.trim_end(), "FOUND 1 4", "the job acknowledged before the stop is kept");
}
