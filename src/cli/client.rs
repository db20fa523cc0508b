//! `coolbeans cluster-client`: ask a node about the cluster, or change its membership.

use std::time::Duration;

use clap::Subcommand;
use tonic::Code;

use crate::api::metadata::leader_hint;
use crate::api::{Empty, JoinRequest, LeaveRequest};
use crate::security::dial::{explain, ClusterApi};
use crate::security::Dialer;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects to the leader followed before giving up.
const REDIRECTS_MAX: usize = 5;

#[derive(Subcommand, Debug, Clone)]
pub enum ClientCommand {
    /// Print `true` if the node is the leader, else `false`.
    IsLeader,
    /// Print every member as the leader sees it: address, voter or learner, its own role and
    /// term, match index, lag behind the leader and last contact (the node's own view if the
    /// leader cannot be reached).
    Status {
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Add a node to the cluster (as a learner, promoted once caught up).
    Join {
        /// The new node's id: a positive integer no member has (nor had: use a new id for a
        /// node that comes back with an empty data dir).
        #[arg(long)]
        node_id: u64,
        /// The new node's gRPC address (HOST:PORT), as its --advertise or --listen gives it.
        #[arg(long)]
        addr: String,
    },
    /// Remove a node from the cluster.
    Leave {
        /// The id of the member to remove.
        #[arg(long)]
        node_id: u64,
    },
    /// Take a snapshot on the node and compact its log.
    Snapshot,
    /// Benchmark: concurrent writers put jobs for a while; prints writes/s and commit latency
    /// (on a cluster that checks roles, with a proxy's certificate or token).
    PutBench {
        /// Every node of the cluster (the writers find the leader); default: --node-addr.
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<std::net::SocketAddr>,
        /// Writers putting at once, each waiting for its put's answer before the next.
        #[arg(long, default_value_t = 1)]
        writers: usize,
        /// How long to put for.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Size of each job's body, in bytes.
        #[arg(long, default_value_t = 100)]
        body_bytes: usize,
    },
}

async fn connect(dialer: &Dialer, addr: &str) -> Result<ClusterApi, String> {
    connect_within(dialer, addr, CONNECT_TIMEOUT, CALL_TIMEOUT).await
}

/// A client of the node at `addr`, which must connect within `connect_timeout`, and whose
/// calls fail after `call_timeout`.
pub(super) async fn connect_within(dialer: &Dialer, addr: &str, connect_timeout: Duration, call_timeout: Duration) -> Result<ClusterApi, String> {
    let endpoint = dialer.endpoint(addr)?.connect_timeout(connect_timeout).timeout(call_timeout);
    let channel = dialer.connect(&endpoint).await.map_err(|e| format!("cannot reach node at {addr}: {}", explain(&e)))?;
    Ok(dialer.cluster(channel))
}

/// Runs a cluster call on the leader: on "not the leader", goes where the node points.
async fn on_leader<F, Fut>(dialer: &Dialer, addr: &str, call: F) -> Result<(), String>
where
    F: Fn(ClusterApi) -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let mut target = addr.to_string();
    for _ in 0..=REDIRECTS_MAX {
        let client = connect(dialer, &target).await?;
        match call(client).await {
            Ok(()) => return Ok(()),
            Err(status) if status.code() == Code::FailedPrecondition => match leader_hint(&status) {
                (_, Some(leader)) if leader != target => target = leader,
                _ => return Err(format!("{target}: {}", status.message())),
            },
            Err(status) => return Err(format!("{target}: {}", refused(&status))),
        }
    }
    Err(format!("gave up after {REDIRECTS_MAX} redirects to the leader"))
}

/// A refusal's message, with the transport's reason when the call never reached the node.
pub(super) fn refused(status: &tonic::Status) -> String {
    match std::error::Error::source(status) {
        Some(cause) => format!("{}: {}", status.message(), explain(cause)),
        None => status.message().to_string(),
    }
}

/// Asks the cluster (through `via`) to add this node, retrying with backoff until it answers.
pub async fn join_with_retry(via: &str, node_id: u64, addr: &str) -> Result<(), String> {
    join_with_retry_as(&Dialer::default(), via, node_id, addr).await
}

/// As `join_with_retry`, with `dialer`'s credentials.
pub async fn join_with_retry_as(dialer: &Dialer, via: &str, node_id: u64, addr: &str) -> Result<(), String> {
    let mut backoff = Duration::from_millis(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let request = JoinRequest { node_id: node_id.to_string(), addr: addr.to_string() };
        let result = on_leader(dialer, via, |mut c| {
            let request = request.clone();
            async move { c.join(request).await.map(|_| ()) }
        })
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(e) => tracing::info!(error = %e, "join not accepted yet; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Runs one client command against `addr` and returns what to print.
pub async fn run(command: ClientCommand, addr: &str, dialer: &Dialer) -> Result<String, String> {
    match command {
        ClientCommand::IsLeader => {
            let r = connect(dialer, addr).await?.is_node_leader(Empty {}).await.map_err(|s| format!("{addr}: {}", refused(&s)))?;
            Ok(r.into_inner().is_leader.to_string())
        }
        ClientCommand::Status { json } => {
            let view = super::status::gather(dialer, addr).await?;
            Ok(if json { super::status::json(&view) } else { super::status::text(&view) })
        }
        ClientCommand::Join { node_id, addr: new_addr } => {
            let request = JoinRequest { node_id: node_id.to_string(), addr: new_addr };
            on_leader(dialer, addr, |mut c| {
                let request = request.clone();
                async move { c.join(request).await.map(|_| ()) }
            })
            .await?;
            Ok(format!("node {node_id} joined (as a learner until it catches up)"))
        }
        ClientCommand::Leave { node_id } => {
            on_leader(dialer, addr, |mut c| async move { c.leave(LeaveRequest { node_id: node_id.to_string() }).await.map(|_| ()) }).await?;
            Ok(format!("node {node_id} left"))
        }
        ClientCommand::PutBench { mut nodes, writers, seconds, body_bytes } => {
            if nodes.is_empty() {
                nodes.push(addr.parse().map_err(|e| format!("--node-addr {addr}: {e}"))?);
            }
            super::put_bench::run((nodes, dialer), writers.max(1), seconds, body_bytes).await
        }
        ClientCommand::Snapshot => {
            connect(dialer, addr).await?.snapshot(Empty {}).await.map_err(|s| format!("{addr}: {}", refused(&s)))?;
            Ok("snapshot taken".into())
        }
    }
}
