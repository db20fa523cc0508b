//! The `/metrics` endpoint: a minimal HTTP/1.1 server that answers `GET /metrics` with the
//! registry in Prometheus' text format and closes each connection after one answer. Scrapers
//! ask a few times a minute, so it needs nothing more. It runs on tokio's sockets, which
//! madsim simulates, so it builds in both builds.

use std::sync::Arc;
use std::time::Duration;

use crate::limits::{METRICS_REQUEST_BYTES_MAX, METRICS_SCRAPES_MAX};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// How long a client may take to send its request and take the answer.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `addr` (HOST:PORT) for `serve`: done before the process reports itself started, so a
/// taken port fails the start.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Answers scrapes on `listener` for ever (until the task is dropped).
pub async fn serve(listener: TcpListener, registry: Arc<Registry>) {
    let permits = Arc::new(Semaphore::new(METRICS_SCRAPES_MAX));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        match listener.accept().await {
            Ok((stream, _)) => {
                let registry = registry.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(EXCHANGE_TIMEOUT, answer(stream, &registry)).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::debug!(error = %e, "metrics: accept failed");
                // A failure such as "too many open files" leaves the listener readable.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request and answers it.
async fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let Some(head) = read_head(&mut stream).await? else { return Ok(()) };
    let response = match request_target(&head) {
        Some(("GET", "/metrics")) => {
            let mut body = String::new();
            match prometheus_text::encode(&mut body, registry) {
                Ok(()) => response("200 OK", prometheus_text::CONTENT_TYPE, &body),
                Err(_) => response("500 Internal Server Error", "text/plain", "the metrics did not encode\n"),
            }
        }
        Some(("GET", _)) => response("404 Not Found", "text/plain", "metrics are at /metrics\n"),
        Some(_) => response("405 Method Not Allowed", "text/plain", "only GET\n"),
        None => response("400 Bad Request", "text/plain", "not an HTTP request\n"),
    };
    stream.write_all(response.as_bytes()).await?;
    stream.flush().await?;
    stream.shutdown().await
}

/// The request head, up to its blank line; `None` if the client closed first or sent more
/// than `METRICS_REQUEST_BYTES_MAX` without one.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut chunk).await?;
        if read == 0 || head.len() + read > METRICS_REQUEST_BYTES_MAX {
            return Ok(None);
        }
        head.extend_from_slice(&chunk[..read]);
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

/// The method and path (its query dropped) of a request's first line.
fn request_target(head: &str) -> Option<(&str, &str)> {
    let mut parts = head.lines().next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !version.starts_with("HTTP/") {
        return None;
    }
    Some((method, target.split('?').next().unwrap_or(target)))
}

fn response(status: &str, content_type: &str, body: &str) -> String {
    format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request line gives the method and path; anything else is not a request.
    #[test]
    fn request_lines() {
        assert_eq!(request_target("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Some(("GET", "/metrics")));
        assert_eq!(request_target("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Some(("GET", "/metrics")));
        assert_eq!(request_target("POST / HTTP/1.1\r\n\r\n"), Some(("POST", "/")));
        assert_eq!(request_target("hello\r\n\r\n"), None);
        assert_eq!(request_target("GET /metrics SMTP\r\n\r\n"), None);
    }
}
