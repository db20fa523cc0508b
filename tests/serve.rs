//! `coolbeans serve` as a process: how fast it answers after starting, a unix socket, jobs
//! kept across a SIGKILL with `-b`, nothing written without it, and drain mode on SIGUSR1.
#![cfg(not(madsim))]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{free_port, temp_dir, Proc};

/// Sends one command over any stream and reads one answer line.
fn ask<S: std::io::Read + Write>(stream: &mut BufReader<S>, command: &str) -> String {
    stream.get_mut().write_all(format!("{command}\r\n").as_bytes()).expect("write");
    let mut line = String::new();
    stream.read_line(&mut line).expect("read answer");
    line.trim_end().to_string()
}

fn connect_tcp(port: u16, limit: Duration) -> BufReader<std::net::TcpStream> {
    let started = Instant::now();
    loop {
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            return BufReader::new(s);
        }
        assert!(started.elapsed() < limit, "serve did not listen within {limit:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn serve(dir: &std::path::Path, args: &[&str]) -> Proc {
    let mut all = vec!["serve".to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    let mut p = Proc::new(all, dir.join("serve.log"));
    p.start();
    p
}

/// From spawn to the first answer takes well under a second (the goal is 100 ms; the
/// figure is printed, the bound is loose so a loaded CI machine does not make it flaky).
#[test]
fn answers_soon_after_start() {
    let dir = temp_dir("serve-start");
    let port = free_port();
    let started = Instant::now();
    let _server = serve(&dir, &["-p", &port.to_string()]);
    let mut conn = connect_tcp(port, Duration::from_secs(5));
    assert_eq!(ask(&mut conn, "list-tube-used"), "USING default");
    let took = started.elapsed();
    eprintln!("serve answered {took:?} after spawn");
    assert!(took < Duration::from_millis(1000), "first answer took {took:?}");
}

/// `-l unix:PATH` serves the protocol on a unix socket.
#[test]
fn unix_socket() {
    let dir = temp_dir("serve-unix");
    let path = dir.join("beanstalkd.sock");
    let _server = serve(&dir, &["-l", &format!("unix:{}", path.display())]);
    let started = Instant::now();
    let stream = loop {
        if let Ok(s) = UnixStream::connect(&path) {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no unix socket at {}", path.display());
        std::thread::sleep(Duration::from_millis(5));
    };
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut conn = BufReader::new(stream);
    assert_eq!(ask(&mut conn, "put 0 0 10 2\r\nhi"), "INSERTED 1");
    assert_eq!(ask(&mut conn, "reserve-with-timeout 0"), "RESERVED 1 2");
}

/// With `-b`, jobs survive a SIGKILL and restart; without it, the data dir stays empty.
#[test]
fn binlog_dir_keeps_jobs_across_sigkill() {
    let dir = temp_dir("serve-b");
    let data = dir.join("data");
    let port = free_port();
    let port_arg = port.to_string();
    let args = ["-p", port_arg.as_str(), "-b", data.to_str().unwrap()];
    let mut server = serve(&dir, &args);
    let mut conn = connect_tcp(port, Duration::from_secs(5));
    for i in 0..20 {
        assert_eq!(ask(&mut conn, &format!("put {i} 0 60 1\r\nx")), format!("INSERTED {}", i + 1));
    }
    server.kill();
    drop(conn);
    let _server = serve(&dir, &args);
    let mut conn = connect_tcp(port, Duration::from_secs(5));
    for id in 1..=20 {
        assert_eq!(ask(&mut conn, &format!("peek {id}")), format!("FOUND {id} 1"));
        let mut body = String::new();
        conn.read_line(&mut body).unwrap();
    }
    assert_eq!(ask(&mut conn, "put 0 0 60 1\r\ny"), "INSERTED 21", "ids continue after the restart");

    let mem_dir = temp_dir("serve-mem");
    let mem_port = free_port();
    let mut mem = Proc::new(vec!["serve".into(), "-p".into(), mem_port.to_string()], dir.join("mem.log"));
    mem.cwd = Some(mem_dir.clone());
    mem.start();
    let mut conn = connect_tcp(mem_port, Duration::from_secs(5));
    assert_eq!(ask(&mut conn, "put 0 0 60 1\r\nz"), "INSERTED 1");
    let written: Vec<_> = std::fs::read_dir(&mem_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(written.is_empty(), "serve without -b wrote {written:?} in its working directory");
}

/// SIGUSR1 turns drain mode on: puts answer DRAINING, everything else still works.
#[test]
fn sigusr1_drains() {
    let dir = temp_dir("serve-drain");
    let port = free_port();
    let server = serve(&dir, &["-p", &port.to_string()]);
    let mut conn = connect_tcp(port, Duration::from_secs(5));
    assert_eq!(ask(&mut conn, "put 0 0 60 1\r\na"), "INSERTED 1");
    let pid = server.child.as_ref().expect("running").id();
    let status = std::process::Command::new("kill").args(["-USR1", &pid.to_string()]).status().expect("kill -USR1");
    assert!(status.success());
    let started = Instant::now();
    loop {
        let answer = ask(&mut conn, "put 0 0 60 1\r\nb");
        if answer == "DRAINING" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still {answer} after SIGUSR1");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ask(&mut conn, "reserve-with-timeout 0"), "RESERVED 1 1");
}

/// Limits out of range are refused at start with one line that says which.
#[test]
fn bad_limits_are_refused() {
    for (args, says) in [(vec!["--max-line-bytes", "100"], "--max-line-bytes"), (vec!["-z", "999999999"], "-z")] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_coolbeans"))
            .arg("serve")
            .args(["-p", &free_port().to_string()])
            .args(&args)
            .output()
            .expect("run serve");
        assert!(!out.status.success(), "serve {args:?} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.trim_end().lines().count() == 1 && err.contains(says), "serve {args:?} said {err:?}");
    }
}
