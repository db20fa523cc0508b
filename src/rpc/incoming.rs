//! The gRPC server's connections, accepted within the process's descriptor budget (see
//! `accept`): at the budget, callers wait in the listen backlog rather than take the
//! descriptors storage needs. (The simulator's server accepts by itself, without a budget.)
//! With mTLS, each connection's handshake runs in a task of its own (a slow caller holds up
//! no other), and what its certificate names goes with it to every call (`PeerInfo`).

use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

use crate::accept::{accept_loop, Permit, Permits};
use crate::security::{tls::roles_of, PeerInfo, Swap};

/// How long a new connection has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepted connections, as tonic takes them; the accept loop stops when this is dropped.
pub(crate) struct Incoming {
    accepted: mpsc::UnboundedReceiver<Counted>,
    accepting: tokio::task::JoinHandle<()>,
}

/// A connection and the permit it holds until tonic drops it.
pub(crate) struct Counted {
    stream: Stream,
    info: PeerInfo,
    _permit: Permit,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Incoming {
    /// Binds `addr` and starts accepting, with mTLS if `tls` is given.
    pub(crate) async fn bind(addr: SocketAddr, tls: Option<Arc<Swap<ServerConfig>>>) -> io::Result<Incoming> {
        let listener = TcpListener::bind(addr).await?;
        // Unbounded, as the permits bound it: each connection sent holds one.
        let (sender, accepted) = mpsc::unbounded_channel();
        let accepting = tokio::spawn(async move {
            let permits = Permits::new(None);
            let hand_on = |(stream, peer): (TcpStream, SocketAddr), permit| {
                // As tonic's own listener does: gRPC messages are small and answered at once.
                let _ = stream.set_nodelay(true);
                if let Some(tls) = &tls {
                    tokio::spawn(handshake(stream, peer, tls.get(), permit, sender.clone()));
                    return ControlFlow::Continue(());
                }
                let info = PeerInfo { addr: Some(peer), cert_roles: None };
                match sender.send(Counted { stream: Stream::Plain(stream), info, _permit: permit }) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(_) => ControlFlow::Break(()),
                }
            };
            accept_loop("gRPC", &permits, || listener.accept(), hand_on).await;
        });
        Ok(Incoming { accepted, accepting })
    }
}

/// Hands the connection on once its caller proved a certificate the CA signed; else logs why
/// not, with the caller's address, and closes it.
async fn handshake(stream: TcpStream, peer: SocketAddr, config: Arc<ServerConfig>, permit: Permit, sender: mpsc::UnboundedSender<Counted>) {
    let accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        if is_plain_http2(&stream).await {
            return Err(stream);
        }
        Ok(tokio_rustls::TlsAcceptor::from(config).accept(stream).await)
    });
    let tls = match accepted.await {
        Ok(Ok(Ok(tls))) => tls,
        Ok(Ok(Err(e))) => return tracing::warn!(%peer, error = %e, "refused a gRPC connection: TLS handshake failed"),
        Ok(Err(plain)) => {
            tracing::warn!(%peer, "refused a plain-text gRPC client: this port speaks TLS only");
            return super::plain_refusal::answer(plain).await;
        }
        Err(_) => return tracing::warn!(%peer, "refused a gRPC connection: no TLS handshake within {HANDSHAKE_TIMEOUT:?}"),
    };
    let roles = tls.get_ref().1.peer_certificates().and_then(|chain| chain.first()).map(roles_of).unwrap_or_default();
    let info = PeerInfo { addr: Some(peer), cert_roles: Some(roles) };
    let _ = sender.send(Counted { stream: Stream::Tls(Box::new(tls)), info, _permit: permit });
}

/// Whether the caller began with HTTP/2's preface rather than a TLS record.
async fn is_plain_http2(stream: &TcpStream) -> bool {
    let mut first = [0; 3];
    matches!(stream.peek(&mut first).await, Ok(3)) && &first == b"PRI"
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl tokio_stream::Stream for Incoming {
    type Item = io::Result<Counted>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.accepted.poll_recv(cx).map(|counted| counted.map(Ok))
    }
}

impl Connected for Counted {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

/// Runs `$call` on whichever stream the connection is.
macro_rules! on_stream {
    ($self:ident, $s:ident => $call:expr) => {
        match &mut $self.stream {
            Stream::Plain($s) => {
                let $s = Pin::new($s);
                $call
            }
            Stream::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $call
            }
        }
    };
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        on_stream!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        on_stream!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, s => s.poll_shutdown(cx))
    }
}
