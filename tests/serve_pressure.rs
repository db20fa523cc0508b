//! `coolbeans serve` under pressure from its clients: one that pipelines commands with large
//! answers and does not read them must not make the server hold those answers in memory, and
//! clients that take every file descriptor must not leave storage without one.
#![cfg(not(madsim))]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{free_port, temp_dir, Proc};

/// The job body the peeks fetch: the largest body `serve` accepts by default.
const BODY_BYTES: usize = 65_535;

fn serve(dir: &std::path::Path, args: &[&str]) -> Proc {
    serve_with_open_files(dir, args, None)
}

fn serve_with_open_files(dir: &std::path::Path, args: &[&str], open_files_max: Option<(u64, u64)>) -> Proc {
    let mut all = vec!["serve".to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    let mut p = Proc::new(all, dir.join("serve.log"));
    p.open_files_max = open_files_max;
    p.start();
    p
}

fn connect(port: u16) -> BufReader<TcpStream> {
    let started = Instant::now();
    loop {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            return BufReader::new(s);
        }
        assert!(started.elapsed() < Duration::from_secs(5), "serve did not listen on {port}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn send(conn: &mut BufReader<TcpStream>, bytes: &[u8]) {
    conn.get_mut().write_all(bytes).expect("write");
}

fn answer_line(conn: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    conn.read_line(&mut line).expect("read answer");
    line.trim_end().to_string()
}

/// Reads one `FOUND`/`RESERVED` answer and checks its header and body.
fn expect_job(conn: &mut BufReader<TcpStream>, header: &str, body: &[u8], which: &str) {
    assert_eq!(answer_line(conn), header, "{which}");
    let mut got = vec![0; body.len() + 2];
    conn.read_exact(&mut got).expect("read body");
    assert!(got[..body.len()] == *body && got[body.len()..] == *b"\r\n", "{which}: wrong body");
}

/// The resident memory of a process, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    let kb: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB");
    kb * 1024
}

/// The most resident memory seen over `period`.
fn rss_peak_bytes(pid: u32, period: Duration) -> u64 {
    let started = Instant::now();
    let mut peak = 0;
    while started.elapsed() < period {
        peak = peak.max(rss_bytes(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    peak
}

/// 2000 pipelined `peek` of a 64 KB job from a client that does not read (and 4000 more
/// behind a waiting reserve, on a second connection) leave the server's memory where it was:
/// the answers are 390 MB, and the server used to encode them all before writing (271 MB
/// for the first alone). Every answer then arrives whole and in order once read.
#[test]
fn unread_answers_do_not_pile_up() {
    let dir = temp_dir("serve-unread");
    let port = free_port();
    let server = serve(&dir, &["-p", &port.to_string()]);
    let pid = server.child.as_ref().expect("running").id();
    let body: Vec<u8> = (0..BODY_BYTES).map(|i| b'a' + (i % 26) as u8).collect();
    let mut putter = connect(port);
    send(&mut putter, format!("use big\r\nput 0 0 60 {BODY_BYTES}\r\n").as_bytes());
    send(&mut putter, &body);
    send(&mut putter, b"\r\n");
    assert_eq!(answer_line(&mut putter), "USING big");
    assert_eq!(answer_line(&mut putter), "INSERTED 1");
    let rss_before = rss_bytes(pid);

    let mut peeker = connect(port);
    send(&mut peeker, "peek 1\r\n".repeat(2000).as_bytes());
    let mut waiter = connect(port);
    send(&mut waiter, format!("reserve\r\n{}", "peek 1\r\n".repeat(4000)).as_bytes());
    let rss_peeking = rss_peak_bytes(pid, Duration::from_millis(1000));
    // The reserve is answered: the 4000 peeks behind it run.
    send(&mut putter, b"use default\r\nput 0 0 60 2\r\nhi\r\n");
    assert_eq!(answer_line(&mut putter), "USING default");
    assert_eq!(answer_line(&mut putter), "INSERTED 2");
    let rss_after_reserve = rss_peak_bytes(pid, Duration::from_millis(1000));
    eprintln!("serve's RSS: {rss_before} bytes before, peak {rss_peeking} with unread peeks, {rss_after_reserve} behind the reserve");
    let bound = rss_before + 32 * 1024 * 1024;
    assert!(rss_peeking < bound, "RSS grew from {rss_before} to {rss_peeking} bytes with unread answers");
    assert!(rss_after_reserve < bound, "RSS grew from {rss_before} to {rss_after_reserve} bytes behind a reserve");

    for i in 0..2000 {
        expect_job(&mut peeker, &format!("FOUND 1 {BODY_BYTES}"), &body, &format!("peek {i}"));
    }
    expect_job(&mut waiter, "RESERVED 2 2", b"hi", "the reserve");
    for i in 0..4000 {
        expect_job(&mut waiter, &format!("FOUND 1 {BODY_BYTES}"), &body, &format!("peek {i} after the reserve"));
    }
    send(&mut peeker, b"list-tube-used\r\n");
    assert_eq!(answer_line(&mut peeker), "USING default", "the connection still serves");
}

/// Whether the connection answers `list-tube-used` within `patience`: a connection the server
/// has not accepted waits in the listen backlog, unanswered.
fn is_served(conn: &mut BufReader<TcpStream>, patience: Duration) -> bool {
    send(conn, b"list-tube-used\r\n");
    conn.get_ref().set_read_timeout(Some(patience)).unwrap();
    let mut line = String::new();
    let answered = conn.read_line(&mut line).is_ok();
    conn.get_ref().set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    assert!(!answered || line == "USING default\r\n", "answered {line:?}");
    answered
}

/// The soft and hard limits on open files of a process.
fn open_files_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read /proc limits");
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("open files line");
    let mut words = line.split_whitespace().skip(3);
    (words.next().unwrap().to_string(), words.next().unwrap().to_string())
}

/// The write-ahead log's segment files in a data dir.
fn wal_segments(data: &std::path::Path) -> Vec<String> {
    let names = std::fs::read_dir(data).expect("read data dir").map(|e| e.unwrap().file_name().into_string().unwrap());
    names.filter(|n| n.starts_with("wal-")).collect()
}

/// Under a limit of 40 open files, clients that keep connecting are made to wait before they
/// take the descriptors storage needs: 1100 puts of 65 KB then cross a write-ahead-log segment
/// (64 MiB) and a compaction, and all succeed, where the node used to stop at the rotation with
/// "Too many open files". A waiting client is served once another leaves.
#[test]
fn connections_leave_descriptors_for_storage() {
    let dir = temp_dir("serve-fds");
    let data = dir.join("data");
    let port = free_port();
    let mut server = serve_with_open_files(&dir, &["-p", &port.to_string(), "-b", data.to_str().unwrap()], Some((40, 40)));
    let mut served = Vec::new();
    let waiting = loop {
        let mut conn = connect(port);
        if !is_served(&mut conn, Duration::from_millis(500)) {
            break conn;
        }
        served.push(conn);
        assert!(served.len() < 40, "40 connections served under a limit of 40 open files");
    };
    eprintln!("{} connections served under a limit of 40 open files", served.len());
    assert!(served.len() >= 10, "only {} connections served", served.len());
    let segments_before = wal_segments(&data);

    // One write per put: in three, Nagle's algorithm would hold each put's last bytes.
    let put = [&b"put 0 0 60 65000\r\n"[..], &[b'x'; 65_000], b"\r\n"].concat();
    let conn = &mut served[0];
    for i in 0..1100 {
        send(conn, &put);
        assert_eq!(answer_line(conn), format!("INSERTED {}", i + 1), "put {i}; log in {}", dir.display());
    }
    let segments_after = wal_segments(&data);
    assert!(segments_after.iter().any(|s| !segments_before.contains(s)), "no new segment: {segments_before:?}, then {segments_after:?}");
    assert!(server.child.as_mut().unwrap().try_wait().unwrap().is_none(), "serve exited");
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap();
    assert!(!log.contains("storage failed"), "storage failed; log in {}", dir.display());

    drop(served.pop());
    let mut waiting = waiting;
    let mut line = String::new();
    waiting.read_line(&mut line).expect("the waiting client is answered once another leaves");
    assert_eq!(line, "USING default\r\n");
}

/// The soft limit on open files is raised to the hard one at start.
#[test]
fn raises_the_open_files_limit() {
    let dir = temp_dir("serve-nofile");
    let port = free_port();
    let server = serve_with_open_files(&dir, &["-p", &port.to_string()], Some((64, 256)));
    let mut conn = connect(port);
    assert!(is_served(&mut conn, Duration::from_secs(5)));
    let pid = server.child.as_ref().expect("running").id();
    assert_eq!(open_files_limits(pid), ("256".to_string(), "256".to_string()));
}
