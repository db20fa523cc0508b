//! Faults that stopped a node: `serve -b` whose disk fills up exits non-zero at once with the
//! reason as its last line, rather than living on and answering from a dead node; a raft
//! message raft-rs would panic on, or one from another cluster, is refused, and the node
//! lives on.
#![cfg(not(madsim))]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{cluster, free_port, status, temp_dir};
use coolbeans::api::raft_transport_client::RaftTransportClient;
use coolbeans::api::RaftBatch;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};

/// Files this process may grow to: past it a write fails (EFBIG), as on a full disk.
const FILE_BYTES_MAX: u64 = 3 * 1024 * 1024;

#[test]
fn serve_exits_when_its_storage_fails() {
    let dir = temp_dir("storage-fails");
    let port = free_port();
    let log_path = dir.join("serve.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_coolbeans"));
    command
        .args(["serve", "-l", "127.0.0.1", "-p", &port.to_string(), "-b"])
        .arg(dir.join("binlog"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: between fork and exec only async-signal-safe calls, on this child alone: a
    // file size limit, and SIGXFSZ ignored so that a write past it fails instead of killing.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: FILE_BYTES_MAX, rlim_max: FILE_BYTES_MAX };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = command.spawn().expect("spawn serve");
    let stream = connect(port);
    let mut stream = BufReader::new(stream);
    let body = vec![b'x'; 60_000];
    let mut answers = Vec::new();
    for _ in 0..200 {
        let mut put = format!("put 0 0 60 {}\r\n", body.len()).into_bytes();
        put.extend_from_slice(&body);
        put.extend_from_slice(b"\r\n");
        if stream.get_mut().write_all(&put).is_err() {
            break;
        }
        let mut line = String::new();
        match stream.read_line(&mut line) {
            Ok(n) if n > 0 => answers.push(line.trim_end().to_string()),
            _ => break,
        }
        if !line.starts_with("INSERTED") {
            break;
        }
    }
    let inserted = answers.iter().filter(|a| a.starts_with("INSERTED")).count();
    assert!(inserted >= 10, "puts before the disk filled: {answers:?}");
    assert!(inserted < 200, "the file size limit never bit: {answers:?}");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "serve still runs 5 s after its storage failed");
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(&log_path).expect("read log");
    assert!(!status.success(), "serve exited {status} after its storage failed; log:\n{log}");
    let last = log.lines().last().unwrap_or_default();
    assert!(last.contains("stopped") && last.contains("storage failed"), "last log line: {last}\nlog:\n{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn connect(port: u16) -> std::net::TcpStream {
    let started = Instant::now();
    loop {
        if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
            return stream;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "serve did not listen");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// The audit's repro: one Send carrying a heartbeat of term 1000 committing index 10^9 made
// raft-rs panic in the follower's driver. It is refused now: the follower stays up, in the
// same term, following the same leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_heartbeat_is_refused() {
    let (dir, mut nodes, leader) = running_cluster("impossible-heartbeat").await;
    let follower = nodes.iter().position(|n| n.id != leader).expect("a follower");
    let addr = nodes[follower].addr;
    let before = status(addr).await.expect("the follower answers");
    let mut heartbeat = Message::default();
    heartbeat.set_msg_type(MessageType::MsgHeartbeat);
    (heartbeat.from, heartbeat.to, heartbeat.term, heartbeat.commit) = (leader, nodes[follower].id, 1000, 1_000_000_000);
    let batch = RaftBatch {
        from: leader,
        messages: vec![heartbeat.write_to_bytes().expect("encode").into()],
        from_addr: nodes[(leader - 1) as usize].addr.to_string(),
        cluster_id: 0,
        version: 0,
    };
    let mut client = RaftTransportClient::connect(format!("http://{addr}")).await.expect("connect");
    client.send(batch).await.expect("the batch is delivered");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let exited = nodes[follower].proc.child.as_mut().expect("started").try_wait().expect("wait");
    assert!(exited.is_none(), "the follower exited: {exited:?}");
    let after = status(addr).await.expect("the follower still answers");
    assert_eq!((after.term, after.leader_id), (before.term, leader), "{after:?}");
    let log = std::fs::read_to_string(dir.join(format!("node-{}.log", nodes[follower].id))).expect("log");
    assert!(log.contains("refused a raft message"), "log:\n{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

// A follower whose data dir was wiped, restarted with the same id and --peers, bootstrapped a
// cluster of its own and then died on the leader's first heartbeat. It refuses to start now,
// naming the way back (Leave, then Join with a new id), and the cluster is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_member_refuses_to_start() {
    let (dir, mut nodes, leader) = running_cluster("wiped-member").await;
    let wiped = nodes.iter().position(|n| n.id != leader).expect("a follower");
    let leader_addr = nodes[(leader - 1) as usize].addr;
    let started = Instant::now();
    loop {
        let known = status(leader_addr).await.and_then(|s| s.members.iter().find(|m| m.node_id == nodes[wiped].id).map(|m| m.match_index));
        if known.is_some_and(|matched| matched > 1) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the follower never acknowledged an entry: {known:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nodes[wiped].proc.kill();
    std::fs::remove_dir_all(dir.join(format!("node-{}", nodes[wiped].id))).expect("wipe");
    nodes[wiped].proc.start();
    let started = Instant::now();
    let status_code = loop {
        if let Some(code) = nodes[wiped].proc.child.as_mut().expect("started").try_wait().expect("wait") {
            break code;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the wiped node still runs after 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = std::fs::read_to_string(dir.join(format!("node-{}.log", nodes[wiped].id))).expect("log");
    assert!(!status_code.success(), "exited {status_code}; log:\n{log}");
    let id = nodes[wiped].id;
    assert!(log.contains("data was lost") && log.contains(&format!("leave --node-id {id}")), "log:\n{log}");
    assert!(!dir.join(format!("node-{id}")).join("node-id").exists(), "nothing was written to the wiped dir");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A 3-node cluster of real processes in a fresh dir, with its leader elected.
async fn running_cluster(name: &str) -> (std::path::PathBuf, Vec<common::Node>, u64) {
    let dir = temp_dir(name);
    let mut nodes = cluster(&dir, |_| Vec::new());
    for n in &mut nodes {
        n.proc.start();
    }
    let members: Vec<_> = nodes.iter().map(|n| (n.id, n.addr)).collect();
    let leader = common::await_leader(&members, Duration::from_secs(15), &dir).await;
    (dir, nodes, leader)
}

// Raft traffic stamped with another cluster's id is refused before it reaches raft; traffic of
// the node's own cluster, or unstamped (an earlier version), is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_of_another_cluster_is_refused() {
    let (dir, nodes, leader) = running_cluster("other-cluster").await;
    let peers: std::collections::BTreeMap<u64, String> = nodes.iter().map(|n| (n.id, n.addr.to_string())).collect();
    let ours = coolbeans::node::replicated::cluster_id_for(&peers);
    let follower = nodes.iter().find(|n| n.id != leader).expect("a follower");
    let mut client = RaftTransportClient::connect(format!("http://{}", follower.addr)).await.expect("connect");
    let batch = |cluster_id: u64| {
        let mut vote = Message::default();
        vote.set_msg_type(MessageType::MsgRequestPreVote);
        (vote.from, vote.to, vote.term) = (leader, follower.id, 1);
        RaftBatch { from: leader, messages: vec![vote.write_to_bytes().expect("encode").into()], from_addr: String::new(), cluster_id, version: 0 }
    };
    let refused = client.send(batch(ours ^ 1)).await.expect_err("another cluster's traffic is refused");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("between clusters"), "{refused:?}");
    client.send(batch(ours)).await.expect("the node's own cluster is heard");
    client.send(batch(0)).await.expect("an unstamped batch is heard");
    let _ = std::fs::remove_dir_all(&dir);
}
