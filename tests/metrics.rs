//! `--metrics-listen` on real processes: `serve -b`, a 3-node cluster and a `coolbeans
//! beanstalkd` proxy each serve Prometheus text at /metrics that parses, with the key
//! series at sane values after a known load, and every series the shipped Grafana dashboard
//! queries is in a real scrape.
#![cfg(not(madsim))]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::beanstalk::Beanstalk;
use common::{free_port, loopback, temp_dir, Proc};

/// One sample: its name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape: what GET /metrics answered, parsed.
struct Scrape {
    samples: Vec<Sample>,
}

impl Scrape {
    /// The value of the series `name` whose labels include `labels`; panics unless exactly
    /// one matches.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> =
            self.samples.iter().filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))).collect();
        assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
        found[0].value
    }

    fn names(&self) -> BTreeSet<&str> {
        self.samples.iter().map(|s| s.name.as_str()).collect()
    }
}

/// GET `path` over a plain TCP connection; answers the status line and the body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to metrics at {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

fn scrape(addr: SocketAddr) -> Scrape {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    Scrape { samples: parse_exposition(&body) }
}

/// Parses Prometheus' text format (0.0.4) strictly: HELP and TYPE lines name valid metrics of
/// known types, and each sample belongs to the family typed before it, with well-formed
/// labels and a numeric value.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (kind, name, rest) = (parts.next().unwrap(), parts.next().expect("a name"), parts.next().unwrap_or(""));
            assert!(valid_name(name), "{line}");
            if kind == "TYPE" {
                assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&rest), "{line}");
                assert!(typed.insert(name.to_string(), rest.to_string()).is_none(), "typed twice: {line}");
            }
            continue;
        }
        let sample = parse_sample(line);
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| sample.name.strip_suffix(s))
            .filter(|f| typed.get(*f).is_some_and(|t| t == "histogram"));
        let family = family.unwrap_or(&sample.name);
        assert!(typed.contains_key(family), "sample before its TYPE: {line}");
        samples.push(sample);
    }
    samples
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("value {v:?} in {line}")),
    };
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line}")), line)),
        None => (series, BTreeMap::new()),
    };
    assert!(valid_name(name), "{line}");
    Sample { name: name.to_string(), labels, value }
}

/// `k="v",k="v"` (values here never hold quotes or backslashes).
fn parse_labels(text: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or_else(|| panic!("label {pair:?} in {line}"));
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or_else(|| panic!("unquoted {pair:?} in {line}"));
        assert!(valid_name(key) && !value.contains('"'), "{line}");
        assert!(labels.insert(key.to_string(), value.to_string()).is_none(), "label twice: {line}");
    }
    labels
}

/// Waits until `addr` answers a scrape.
fn await_metrics(addr: SocketAddr, dir: &std::path::Path) -> Scrape {
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(started.elapsed() < Duration::from_secs(15), "no metrics at {addr}; logs in {}", dir.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    scrape(addr)
}

fn serve_with_metrics(dir: &std::path::Path) -> (Proc, SocketAddr, SocketAddr) {
    let (port, metrics) = (free_port(), loopback(free_port()));
    let data = dir.join("data").display().to_string();
    let args = ["serve", "-p", &port.to_string(), "-b", &data, "--metrics-listen", &metrics.to_string()];
    let mut serve = Proc::new(args.iter().map(|a| a.to_string()).collect(), dir.join("serve.log"));
    serve.start();
    (serve, loopback(port), metrics)
}

/// `serve -b --metrics-listen`: after 20 puts and 5 reserve+deletes in a tube, the put count,
/// the tube's jobs, the leader's role, the log's batches and a growing fsync count all show,
/// and a path other than /metrics is not found.
#[test]
fn serve_reports_commands_jobs_raft_and_the_disk() {
    let dir = temp_dir("metrics-serve");
    let (_serve, beanstalkd, metrics) = serve_with_metrics(&dir);
    let before = await_metrics(metrics, &dir);
    assert_eq!(before.value("coolbeans_raft_role", &[("role", "leader")]), 1.0);
    assert_eq!(before.value("coolbeans_raft_role", &[("role", "follower")]), 0.0);
    let mut client = Beanstalk::connect(beanstalkd);
    assert_eq!(client.ask("use metrics-test"), "USING metrics-test");
    assert_eq!(client.ask("watch metrics-test"), "WATCHING 2");
    for i in 0..20 {
        client.put(&format!("job {i}"));
    }
    for _ in 0..5 {
        let (id, _) = {
            client.send(b"reserve-with-timeout 0\r\n");
            client.reserved()
        };
        assert_eq!(client.ask(&format!("delete {id}")), "DELETED");
    }
    let after = scrape(metrics);
    assert!(after.value("coolbeans_front_command_seconds_count", &[("command", "put")]) >= 20.0);
    assert!(after.value("coolbeans_front_command_seconds_count", &[("command", "delete")]) >= 5.0);
    assert!(after.value("coolbeans_node_proposals_total", &[("op", "put")]) >= 20.0);
    assert!(after.value("coolbeans_raft_entry_seconds_count", &[]) >= 20.0, "each put was an entry of its own");
    assert_eq!(after.value("coolbeans_tube_jobs", &[("tube", "metrics-test"), ("state", "ready")]), 15.0);
    assert_eq!(after.value("coolbeans_tube_jobs", &[("tube", "metrics-test"), ("state", "reserved")]), 0.0);
    assert_eq!(after.value("coolbeans_front_connections", &[]), 1.0);
    assert!(after.value("coolbeans_wal_batches_total", &[]) > 0.0);
    let fsyncs = |s: &Scrape| s.value("coolbeans_fsync_seconds_count", &[]);
    assert!(fsyncs(&after) > fsyncs(&before), "fsyncs {} then {}", fsyncs(&before), fsyncs(&after));
    let applied = after.value("coolbeans_raft_applied_index", &[]);
    assert!(applied >= 30.0 && applied <= after.value("coolbeans_raft_commit_index", &[]), "applied {applied}");
    assert!(after.value("coolbeans_raft_term", &[]) >= 1.0);
    assert!(after.value("coolbeans_raft_match_index", &[("peer", "1")]) >= after.value("coolbeans_raft_commit_index", &[]));
    assert_eq!(get(metrics, "/").0, "HTTP/1.1 404 Not Found");
}

/// Every series a query of ops/grafana/coolbeans.json names is in a scrape of `serve -b`,
/// which runs a node and a proxy and so has every series.
#[test]
fn the_dashboard_reads_only_series_that_exist() {
    let dir = temp_dir("metrics-dashboard");
    let (_serve, beanstalkd, metrics) = serve_with_metrics(&dir);
    await_metrics(metrics, &dir);
    Beanstalk::connect(beanstalkd).put("a job");
    let scraped = scrape(metrics);
    let names = scraped.names();
    let dashboard = include_str!("../ops/grafana/coolbeans.json");
    let dashboard: serde_json::Value = serde_json::from_str(dashboard).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "the dashboard has queries: {exprs:?}");
    let mut queried = BTreeSet::new();
    for expr in &exprs {
        queried.extend(series_names(expr));
    }
    let missing: Vec<&String> = queried.iter().filter(|n| !names.contains(n.as_str())).collect();
    assert!(missing.is_empty(), "queried but never scraped: {missing:?}");
}

