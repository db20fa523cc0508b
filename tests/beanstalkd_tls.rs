//! TLS on the beanstalkd port (`--beanstalkd-tls-cert`, `--beanstalkd-tls-key`): a client
//! speaking TLS puts and reserves directly; a plain-text client there has its connection
//! closed, with a log line saying why, and the server serves TLS clients on.
#![cfg(not(madsim))]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, loopback, temp_dir, wait_for_port, Proc};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_rustls::rustls::{self, pki_types::ServerName, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// A TLS client trusting only `cert` (PEM).
fn connector(cert: &rcgen::Certificate) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(cert.der().clone()).expect("the test certificate is a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// Puts a job over TLS, reserves it back and deletes it; answers its id.
async fn put_and_take_over_tls(connector: &TlsConnector, addr: SocketAddr, body: &str) -> u64 {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake with the proxy");
    let mut tls = BufReader::new(tls);
    let mut line = String::new();
    tls.write_all(format!("put 0 0 60 {}\r\n{body}\r\n", body.len()).as_bytes()).await.expect("write");
    tls.read_line(&mut line).await.expect("read");
    let id: u64 = line.trim_end().strip_prefix("INSERTED ").and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("put answered {line:?}"));
    tls.write_all(b"reserve-with-timeout 0\r\n").await.expect("write");
    line.clear();
    tls.read_line(&mut line).await.expect("read");
    assert_eq!(line, format!("RESERVED {id} {}\r\n", body.len()));
    let mut got = vec![0; body.len() + 2];
    tls.read_exact(&mut got).await.expect("body");
    assert_eq!(got, format!("{body}\r\n").as_bytes());
    tls.write_all(format!("delete {id}\r\n").as_bytes()).await.expect("write");
    line.clear();
    tls.read_line(&mut line).await.expect("read");
    assert_eq!(line, "DELETED\r\n");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_are_served_and_plain_text_ones_closed() {
    let dir = temp_dir("beanstalkd-tls");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("write cert");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key");
    let port = free_port();
    let args = [
        "serve",
        "-l",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "--beanstalkd-tls-cert",
        &cert.display().to_string(),
        "--beanstalkd-tls-key",
        &key.display().to_string(),
    ];
    let log = dir.join("serve.log");
    let mut serve = Proc::new(args.iter().map(|a| a.to_string()).collect(), log.clone());
    serve.start();
    let addr = loopback(port);
    wait_for_port(addr, Duration::from_secs(20)).await;
    let tls = connector(&made.cert);
    put_and_take_over_tls(&tls, addr, "over tls").await;

    // A plain-text client is closed unanswered, soon.
    let mut plain = std::net::TcpStream::connect(addr).expect("connect");
    plain.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    plain.write_all(b"put 0 0 60 5\r\nplain\r\n").expect("write");
    let started = Instant::now();
    let mut got = Vec::new();
    let closed = loop {
        let mut buf = [0u8; 256];
        match plain.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    assert!(closed, "a plain-text client was not closed within 15 s");
    assert!(!String::from_utf8_lossy(&got).contains("INSERTED"), "a plain-text put was taken: {got:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "closed only after {:?}", started.elapsed());

    // The server lives on, and said why it closed the connection.
    put_and_take_over_tls(&tls, addr, "still here").await;
    let logged = std::fs::read_to_string(&log).expect("read the log");
    assert!(logged.contains("TLS handshake failed"), "no log line says why: {logged}");

    // A certificate and key that do not match stop the start with a message naming them.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    std::fs::write(&key, other.signing_key.serialize_pem()).expect("write key");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coolbeans")).args(args).output().expect("run serve");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("key.pem"), "{}", String::from_utf8_lossy(&out.stderr));
    serve.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
