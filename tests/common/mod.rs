//! Real `coolbeans` processes on loopback, for the integration tests.
#![allow(dead_code)]

pub mod beanstalk;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coolbeans::api::cluster_client::ClusterClient;
use coolbeans::api::{Empty, NodeStatusResponse};

/// A `coolbeans` process and how to start it again.
pub struct Proc {
    pub args: Vec<String>,
    /// The working directory (default: the test's own).
    pub cwd: Option<PathBuf>,
    pub child: Option<Child>,
    pub log: PathBuf,
    /// Limits on open files (soft, hard) to start it under; the test's own otherwise.
    pub open_files_max: Option<(u64, u64)>,
}

impl Proc {
    pub fn new(args: Vec<String>, log: PathBuf) -> Self {
        Proc { args, cwd: None, child: None, log, open_files_max: None }
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("open process log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_coolbeans"));
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        if let Some((soft, hard)) = self.open_files_max {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
            // SAFETY: between fork and exec only setrlimit runs, which allocates nothing.
            unsafe {
                command.pre_exec(move || match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                });
            }
        }
        let child = command.args(&self.args).env("RUST_LOG", "info,raft=warn").stdout(Stdio::null()).stderr(log).spawn().expect("spawn coolbeans");
        self.child = Some(child);
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Lines of a process's log a failed test prints.
const LOG_TAIL_LINES: usize = 60;

impl Drop for Proc {
    /// Kills the process; when the test failed, prints the end of its log, so that a failure
    /// on a CI machine (whose files are gone afterwards) can be read rather than guessed at.
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(unreadable: {e})\n"));
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!("==== the last {} lines of {} ====\n{}", tail.len(), self.log.display(), tail.join("\n"));
        }
    }
}

/// A free loopback port below the kernel's ephemeral range (32768 and up), never the same
/// twice in one process: a port from that range could be given to some client socket before
/// the server binds it.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let start = std::process::id() * 89 + 6_000;
    loop {
        let port = (20_000 + (start + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("coolbeans-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// One cluster node process.
pub struct Node {
    pub id: u64,
    pub addr: SocketAddr,
    pub proc: Proc,
}

/// Three `cluster-node` processes forming one cluster; `extra(id)` adds flags to a node.
pub fn cluster(dir: &Path, extra: impl Fn(u64) -> Vec<String>) -> Vec<Node> {
    let addrs: Vec<SocketAddr> = (0..3).map(|_| loopback(free_port())).collect();
    let peers = addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect::<Vec<_>>().join(",");
    addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let id = i as u64 + 1;
            let mut args: Vec<String> = vec![
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
            args.extend(extra(id));
            Node { id, addr: *addr, proc: Proc::new(args, dir.join(format!("node-{id}.log"))) }
        })
        .collect()
}

/// Runs `coolbeans cluster-client ARGS`: its exit code, stdout and stderr.
pub fn client_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_coolbeans")).arg("cluster-client").args(args).output().expect("run cluster-client");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A cluster started, with the leader it elected.
pub struct Led {
    pub nodes: Vec<Node>,
    /// Each node's id and gRPC address.
    pub members: Vec<(u64, SocketAddr)>,
    pub leader: u64,
    /// Each node's address given with the flag, by id less one.
    pub flagged: Vec<SocketAddr>,
}

/// Starts `cluster` with `flag ADDR` on each node, an address of its own each, and waits for a
/// leader.
pub async fn start_cluster_with(dir: &Path, flag: &'static str) -> Led {
    let flagged: Vec<SocketAddr> = (0..3).map(|_| loopback(free_port())).collect();
    let listen = flagged.clone();
    let mut nodes = cluster(dir, move |id| vec![flag.into(), listen[id as usize - 1].to_string()]);
    for node in &mut nodes {
        node.proc.start();
    }
    let members: Vec<(u64, SocketAddr)> = nodes.iter().map(|n| (n.id, n.addr)).collect();
    let leader = await_leader(&members, Duration::from_secs(15), dir).await;
    Led { nodes, members, leader, flagged }
}

pub async fn status(addr: SocketAddr) -> Option<NodeStatusResponse> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).ok()?.timeout(Duration::from_millis(500));
    let channel = tokio::time::timeout(Duration::from_millis(500), endpoint.connect()).await.ok()?.ok()?;
    ClusterClient::new(channel).status(Empty {}).await.ok().map(|r| r.into_inner())
}

/// The leader a majority of the given nodes report, if any.
pub async fn leader(nodes: &[(u64, SocketAddr)]) -> Option<u64> {
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

/// Waits for a leader, failing the test after `limit`.
pub async fn await_leader(nodes: &[(u64, SocketAddr)], limit: Duration, dir: &Path) -> u64 {
    let started = Instant::now();
    loop {
        if let Some(l) = leader(nodes).await {
            return l;
        }
        assert!(started.elapsed() < limit, "no leader within {limit:?}; logs in {}", dir.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a `coolbeans beanstalkd` proxy before `members` (logging to `dir/proxy.log`)
/// and waits until it listens; answers it and its address.
pub async fn start_proxy(dir: &Path, members: &[(u64, SocketAddr)]) -> (Proc, SocketAddr) {
    let addr = loopback(free_port());
    let upstreams = members.iter().map(|(_, a)| a.to_string()).collect::<Vec<_>>().join(",");
    let args = vec!["beanstalkd".into(), "--listen".into(), addr.to_string(), "--upstreams".into(), upstreams];
    let mut proxy = Proc::new(args, dir.join("proxy.log"));
    proxy.start();
    wait_for_port(addr, Duration::from_secs(20)).await;
    (proxy, addr)
}

/// Waits until something accepts connections at `addr`, failing the test after `limit`.
pub async fn wait_for_port(addr: SocketAddr, limit: Duration) {
    let started = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(started.elapsed() < limit, "nothing listens at {addr} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a one-node cluster on loopback with `extra` flags and waits until it leads.
pub async fn one_node(dir: &Path, extra: &[&str]) -> (Proc, SocketAddr) {
    let addr = loopback(free_port());
    let mut args: Vec<String> =
        ["cluster-node", "--node-id", "1", "--listen", &addr.to_string(), "--peers", &format!("1={addr}")].map(String::from).to_vec();
    args.extend(["--data-dir".to_string(), dir.join("node-1").display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut node = Proc::new(args, dir.join("node-1.log"));
    node.start();
    let started = Instant::now();
    while status(addr).await.is_none_or(|s| s.leader_id != 1) {
        assert!(started.elapsed() < Duration::from_secs(15), "node 1 did not lead; log in {}", dir.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (node, addr)
}
