//! How this process dials nodes: over mTLS with its own certificate when it has one (read
//! afresh for each new connection, so that a reload reaches it), and with its bearer token in
//! every call's metadata when it has one. Every gRPC client of the crate is made here.

use std::sync::Arc;

use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use super::tokens::AUTHORIZATION;
use super::Swap;
use crate::api::browse_client::BrowseClient;
use crate::api::cluster_client::ClusterClient;
use crate::api::forwarding_client::ForwardingClient;
use crate::api::job_state_machine_client::JobStateMachineClient;
use crate::api::raft_transport_client::RaftTransportClient;

/// This process's credentials toward nodes; cloned into everything that dials one.
#[derive(Clone, Default)]
pub struct Dialer {
    #[cfg(not(madsim))]
    tls: Option<Arc<Swap<tokio_rustls::rustls::ClientConfig>>>,
    token: Option<Arc<Swap<AsciiMetadataValue>>>,
}

impl std::fmt::Debug for Dialer {
    /// Whether it has credentials, never what they are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        #[cfg(not(madsim))]
        let tls = self.tls.is_some();
        #[cfg(madsim)]
        let tls = false;
        f.debug_struct("Dialer").field("tls", &tls).field("token", &self.token.is_some()).finish()
    }
}

/// Puts the bearer token, if any, in each call's metadata.
#[derive(Clone)]
pub struct Credentials(Option<Arc<Swap<AsciiMetadataValue>>>);

impl tonic::service::Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            request.metadata_mut().insert(AUTHORIZATION, (*token.get()).clone());
        }
        Ok(request)
    }
}

// The clients as they carry credentials (the simulator's tonic types them otherwise).
#[cfg(not(madsim))]
type Carrier = tonic::codegen::InterceptedService<Channel, Credentials>;
#[cfg(not(madsim))]
pub type ClusterApi = ClusterClient<Carrier>;
#[cfg(not(madsim))]
pub type JobsApi = JobStateMachineClient<Carrier>;
#[cfg(not(madsim))]
pub type ForwardingApi = ForwardingClient<Carrier>;
#[cfg(not(madsim))]
pub type RaftApi = RaftTransportClient<Carrier>;
#[cfg(not(madsim))]
pub type BrowseApi = BrowseClient<Carrier>;
#[cfg(madsim)]
pub type ClusterApi = ClusterClient<Channel, Credentials>;
#[cfg(madsim)]
pub type JobsApi = JobStateMachineClient<Channel, Credentials>;
#[cfg(madsim)]
pub type ForwardingApi = ForwardingClient<Channel, Credentials>;
#[cfg(madsim)]
pub type RaftApi = RaftTransportClient<Channel, Credentials>;
#[cfg(madsim)]
pub type BrowseApi = BrowseClient<Channel, Credentials>;

impl Dialer {
    /// Presents `token` (read from its file) with every call.
    pub fn with_token(mut self, token: Arc<Swap<AsciiMetadataValue>>) -> Dialer {
        self.token = Some(token);
        self
    }

    /// Dials over mTLS with the configuration current at each connection.
    #[cfg(not(madsim))]
    pub fn with_tls(mut self, config: Arc<Swap<tokio_rustls::rustls::ClientConfig>>) -> Dialer {
        self.tls = Some(config);
        self
    }

    /// The endpoint of the node at `addr` (HOST:PORT).
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, String> {
        Endpoint::from_shared(format!("http://{addr}")).map_err(|e| format!("bad node address {addr:?}: {e}"))
    }

    /// Connects to `endpoint` now.
    pub async fn connect(&self, endpoint: &Endpoint) -> Result<Channel, tonic::transport::Error> {
        #[cfg(not(madsim))]
        if let Some(tls) = &self.tls {
            return endpoint.connect_with_connector(real::connector(tls.clone())).await;
        }
        endpoint.connect().await
    }

    /// A channel to `endpoint` that connects at its first call, and again whenever it broke.
    pub fn connect_lazy(&self, endpoint: &Endpoint) -> Channel {
        #[cfg(not(madsim))]
        if let Some(tls) = &self.tls {
            return endpoint.connect_with_connector_lazy(real::connector(tls.clone()));
        }
        endpoint.connect_lazy()
    }

    pub fn credentials(&self) -> Credentials {
        Credentials(self.token.clone())
    }

    pub fn cluster(&self, channel: Channel) -> ClusterApi {
        ClusterClient::with_interceptor(channel, self.credentials())
    }

    pub fn jobs(&self, channel: Channel) -> JobsApi {
        JobStateMachineClient::with_interceptor(channel, self.credentials())
    }

    pub fn browse(&self, channel: Channel) -> BrowseApi {
        BrowseClient::with_interceptor(channel, self.credentials())
    }

    pub fn forwarding(&self, channel: Channel) -> ForwardingApi {
        ForwardingClient::with_interceptor(channel, self.credentials())
    }

    pub fn raft(&self, channel: Channel) -> RaftApi {
        RaftTransportClient::with_interceptor(channel, self.credentials())
    }
}

/// A failed connection's error with its causes: tonic's own says only "transport error",
/// and the reason (a refused certificate, a TLS-only port) is in its sources.
pub fn explain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(not(madsim))]
mod real {
    use std::io;
    use std::sync::Arc;

    use hyper_util::rt::TokioIo;
    use rustls_pki_types::ServerName;
    use tokio::net::TcpStream;
    use tokio_rustls::client::TlsStream;
    use tokio_rustls::rustls::ClientConfig;
    use tonic::codegen::http::Uri;

    use super::Swap;

    type Connecting = std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<TokioIo<TlsStream<TcpStream>>>> + Send>>;

    /// Connects over TCP, then TLS with the configuration current now, checking that the
    /// node's certificate names the host dialed.
    pub(super) fn connector(
        tls: Arc<Swap<ClientConfig>>,
    ) -> impl tower::Service<Uri, Response = TokioIo<TlsStream<TcpStream>>, Error = io::Error, Future = Connecting> + Clone + Send + 'static {
        tower::service_fn(move |uri: Uri| -> Connecting {
            let config = tls.get();
            Box::pin(async move {
                let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{what} in {uri}"));
                let host = uri.host().ok_or_else(|| invalid("no host"))?.trim_start_matches('[').trim_end_matches(']').to_string();
                let port = uri.port_u16().ok_or_else(|| invalid("no port"))?;
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from(host).map_err(|_| invalid("a host that is no TLS server name"))?;
                let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?;
                Ok(TokioIo::new(tls))
            })
        })
    }
}
