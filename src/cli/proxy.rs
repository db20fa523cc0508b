//! `coolbeans beanstalkd`: the proxy before a cluster; and what every way of running a
//! proxy shares.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::client::RemoteUpstream;
use crate::proxy::server::Listen;
use crate::proxy::{serve, Identity, Limits, ListenAddr, Listener, Proxy, ProxyMetrics, Upstream};

#[derive(Args, Debug, Clone)]
pub struct ProxyArgs {
    /// Where clients connect: HOST:PORT, or unix:PATH.
    #[arg(long, default_value = "127.0.0.1:11300")]
    pub listen: String,
    /// The cluster's nodes (their gRPC HOST:PORT), comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub upstreams: Vec<String>,
    /// If this proxy dies, its clients' jobs and waits are released this long after.
    #[arg(long, default_value_t = 10)]
    pub lease_secs: u64,
    /// Largest job body in bytes.
    #[arg(short = 'z', long, default_value_t = crate::limits::JOB_BODY_BYTES_MAX_DEFAULT)]
    pub job_bytes_max: usize,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub dial: super::security::DialArgs,
    #[command(flatten)]
    pub metrics: super::metrics::MetricsArgs,
    #[command(flatten)]
    pub console: super::console::ConsoleArgs,
}

/// TLS on the beanstalkd port (`serve`, `beanstalkd` and a node's proxy share them).
#[derive(Args, Debug, Clone)]
pub struct TlsArgs {
    /// Speak TLS on the beanstalkd port with this PEM certificate chain (and
    /// --beanstalkd-tls-key); a plain-text client there has its connection closed.
    #[arg(long, value_name = "PATH", requires = "beanstalkd_tls_key")]
    pub beanstalkd_tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --beanstalkd-tls-cert.
    #[arg(long, value_name = "PATH", requires = "beanstalkd_tls_cert")]
    pub beanstalkd_tls_key: Option<std::path::PathBuf>,
}

impl TlsArgs {
    /// Where to listen, with TLS if asked (its files are read now, so a bad one stops the
    /// start rather than every connection).
    pub fn listen(&self, addr: ListenAddr) -> Result<Listen, String> {
        let tls = match (&self.beanstalkd_tls_cert, &self.beanstalkd_tls_key) {
            (Some(cert), Some(key)) => Some(crate::proxy::tls::load(cert, key)?),
            _ => None,
        };
        Ok(Listen { addr, tls })
    }
}

/// The proxy's limits as flags (`serve` and `beanstalkd` share them).
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Connections served at once; more wait in the listen backlog. Fewer if the limit on open
    /// files (raised to its hard limit at start) would leave under 64 for storage.
    #[arg(long, default_value_t = Limits::default().connections_max)]
    pub max_connections: usize,
    /// Bytes of a command line read before it is answered BAD_FORMAT (at least 224).
    #[arg(long, default_value_t = Limits::default().line_bytes_max)]
    pub max_line_bytes: usize,
    /// Bytes a connection may send ahead while its reserve waits, before it is read no more.
    #[arg(long, default_value_t = Limits::default().connection_buffer_bytes_max)]
    pub max_connection_buffer_bytes: usize,
    /// Seconds a command may take to arrive whole (its line, and a put's body) once its first
    /// byte came; past it the connection closes, so a client trickling bytes cannot hold it.
    /// 0: no limit.
    #[arg(long, value_name = "SECS", default_value_t = crate::proxy::COMMAND_TIMEOUT_DEFAULT.as_secs())]
    pub command_timeout: u64,
    /// Seconds a connection with nothing pending (no partial command, no waiting reserve) may
    /// stay silent before it is closed. 0, the default: never, as in beanstalkd.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub idle_timeout: u64,
}

impl LimitArgs {
    /// The limits, checked; `job_body_bytes_max` comes from `-z`.
    pub fn limits(&self, job_body_bytes_max: usize) -> Result<Limits, String> {
        if job_body_bytes_max > crate::limits::JOB_BODY_BYTES_MAX_LIMIT {
            return Err(format!("-z {job_body_bytes_max} is above the limit of {} bytes", crate::limits::JOB_BODY_BYTES_MAX_LIMIT));
        }
        if self.max_line_bytes < crate::protocol::LINE_BYTES_MAX {
            return Err(format!("--max-line-bytes must be at least {} (beanstalkd's longest command)", crate::protocol::LINE_BYTES_MAX));
        }
        Ok(Limits {
            connections_max: self.max_connections.max(1),
            job_body_bytes_max,
            line_bytes_max: self.max_line_bytes,
            connection_buffer_bytes_max: self.max_connection_buffer_bytes.max(1),
            command_timeout: seconds(self.command_timeout),
            idle_timeout: seconds(self.idle_timeout),
        })
    }
}

