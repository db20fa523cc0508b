//! `coolbeans cluster-node`: one Raft node serving the gRPC API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::metrics::Metrics;
use super::peers::parse_peers;
use crate::node::{start_node, DriverConfig, LogStorage, NodeHandle, NodeMetrics, NodeOptions};
use crate::proxy::ProxyMetrics;
use crate::storage::{DirLock, RealDisk, WalOptions};

#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// This node's id: a positive integer, unique in the cluster.
    #[arg(long)]
    pub node_id: u64,
    /// Address of the gRPC port (cluster API, job API and node-to-node Raft traffic).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Address peers and clients reach this node at (default: --listen).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Where the log, hard state and snapshots live.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Initial members of a new cluster: 1=HOST:PORT,2=HOST:PORT,... (ignored once the data
    /// dir holds a cluster).
    #[arg(long, conflicts_with = "join")]
    pub peers: Option<String>,
    /// Address of a running cluster's node: ask it to add this node.
    #[arg(long)]
    pub join: Option<String>,
    /// Take a snapshot (and compact the log) after this many entries...
    #[arg(long, default_value_t = DriverConfig::default().snapshot_entries)]
    pub snapshot_entries: u64,
    /// ...or after this many bytes of entries.
    #[arg(long, default_value_t = DriverConfig::default().snapshot_log_bytes)]
    pub snapshot_log_bytes: u64,
    /// Largest job body in bytes: a put with a larger one is refused, whichever way it comes
    /// (a proxy before the cluster takes its own `-z`; give both the same).
    #[arg(short = 'z', long, default_value_t = crate::limits::JOB_BODY_BYTES_MAX_DEFAULT)]
    pub job_bytes_max: usize,
    /// What the jobs held may take, in bytes: each job counts its body, its tube's name and
    /// 128 bytes. Past it a put gets OUT_OF_MEMORY, as beanstalkd's does when memory runs
    /// out, rather than the process being killed (at most 7/8 of the 1 GiB a snapshot holds).
    #[arg(long, value_name = "BYTES", default_value_t = crate::limits::JOBS_BYTES_MAX_DEFAULT)]
    pub max_jobs_bytes: u64,
    /// Tubes at most: a put, use or watch that would make one more gets OUT_OF_MEMORY.
    #[arg(long, value_name = "N", default_value_t = crate::limits::TUBES_MAX_DEFAULT)]
    pub max_tubes: usize,
    /// One raft tick, in milliseconds (elections take 10 to 20 ticks).
    #[arg(long, default_value_t = 100)]
    pub tick_ms: u64,
    /// Also serve the beanstalkd protocol here (HOST:PORT or unix:PATH), before the cluster.
    #[arg(long)]
    pub beanstalkd_listen: Option<String>,
    /// With --beanstalkd-listen: if this process dies, its clients' jobs and waits are
    /// released this long after.
    #[arg(long, default_value_t = 10)]
    pub lease_secs: u64,
    /// Concurrent gRPC calls (HTTP/2 streams) on one connection; a caller's further calls
    /// wait for one to end.
    #[arg(long, value_name = "N", default_value_t = crate::rpc::GrpcLimits::default().streams_per_connection)]
    pub max_grpc_streams: u32,
    /// Writes a proxy may have forwarded and not yet taken the answers of; past it, its
    /// stream is read no further until it reads.
    #[arg(long, value_name = "N", default_value_t = crate::rpc::GrpcLimits::default().forwarded_writes)]
    pub max_forwarded_writes: usize,
    #[command(flatten)]
    pub tls: super::proxy::TlsArgs,
    #[command(flatten)]
    pub dial: super::security::DialArgs,
    /// Without mTLS: the tokens callers may present, one `ROLE[,ROLE...] TOKEN` a line (roles:
    /// peer, frontend, admin); a call without one of them is refused. Read again on SIGHUP.
    #[arg(long, value_name = "PATH", conflicts_with = "tls_cert")]
    pub auth_tokens_file: Option<PathBuf>,
    #[command(flatten)]
    pub metrics: super::metrics::MetricsArgs,
    #[command(flatten)]
    pub console: super::console::ConsoleArgs,
}

