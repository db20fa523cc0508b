//! `coolbeans cluster-node`: one Raft node serving the gRPC API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::peers::parse_peers;
use crate::node::{start_node, DriverConfig, NodeOptions};
use crate::storage::{RealDisk, WalOptions};

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
    /// Take a snapshot (and compact the log) after this many entries.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_entries: u64,
    /// One raft tick, in milliseconds (elections take 10 to 20 ticks).
    #[arg(long, default_value_t = 100)]
    pub tick_ms: u64,
}

fn data_dir_name(dir: &std::path::Path) -> Result<PathBuf, String> {
    dir.file_name().map(PathBuf::from).ok_or_else(|| format!("--data-dir {} names no directory", dir.display()))
}

/// Starts the node and serves until interrupted.
pub async fn run(args: NodeArgs) -> Result<(), String> {
    if args.node_id == 0 {
        return Err("--node-id must be a positive integer".into());
    }
    if args.peers.is_none() && args.join.is_none() && !args.data_dir.join("node-id").exists() {
        return Err("a new node needs --peers (to form a cluster) or --join (to join one)".into());
    }
    let peers = args.peers.as_deref().map(parse_peers).transpose()?.unwrap_or_default();
    let advertise = args.advertise.clone().unwrap_or_else(|| args.listen.to_string());
    let options = NodeOptions {
        driver: DriverConfig {
            id: args.node_id,
            tick: Duration::from_millis(args.tick_ms.max(1)),
            snapshot_entries: args.snapshot_entries.max(1),
            ..DriverConfig::default()
        },
        advertise: advertise.clone(),
        peers,
        data_dir: data_dir_name(&args.data_dir)?,
        wal: WalOptions::default(),
    };
    // The disk is rooted at the data dir's parent, so creating the data dir is synced too.
    let root = args.data_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let disk = Arc::new(RealDisk::new(root.to_path_buf()));
    let node = start_node(options, disk).map_err(|e| e.to_string())?;
    tracing::info!(node = args.node_id, listen = %args.listen, "node started");
    if let Some(join) = args.join.clone() {
        let id = args.node_id;
        tokio::spawn(async move {
            match super::client::join_with_retry(&join, id, &advertise).await {
                Ok(()) => tracing::info!(node = id, via = %join, "joined the cluster"),
                Err(e) => tracing::error!(node = id, via = %join, error = %e, "could not join the cluster"),
            }
        });
    }
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    crate::rpc::serve(args.listen, node, shutdown).await.map_err(|e| format!("gRPC server on {}: {e}", args.listen))
}