/// Every `expr` in a Grafana dashboard (panels' targets, and variables' queries).
fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "query", serde_json::Value::String(expr)) if expr.contains("coolbeans_") => out.push(expr.clone()),
                    _ => collect_exprs(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The `coolbeans_` series names in a PromQL expression.
fn series_names(expr: &str) -> Vec<String> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("coolbeans_") {
        let word: String = rest[at..].chars().take_while(|c| is_name_char(*c)).collect();
        rest = &rest[at + word.len()..];
        names.push(word);
    }
    names
}

/// A 3-node cluster, each node and a `coolbeans beanstalkd` proxy with --metrics-listen:
/// after 30 puts through the proxy, it counts them and their forwarded writes, the leader
/// reports itself leader with every member's match index and counts the puts it proposed,
/// the followers report following it, and every node's fsyncs grew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_and_its_proxy_report_raft_and_forwarding() {
    let dir = temp_dir("metrics-cluster");
    let common::Led { nodes, members, leader, flagged: node_metrics } = common::start_cluster_with(&dir, "--metrics-listen").await;
    let (proxy_port, proxy_metrics) = (loopback(free_port()), loopback(free_port()));
    let upstreams = nodes.iter().map(|n| n.addr.to_string()).collect::<Vec<_>>().join(",");
    let args = ["beanstalkd", "--listen", &proxy_port.to_string(), "--upstreams", &upstreams, "--metrics-listen", &proxy_metrics.to_string()];
    let mut proxy = Proc::new(args.iter().map(|a| a.to_string()).collect(), dir.join("proxy.log"));
    proxy.start();
    let before: Vec<Scrape> = node_metrics.iter().map(|addr| await_metrics(*addr, &dir)).collect();
    let mut client = Beanstalk::connect(proxy_port);
    for i in 0..30 {
        client.put(&format!("job {i}"));
    }
    let proxy_scrape = await_metrics(proxy_metrics, &dir);
    assert!(proxy_scrape.value("coolbeans_front_command_seconds_count", &[("command", "put")]) >= 30.0);
    assert!(proxy_scrape.value("coolbeans_front_forwarded_total", &[("call", "write")]) >= 30.0);
    assert!(proxy_scrape.value("coolbeans_front_forward_streams_opened_total", &[]) >= 1.0);
    assert_eq!(proxy_scrape.value("coolbeans_front_connections", &[]), 1.0);
    assert!(!proxy_scrape.names().contains("coolbeans_raft_term"), "a proxy runs no node");
    for ((id, _), (addr, before)) in members.iter().zip(node_metrics.iter().zip(&before)) {
        let after = scrape(*addr);
        assert_eq!(after.value("coolbeans_raft_node_id", &[]), *id as f64);
        assert_eq!(after.value("coolbeans_raft_leader_id", &[]), leader as f64, "node {id}");
        let role = if *id == leader { "leader" } else { "follower" };
        assert_eq!(after.value("coolbeans_raft_role", &[("role", role)]), 1.0, "node {id} is {role}");
        assert_eq!(after.value("coolbeans_raft_voters", &[]), 3.0);
        let fsyncs = |s: &Scrape| s.value("coolbeans_fsync_seconds_count", &[]);
        assert!(fsyncs(&after) > fsyncs(before), "node {id}: fsyncs {} then {}", fsyncs(before), fsyncs(&after));
        if *id == leader {
            assert!(after.value("coolbeans_node_proposals_total", &[("op", "put")]) >= 30.0);
            assert!(after.value("coolbeans_raft_entry_seconds_count", &[]) >= 1.0);
            let commit = after.value("coolbeans_raft_commit_index", &[]);
            let matched = ["1", "2", "3"].map(|peer| after.value("coolbeans_raft_match_index", &[("peer", peer)]));
            assert!(matched.iter().all(|m| *m > 0.0) && matched.iter().filter(|m| **m >= commit).count() >= 2, "{matched:?}, commit {commit}");
        } else {
            assert!(!after.names().contains("coolbeans_raft_match_index"), "only the leader knows match indexes");
        }
    }
}
