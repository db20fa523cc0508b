//! Server processes under test: free ports, spawning with logs, waiting until the proxy
//! accepts connections, signals, and killing everything on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Why a target could not start.
#[derive(Debug)]
pub enum StartError {
    /// The binary does not have this mode yet (clap rejected the subcommand): skip the target.
    Unavailable(String),
    /// It should have started and did not: a failure.
    Failed(String),
}

/// A running target: its processes, the proxy's address, and the connection that proved
/// it was up (handed to the conversation as its first connection, so that connection counts
/// in `stats` are exactly the conversation's).
pub struct Server {
    pub addr: SocketAddr,
    /// The process that receives `signal` directives (the beanstalkd-protocol proxy).
    pub signal_pid: u32,
    /// Where the processes' stdout and stderr go.
    pub logs: Vec<PathBuf>,
    children: Vec<Child>,
    first_connection: Option<TcpStream>,
}

impl Server {
    pub fn take_first_connection(&mut self) -> Option<TcpStream> {
        self.first_connection.take()
    }

    /// Sends `SIGNAME` to the proxy with kill(1).
    pub fn signal(&self, name: &str) -> Result<(), String> {
        let status =
            Command::new("kill").arg(format!("-{name}")).arg(self.signal_pid.to_string()).status().map_err(|e| format!("kill -{name}: {e}"))?;
        if !status.success() {
            return Err(format!("kill -{name} {} failed: {status}", self.signal_pid));
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The next port to try, counting from a start spread by process id.
static NEXT_PORT: AtomicU32 = AtomicU32::new(0);

/// A free loopback port that no other caller in this process got, below the kernel's
/// ephemeral range (32768 and up): a port taken from that range could be handed to some
/// client socket as its own end before the server binds it, and a connection to it could
/// then reach that socket instead of the server.
pub fn free_port() -> u16 {
    const LOW: u32 = 20_000;
    const COUNT: u32 = 12_000;
    let start = std::process::id() * 97;
    loop {
        let port = (LOW + (start + NEXT_PORT.fetch_add(1, Ordering::Relaxed)) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A process being started, with its log file.
pub struct Spawned {
    pub child: Child,
    pub log: PathBuf,
}

/// Starts `program args`, its stdout and stderr appended to `log`.
pub fn spawn(program: &Path, args: &[String], log: &Path) -> Result<Spawned, StartError> {
    let file =
        std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| StartError::Failed(format!("open {}: {e}", log.display())))?;
    let err_file = file.try_clone().map_err(|e| StartError::Failed(e.to_string()))?;
    // RUST_LOG, if set, passes through from the test's environment.
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err_file)
        .spawn()
        .map_err(|e| StartError::Failed(format!("spawn {}: {e}", program.display())))?;
    Ok(Spawned { child, log: log.to_path_buf() })
}

/// Stops every process (they are ours: we spawned them).
pub fn kill_all(processes: &mut [Spawned]) {
    for p in processes.iter_mut() {
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
}

/// The exit of the first process that has exited, diagnosed from its status and log.
pub fn exited(processes: &mut [Spawned]) -> Option<StartError> {
    for p in processes.iter_mut() {
        if let Ok(Some(status)) = p.child.try_wait() {
            let log = std::fs::read_to_string(&p.log).unwrap_or_default();
            return Some(diagnose_exit(status, &log, &p.log));
        }
    }
    None
}

/// Waits until the process at `signal_index` listens on `addr` and accepts a connection
/// there, while every process keeps running; a process that exits first (one that could not
/// bind the port, say) is diagnosed from its status and log.
///
/// It connects only once /proc shows that process listening: before that the port may be
/// another's for a moment (one that took it after its choice, or one about to exit), and a
/// connection that one accepted closes under the conversation as it exits, even if ours binds
/// the port right after. Once ours listens, no other process can take the port.
pub fn wait_until_serving(addr: SocketAddr, mut processes: Vec<Spawned>, signal_index: usize, timeout: Duration) -> Result<Server, StartError> {
    let started = Instant::now();
    let logs: Vec<PathBuf> = processes.iter().map(|p| p.log.clone()).collect();
    loop {
        if let Some(error) = exited(&mut processes) {
            kill_all(&mut processes);
            return Err(error);
        }
        let signal_pid = processes[signal_index].child.id();
        if listens_on(signal_pid, addr.port()) {
            if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                let children = processes.into_iter().map(|p| p.child).collect();
                return Ok(Server { addr, signal_pid, logs, children, first_connection: Some(stream) });
            }
        }
        if started.elapsed() > timeout {
            kill_all(&mut processes);
            return Err(StartError::Failed(format!("nothing accepted connections on {addr} within {timeout:?}; logs: {logs:?}")));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn diagnose_exit(status: std::process::ExitStatus, log: &str, path: &Path) -> StartError {
    // clap exits 2 on usage errors; only an unknown subcommand means "not implemented yet".
    // A known subcommand with wrong flags is a failure: the flags are part of the contract.
    if status.code() == Some(2) && log.contains("unrecognized subcommand") {
        let first = log.lines().next().unwrap_or_default().trim().to_string();
        return StartError::Unavailable(first);
    }
    let tail: Vec<&str> = log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
    StartError::Failed(format!("exited with {status} before serving; {}:\n{}", path.display(), tail.join("\n")))
}

/// Whether process `pid` holds a TCP socket listening on `port` (its own socket inodes,
/// matched against the kernel's table of listening sockets). Where /proc cannot tell (not
/// Linux), it is taken to, and a connection made to another process goes unnoticed.
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return true };
    let inodes: std::collections::BTreeSet<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| target.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_string))
        .collect();
    let port_hex = format!(":{port:04X}");
    let listening = |table: &str| {
        std::fs::read_to_string(table).unwrap_or_default().lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local address, state (0A: LISTEN), inode
            fields.len() > 9 && fields[1].ends_with(&port_hex) && fields[3] == "0A" && inodes.contains(fields[9])
        })
    };
    listening("/proc/net/tcp") || listening("/proc/net/tcp6")
}
