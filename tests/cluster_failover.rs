//! Three real `cluster-node` processes on loopback: a writer puts continuously, the leader is
//! killed with SIGKILL, and the test checks that a new leader is elected within 3 s, that no
//! acknowledged write is lost, and that the killed node, restarted, catches up.
#![cfg(not(madsim))]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coolbeans::api::cluster_client::ClusterClient;
use coolbeans::api::{Empty, NodeStatusResponse};
use coolbeans::rpc::job_client::JobClient;

/// A node process and how to start it again.
struct NodeProc {
    id: u64,
    addr: SocketAddr,
    args: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
}

impl NodeProc {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("open node log");
        let child = Command::new(env!("CARGO_BIN_EXE_coolbeans"))
            .args(&self.args)
            .env("RUST_LOG", "info,raft=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn cluster-node");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("coolbeans-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn cluster(dir: &Path) -> Vec<NodeProc> {
    let addrs: Vec<SocketAddr> = (0..3).map(|_| format!("127.0.0.1:{}", free_port()).parse().unwrap()).collect();
    let peers = addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect::<Vec<_>>().join(",");
    addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let id = i as u64 + 1;
            let args = vec![
                "cluster-node".into(),
                "--node-id".into(),
                id.to_string(),
                "--listen".into(),
                addr.to_string(),
                "--data-dir".into(),
                dir.join(format!("node-{id}")).display().to_string(),
                "--peers".into(),
                peers.clone(),
                "--snapshot-entries".into(),
                "200".into(),
            ];
            NodeProc { id, addr: *addr, args, child: None, log: dir.join(format!("node-{id}.log")) }
        })
        .collect()
}

async fn status(addr: SocketAddr) -> Option<NodeStatusResponse> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).ok()?.timeout(Duration::from_millis(500));
    let channel = tokio::time::timeout(Duration::from_millis(500), endpoint.connect()).await.ok()?.ok()?;
    ClusterClient::new(channel).status(Empty {}).await.ok().map(|r| r.into_inner())
}

/// The leader a majority of the given nodes report, if any.
async fn leader(nodes: &[(u64, SocketAddr)]) -> Option<u64> {
    let mut seen = Vec::new();
    for (_, addr) in nodes {
        if let Some(s) = status(*addr).await {
            if s.leader_id != 0 {
                seen.push((s.term, s.leader_id));
            }
        }
    }
    seen.sort();
    let candidate = *seen.last()?;
    (seen.iter().filter(|s| **s == candidate).count() >= 2).then_some(candidate.1)
}

/// Puts jobs until told to stop; answers the ids of the acknowledged ones.
async fn write_until(mut client: JobClient, stop: Arc<AtomicBool>) -> Vec<u64> {
    let mut acked = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if let Ok(id) = client.put("default", 10, format!("job {i}").as_bytes()).await {
            acked.push(id);
        }
        i += 1;
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_sigkill_loses_nothing() {
    let dir = temp_dir("failover");
    let mut nodes = cluster(&dir);
    for n in &mut nodes {
        n.start();
    }
    let members: Vec<(u64, SocketAddr)> = nodes.iter().map(|n| (n.id, n.addr)).collect();
    let started = Instant::now();
    let first = loop {
        if let Some(l) = leader(&members).await {
            break l;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no leader within 15 s; logs in {}", dir.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_until(JobClient::new("writer", members.iter().map(|m| m.1).collect()), stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let killed_at = Instant::now();
    nodes[(first - 1) as usize].kill();
    let survivors: Vec<(u64, SocketAddr)> = members.iter().copied().filter(|(id, _)| *id != first).collect();
    let second = loop {
        if let Some(l) = leader(&survivors).await.filter(|l| *l != first) {
            break l;
        }
        assert!(killed_at.elapsed() < Duration::from_secs(10), "no new leader in 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let failover = killed_at.elapsed();
    eprintln!("leader {first} killed; node {second} led after {failover:?}");
    assert!(failover < Duration::from_secs(3), "new leader took {failover:?}");

    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.expect("writer task");
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());

    nodes[(first - 1) as usize].start();
    let leader_addr = members[(second - 1) as usize].1;
    let target = status(leader_addr).await.expect("leader status").commit_index;
    let restarted = members[(first - 1) as usize].1;
    let catch_up = Instant::now();
    loop {
        if status(restarted).await.is_some_and(|s| s.applied_index >= target) {
            break;
        }
        assert!(catch_up.elapsed() < Duration::from_secs(20), "node {first} did not catch up to {target}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut checker = JobClient::new("checker", vec![leader_addr]);
    for id in &acked {
        assert!(checker.exists(*id).await.expect("get job"), "acknowledged job {id} is lost");
    }
    eprintln!("{} acknowledged writes all present; node {first} caught up to {target}", acked.len());
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}
