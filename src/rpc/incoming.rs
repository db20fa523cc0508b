//! The gRPC server's connections, accepted within the process's descriptor budget (see
//! `accept`): at the budget, callers wait in the listen backlog rather than take the
//! descriptors storage needs. (The simulator's server accepts by itself, without a budget.)

use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::accept::{accept_loop, Permit, Permits};

/// Accepted connections, as tonic takes them; the accept loop stops when this is dropped.
pub(crate) struct Incoming {
    accepted: mpsc::UnboundedReceiver<Counted>,
    accepting: tokio::task::JoinHandle<()>,
}

/// A connection and the permit it holds until tonic drops it.
pub(crate) struct Counted {
    stream: TcpStream,
    _permit: Permit,
}

impl Incoming {
    /// Binds `addr` and starts accepting.
    pub(crate) async fn bind(addr: SocketAddr) -> io::Result<Incoming> {
        let listener = TcpListener::bind(addr).await?;
        // Unbounded, as the permits bound it: each connection sent holds one.
        let (sender, accepted) = mpsc::unbounded_channel();
        let accepting = tokio::spawn(async move {
            let permits = Permits::new(None);
            let hand_on = |(stream, _): (TcpStream, _), permit| {
                // As tonic's own listener does: gRPC messages are small and answered at once.
                let _ = stream.set_nodelay(true);
                match sender.send(Counted { stream, _permit: permit }) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(_) => ControlFlow::Break(()),
                }
            };
            accept_loop("gRPC", &permits, || listener.accept(), hand_on).await;
        });
        Ok(Incoming { accepted, accepting })
    }
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
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
