//! The web console (`--http-listen`) on real processes: its JSON over HTTP (pages, bad input,
//! the guard on actions), then the page itself in headless chromium through chromedriver,
//! against `serve` and against a 3-node cluster whose leader is killed. Screenshots go to
//! target/tmp/console-screenshots.
#![cfg(not(madsim))]

#[path = "../common/mod.rs"]
mod common;
mod webdriver;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use common::beanstalk::Beanstalk;
use common::{free_port, loopback, temp_dir, Proc};
use webdriver::Browser;

const TOKEN: &str = "s3cret-admin";

fn shots_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
}

/// One HTTP request: its status and JSON answer (`Null` when the body is not JSON).
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to the console at {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("set a timeout");
    let body = body.unwrap_or("");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes())).expect("send the request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    http(addr, "GET", path, &[], None)
}

/// An action with the token and a matching CSRF cookie and echo.
fn post(addr: SocketAddr, path: &str, body: Value) -> (u16, Value) {
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Content-Type", "application/json"), ("Authorization", auth.as_str()), ("Cookie", "cb_csrf=t0k"), ("X-CSRF-Token", "t0k")];
    http(addr, "POST", path, &headers, Some(&body.to_string()))
}

/// A tube's counts as the console lists them.
fn counts(addr: SocketAddr, tube: &str) -> Option<Value> {
    let (_, page) = get(addr, &format!("/api/tube?name={tube}"));
    page.get("counts").cloned()
}

/// `serve -b` with the console on; answers it, its beanstalkd and console addresses.
fn serve(dir: &Path, token: bool) -> (Proc, SocketAddr, SocketAddr) {
    let (port, console) = (free_port(), loopback(free_port()));
    let mut args: Vec<String> = vec!["serve".into(), "-p".into(), port.to_string(), "-b".into(), dir.join("data").display().to_string()];
    args.extend(["--http-listen".into(), console.port().to_string()]);
    if token {
        let file = dir.join("token");
        std::fs::write(&file, format!("{TOKEN}\n")).expect("write the token file");
        args.extend(["--http-admin-token-file".into(), file.display().to_string()]);
    }
    let mut proc = Proc::new(args, dir.join("serve.log"));
    proc.start();
    wait_until(Duration::from_secs(10), || TcpStream::connect(console).is_ok(), "the console to listen");
    (proc, loopback(port), console)
}

fn wait_until(limit: Duration, mut check: impl FnMut() -> bool, what: &str) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "no {what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A job's state as `stats-job` gives it.
fn job_state(bs: &mut Beanstalk, id: u64) -> String {
    let answer = bs.ask(&format!("stats-job {id}"));
    let len = answer.strip_prefix("OK ").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("stats-job answered {answer}"));
    let yaml = String::from_utf8(bs.body(len)).expect("YAML is text");
    yaml.lines().find_map(|l| l.strip_prefix("state: ")).expect("a state line").to_string()
}

fn put_in(bs: &mut Beanstalk, tube: &str, bodies: &[&str]) -> Vec<u64> {
    assert_eq!(bs.ask(&format!("use {tube}")), format!("USING {tube}"));
    bodies.iter().map(|b| bs.put(b)).collect()
}

