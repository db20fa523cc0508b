//! The listeners: TCP (`HOST:PORT`) and, outside the simulator, unix sockets (`unix:PATH`).
//! The accept loop takes a connection permit before it accepts, so at most
//! `connections_max` connections are served, fewer if the process's descriptor budget (shared
//! with its gRPC server, see `accept`) runs out first, and the rest wait in the kernel's
//! backlog.

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::conn::Conn;
use super::shared::Proxy;
use super::tls::Acceptor;
use crate::accept::{accept_loop, Permit, Permits};

/// Where a proxy listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(String),
    Unix(std::path::PathBuf),
}

impl ListenAddr {
    /// `unix:PATH` or `HOST:PORT`.
    pub fn parse(s: &str) -> ListenAddr {
        match s.strip_prefix("unix:") {
            Some(path) => ListenAddr::Unix(path.into()),
            None => ListenAddr::Tcp(s.to_string()),
        }
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => f.write_str(a),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Where a proxy listens, and the TLS it speaks there if any.
pub struct Listen {
    pub addr: ListenAddr,
    pub tls: Option<Acceptor>,
}

/// A bound listener, ready to serve.
pub enum Listener {
    Tcp(TcpListener),
    /// TCP, each connection's first bytes a TLS handshake.
    Tls(TcpListener, Acceptor),
    #[cfg(not(madsim))]
    Unix(tokio::net::UnixListener),
}

impl Listener {
    /// Binds the address (a stale unix socket file is replaced).
    pub async fn bind(listen: Listen) -> std::io::Result<Listener> {
        match (&listen.addr, listen.tls) {
            (ListenAddr::Tcp(a), None) => Ok(Listener::Tcp(TcpListener::bind(a.as_str()).await?)),
            (ListenAddr::Tcp(a), Some(tls)) => Ok(Listener::Tls(TcpListener::bind(a.as_str()).await?, tls)),
            (ListenAddr::Unix(_), Some(_)) => Err(std::io::Error::other("TLS is for TCP listeners, not unix sockets")),
            #[cfg(not(madsim))]
            (ListenAddr::Unix(path), None) => {
                if path.exists() {
                    std::fs::remove_file(path)?;
                }
                Ok(Listener::Unix(tokio::net::UnixListener::bind(path)?))
            }
            #[cfg(madsim)]
            (ListenAddr::Unix(_), None) => Err(std::io::Error::other("unix sockets are not simulated")),
        }
    }

    /// The bound TCP address, if TCP.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Listener::Tcp(l) | Listener::Tls(l, _) => l.local_addr().ok(),
            #[cfg(not(madsim))]
            Listener::Unix(_) => None,
        }
    }
}

/// Serves connections for ever (until the task is dropped).
pub async fn serve(listener: Listener, proxy: Arc<Proxy>) {
    let connections_max = proxy.limits.connections_max;
    let budget = crate::accept::fds::connections_max();
    if budget < connections_max {
        tracing::info!(connections_max = budget, "fewer connections than asked: the limit on open files leaves the rest for storage");
    }
    let permits = Permits::new(Some(connections_max));
    match &listener {
        Listener::Tcp(l) => {
            let hand_on = |(stream, _): (tokio::net::TcpStream, _), permit| {
                client_socket(&stream);
                spawn_conn(proxy.clone(), stream, permit);
                ControlFlow::Continue(())
            };
            accept_loop("beanstalkd", &permits, || l.accept(), hand_on).await;
        }
        #[cfg(not(madsim))]
        Listener::Tls(l, acceptor) => {
            let hand_on = |(stream, peer): (tokio::net::TcpStream, std::net::SocketAddr), permit| {
                client_socket(&stream);
                let (proxy, acceptor) = (proxy.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(super::tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => spawn_conn(proxy, tls, permit),
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "closing a connection: its TLS handshake failed (a plain-text client on the TLS port?)")
                        }
                        Err(_) => tracing::info!(%peer, "closing a connection: no TLS handshake within 10 s"),
                    }
                });
                ControlFlow::Continue(())
            };
            accept_loop("beanstalkd", &permits, || l.accept(), hand_on).await;
        }
        #[cfg(madsim)]
        Listener::Tls(_, acceptor) => match *acceptor {},
        #[cfg(not(madsim))]
        Listener::Unix(l) => {
            let hand_on = |(stream, _), permit| {
                spawn_conn(proxy.clone(), stream, permit);
                ControlFlow::Continue(())
            };
            accept_loop("beanstalkd", &permits, || l.accept(), hand_on).await;
        }
    }
}

/// Options of an accepted client TCP socket: no Nagle delay on answers, and keepalive (the
/// simulator's sockets have no descriptor, and its peers never vanish silently).
fn client_socket(stream: &tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    #[cfg(not(madsim))]
    if let Err(e) = crate::accept::keepalive::set(stream) {
        tracing::debug!(error = %e, "could not turn keepalive on");
    }
}

fn spawn_conn<S>(proxy: Arc<Proxy>, stream: S, permit: Permit)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    proxy.counters.current_connections.fetch_add(1, Ordering::Relaxed);
    proxy.counters.total_connections.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        Conn::new(proxy.clone(), stream).run().await;
        proxy.counters.current_connections.fetch_sub(1, Ordering::Relaxed);
        drop(permit);
    });
}

/// Turns drain mode on at each SIGUSR1: puts then answer DRAINING.
#[cfg(not(madsim))]
pub fn drain_on_sigusr1(proxy: Arc<Proxy>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut usr1 = signal(SignalKind::user_defined1())?;
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            tracing::info!("SIGUSR1: drain mode on; puts answer DRAINING");
            proxy.draining.store(true, Ordering::Relaxed);
        }
    });
    Ok(())
}
