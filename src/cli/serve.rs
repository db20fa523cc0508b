//! `coolbeans serve`: one node and the beanstalkd proxy in one process, a drop-in for
//! `beanstalkd`. It takes beanstalkd's own flags. Without `-b` it keeps everything in memory
//! and writes nothing to disk, as beanstalkd does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::metrics::Metrics;
use super::proxy::{identity, run_proxy};
use crate::limits::MEMORY_LOG_BYTES_MAX;
use crate::node::{start_node, DriverConfig, LogStorage, NodeMetrics, NodeOptions};
use crate::proxy::{ListenAddr, LocalUpstream};
use crate::storage::{spawn_overdue_timer, DirLock, PolicyDisk, RealDisk, SyncPolicy, WalOptions};

/// The proxy id of `serve`'s proxy: fixed, so a restart can end the sessions of the run
/// before it at once.
const SERVE_PROXY_ID: &str = "serve";

#[derive(Args, Debug, Clone)]
#[command(disable_version_flag = true)]
pub struct ServeArgs {
    /// Listen on ADDR (an IP address, or unix:PATH for a unix socket).
    #[arg(short = 'l', default_value = "127.0.0.1")]
    pub listen: String,
    /// Listen on TCP port PORT.
    #[arg(short = 'p', default_value_t = 11300)]
    pub port: u16,
    /// Keep the log and snapshots in DIR; without it, everything stays in memory.
    #[arg(short = 'b', long = "data-dir")]
    pub data_dir: Option<PathBuf>,
    /// Largest job body in bytes.
    #[arg(short = 'z', default_value_t = crate::limits::JOB_BODY_BYTES_MAX_DEFAULT)]
    pub job_bytes_max: usize,
    /// What the jobs held may take, in bytes: each job counts its body, its tube's name and
    /// 128 bytes. Past it a put gets OUT_OF_MEMORY, as beanstalkd's does when memory runs
    /// out, rather than the process being killed (at most 7/8 of the 1 GiB a snapshot holds).
    #[arg(long, value_name = "BYTES", default_value_t = crate::limits::JOBS_BYTES_MAX_DEFAULT)]
    pub max_jobs_bytes: u64,
    /// Tubes at most: a put, use or watch that would make one more gets OUT_OF_MEMORY.
    #[arg(long, value_name = "N", default_value_t = crate::limits::TUBES_MAX_DEFAULT)]
    pub max_tubes: usize,
    /// fsync the log at most once every MS milliseconds (0: every write, the default, when an
    /// acknowledged write survives a power loss): a power loss may lose the writes of the
    /// last MS ms or so; snapshots and compactions are always synced.
    #[arg(short = 'f')]
    pub fsync_ms: Option<u64>,
    /// Never fsync the log: a power loss may lose every write since the last snapshot
    /// (snapshots and compactions are still synced); a crash of the process alone loses none.
    #[arg(short = 'F')]
    pub no_fsync: bool,
    /// Verbose: log each connection's errors and the node's progress.
    #[arg(short = 'V', action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print the version and exit.
    #[arg(short = 'v')]
    pub version: bool,
    #[command(flatten)]
    pub limits: super::proxy::LimitArgs,
    #[command(flatten)]
    pub tls: super::proxy::TlsArgs,
    #[command(flatten)]
    pub metrics: super::metrics::MetricsArgs,
    #[command(flatten)]
    pub console: super::console::ConsoleArgs,
}

fn sync_policy(args: &ServeArgs) -> SyncPolicy {
    match (args.no_fsync, args.fsync_ms) {
        (true, _) => SyncPolicy::Never,
        (false, None | Some(0)) => SyncPolicy::Always,
        (false, Some(ms)) => SyncPolicy::AtMostEvery(Duration::from_millis(ms)),
    }
}

