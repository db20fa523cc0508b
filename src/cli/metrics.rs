//! `--metrics-listen`: Prometheus metrics at `/metrics`, for every subcommand that serves.

use std::sync::Arc;

use clap::Args;

use crate::metrics::{http, Registry};
use crate::node::NodeMetrics;
use crate::proxy::ProxyMetrics;

#[derive(Args, Debug, Clone)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://HOST:PORT/metrics (off unless given).
    ///
    /// Proxies: coolbeans_front_command_seconds{command}, _connections, _waiting_reserves,
    /// _forwarded_total{call}, _forward_retries_total, _internal_errors_total. Nodes:
    /// coolbeans_raft_{role,term,leader_id,commit_index,applied_index,match_index},
    /// coolbeans_node_proposals_total{op}, coolbeans_raft_entry_seconds, coolbeans_wal_batches_total,
    /// coolbeans_fsync_seconds, coolbeans_snapshot_seconds{kind}, coolbeans_tube_jobs{tube,state}.
    /// README.md lists them all.
    #[arg(long, value_name = "HOST:PORT", verbatim_doc_comment)]
    pub metrics_listen: Option<String>,
}

/// A process's metrics while its parts register into them, and the port they will be
/// served on.
pub struct Metrics {
    listen: String,
    listener: tokio::net::TcpListener,
    registry: Registry,
}

impl MetricsArgs {
    /// Binds the metrics port, if asked for one: before anything else starts, so a port in use
    /// fails the start.
    pub async fn bind(&self) -> Result<Option<Metrics>, String> {
        let Some(listen) = self.metrics_listen.clone() else { return Ok(None) };
        let listener = http::bind(&listen).await.map_err(|e| format!("--metrics-listen {listen}: {e}"))?;
        Ok(Some(Metrics { listen, listener, registry: Registry::default() }))
    }
}

impl Metrics {
    pub fn node(&mut self) -> Arc<NodeMetrics> {
        NodeMetrics::register(&mut self.registry)
    }

    pub fn proxy(&mut self) -> Arc<ProxyMetrics> {
        ProxyMetrics::register(&mut self.registry)
    }

    /// Serves what was registered, from a task of its own.
    pub fn serve(self) {
        tracing::info!(listen = %self.listen, "serving metrics at /metrics");
        tokio::spawn(http::serve(self.listener, Arc::new(self.registry)));
    }
}
