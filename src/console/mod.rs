//! The web console (`--http-listen`): a page for operators, served from the binary with its
//! assets built in, and the JSON it reads. It shows the cluster (members, their indexes and
//! lag, leader changes), the tubes with live counts and rates, and each tube's jobs page by
//! page in every state; with the admin token it pauses, kicks, deletes and moves.
//!
//! Real sockets only: the simulator has no browser to serve.

mod backend;
mod cluster_reads;
mod guard;
mod node_reads;
mod routes;
mod timeline;
mod view;

use std::sync::Arc;

use crate::client::RemoteUpstream;
use crate::node::NodeHandle;
use crate::proxy::Upstream;
use backend::{Backend, Reads};

/// A bound console port, waiting for the node it will show.
pub struct BoundConsole {
    listener: tokio::net::TcpListener,
    admin_token: Option<String>,
}

/// `HOST:PORT`, or a port alone (with or without its colon), which binds loopback: a console
/// is reachable from elsewhere only when asked for.
pub fn listen_addr(listen: &str) -> String {
    match listen.strip_prefix(':').unwrap_or(listen) {
        port if port.bytes().all(|b| b.is_ascii_digit()) => format!("127.0.0.1:{port}"),
        _ => listen.to_string(),
    }
}

impl BoundConsole {
    /// Binds the console's port: before the node starts, so a port in use fails the start.
    pub async fn bind(listen: &str, admin_token: Option<String>) -> Result<Self, String> {
        let addr = listen_addr(listen);
        let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| format!("--http-listen {addr}: {e}"))?;
        Ok(BoundConsole { listener, admin_token })
    }

    /// Serves the console of `node` (whose gRPC address is `grpc`'s, dialed with its
    /// credentials; none in `serve`) from a task of its own, its actions written through
    /// `upstream`; `mode` names the process.
    pub fn serve_node(self, node: NodeHandle, upstream: Arc<dyn Upstream>, grpc: Option<(String, crate::security::Dialer)>, mode: &'static str) {
        self.serve(Arc::new(node_reads::NodeReads::new(node, grpc)), upstream, mode);
    }

    /// Serves the console of the cluster behind a proxy, read and written through `remote`.
    pub fn serve_proxy(self, remote: Arc<RemoteUpstream>) {
        self.serve(Arc::new(cluster_reads::ClusterReads::new(remote.clone())), remote, "beanstalkd");
    }

    fn serve(self, reads: Arc<dyn Reads>, upstream: Arc<dyn Upstream>, mode: &'static str) {
        let addr = self.listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let read_only = self.admin_token.is_none();
        let console = routes::Console {
            timeline: timeline::Timeline::follow(reads.clone()),
            backend: Backend::new(reads, upstream),
            guard: guard::Guard::new(self.admin_token),
            mode,
        };
        tracing::info!(listen = %addr, read_only, "serving the web console");
        let app = routes::router(Arc::new(console));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(self.listener, app).await {
                tracing::error!(error = %e, "the web console stopped");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    /// A port alone binds loopback; a host given is kept.
    #[test]
    fn listen_addresses() {
        assert_eq!(super::listen_addr("8080"), "127.0.0.1:8080");
        assert_eq!(super::listen_addr(":8080"), "127.0.0.1:8080");
        assert_eq!(super::listen_addr("0.0.0.0:80"), "0.0.0.0:80");
        assert_eq!(super::listen_addr("[::1]:80"), "[::1]:80");
    }
}
