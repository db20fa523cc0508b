//! The gRPC API's message limits, on real processes: a put whose body is above
//! the node's job size max (`-z`) is refused with an error naming the limit, however close to
//! gRPC's own 4 MiB request limit it is; and a `list-tubes` answer above 4 MiB comes back
//! through a proxy before the cluster.
#![cfg(not(madsim))]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{free_port, loopback, one_node, temp_dir, Proc};
use coolbeans::api::job_state_machine_client::JobStateMachineClient;
use coolbeans::api::PutRequest;
use coolbeans::client::JobClient;
use tonic::transport::Channel;

async fn put(client: &mut JobStateMachineClient<Channel>, body_bytes: usize) -> Result<i64, tonic::Status> {
    let body = Bytes::from(vec![b'x'; body_bytes]);
    let request = PutRequest { tube_name: "default".into(), ttr: 60, body_size: body_bytes as i32, body, ..PutRequest::default() };
    client.put(request).await.map(|r| r.into_inner().job_id)
}

/// Bodies at `-z 100000` are taken; one byte more, a body just under gRPC's 4 MiB request
/// limit (4,194,104 bytes, taken before the node checked `-z`), and one above that limit are
/// all refused, the first two naming the node's limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_above_the_job_size_max_is_refused() {
    let dir = temp_dir("put-above-max");
    let (node, addr) = one_node(&dir, &["-z", "100000"]).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("address").connect().await.expect("connects");
    let mut client = JobStateMachineClient::new(channel);
    put(&mut client, 100_000).await.expect("a body at the limit is taken");
    for bytes in [100_001, 4_194_104] {
        let refused = put(&mut client, bytes).await.expect_err("a body above -z is refused");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{bytes} bytes: {refused:?}");
        let message = refused.message();
        assert!(message.contains(&bytes.to_string()) && message.contains("100000"), "{bytes} bytes: {message}");
    }
    let refused = put(&mut client, 5 * 1024 * 1024).await.expect_err("a request above 4 MiB is refused");
    assert_ne!(refused.code(), tonic::Code::Ok);
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Tubes this many, with names of 200 bytes, make a `list-tubes` answer of about 4.5 MB.
const TUBES: usize = 22_000;
/// Putters at once: the node batches their puts into entries.
const PUTTERS: usize = 32;

/// Names tube `i`: 200 digits.
fn tube_name(i: usize) -> String {
    format!("{i:0>200}")
}

/// A cluster holding 22,000 tubes of 200-byte names answers `list-tubes` through a proxy
/// before it: the gRPC answer is above tonic's default 4 MiB limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_tubes_answer_above_4_mib_comes_back_through_a_proxy() {
    let dir = temp_dir("list-tubes-large");
    let (node, addr) = one_node(&dir, &[]).await;
    let putters: Vec<_> = (0..PUTTERS)
        .map(|p| {
            tokio::spawn(async move {
                let mut client = JobClient::new(&format!("putter-{p}"), vec![addr]);
                for i in (p..TUBES).step_by(PUTTERS) {
                    client.put(&tube_name(i), 0, b"x").await.expect("put acknowledged");
                }
            })
        })
        .collect();
    for putter in putters {
        putter.await.expect("putter task");
    }
    let proxy_port = free_port();
    let proxy_args = ["beanstalkd", "--listen", &loopback(proxy_port).to_string(), "--upstreams", &addr.to_string()];
    let mut proxy = Proc::new(proxy_args.map(String::from).to_vec(), dir.join("proxy.log"));
    proxy.start();
    let listing = tokio::task::spawn_blocking(move || list_tubes(loopback(proxy_port))).await.expect("list-tubes task");
    assert!(listing.len() > 4 * 1024 * 1024, "the answer has {} bytes", listing.len());
    let names: Vec<&str> = listing.lines().skip(1).filter_map(|l| l.strip_prefix("- ")).collect();
    assert_eq!(names.len(), TUBES + 1, "every tube and default");
    assert!(names.contains(&tube_name(TUBES - 1).as_str()));
    drop((proxy, node));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Connects to the proxy at `addr` (retrying while it starts) and answers its `list-tubes`
/// YAML.
fn list_tubes(addr: SocketAddr) -> String {
    let started = Instant::now();
    let stream = loop {
        match TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(e) => assert!(started.elapsed() < Duration::from_secs(10), "proxy not serving: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    let mut reader = BufReader::new(stream);
    reader.get_mut().write_all(b"list-tubes\r\n").expect("sends");
    let mut line = String::new();
    reader.read_line(&mut line).expect("answer line");
    let bytes: usize = line.trim_end().strip_prefix("OK ").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("answer: {line:?}"));
    let mut body = vec![0; bytes + 2];
    reader.read_exact(&mut body).expect("the whole list");
    assert_eq!(&body[bytes..], b"\r\n");
    body.truncate(bytes);
    String::from_utf8(body).expect("YAML is text")
}

/// `--max-grpc-streams`: each connection is told the bound on its concurrent calls in the
/// server's first HTTP/2 settings (a caller's further calls wait at the caller).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_told_the_bound_on_its_calls() {
    let dir = temp_dir("grpc-streams");
    let (mut node, addr) = one_node(&dir, &["--max-grpc-streams", "7"]).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let client = client.ready().await.expect("ready");
    let started = Instant::now();
    while client.current_max_send_streams() != 7 {
        assert!(started.elapsed() < Duration::from_secs(5), "the server allows {} streams, not 7", client.current_max_send_streams());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
