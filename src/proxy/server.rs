//! The listeners: TCP (`HOST:PORT`) and, outside the simulator, unix sockets (`unix:PATH`).
//! The accept loop takes a connection permit before it accepts, so at most
//! `connections_max` connections are served, fewer if the limit on open files would leave
//! storage too few (`fds`), and the rest wait in the kernel's backlog.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::conn::Conn;
use super::front_end::FrontEnd;

/// Where a front end listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(String),
    Unix(std::path::PathBuf),
}

impl ListenAddr {
    /// `unix:PATH` or `HOST:PORT`.
    pub fn parse(s: &str) -> ListenAddr {
        match s.strip_prefix("unix:") {
            Some(path) => ListenAddr::Unix(path.into()),
            None => ListenAddr::Tcp(s.to_string()),
        }
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => f.write_str(a),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A bound listener, ready to serve.
pub enum Listener {
    Tcp(TcpListener),
    #[cfg(not(madsim))]
    Unix(tokio::net::UnixListener),
}

impl Listener {
    /// Binds the address (a stale unix socket file is replaced).
    pub async fn bind(addr: &ListenAddr) -> std::io::Result<Listener> {
        match addr {
            ListenAddr::Tcp(a) => Ok(Listener::Tcp(TcpListener::bind(a.as_str()).await?)),
            #[cfg(not(madsim))]
            ListenAddr::Unix(path) => {
                if path.exists() {
                    std::fs::remove_file(path)?;
                }
                Ok(Listener::Unix(tokio::net::UnixListener::bind(path)?))
            }
            #[cfg(madsim)]
            ListenAddr::Unix(_) => Err(std::io::Error::other("unix sockets are not simulated")),
        }
    }

    /// The bound TCP address, if TCP.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            #[cfg(not(madsim))]
            Listener::Unix(_) => None,
        }
    }
}

/// The first pause after a failed accept; it doubles up to the longest while accepts keep
/// failing. A failure such as "too many open files" leaves the listener readable, so accepting
/// again at once would spin; a pause lets connections close meanwhile.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(100);

/// At most one line per kind of trouble this often: at the descriptor limit, accepts fail
/// about as often as the backoff allows.
const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Serves connections for ever (until the task is dropped).
pub async fn serve(listener: Listener, front: Arc<FrontEnd>) {
    let connections_max = front.limits.connections_max.min(super::fds::connections_max());
    if connections_max < front.limits.connections_max {
        tracing::info!(connections_max, "fewer connections than asked: the limit on open files leaves the rest for storage");
    }
    let permits = Arc::new(Semaphore::new(connections_max));
    let started = tokio::time::Instant::now();
    let mut full_log = LogLimit::default();
    let mut failures = AcceptFailures::default();
    loop {
        if permits.available_permits() == 0 {
            if let Some(suppressed) = full_log.allow(started.elapsed()) {
                tracing::warn!(connections_max, suppressed, "every connection is taken; new clients wait in the listen backlog");
            }
        }
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let accepted = match &listener {
            Listener::Tcp(l) => l.accept().await.map(|(stream, _)| {
                let _ = stream.set_nodelay(true);
                spawn_conn(front.clone(), stream, permit)
            }),
            #[cfg(not(madsim))]
            Listener::Unix(l) => l.accept().await.map(|(stream, _)| spawn_conn(front.clone(), stream, permit)),
        };
        match accepted {
            Ok(()) => failures.backoff = Duration::ZERO,
            Err(e) => {
                let (pause, log) = failures.failed(started.elapsed());
                if let Some(suppressed) = log {
                    tracing::warn!(error = %e, suppressed, "accept failed; retrying");
                }
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Lets a repeated log line through at most once per `LOG_INTERVAL`.
#[derive(Default)]
struct LogLimit {
    /// When the last line went out, as time since the accept loop started.
    logged_at: Option<Duration>,
    /// Lines held back since then.
    suppressed: u64,
}

impl LogLimit {
    /// Whether to log at `now`: `Some(lines held back before this one)`, or `None` to hold
    /// this one back.
    fn allow(&mut self, now: Duration) -> Option<u64> {
        if self.logged_at.is_some_and(|at| now < at + LOG_INTERVAL) {
            self.suppressed += 1;
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Failed accepts in a row: how long to pause, and whether to say so.
#[derive(Default)]
struct AcceptFailures {
    /// The last pause; zero after an accept that worked.
    backoff: Duration,
    log: LogLimit,
}

impl AcceptFailures {
    /// One more failure at `now`: the pause before accepting again, and what `LogLimit`
    /// says of logging it.
    fn failed(&mut self, now: Duration) -> (Duration, Option<u64>) {
        self.backoff = (self.backoff * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
        (self.backoff, self.log.allow(now))
    }
}

fn spawn_conn<S>(front: Arc<FrontEnd>, stream: S, permit: tokio::sync::OwnedSemaphorePermit)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    front.counters.current_connections.fetch_add(1, Ordering::Relaxed);
    front.counters.total_connections.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        Conn::new(front.clone(), stream).run().await;
        front.counters.current_connections.fetch_sub(1, Ordering::Relaxed);
        drop(permit);
    });
}

/// Turns drain mode on at each SIGUSR1: puts then answer DRAINING.
#[cfg(not(madsim))]
pub fn drain_on_sigusr1(front: Arc<FrontEnd>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut usr1 = signal(SignalKind::user_defined1())?;
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            tracing::info!("SIGUSR1: drain mode on; puts answer DRAINING");
            front.draining.store(true, Ordering::Relaxed);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failing accepts back off from 10 ms to 100 ms, and a second of them logs one line that
    /// counts the rest; an accept that works starts the backoff over.
    #[test]
    fn accept_failures_back_off_and_log_once_a_second() {
        let mut failures = AcceptFailures::default();
        let mut now = Duration::ZERO;
        let mut pauses = Vec::new();
        let mut logged = Vec::new();
        while now < Duration::from_millis(2500) {
            let (pause, log) = failures.failed(now);
            pauses.push(pause.as_millis());
            logged.extend(log);
            now += pause;
        }
        assert_eq!(pauses[..6], [10, 20, 40, 80, 100, 100]);
        assert_eq!(logged.len(), 3, "one line at 0 s, 1 s and 2 s: {logged:?}");
        assert_eq!(logged[0], 0);
        assert!(logged[1] >= 9, "the second line counts the failures of the first second: {logged:?}");
        failures.backoff = Duration::ZERO;
        assert_eq!(failures.failed(now).0, ACCEPT_BACKOFF_MIN);
    }
}