/// Pages walk a tube's jobs once each in reserve order, a move shows in both tubes at once,
/// and every bad request gets a 4xx with a message, the server still answering after.
#[test]
fn json_pages_actions_and_bad_input() {
    let dir = temp_dir("console-json");
    let (_serve, beanstalkd, console) = serve(&dir, true);
    let mut bs = Beanstalk::connect(beanstalkd);
    let ids = put_in(&mut bs, "emails", &["a", "b", "c", "d", "e"]);

    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = get(console, &format!("/api/jobs?tube=emails&state=ready&limit=2&after={after}"));
        assert_eq!(status, 200, "{page}");
        seen.extend(page["jobs"].as_array().expect("jobs").iter().map(|j| j["id"].as_u64().expect("an id")));
        match page["next"].as_str() {
            Some(next) => after = next.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let (status, moved) = post(console, "/api/job/move", json!({ "id": ids[0], "tube": "archive" }));
    assert_eq!((status, &moved["tube"]), (200, &json!("archive")));
    assert_eq!(counts(console, "archive").map(|c| c["ready"].clone()), Some(json!(1)));
    assert_eq!(counts(console, "emails").map(|c| c["ready"].clone()), Some(json!(4)));
    assert_eq!(bs.ask(&format!("peek {}", ids[0])), format!("FOUND {} 1", ids[0]));

    let refused = [
        get(console, "/api/jobs?tube=emails&state=sideways"),
        get(console, "/api/jobs?tube=emails&state=ready&limit=100000"),
        get(console, "/api/jobs?tube=emails&state=ready&after=garbage"),
        get(console, "/api/job?id=not-a-number"),
        get(console, "/api/job?id=999999"),
        get(console, "/api/tube?name=nope"),
        get(console, "/api/jobs?tube=nope&state=ready"),
        post(console, "/api/job/move", json!({ "id": ids[1], "tube": "bad name!" })),
        post(console, "/api/job/move", json!({ "id": ids[1] })),
        post(console, "/api/pause", json!({ "tube": "emails", "secs": -1 })),
        post(console, "/api/job/kick", json!({ "id": 424242 })),
        get(console, "/no/such/page"),
    ];
    for (i, (status, answer)) in refused.iter().enumerate() {
        assert!((400..500).contains(status), "request {i} answered {status}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|m| !m.is_empty()), "request {i} gave no message: {answer}");
    }
    let oversized = "x".repeat(64 * 1024);
    let (status, _) = post(console, "/api/job/move", json!({ "id": ids[1], "tube": oversized }));
    assert_eq!(status, 413, "an oversized action body is refused");
    assert_eq!(get(console, "/api/overview").0, 200, "the console still answers");
}

/// Actions need the admin token and the CSRF echo, and a console without a token file
/// refuses them all; nothing refused changes the queue.
#[test]
fn actions_are_guarded() {
    let dir = temp_dir("console-guard");
    let (_serve, beanstalkd, console) = serve(&dir, true);
    let mut bs = Beanstalk::connect(beanstalkd);
    let id = put_in(&mut bs, "t", &["x"])[0];
    let body = json!({ "id": id }).to_string();
    let json_type = ("Content-Type", "application/json");
    let attempts = [
        (vec![json_type], 401),
        (vec![json_type, ("Authorization", "Bearer wrong")], 401),
        (vec![json_type, ("Authorization", "Bearer s3cret-admin")], 403),
        (vec![json_type, ("Authorization", "Bearer s3cret-admin"), ("Cookie", "cb_csrf=a"), ("X-CSRF-Token", "b")], 403),
        (
            vec![
                json_type,
                ("Authorization", "Bearer s3cret-admin"),
                ("Cookie", "cb_csrf=a"),
                ("X-CSRF-Token", "a"),
                ("Origin", "http://evil.example"),
            ],
            403,
        ),
    ];
    for (headers, expected) in attempts {
        let (status, answer) = http(console, "POST", "/api/job/delete", &headers, Some(&body));
        assert_eq!(status, expected, "{headers:?}: {answer}");
    }
    assert_eq!(bs.ask(&format!("peek {id}")), format!("FOUND {id} 1"), "nothing refused deleted the job");
    assert_eq!(bs.body(1), b"x");
    assert_eq!(post(console, "/api/job/delete", json!({ "id": id })).0, 200);
    assert_eq!(bs.ask(&format!("peek {id}")), "NOT_FOUND");

    let dir = temp_dir("console-read-only");
    let (_serve, beanstalkd, console) = serve(&dir, false);
    let id = put_in(&mut Beanstalk::connect(beanstalkd), "t", &["x"])[0];
    let (status, answer) = post(console, "/api/job/delete", json!({ "id": id }));
    assert_eq!(status, 403);
    assert!(answer["error"].as_str().is_some_and(|m| m.contains("read-only")), "{answer}");
    assert_eq!(get(console, "/api/overview").1["read_only"], json!(true));
}

/// The page in a real browser against `serve`: counts follow the protocol, a buried job is
/// kicked from the page once the token is given (refused before), a job moves to another
/// tube, and a JSON body shows pretty.
#[test]
fn browser_on_serve() {
    let dir = temp_dir("console-browser");
    let (_serve, beanstalkd, console) = serve(&dir, true);
    let mut bs = Beanstalk::connect(beanstalkd);
    let ids = put_in(&mut bs, "emails", &[r#"{"to":"ada@example.com","n":1}"#, "plain text", "third"]);
    let mut browser = Browser::start(free_port(), &shots_dir());
    browser.open(&format!("http://{console}/"));
    let ready =
        |b: &mut Browser, tube: &str, state: &str, n: u64| b.text(&format!("#tubes tr[data-tube='{tube}'] td.{state}")) == Some(n.to_string());
    browser.wait_for("3 ready jobs in emails", Duration::from_secs(10), |b| ready(b, "emails", "ready", 3));
    browser.screenshot("serve-overview");

    assert_eq!(bs.ask("watch emails"), "WATCHING 2");
    assert_eq!(bs.ask(&format!("reserve-job {}", ids[1])), format!("RESERVED {} 10", ids[1]));
    assert_eq!(bs.body(10), b"plain text");
    assert_eq!(bs.ask(&format!("bury {} 5", ids[1])), "BURIED");
    browser.wait_for("the bury", Duration::from_secs(10), |b| ready(b, "emails", "buried", 1) && ready(b, "emails", "ready", 2));

    browser.click_row("#tubes tr[data-tube='emails']");
    browser.click("#states button[data-state='buried']");
    let row = format!("#jobs tr[data-job='{}']", ids[1]);
    browser.wait_for("the buried job's row", Duration::from_secs(10), |b| b.text(&row).is_some());
    browser.click_row(&row);
    browser.wait_for("the job's stats", Duration::from_secs(10), |b| b.text("#job-stats tr[data-key='state'] td").as_deref() == Some("buried"));
    browser.click("#job-kick");
    browser.wait_for("a refusal without the token", Duration::from_secs(10), |b| b.text("#message").is_some_and(|m| m.contains("admin token")));
    browser.screenshot("serve-refused-without-token");
    assert_eq!(job_state(&mut bs, ids[1]), "buried", "the refused kick changed nothing");

    browser.type_into("#token", TOKEN);
    browser.click("#token-save");
    browser.click("#job-kick");
    browser.wait_for("the kick", Duration::from_secs(10), |b| ready(b, "emails", "buried", 0) && ready(b, "emails", "ready", 3));
    browser.screenshot("serve-kicked");

    browser.click("#states button[data-state='ready']");
    let first = format!("#jobs tr[data-job='{}']", ids[0]);
    browser.wait_for("the ready jobs", Duration::from_secs(10), |b| b.text(&first).is_some());
    browser.click_row(&first);
    browser.click("#body-views button[data-view='json']");
    browser.wait_for("the body as pretty JSON", Duration::from_secs(10), |b| {
        b.text("#job-body").is_some_and(|t| t.contains("\n  \"to\": \"ada@example.com\""))
    });
    browser.type_into("#move-tube", "archive");
    browser.click("#job-move");
    browser.wait_for("the moved job in archive", Duration::from_secs(10), |b| ready(b, "archive", "ready", 1) && ready(b, "emails", "ready", 2));
    browser.click_row("#tubes tr[data-tube='archive']");
    browser.wait_for("the moved job listed in archive", Duration::from_secs(10), |b| b.text(&first).is_some());
    browser.screenshot("serve-moved");
    assert_eq!(bs.ask(&format!("peek {}", ids[0])).split(' ').next(), Some("FOUND"));
    let _ = bs.body(r#"{"to":"ada@example.com","n":1}"#.len());
    assert_eq!(bs.ask("use archive"), "USING archive");
    assert_eq!(bs.ask("peek-ready").split(' ').nth(1), Some(ids[0].to_string().as_str()));
}

/// The page of a follower in a 3-node cluster shows the leader, then a new one after the
/// leader is killed, with the change on its timeline.
#[test]
fn browser_follows_a_leader_change() {
    let dir = temp_dir("console-cluster");
    let consoles: Vec<SocketAddr> = (0..3).map(|_| loopback(free_port())).collect();
    let listen = consoles.clone();
    let mut nodes = common::cluster(&dir, move |id| vec!["--http-listen".into(), listen[id as usize - 1].to_string()]);
    for node in &mut nodes {
        node.proc.start();
    }
    let leader_seen_by = |console: SocketAddr| get(console, "/api/overview").1["cluster"]["leader_id"].as_u64().filter(|&l| l != 0);
    let mut leader = None;
    wait_until(
        Duration::from_secs(20),
        || {
            leader = TcpStream::connect(consoles[0]).ok().and_then(|_| leader_seen_by(consoles[0]));
            leader.is_some()
        },
        "leader",
    );
    let leader = leader.expect("a leader");
    let watcher = (0..3).find(|&i| i as u64 + 1 != leader).expect("a follower");

    let mut browser = Browser::start(free_port(), &shots_dir());
    browser.open(&format!("http://{}/", consoles[watcher]));
    let shown = |b: &mut Browser| {
        b.run("return document.querySelector('#cluster-summary').dataset.leader || '0';", json!([])).as_str().and_then(|s| s.parse::<u64>().ok())
    };
    browser.wait_for("the leader", Duration::from_secs(15), |b| shown(b) == Some(leader));
    browser.wait_for("three members", Duration::from_secs(15), |b| {
        b.run("return document.querySelectorAll('#members tbody tr').length;", json!([])) == json!(3)
    });
    browser.screenshot("cluster-before");

    nodes[leader as usize - 1].proc.kill();
    browser.wait_for("a new leader", Duration::from_secs(30), |b| shown(b).is_some_and(|l| l != 0 && l != leader));
    let changes = browser.run("return document.querySelectorAll('#timeline li').length;", json!([]));
    assert!(changes.as_u64().is_some_and(|n| n >= 2), "the timeline shows the change: {changes}");
    browser.screenshot("cluster-after");
}

/// A `coolbeans beanstalkd` proxy serves the console of the cluster behind it: the
/// cluster's members and leader, pages of jobs read over gRPC, a job's stats, and actions
/// forwarded to the leader (a move, deleting every buried job).
#[test]
fn proxy_console() {
    let dir = temp_dir("console-proxy");
    let mut nodes = common::cluster(&dir, |_| Vec::new());
    for node in &mut nodes {
        node.proc.start();
    }
    let upstreams = nodes.iter().map(|n| n.addr.to_string()).collect::<Vec<_>>().join(",");
    let (beanstalkd, console) = (loopback(free_port()), loopback(free_port()));
    let token = dir.join("token");
    std::fs::write(&token, TOKEN).expect("write the token file");
    let args = ["beanstalkd", "--listen", &beanstalkd.to_string(), "--upstreams", &upstreams, "--http-listen", &console.to_string()];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.extend(["--http-admin-token-file".into(), token.display().to_string()]);
    let mut proxy = Proc::new(args, dir.join("proxy.log"));
    proxy.start();
    wait_until(
        Duration::from_secs(20),
        || TcpStream::connect(console).is_ok() && get(console, "/api/overview").1["cluster"]["leader_id"].as_u64().is_some_and(|l| l != 0),
        "leader seen through the proxy's console",
    );
    let (_, overview) = get(console, "/api/overview");
    assert_eq!((overview["mode"].as_str(), overview["node_id"].is_null()), (Some("beanstalkd"), true), "{overview}");
    assert_eq!(overview["cluster"]["members"].as_array().map(Vec::len), Some(3), "{overview}");

    let mut bs = Beanstalk::connect(beanstalkd);
    let ids = put_in(&mut bs, "work", &["one", "two", "three"]);
    let (status, page) = get(console, "/api/jobs?tube=work&state=ready&limit=2");
    assert_eq!(status, 200, "{page}");
    let first: Vec<u64> = page["jobs"].as_array().expect("jobs").iter().filter_map(|j| j["id"].as_u64()).collect();
    assert_eq!(first, ids[..2]);
    let next = page["next"].as_str().expect("a second page");
    let (_, rest) = get(console, &format!("/api/jobs?tube=work&state=ready&limit=2&after={next}"));
    assert_eq!((rest["jobs"][0]["id"].as_u64(), &rest["next"]), (Some(ids[2]), &Value::Null));
    let (_, job) = get(console, &format!("/api/job?id={}", ids[1]));
    assert_eq!((job["body_text"].as_str(), job["tube"].as_str()), (Some("two"), Some("work")), "{job}");
    assert_eq!(get(console, "/api/jobs?tube=nope&state=ready").0, 404);
    assert_eq!(get(console, "/api/jobs?tube=work&state=bogus").0, 400);

    assert_eq!(post(console, "/api/job/move", json!({ "id": ids[0], "tube": "later" })).0, 200);
    assert_eq!(counts(console, "later").map(|c| c["ready"].clone()), Some(json!(1)));
    assert_eq!(bs.ask("watch work"), "WATCHING 2");
    for id in &ids[1..] {
        assert_eq!(bs.ask(&format!("reserve-job {id}")).split(' ').next(), Some("RESERVED"));
        let _ = bs.body(if *id == ids[1] { 3 } else { 5 });
        assert_eq!(bs.ask(&format!("bury {id} 1")), "BURIED");
    }
    assert_eq!(counts(console, "work").map(|c| c["buried"].clone()), Some(json!(2)));
    let (status, deleted) = post(console, "/api/delete-buried", json!({ "tube": "work" }));
    assert_eq!((status, deleted["deleted"].as_u64(), deleted["more"].as_bool()), (200, Some(2), Some(false)), "{deleted}");
    assert_eq!(bs.ask(&format!("peek {}", ids[1])), "NOT_FOUND");
}
