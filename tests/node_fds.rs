//! A cluster node under a low limit on open files: idle connections to its gRPC
//! port draw on the same descriptor budget as its beanstalkd proxy, so past the budget they
//! wait in the listen backlog, and storage keeps the descriptors it needs: puts through
//! compactions still succeed, and a waiting connection is served once others leave.
#![cfg(not(madsim))]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{free_port, loopback, temp_dir, Proc};

/// The limit on open files the node runs under: a budget of half of it for connections.
const OPEN_FILES_MAX: u64 = 64;

/// HTTP/2's client connection preface and an empty SETTINGS frame: a gRPC server that has
/// accepted the connection answers with its own SETTINGS.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Opens a connection to the gRPC port and says whether the server answers the preface within
/// `patience` (one not accepted waits in the listen backlog, unanswered).
fn grpc_connection(addr: SocketAddr, patience: Duration) -> (TcpStream, bool) {
    let mut conn = TcpStream::connect(addr).expect("connect to the gRPC port");
    conn.write_all(H2_PREFACE).expect("send the preface");
    conn.set_read_timeout(Some(patience)).unwrap();
    let mut byte = [0u8; 1];
    let answered = matches!(conn.read(&mut byte), Ok(1));
    (conn, answered)
}

fn answer_line(conn: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    conn.read_line(&mut line).expect("read answer");
    line.trim_end().to_string()
}

/// A beanstalkd connection to the node's proxy once it takes puts.
fn putter(port: u16) -> BufReader<TcpStream> {
    let started = Instant::now();
    loop {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut conn = BufReader::new(stream);
            conn.get_mut().write_all(b"put 0 0 60 5\r\nfirst\r\n").unwrap();
            if answer_line(&mut conn).starts_with("INSERTED") {
                return conn;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the node took no put in 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Under 64 open files, gRPC connections are served up to the budget and the rest wait; 300
/// puts then cross three compactions (each opens a snapshot file and a segment) and all
/// succeed, where the node used to stop with "Too many open files". Once the idle connections
/// close, a waiting one is served.
#[test]
fn idle_grpc_connections_leave_descriptors_for_storage() {
    let dir = temp_dir("node-fds");
    let grpc = loopback(free_port());
    let beanstalkd_port = free_port();
    let args = [
        "cluster-node",
        "--node-id",
        "1",
        "--listen",
        &grpc.to_string(),
        "--peers",
        &format!("1={grpc}"),
        "--data-dir",
        &dir.join("node-1").display().to_string(),
        "--beanstalkd-listen",
        &format!("127.0.0.1:{beanstalkd_port}"),
        "--snapshot-entries",
        "100",
    ];
    let mut node = Proc::new(args.map(String::from).to_vec(), dir.join("node-1.log"));
    node.open_files_max = Some((OPEN_FILES_MAX, OPEN_FILES_MAX));
    node.start();
    let mut putter = putter(beanstalkd_port);

    let mut idle = Vec::new();
    let waiting = loop {
        let (conn, answered) = grpc_connection(grpc, Duration::from_millis(500));
        if !answered {
            break conn;
        }
        idle.push(conn);
        assert!(idle.len() < OPEN_FILES_MAX as usize, "{} gRPC connections served under a limit of {OPEN_FILES_MAX} open files", idle.len());
    };
    eprintln!("{} idle gRPC connections served under a limit of {OPEN_FILES_MAX} open files", idle.len());

    for i in 0..300 {
        let put = format!("put 0 0 60 10\r\nbody {i:05}\r\n");
        putter.get_mut().write_all(put.as_bytes()).expect("send put");
        assert!(answer_line(&mut putter).starts_with("INSERTED"), "put {i}; log in {}", dir.display());
    }
    assert!(node.child.as_mut().unwrap().try_wait().unwrap().is_none(), "the node exited; log in {}", dir.display());
    let log = std::fs::read_to_string(dir.join("node-1.log")).unwrap();
    assert!(!log.contains("storage failed"), "storage failed; log in {}", dir.display());
    assert!(log.contains("every connection is taken"), "no line says connections wait; log in {}", dir.display());

    drop(idle);
    let mut waiting = waiting;
    waiting.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut byte = [0u8; 1];
    assert!(matches!(waiting.read(&mut byte), Ok(1)), "the waiting connection is served once others leave");
}
