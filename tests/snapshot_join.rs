//! A node that joins a real cluster holding 2,000,000 jobs gets them as a snapshot streamed
//! in chunks: one node is loaded through its beanstalkd proxy, compacts its
//! log, and a second node started with `--join` catches up and holds every job. On 2 shared
//! cores the load takes about 27 s and the snapshot (70 MB, 67 chunks) under 3 s.
#![cfg(not(madsim))]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{free_port, loopback, status, temp_dir, Proc};
use coolbeans::api::cluster_client::ClusterClient;
use coolbeans::api::job_state_machine_client::JobStateMachineClient;
use coolbeans::api::Empty;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Connections that load the jobs at once: the node batches their puts into entries.
const LOADERS: usize = 32;
/// Puts a loader writes at once (as many go ahead of their answers as the connection takes).
const PIPELINE_PUTS: usize = 64;

/// 2M small jobs: node 2 catches up through one snapshot of about 70 MB and holds as many
/// ready jobs as node 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_gets_a_snapshot_of_2m_jobs() {
    joins_with_jobs(2_000_000, Duration::from_secs(300)).await;
}

/// Loads `jobs` jobs into node 1, compacts its log, joins node 2 and waits (up to `limit`)
/// until node 2 holds them all.
async fn joins_with_jobs(jobs: usize, limit: Duration) {
    let dir = temp_dir(&format!("snapshot-join-{jobs}"));
    let (addr_1, addr_2, proxy) = (loopback(free_port()), loopback(free_port()), loopback(free_port()));
    let mut node_1 = node(&dir, 1, addr_1, &["--peers", &format!("1={addr_1}"), "--beanstalkd-listen", &proxy.to_string()]);
    node_1.start();
    await_status(addr_1, limit, |s| s.leader_id == 1).await;
    let started = Instant::now();
    let loaders: Vec<_> = (0..LOADERS).map(|i| tokio::spawn(load(proxy, jobs / LOADERS + usize::from(i < jobs % LOADERS)))).collect();
    for loader in loaders {
        loader.await.expect("loader task");
    }
    eprintln!("{jobs} jobs loaded in {:?}", started.elapsed());
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr_1}")).expect("address").connect().await.expect("connects");
    ClusterClient::new(channel).snapshot(Empty {}).await.expect("a snapshot of node 1");
    let commit = status(addr_1).await.expect("node 1 status").commit_index;

    let joined = Instant::now();
    let mut node_2 = node(&dir, 2, addr_2, &["--join", &addr_1.to_string()]);
    node_2.start();
    await_status(addr_2, limit, |s| s.applied_index >= commit).await;
    eprintln!("node 2 caught up to {commit} in {:?}", joined.elapsed());
    let ready = |yaml: &str| yaml.lines().find(|l| l.starts_with("current-jobs-ready:")).map(str::to_string);
    let (yaml_1, yaml_2) = (stats_yaml(addr_1).await, stats_yaml(addr_2).await);
    assert_eq!(ready(&yaml_1), Some(format!("current-jobs-ready: {jobs}")));
    assert_eq!(ready(&yaml_2), ready(&yaml_1), "node 2 holds what node 1 does");
    let log_2 = std::fs::read_to_string(dir.join("node-2.log")).expect("node 2 log");
    let received = log_2.lines().find(|l| l.contains("snapshot received")).unwrap_or_else(|| panic!("node 2 got no snapshot:\n{log_2}"));
    eprintln!("{received}");
    // The state was decoded and the file written apart from node 2's driver, which only
    // swapped them in: it kept answering its leader meanwhile.
    let installs: Vec<&str> = log_2.lines().filter(|l| l.contains("installed snapshot")).collect();
    eprintln!("{}", installs.join("\n"));
    assert_eq!(installs.len(), 1, "one snapshot installed:\n{log_2}");
    assert!(installs[0].contains("prepared=true"), "installed as prepared apart: {}", installs[0]);
    drop((node_2, node_1));
    let _ = std::fs::remove_dir_all(&dir);
}

fn node(dir: &std::path::Path, id: u64, addr: SocketAddr, extra: &[&str]) -> Proc {
    let mut args: Vec<String> = vec!["cluster-node".into(), "--node-id".into(), id.to_string(), "--listen".into(), addr.to_string()];
    args.extend(["--data-dir".into(), dir.join(format!("node-{id}")).display().to_string()]);
    // Snapshots only when asked: the log compacts once, after the load.
    args.extend(["--snapshot-entries".into(), "1000000000".into(), "--snapshot-log-bytes".into(), "100000000000".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::new(args, dir.join(format!("node-{id}.log")))
}

async fn await_status(addr: SocketAddr, limit: Duration, done: impl Fn(&coolbeans::api::NodeStatusResponse) -> bool) {
    let started = Instant::now();
    while status(addr).await.is_none_or(|s| !done(&s)) {
        assert!(started.elapsed() < limit, "{addr}: not done within {limit:?}: {:?}", status(addr).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Puts `count` small jobs on one connection to the proxy at `addr`, written while their
/// answers are read.
async fn load(addr: SocketAddr, count: usize) {
    let stream = connect(addr).await;
    let (read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        while sent < count {
            let batch = PIPELINE_PUTS.min(count - sent);
            write.write_all(&b"put 0 0 60 5\r\nhello\r\n".repeat(batch)).await.expect("puts sent");
            sent += batch;
            tokio::task::yield_now().await;
        }
        write
    });
    let mut lines = BufReader::new(read).lines();
    for i in 0..count {
        let line = lines.next_line().await.expect("answer").expect("open connection");
        assert!(line.starts_with("INSERTED"), "put {i}: {line}");
    }
    drop(writer.await.expect("writer task"));
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let started = Instant::now();
    loop {
        match TcpStream::connect(addr).await {
            Ok(s) => return s,
            Err(e) => assert!(started.elapsed() < Duration::from_secs(10), "proxy at {addr}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `stats` of the node at `addr`, asked again while it answers Unavailable ("retry") for up
/// to 10 s, as a client would. (Node 1's reads need node 2's answer, two voters: while a
/// snapshot install held node 2's driver, they waited past 10 s on a loaded machine.)
async fn stats_yaml(addr: SocketAddr) -> String {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("address").connect().await.expect("connects");
    let started = Instant::now();
    loop {
        match JobStateMachineClient::new(channel.clone()).get_stats_yaml(Empty {}).await {
            Ok(stats) => return String::from_utf8_lossy(&stats.into_inner().stats_yaml).into_owned(),
            Err(status) if status.code() == tonic::Code::Unavailable && started.elapsed() < Duration::from_secs(10) => {
                eprintln!("{addr}: stats: {}; asking again", status.message());
            }
            Err(status) => panic!("{addr}: stats: {status:?}"),
        }
    }
}