/// Where the log goes and the data dir's name: in memory only without `-b`; its fsyncs are
/// timed into `metrics` if given.
fn storage_for(args: &ServeArgs, metrics: Option<&NodeMetrics>) -> Result<(LogStorage, PathBuf), String> {
    let Some(dir) = &args.data_dir else {
        return Ok((LogStorage::Memory, PathBuf::new()));
    };
    let name = dir.file_name().map(PathBuf::from).ok_or_else(|| format!("-b {} names no directory", dir.display()))?;
    let root = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let real = RealDisk::new(root.to_path_buf()).observing_syncs(metrics.map(NodeMetrics::fsync_observer));
    let disk = Arc::new(PolicyDisk::new(real, sync_policy(args)));
    spawn_overdue_timer(&disk);
    Ok((LogStorage::Disk(disk), name))
}

fn driver_config(storage: &LogStorage, args: &ServeArgs, job_body_bytes_max: usize) -> DriverConfig {
    let (jobs_bytes_max, tubes_max) = (args.max_jobs_bytes, args.max_tubes);
    let config = DriverConfig { id: 1, job_body_bytes_max, jobs_bytes_max, tubes_max, ..DriverConfig::default() };
    match storage {
        LogStorage::Memory => DriverConfig { snapshot_log_bytes: MEMORY_LOG_BYTES_MAX, ..config },
        LogStorage::Disk(_) => config,
    }
}

pub fn listen_addr(args: &ServeArgs) -> ListenAddr {
    if args.listen.starts_with("unix:") {
        return ListenAddr::parse(&args.listen);
    }
    let host = if args.listen.contains(':') && !args.listen.starts_with('[') {
        format!("[{}]", args.listen)
    } else {
        args.listen.clone()
    };
    ListenAddr::Tcp(format!("{host}:{}", args.port))
}

pub async fn run(args: ServeArgs) -> Result<(), String> {
    if args.version {
        println!("coolbeans {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let limits = args.limits.limits(args.job_bytes_max)?;
    let listen = args.tls.listen(listen_addr(&args))?;
    super::node::check_jobs_bytes_max(args.max_jobs_bytes)?;
    let _lock = args.data_dir.as_deref().map(DirLock::acquire).transpose()?;
    let mut metrics = args.metrics.bind().await?;
    let console = args.console.bind().await?;
    let node_metrics = metrics.as_mut().map(Metrics::node);
    let proxy_metrics = metrics.as_mut().map(Metrics::proxy);
    let (storage, data_dir) = storage_for(&args, node_metrics.as_deref())?;
    let options = NodeOptions {
        driver: driver_config(&storage, &args, limits.job_body_bytes_max),
        advertise: "127.0.0.1:0".into(),
        peers: BTreeMap::from([(1, "127.0.0.1:0".to_string())]),
        data_dir,
        wal: WalOptions::default(),
        metrics: node_metrics,
        // serve has no gRPC port and no peers.
        dialer: Default::default(),
    };
    let node = start_node(options, storage).map_err(|e| e.to_string())?;
    if let Some(metrics) = metrics {
        metrics.serve();
    }
    let stopped = node.clone();
    let upstream = LocalUpstream::new(node.clone(), SERVE_PROXY_ID.to_string());
    if let Some(console) = console {
        console.start_node(node, upstream.clone(), None, "serve");
    }
    // Sessions of an earlier run (with -b) had no lease: end them now.
    if let Err(e) = crate::proxy::Upstream::write(upstream.as_ref(), crate::fsm::Op::ProxyGone { proxy: SERVE_PROXY_ID.into() }).await {
        tracing::warn!(error = ?e, "could not end the previous run's sessions");
    }
    let stop = async {
        let signal = super::stop::signalled().await;
        tracing::info!(signal, "stopping");
    };
    tokio::select! {
        served = run_proxy(listen, upstream, limits, identity(), None, proxy_metrics, stop) => served?,
        stop = stopped.stopped() => return super::exit_for(&stopped, stop),
    }
    super::exit_for(&stopped, stopped.stop().await)
}
