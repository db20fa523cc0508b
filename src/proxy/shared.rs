//! What all connections of one proxy share: the upstream, the waiting reserves, the
//! counters `stats` reports, the drain flag, and the limits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::metrics::ProxyMetrics;
use super::upstream::Upstream;
use crate::api::stats::ClusterStats;
use crate::chaos::mutant::{self, Mutant};
use crate::client::{Answer, Query};
use crate::fsm::{ClientKey, Op, Reply, ReserveOutcome};
use crate::protocol::{CommandKind, Counted, ServerStats, Stats};

/// The proxy's limits, each one a flag.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once; more wait in the listen backlog. The accept loop serves
    /// fewer if the limit on open files would leave storage too few (`fds`).
    pub connections_max: usize,
    /// Largest put body (beanstalkd's `-z`).
    pub job_body_bytes_max: usize,
    /// Bytes of a command line buffered before it is overlong (at least beanstalkd's 224).
    pub line_bytes_max: usize,
    /// Bytes a connection may hold unanswered beyond one command (pipelined input read while
    /// a reserve waits); past it the connection is read no further until it catches up.
    pub connection_buffer_bytes_max: usize,
    /// How long a command may take to arrive whole once its first byte came (its line, and a
    /// put's body); past it the connection closes. A client trickling bytes otherwise holds a
    /// connection and its buffer for ever. None: no limit.
    pub command_timeout: Option<Duration>,
    /// How long a connection may send nothing while nothing of it is pending (no partial
    /// command, no waiting reserve) before it is closed. None, the default: beanstalkd closes
    /// no idle connection, and clients keep pooled ones idle for hours.
    pub idle_timeout: Option<Duration>,
}

/// A minute for a command to arrive whole: a 3 MB body (the largest `-z` allows) then needs
/// 50 KB/s, and a line of 224 bytes any link at all.
pub const COMMAND_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_max: 10_000,
            job_body_bytes_max: crate::limits::JOB_BODY_BYTES_MAX_DEFAULT,
            line_bytes_max: crate::protocol::LINE_BYTES_MAX,
            connection_buffer_bytes_max: 256 * 1024,
            command_timeout: Some(COMMAND_TIMEOUT_DEFAULT),
            idle_timeout: None,
        }
    }
}

/// Counts of commands and of connections, for `stats`.
#[derive(Default)]
pub struct Counters {
    /// Every command answered, by `CommandKind::index`: counted in one place, as decoded.
    pub commands: [AtomicU64; CommandKind::COUNT],
    /// Commands refused before the log that beanstalkd counts all the same.
    pub cmd_put_unlogged: AtomicU64,
    pub cmd_pause_tube_unlogged: AtomicU64,
    pub current_connections: AtomicU64,
    pub total_connections: AtomicU64,
}

use crate::node::lock;

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// How often waits are checked for answers lost on their way (a reservation feed that broke,
/// a proxy cut off when its client was served), and how old a wait must be to be checked.
const LOST_ANSWER_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A reserve waiting for its answer.
struct Waiter {
    answer: oneshot::Sender<ReserveOutcome>,
    timeout_secs: Option<u32>,
    /// When the state machine said it waits (`None` until then: the reserve is in flight, and
    /// its reply may answer it directly).
    waiting_since: Option<tokio::time::Instant>,
}

/// Waiting reserves by (client id, request id): the upstream's reservation feed answers them.
#[derive(Default)]
pub struct Waiters {
    waiting: Mutex<BTreeMap<(String, String), Waiter>>,
}

impl Waiters {
    /// Registers a reserve before it is sent, so an answer that overtakes the reply is kept.
    pub fn register(&self, client: &str, request: &str, timeout_secs: Option<u32>) -> oneshot::Receiver<ReserveOutcome> {
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter { answer: tx, timeout_secs, waiting_since: None };
        lock(&self.waiting).insert((client.to_string(), request.to_string()), waiter);
        rx
    }

    /// Notes that the state machine made the reserve wait: from now on only this registry
    /// delivers its answer.
    pub fn mark_waiting(&self, client: &str, request: &str) {
        if let Some(w) = lock(&self.waiting).get_mut(&(client.to_string(), request.to_string())) {
            w.waiting_since = Some(tokio::time::Instant::now());
        }
    }

