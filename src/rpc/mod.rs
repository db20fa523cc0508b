//! The gRPC services every node serves: `Cluster`, `JobStateMachine`, `Forwarding` and the
//! internal `RaftTransport`. Thin: convert, hand to the node, await, map errors to statuses.

pub mod browse;
pub mod cluster;
pub mod forward;
#[cfg(not(madsim))]
mod incoming;
pub mod jsm;
#[cfg(not(madsim))]
mod plain_refusal;
mod snapshot;
pub mod status;

use std::future::Future;
use std::net::SocketAddr;

use crate::api::cluster_server::ClusterServer;
use crate::api::forwarding_server::ForwardingServer;
use crate::api::job_state_machine_server::JobStateMachineServer;
use crate::api::raft_transport_server::RaftTransportServer;
use crate::limits::{CLIENT_API_ANSWER_BYTES_MAX, CLIENT_API_REQUEST_BYTES_MAX, RAFT_MESSAGE_BYTES_MAX};
use crate::node::NodeHandle;

/// Bounds on what one caller may hold of a node's gRPC server.
#[derive(Clone, Copy, Debug)]
pub struct GrpcLimits {
    /// Concurrent calls (HTTP/2 streams) on one connection; more wait at the caller.
    pub streams_per_connection: u32,
    /// Writes of one proxy's forwarding stream read and not yet answered back.
    pub forwarded_writes: usize,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        GrpcLimits { streams_per_connection: 1024, forwarded_writes: 16_384 }
    }
}

/// Serves the node's gRPC API on `addr` until `shutdown` completes, to the `callers` it
/// authenticates (and with mTLS if they are told by certificate).
pub async fn serve(
    addr: SocketAddr,
    node: NodeHandle,
    (limits, callers): (GrpcLimits, crate::security::Callers),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Streams from peers and proxies never end by themselves, and a graceful shutdown waits
    // for every call to finish: they are ended when it begins.
    let (stopping_tx, stopping) = tokio::sync::watch::channel(());
    let shutdown = async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    };
    let raft = RaftTransportServer::new(cluster::RaftService::new(node.clone(), stopping.clone()))
        .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX);
    let forwarding = ForwardingServer::new(forward::ForwardService::new(node.clone(), stopping.clone(), limits.forwarded_writes))
        .max_decoding_message_size(CLIENT_API_ANSWER_BYTES_MAX)
        .max_encoding_message_size(CLIENT_API_ANSWER_BYTES_MAX);
    let cluster = ClusterServer::new(cluster::ClusterService::new(node.clone()))
        .max_decoding_message_size(CLIENT_API_REQUEST_BYTES_MAX)
        .max_encoding_message_size(CLIENT_API_ANSWER_BYTES_MAX);
    let jobs = JobStateMachineServer::new(jsm::JobService::new(node.clone(), stopping.clone()))
        .max_decoding_message_size(CLIENT_API_REQUEST_BYTES_MAX)
        .max_encoding_message_size(CLIENT_API_ANSWER_BYTES_MAX);
    let browse = crate::api::browse_server::BrowseServer::new(browse::BrowseService::new(node))
        .max_decoding_message_size(CLIENT_API_REQUEST_BYTES_MAX)
        .max_encoding_message_size(CLIENT_API_ANSWER_BYTES_MAX);
    let server = tonic::transport::Server::builder()
        // Flow-control windows grow with the link's bandwidth-delay product, so that a
        // snapshot's chunks keep a long, fast link busy (the default window, 1 MiB, lets one
        // chunk through per round trip).
        .http2_adaptive_window(Some(true))
        .max_concurrent_streams(Some(limits.streams_per_connection));
    // Every call's role is checked before any service sees it (the simulator's calls are open).
    #[cfg(not(madsim))]
    let mut server = server.layer(crate::security::guard::GuardLayer(callers.clone()));
    #[cfg(madsim)]
    let (mut server, _) = (server, callers);
    let router = server.add_service(browse).add_service(cluster).add_service(forwarding).add_service(jobs).add_service(raft);
    #[cfg(not(madsim))]
    router.serve_with_incoming_shutdown(incoming::Incoming::bind(addr, callers.server_tls()).await?, shutdown).await?;
    #[cfg(madsim)]
    router.serve_with_shutdown(addr, shutdown).await?;
    Ok(())
}
