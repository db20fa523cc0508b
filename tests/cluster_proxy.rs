//! A 3-node loopback cluster, one node with a co-located beanstalkd proxy, plus a
//! standalone `coolbeans beanstalkd` proxy: the cluster-client subcommands answer as
//! documented, and beanstalkd conversations work through both proxies, including a
//! waiting reserve on one proxy woken by a put through the other.
#![cfg(not(madsim))]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::beanstalk::Beanstalk;
use common::{client_cli, cluster, free_port, loopback, temp_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_cli_and_proxies() {
    let dir = temp_dir("proxy");
    let co_located = loopback(free_port());
    let mut nodes = cluster(&dir, |id| {
        if id == 1 {
            vec!["--beanstalkd-listen".into(), co_located.to_string()]
        } else {
            vec![]
        }
    });
    for n in &mut nodes {
        n.proc.start();
    }
    let members: Vec<(u64, SocketAddr)> = nodes.iter().map(|n| (n.id, n.addr)).collect();
    let leader = common::await_leader(&members, Duration::from_secs(15), &dir).await;

    // cluster-client: is-leader on each node, status --json, and an unreachable node.
    let mut leaders = 0;
    for (id, addr) in &members {
        let (code, out, _) = client_cli(&["is-leader", "--node-addr", &addr.to_string()]);
        assert_eq!(code, 0);
        assert!(out == "true\n" || out == "false\n", "is-leader printed {out:?}");
        if out == "true\n" {
            leaders += 1;
            assert_eq!(*id, leader);
        }
    }
    assert_eq!(leaders, 1, "exactly one node says it leads");
    let (code, out, _) = client_cli(&["status", "--json", "--node-addr", &members[1].1.to_string()]);
    assert_eq!(code, 0);
    for key in ["\"node_id\":2", "\"leader_id\":", "\"term\":", "\"commit_index\":", "\"applied_index\":", "\"members\":["] {
        assert!(out.contains(key), "status --json lacks {key}: {out}");
    }
    let dead = loopback(free_port()).to_string();
    let (code, out, err) = client_cli(&["status", "--node-addr", &dead]);
    assert_ne!(code, 0, "an unreachable node is an error");
    assert!(out.is_empty());
    assert_eq!(err.trim_end().lines().count(), 1, "one line of error: {err:?}");

    // A standalone proxy before the cluster.
    let (proxy, standalone) = common::start_proxy(&dir, &members).await;

    let mut producer = Beanstalk::connect(standalone);
    let mut worker = Beanstalk::connect(co_located);
    assert_eq!(worker.ask("watch jobs"), "WATCHING 2");
    assert_eq!(producer.ask("use jobs"), "USING jobs");
    let first = producer.put("hello");
    assert_eq!(worker.ask("reserve-with-timeout 5"), format!("RESERVED {first} 5"));
    assert_eq!(worker.body(5), b"hello");
    assert_eq!(worker.ask(&format!("delete {first}")), "DELETED");

    // A reserve waiting on one proxy is woken by a put through the other.
    worker.send(b"reserve\r\n");
    std::thread::sleep(Duration::from_millis(300));
    let second = producer.put("wake up");
    assert_eq!(worker.reserved(), (second, "wake up".to_string()));
    assert_eq!(producer.ask(&format!("peek {second}")), format!("FOUND {second} 7"));
    assert_eq!(producer.body(7), b"wake up");

    // Closing the worker's connection releases the job it held.
    drop(worker);
    let started = Instant::now();
    loop {
        let answer = producer.ask(&format!("stats-job {second}"));
        let len: usize = answer.strip_prefix("OK ").and_then(|n| n.parse().ok()).expect("stats-job answers OK");
        let yaml = String::from_utf8(producer.body(len)).unwrap();
        if yaml.contains("state: ready") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "job {second} not released after its holder left: {yaml}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(proxy);
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A proxy in every node: on the leader its writes go in-process, on a follower they are
/// forwarded; a job put through one is reserved through another, and once the leader is
/// killed, the proxies left go on against the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn co_located_proxies_follow_the_leader() {
    let dir = temp_dir("co-located");
    let common::Led { mut nodes, members, leader, flagged: proxies } = common::start_cluster_with(&dir, "--beanstalkd-listen").await;
    let follower = members.iter().map(|(id, _)| *id).find(|id| *id != leader).expect("a follower");
    let proxy = |id: u64| proxies[id as usize - 1];

    let mut on_leader = Beanstalk::connect(proxy(leader));
    let mut on_follower = Beanstalk::connect(proxy(follower));
    let first = on_leader.put("from the leader's proxy");
    let second = on_follower.put("from a follower's proxy");
    assert!(second > first, "ids grow: {first} then {second}");
    assert_eq!(on_follower.ask("reserve-with-timeout 5"), format!("RESERVED {first} 23"));
    assert_eq!(on_follower.body(23), b"from the leader's proxy");
    assert_eq!(on_leader.ask("reserve-with-timeout 5"), format!("RESERVED {second} 23"));
    assert_eq!(on_leader.body(23), b"from a follower's proxy");
    assert_eq!(on_follower.ask(&format!("delete {first}")), "DELETED");
    assert_eq!(on_leader.ask(&format!("delete {second}")), "DELETED");

    // The leader dies with its proxy; the others go on once a new leader is elected.
    drop(on_leader);
    nodes.iter_mut().find(|n| n.id == leader).expect("the leader").proc.kill();
    let mut survivor = Beanstalk::connect(proxy(follower));
    let started = Instant::now();
    let third = loop {
        let answer = survivor.ask("put 10 0 60 5\r\nafter");
        if let Some(id) = answer.strip_prefix("INSERTED ") {
            break id.parse::<u64>().expect("an id");
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no put accepted after the leader died: {answer}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(third > second);
    assert_eq!(on_follower.ask(&format!("peek {third}")), format!("FOUND {third} 5"));
    assert_eq!(on_follower.body(5), b"after");
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}