    /// Reserves that have waited at least `age` for a client still connected: (client id,
    /// request id).
    fn waiting_longer_than(&self, age: Duration) -> Vec<(String, String)> {
        let now = tokio::time::Instant::now();
        let waiting = lock(&self.waiting);
        let old = waiting.iter().filter(|(_, w)| !w.answer.is_closed() && w.waiting_since.is_some_and(|t| now.duration_since(t) >= age));
        old.map(|((client, request), _)| (client.clone(), request.clone())).collect()
    }

    /// Takes a wait out of the registry to ask for its answer again: once taken, no answer
    /// can reach the client by the feed, so the client has surely not seen one.
    fn take_waiter(&self, client: &str, request: &str) -> Option<Waiter> {
        lock(&self.waiting).remove(&(client.to_string(), request.to_string()))
    }

    fn put_back(&self, client: String, request: String, waiter: Waiter) {
        lock(&self.waiting).insert((client, request), waiter);
    }

    /// Reserves the state machine made wait (not those still on their way to it).
    pub fn waiting_count(&self) -> usize {
        lock(&self.waiting).values().filter(|w| w.waiting_since.is_some()).count()
    }

    pub fn forget(&self, client: &str, request: &str) {
        lock(&self.waiting).remove(&(client.to_string(), request.to_string()));
    }

    /// Hands an answer to its reserve; repeats and answers nobody waits for are dropped.
    pub fn answer(&self, client: &str, request: &str, outcome: ReserveOutcome) {
        if let Some(waiter) = lock(&self.waiting).remove(&(client.to_string(), request.to_string())) {
            let _ = waiter.answer.send(outcome);
        }
    }
}

/// One proxy: shared by all its connections.
pub struct Proxy {
    pub upstream: Arc<dyn Upstream>,
    pub waiters: Waiters,
    pub counters: Counters,
    pub draining: AtomicBool,
    pub limits: Limits,
    /// The next connection's client id.
    next_client: AtomicU64,
    started: tokio::time::Instant,
    /// What `stats` says of the process: version, host and the like.
    pub identity: Identity,
    /// Bumped when the cluster ended this proxy's sessions (its lease ran out): every
    /// connection then closes, since its state upstream is gone.
    pub sessions_lost: tokio::sync::watch::Sender<u64>,
    /// Where commands are timed, when metrics are on.
    pub metrics: Option<Arc<ProxyMetrics>>,
}

/// The facts `stats` reports about the serving process.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub version: String,
    pub id: String,
    pub hostname: String,
    pub binlog_max_size: u64,
}

impl Proxy {
    /// A proxy over `upstream`, with its reservation feed running, recording into
    /// `metrics` if given.
    pub fn start(upstream: Arc<dyn Upstream>, limits: Limits, identity: Identity, metrics: Option<Arc<ProxyMetrics>>) -> Arc<Self> {
        let proxy = Arc::new(Proxy {
            upstream,
            waiters: Waiters::default(),
            counters: Counters::default(),
            draining: AtomicBool::new(false),
            limits,
            next_client: AtomicU64::new(1),
            started: tokio::time::Instant::now(),
            identity,
            sessions_lost: tokio::sync::watch::Sender::new(0),
            metrics,
        });
        if let Some(metrics) = &proxy.metrics {
            metrics.watch(&proxy);
        }
        let mut feed = proxy.upstream.reservations();
        let weak = Arc::downgrade(&proxy);
        tokio::spawn(async move {
            while let Some(event) = feed.recv().await {
                let Some(proxy) = weak.upgrade() else { return };
                let reserved = matches!(event.outcome, ReserveOutcome::Reserved { .. });
                if reserved && mutant::planted(Mutant::DropReservationAfterLeaderChange) && mutant::take_leader_change() {
                    // Kept but never answered: the client waits for ever.
                    std::mem::forget(proxy.waiters.take_waiter(&event.client.client, &event.request_id));
                    continue;
                }
                proxy.waiters.answer(&event.client.client, &event.request_id, event.outcome);
            }
        });
        tokio::spawn(find_lost_answers(Arc::downgrade(&proxy)));
        proxy
    }

    /// Keeps this proxy's lease on its clients' sessions alive: renewed every third of
    /// `lease`, so the cluster releases them within `lease` of the proxy dying.
    pub fn keep_lease(self: &Arc<Self>, lease: Duration) {
        let weak = Arc::downgrade(self);
        let lease_secs = lease.as_secs().max(1) as u32;
        tokio::spawn(async move {
            let mut renewed_before = false;
            loop {
                let Some(proxy) = weak.upgrade() else { return };
                let proxy_id = proxy.upstream.proxy_id().to_string();
                match proxy.upstream.write(crate::fsm::Op::ProxyLease { proxy: proxy_id, lease_secs }).await {
                    Ok(Reply::Lease { was_live: false }) if renewed_before => {
                        tracing::warn!("the lease ran out before it was renewed: the cluster ended every session; closing all connections");
                        proxy.sessions_lost.send_modify(|n| *n += 1);
                    }
                    Ok(_) => renewed_before = true,
                    Err(e) => tracing::warn!(error = ?e, "lease renewal failed; retrying"),
                }
                drop(proxy);
                tokio::time::sleep(lease / 3).await;
            }
        });
    }

