//! `--command-timeout` and `--idle-timeout`: a client trickling a command, or saying nothing
//! while nothing of it is pending, loses its connection; one making progress, or waiting on a
//! reserve, keeps it.
#![cfg(not(madsim))]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{free_port, loopback, temp_dir, wait_for_port, Proc};

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    stream
}

/// Reads until the server closes the connection; answers what came before and how long it
/// took.
fn until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), started.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("the connection was not closed within 10 s ({e}); got {:?}", String::from_utf8_lossy(&got)),
        }
    }
}

/// Reads one answer line.
fn line(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n") {
        let n = stream.read(&mut byte).expect("read an answer");
        assert_eq!(n, 1, "closed after {:?}", String::from_utf8_lossy(&got));
        got.push(byte[0]);
    }
    String::from_utf8_lossy(&got[..got.len() - 2]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_and_idle_connections_close_while_progress_and_waits_do_not() {
    let dir = temp_dir("conn-timeouts");
    let port = free_port();
    let args = ["serve", "-l", "127.0.0.1", "-p", &port.to_string(), "--command-timeout", "1", "--idle-timeout", "3"];
    let mut serve = Proc::new(args.iter().map(|a| a.to_string()).collect(), dir.join("serve.log"));
    serve.start();
    let addr = loopback(port);
    wait_for_port(addr, Duration::from_secs(20)).await;

    // A put whose body trickles in, a byte every 300 ms, is cut off about 1 s after its line.
    let mut trickle = connect(addr);
    trickle.write_all(b"put 0 0 60 10\r\n").expect("write");
    let started = Instant::now();
    for byte in b"0123456789" {
        if trickle.write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let (answer, _) = until_closed(&mut trickle);
    let after = started.elapsed();
    assert_eq!(answer, "", "the trickled put was never answered");
    assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(6), "closed after {after:?}");

    // A line never ended is cut off likewise.
    let mut partial = connect(addr);
    partial.write_all(b"stats-tube defa").expect("write");
    let (answer, after) = until_closed(&mut partial);
    assert_eq!(answer, "");
    assert!(after >= Duration::from_millis(900), "closed after {after:?}");

    // Pipelined commands that each end within the limit keep the connection, though a partial
    // one is always buffered for longer than the limit in all.
    let mut steady = connect(addr);
    for piece in [&b"use a\r\nuse "[..], b"b\r\nuse ", b"c\r\nuse ", b"d\r\nlist-tube-used\r\n"] {
        steady.write_all(piece).expect("write");
        std::thread::sleep(Duration::from_millis(600));
    }
    for tube in ["a", "b", "c", "d"] {
        assert_eq!(line(&mut steady), format!("USING {tube}"));
    }
    assert_eq!(line(&mut steady), "USING d");

    // Saying nothing for 3 s closes a connection...
    let mut idle = connect(addr);
    let (answer, after) = until_closed(&mut idle);
    assert_eq!(answer, "");
    assert!(after >= Duration::from_millis(2900), "closed after {after:?}");
    // ...but not one whose reserve waits longer than that.
    let mut waiting = connect(addr);
    waiting.write_all(b"reserve-with-timeout 4\r\n").expect("write");
    let started = Instant::now();
    assert_eq!(line(&mut waiting), "TIMED_OUT");
    assert!(started.elapsed() >= Duration::from_millis(3900), "answered after {:?}", started.elapsed());
    serve.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