impl NodeArgs {
    fn grpc_limits(&self) -> crate::rpc::GrpcLimits {
        crate::rpc::GrpcLimits { streams_per_connection: self.max_grpc_streams.max(1), forwarded_writes: self.max_forwarded_writes.max(1) }
    }
}

/// Refuses a `--max-jobs-bytes` whose jobs a snapshot could not hold.
pub(crate) fn check_jobs_bytes_max(bytes: u64) -> Result<(), String> {
    match bytes <= crate::limits::JOBS_BYTES_MAX_LIMIT {
        true => Ok(()),
        false => Err(format!("--max-jobs-bytes {bytes} is above the limit of {} bytes", crate::limits::JOBS_BYTES_MAX_LIMIT)),
    }
}

fn data_dir_name(dir: &std::path::Path) -> Result<PathBuf, String> {
    dir.file_name().map(PathBuf::from).ok_or_else(|| format!("--data-dir {} names no directory", dir.display()))
}

/// Starts the node and serves until interrupted.
pub async fn run(args: NodeArgs) -> Result<(), String> {
    if args.node_id == 0 {
        return Err("--node-id must be a positive integer".into());
    }
    if args.job_bytes_max > crate::limits::JOB_BODY_BYTES_MAX_LIMIT {
        return Err(format!("-z {} is above the limit of {} bytes", args.job_bytes_max, crate::limits::JOB_BODY_BYTES_MAX_LIMIT));
    }
    check_jobs_bytes_max(args.max_jobs_bytes)?;
    let _lock = DirLock::acquire(&args.data_dir)?;
    // The proxy's TLS files are read before anything starts: a bad one stops the start.
    let listen = args.beanstalkd_listen.as_deref().map(|addr| args.tls.listen(crate::proxy::ListenAddr::parse(addr))).transpose()?;
    if args.peers.is_none() && args.join.is_none() && !args.data_dir.join("node-id").exists() {
        return Err("a new node needs --peers (to form a cluster) or --join (to join one)".into());
    }
    let mut security = args.dial.load_node(args.auth_tokens_file.as_deref())?;
    security.warn_if_plain(&args.listen);
    security.reload_on_sighup();
    let peers = args.peers.as_deref().map(parse_peers).transpose()?.unwrap_or_default();
    if !peers.is_empty() && super::rejoin::is_fresh(&args.data_dir) {
        super::rejoin::refuse_lost_member(&security.dialer, args.node_id, &peers).await?;
    }
    let advertise = args.advertise.clone().unwrap_or_else(|| args.listen.to_string());
    let mut metrics = args.metrics.bind().await?;
    let console = args.console.bind().await?;
    let node_metrics = metrics.as_mut().map(Metrics::node);
    let proxy_metrics = if args.beanstalkd_listen.is_some() {
        metrics.as_mut().map(Metrics::proxy)
    } else {
        None
    };
    let options = NodeOptions {
        driver: DriverConfig {
            id: args.node_id,
            tick: Duration::from_millis(args.tick_ms.max(1)),
            snapshot_entries: args.snapshot_entries.max(1),
            snapshot_log_bytes: args.snapshot_log_bytes.max(1),
            job_body_bytes_max: args.job_bytes_max,
            jobs_bytes_max: args.max_jobs_bytes,
            tubes_max: args.max_tubes,
            ..DriverConfig::default()
        },
        advertise: advertise.clone(),
        peers,
        data_dir: data_dir_name(&args.data_dir)?,
        wal: WalOptions::default(),
        metrics: node_metrics.clone(),
        dialer: security.dialer.clone(),
    };
    // The disk is rooted at the data dir's parent, so creating the data dir is synced too.
    let root = args.data_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let disk = Arc::new(RealDisk::new(root.to_path_buf()).observing_syncs(node_metrics.as_deref().map(NodeMetrics::fsync_observer)));
    let node = start_node(options, LogStorage::Disk(disk)).map_err(|e| e.to_string())?;
    if let Some(metrics) = metrics {
        metrics.serve();
    }
    tracing::info!(node = args.node_id, listen = %args.listen, "node started");
    if let Some(console) = console {
        // Its own upstream: the console's writes are not a proxy's clients, and go to the
        // leader wherever it is.
        let proxy_id = format!("console-{}-{}", args.node_id, crate::clock::now_ms());
        let remote = crate::client::RemoteUpstream::dialing(upstream_addrs(&args, &advertise), proxy_id, None, security.dialer.clone())?;
        let upstream = crate::proxy::CoLocatedUpstream::new(node.clone(), remote);
        console.start_node(node.clone(), upstream, Some((advertise.clone(), security.dialer.clone())), "cluster-node");
    }
    if let Some(join) = args.join.clone() {
        let (id, advertise, dialer) = (args.node_id, advertise.clone(), security.dialer.clone());
        tokio::spawn(async move {
            match super::client::join_with_retry_as(&dialer, &join, id, &advertise).await {
                Ok(()) => tracing::info!(node = id, via = %join, "joined the cluster"),
                Err(e) => tracing::error!(node = id, via = %join, error = %e, "could not join the cluster"),
            }
        });
    }
    // A graceful stop: leadership handed over first (the gRPC server still carries raft
    // traffic meanwhile), then the proxy inside finishes its connections (forwarding to
    // the new leader), then the server and last the node stop.
    let (stop_proxy, proxy_stopping) = tokio::sync::watch::channel(false);
    let proxy = listen.map(|listen| {
        let stop = async move {
            let mut stopping = proxy_stopping;
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        tokio::spawn(co_located_proxy(listen, &args, (&advertise, security.dialer.clone()), node.clone(), proxy_metrics, stop))
    });
    let stepping = node.clone();
    let id = args.node_id;
    let shutdown = async move {
        let signal = super::stop::signalled().await;
        tracing::info!(node = id, signal, "stopping");
        super::stop::step_down(&stepping, super::stop::STEP_DOWN_LIMIT).await;
        let _ = stop_proxy.send(true);
        if let Some(proxy) = proxy {
            let _ = proxy.await;
        }
    };
    let stopped = node.clone();
    tokio::select! {
        served = crate::rpc::serve(args.listen, node, (args.grpc_limits(), security.callers.clone()), shutdown) => {
            served.map_err(|e| format!("gRPC server on {}: {e}", args.listen))?;
        }
        stop = stopped.stopped() => return super::exit_for(&stopped, stop),
    }
    super::exit_for(&stopped, stopped.stop().await)
}

/// Where a proxy or console beside this node finds the cluster: this node's address
/// first, as `CoLocatedUpstream` expects, then its peers and the node it joined through.
fn upstream_addrs(args: &NodeArgs, advertise: &str) -> Vec<String> {
    let mut upstreams = vec![advertise.to_string()];
    let others = args.peers.as_deref().map(parse_peers).and_then(Result::ok).unwrap_or_default();
    upstreams.extend(others.into_values().filter(|a| a != advertise));
    upstreams.extend(args.join.clone());
    upstreams
}

/// The proxy that runs beside a node: in-process while this node leads, over gRPC to the
/// leader otherwise (this node's address first, as `CoLocatedUpstream` expects).
fn co_located_proxy(
    listen: crate::proxy::server::Listen,
    args: &NodeArgs,
    (advertise, dialer): (&str, crate::security::Dialer),
    node: NodeHandle,
    metrics: Option<Arc<ProxyMetrics>>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> impl std::future::Future<Output = ()> {
    let upstreams = upstream_addrs(args, advertise);
    let proxy_id = format!("node-{}-{}", args.node_id, crate::clock::now_ms());
    let lease = Duration::from_secs(args.lease_secs.max(1));
    let limits = crate::proxy::Limits { job_body_bytes_max: args.job_bytes_max, ..crate::proxy::Limits::default() };
    async move {
        let result = match crate::client::RemoteUpstream::dialing(upstreams, proxy_id, metrics.as_ref().map(|m| m.client()), dialer) {
            Ok(remote) => {
                let upstream = crate::proxy::CoLocatedUpstream::new(node, remote);
                super::proxy::run_proxy(listen, upstream, limits, super::proxy::identity(), Some(lease), metrics, stop).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "beanstalkd proxy stopped");
        }
    }
}