/// A timeout flag's value: 0 for none.
fn seconds(secs: u64) -> Option<std::time::Duration> {
    (secs > 0).then(|| std::time::Duration::from_secs(secs))
}

/// What `stats` says of this process.
pub fn identity() -> Identity {
    let hostname = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    Identity {
        version: env!("CARGO_PKG_VERSION").to_string(),
        id: format!("{:016x}", u64::from(std::process::id()) ^ crate::clock::now_ms().rotate_left(20)),
        hostname,
        binlog_max_size: 0,
    }
}

/// A proxy id unique to this process: a restarted proxy's clients are new clients.
pub fn unique_proxy_id() -> String {
    format!("{}-{}-{}", identity().hostname, std::process::id(), crate::clock::now_ms())
}

/// Binds the listener and serves clients through `upstream` until `stop` completes, then
/// stops gracefully: no new connections, puts answer DRAINING, and the clients connected get
/// `stop::CONNECTIONS_LIMIT` to finish and hang up before their sessions end. Commands are
/// timed into `metrics` if given.
pub async fn run_proxy(
    listen: Listen,
    upstream: Arc<dyn Upstream>,
    limits: Limits,
    identity: Identity,
    lease: Option<Duration>,
    metrics: Option<Arc<ProxyMetrics>>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let (addr, tls) = (listen.addr.clone(), listen.tls.is_some());
    let listener = Listener::bind(listen).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let proxy = Proxy::start(upstream.clone(), limits, identity, metrics);
    if let Some(lease) = lease {
        proxy.keep_lease(lease);
    }
    #[cfg(not(madsim))]
    crate::proxy::server::drain_on_sigusr1(proxy.clone()).map_err(|e| format!("SIGUSR1 handler: {e}"))?;
    tracing::info!(listen = %addr, tls, "serving the beanstalkd protocol");
    tokio::select! {
        // In order: tokio picks branches at random from a process-wide seed, which would make
        // a simulated run depend on how many ran before it in the same process.
        biased;
        _ = serve(listener, proxy.clone()) => return Ok(()),
        _ = stop => {}
    }
    finish_connections(&proxy, super::stop::CONNECTIONS_LIMIT).await;
    let proxy_id = upstream.proxy_id().to_string();
    let _ = tokio::time::timeout(Duration::from_secs(2), upstream.write(crate::fsm::Op::ProxyGone { proxy: proxy_id })).await;
    Ok(())
}

/// Puts the proxy in drain mode and waits until its clients hang up, at most `limit`.
async fn finish_connections(proxy: &Proxy, limit: Duration) {
    proxy.draining.store(true, Ordering::Relaxed);
    let connected = || proxy.counters.current_connections.load(Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + limit;
    if connected() > 0 {
        tracing::info!(connections = connected(), "stopping: no new connections, puts answer DRAINING; waiting for clients to finish");
    }
    while connected() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if connected() > 0 {
        tracing::info!(connections = connected(), "stopping: clients still connected are cut off");
    }
}

pub async fn run(args: ProxyArgs) -> Result<(), String> {
    let mut metrics = args.metrics.bind().await?;
    let console = args.console.bind().await?;
    let proxy_metrics = metrics.as_mut().map(super::metrics::Metrics::proxy);
    let mut security = args.dial.load(None)?;
    security.reload_on_sighup();
    let upstream =
        RemoteUpstream::dialing(args.upstreams.clone(), unique_proxy_id(), proxy_metrics.as_ref().map(|m| m.client()), security.dialer.clone())?;
    if let Some(metrics) = metrics {
        metrics.serve();
    }
    if let Some(console) = console {
        // Its own upstream and caller id: the console's writes are not the proxy's clients'.
        let proxy_id = format!("console-{}", unique_proxy_id());
        console.start_proxy(RemoteUpstream::dialing(args.upstreams.clone(), proxy_id, None, security.dialer.clone())?);
    }
    let limits = args.limits.limits(args.job_bytes_max)?;
    let listen = args.tls.listen(ListenAddr::parse(&args.listen))?;
    let lease = Duration::from_secs(args.lease_secs.max(1));
    let stop = async {
        let signal = super::stop::signalled().await;
        tracing::info!(signal, "stopping");
    };
    run_proxy(listen, upstream, limits, identity(), Some(lease), proxy_metrics, stop).await?;
    tracing::info!("stopped");
    Ok(())
}
