//! `--max-jobs-bytes` and `--max-tubes`: past them a put (or a use or watch making a tube)
//! gets `OUT_OF_MEMORY`, as beanstalkd answers when memory runs out, through every way a write
//! reaches the leader; a delete (or a tube let go) makes room again.
#![cfg(not(madsim))]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::beanstalk::Beanstalk;
use common::{await_leader, cluster, free_port, loopback, temp_dir, wait_for_port, Proc};

/// A job of this body in tube `default` counts for 300 + 7 + 128 = 435 bytes: two fit in
/// the limit below, a third does not.
const BODY: usize = 300;
const LIMIT: &str = "1000";

fn put(client: &mut Beanstalk) -> String {
    client.ask(&format!("put 0 0 60 {BODY}\r\n{}", "x".repeat(BODY)))
}

/// Fills the limit through `client`, is refused, and makes room by deleting a job.
fn fill_refuse_and_free(client: &mut Beanstalk, what: &str) {
    let first = put(client);
    assert!(first.starts_with("INSERTED "), "{what}: {first}");
    assert!(put(client).starts_with("INSERTED "), "{what}");
    assert_eq!(put(client), "OUT_OF_MEMORY", "{what}: a third job passes the limit");
    // Refused, not dropped: the connection lives on, and the job count is what was taken.
    let ok = client.ask("stats");
    let len = ok.strip_prefix("OK ").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{what}: stats answered {ok}"));
    let stats = String::from_utf8(client.body(len)).expect("stats are text");
    assert!(stats.contains("current-jobs-ready: 2\n"), "{what}: {stats}");
    let id = first.trim_start_matches("INSERTED ");
    assert_eq!(client.ask(&format!("delete {id}")), "DELETED", "{what}");
    assert!(put(client).starts_with("INSERTED "), "{what}: a delete makes room");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_out_of_memory_past_the_limit() {
    let dir = temp_dir("jobs-bytes-serve");
    let port = free_port();
    let args = ["serve", "-l", "127.0.0.1", "-p", &port.to_string(), "-b", &dir.join("data").display().to_string()];
    let mut serve = Proc::new([&args[..], &["--max-jobs-bytes", LIMIT]].concat().iter().map(|a| a.to_string()).collect(), dir.join("serve.log"));
    serve.start();
    wait_for_port(loopback(port), Duration::from_secs(20)).await;
    fill_refuse_and_free(&mut Beanstalk::connect(loopback(port)), "serve");

    // A limit a snapshot could not hold is refused at start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coolbeans"))
        .args(["serve", "-p", &free_port().to_string(), "--max-jobs-bytes", "2000000000"])
        .output()
        .expect("run serve");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-jobs-bytes 2000000000 is above the limit"));
    serve.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The leader refuses, whichever way the put came: its own proxy (in process), a
/// follower's (forwarded on its stream), or a separate `coolbeans beanstalkd`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_answers_out_of_memory_through_every_proxy() {
    let dir = temp_dir("jobs-bytes-cluster");
    let proxies: Vec<SocketAddr> = (0..3).map(|_| loopback(free_port())).collect();
    let listen = proxies.clone();
    let mut nodes =
        cluster(&dir, move |id| vec!["--max-jobs-bytes".into(), LIMIT.into(), "--beanstalkd-listen".into(), listen[id as usize - 1].to_string()]);
    for node in &mut nodes {
        node.proc.start();
    }
    let members: Vec<(u64, SocketAddr)> = nodes.iter().map(|n| (n.id, n.addr)).collect();
    let leader = await_leader(&members, Duration::from_secs(20), &dir).await;
    let follower = members.iter().map(|(id, _)| *id).find(|id| *id != leader).expect("a follower");
    let (mut proxy, standalone) = common::start_proxy(&dir, &members).await;

    // The jobs are deleted after each way, so each meets the limit afresh.
    let ways = [
        (proxies[leader as usize - 1], "the leader's proxy"),
        (proxies[follower as usize - 1], "a follower's proxy"),
        (standalone, "coolbeans beanstalkd"),
    ];
    for (addr, what) in ways {
        let mut client = Beanstalk::connect(addr);
        fill_refuse_and_free(&mut client, what);
        for _ in 0..2 {
            let (id, _) = reserve(&mut client);
            assert_eq!(client.ask(&format!("delete {id}")), "DELETED", "{what}");
        }
    }
    proxy.kill();
    for node in &mut nodes {
        node.proc.kill();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn reserve(client: &mut Beanstalk) -> (u64, String) {
    client.send(b"reserve-with-timeout 5\r\n");
    client.reserved()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_out_of_memory_for_a_tube_past_the_limit() {
    let dir = temp_dir("tubes-serve");
    let port = free_port();
    let args = ["serve", "-l", "127.0.0.1", "-p", &port.to_string(), "--max-tubes", "3"];
    let mut serve = Proc::new(args.iter().map(|a| a.to_string()).collect(), dir.join("serve.log"));
    serve.start();
    wait_for_port(loopback(port), Duration::from_secs(20)).await;
    let mut client = Beanstalk::connect(loopback(port));
    // `default` always exists: two more fit.
    assert_eq!(client.ask("use a"), "USING a");
    assert_eq!(client.ask("watch b"), "WATCHING 2");
    assert_eq!(client.ask("use c"), "OUT_OF_MEMORY");
    assert_eq!(client.ask("watch c"), "OUT_OF_MEMORY");
    assert_eq!(client.ask("put 0 0 60 1\r\nx"), "INSERTED 1", "a put to a tube in use is taken");
    assert_eq!(client.ask("list-tube-used"), "USING a", "a refused use changes nothing");
    // Letting `b` go drops it, which makes room.
    assert_eq!(client.ask("ignore b"), "WATCHING 1");
    assert_eq!(client.ask("use c"), "USING c");
    serve.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