    pub fn next_client_id(&self) -> String {
        self.next_client.fetch_add(1, Ordering::Relaxed).to_string()
    }

    /// Counts a command as it is decoded.
    pub fn count(&self, command: CommandKind) {
        bump(&self.counters.commands[command.index()]);
    }

    /// Counts a command refused before the log.
    pub fn count_unlogged(&self, command: Counted) {
        let c = &self.counters;
        bump(match command {
            Counted::Put => &c.cmd_put_unlogged,
            Counted::PauseTube => &c.cmd_pause_tube_unlogged,
        });
    }

    /// `stats`: the cluster's counts and its node's log, with what this process knows.
    pub fn stats(&self, cluster: ClusterStats) -> Stats {
        let (binlog_oldest_index, binlog_current_index) = (cluster.log_oldest_index, cluster.log_current_index);
        Stats { machine: cluster.machine, server: ServerStats { binlog_oldest_index, binlog_current_index, ..self.server_stats() } }
    }

    /// What `stats` needs from this process.
    fn server_stats(&self) -> ServerStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (utime, stime) = rusage_us();
        ServerStats {
            commands: c.commands.each_ref().map(get),
            cmd_put_unlogged: get(&c.cmd_put_unlogged),
            cmd_pause_tube_unlogged: get(&c.cmd_pause_tube_unlogged),
            max_job_size: self.limits.job_body_bytes_max as u64,
            current_connections: get(&c.current_connections),
            total_connections: get(&c.total_connections),
            pid: u64::from(std::process::id()),
            version: self.identity.version.clone(),
            rusage_utime_us: utime,
            rusage_stime_us: stime,
            uptime_secs: self.started.elapsed().as_secs(),
            binlog_max_size: self.identity.binlog_max_size,
            draining: self.draining.load(Ordering::Relaxed),
            id: self.identity.id.clone(),
            hostname: self.identity.hostname.clone(),
            os: std::env::consts::OS.to_string(),
            platform: std::env::consts::ARCH.to_string(),
            ..ServerStats::default()
        }
    }
}

/// Now and then asks the cluster which of the clients waiting here for a while no longer wait
/// there: their answer was lost on its way (the reservation feed is best effort). Each of those
/// asks again with the same request id, which the state machine answers as before.
async fn find_lost_answers(proxy: std::sync::Weak<Proxy>) {
    loop {
        tokio::time::sleep(LOST_ANSWER_CHECK_INTERVAL).await;
        let Some(proxy) = proxy.upgrade() else { return };
        let old = proxy.waiters.waiting_longer_than(LOST_ANSWER_CHECK_INTERVAL);
        if old.is_empty() {
            continue;
        }
        let clients = old.iter().map(|(client, _)| client.clone()).collect();
        let Ok(Answer::Clients(not_waiting)) = proxy.upstream.query(Query::NotWaiting(clients)).await else { continue };
        let not_waiting: std::collections::BTreeSet<String> = not_waiting.into_iter().collect();
        for (client, request) in old.into_iter().filter(|(c, _)| not_waiting.contains(c)) {
            // Answered by the feed since the query: nothing was lost.
            let Some(waiter) = proxy.waiters.take_waiter(&client, &request) else { continue };
            let key = ClientKey::new(proxy.upstream.proxy_id(), &client);
            let op = Op::Reserve { client: key, request_id: request.clone(), timeout_secs: waiter.timeout_secs, tubes: Vec::new() };
            match proxy.upstream.write(op).await {
                Ok(Reply::Reserve(Some(outcome))) => {
                    tracing::info!(%client, %request, "a reservation answer was lost on its way; asked again");
                    let _ = waiter.answer.send(outcome);
                }
                _ => proxy.waiters.put_back(client, request, waiter),
            }
        }
    }
}

/// User and system CPU time of this process, in microseconds.
fn rusage_us() -> (u64, u64) {
    // SAFETY: getrusage fills the struct it is given and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return (0, 0);
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(usage.ru_utime), us(usage.ru_stime))
}
