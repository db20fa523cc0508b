//! `coolbeans top` in a real terminal: tmux runs it at 120x40 against `coolbeans serve` and,
//! when it is installed, Debian's beanstalkd. The test puts jobs in tubes in every state,
//! reads the screen until each tube's row shows its counts, sees put and delete rates, fills
//! more tubes than the screen holds, stops and restarts the server (top says it is not
//! answering, then shows the new one), and quits with q: top exits 0 and its session ends.
#![cfg(not(madsim))]

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::beanstalk::Beanstalk;
use common::{free_port, loopback, temp_dir, Proc};

/// How long the screen may take to show what the test expects: a few of top's looks.
const SCREEN_WAIT: Duration = Duration::from_secs(10);
/// Screen rows above the tubes and below them: tubes beyond the rest do not fit.
const SCREEN_ROWS: usize = 40;
const SCREEN_ROWS_NOT_TUBES: usize = 5;

/// A tmux server of the test's own (`-L`), so no one else's sessions are touched; killed on
/// drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn installed() -> bool {
        Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success())
    }

    /// Runs `command` in a detached 120x40 session `top`.
    fn start(name: &str, command: &str) -> Tmux {
        let tmux = Tmux { socket: format!("coolbeans-{name}-{}", std::process::id()) };
        let rows = SCREEN_ROWS.to_string();
        let out = tmux.run(&["new-session", "-d", "-s", "top", "-x", "120", "-y", &rows, command]);
        assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
        tmux
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).env("TERM", "xterm").output().expect("run tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    /// The screen once `ready` holds for it; fails the test with the last screen otherwise.
    fn await_screen(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(started.elapsed() < SCREEN_WAIT, "the screen never showed {what}:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn session_alive(&self) -> bool {
        self.run(&["has-session", "-t", "top"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The tube rows on a screen, by name: the cells after the name.
fn tube_rows(screen: &str) -> BTreeMap<String, Vec<String>> {
    let lines = screen.lines().skip_while(|l| !l.starts_with("TUBE ")).skip(1);
    lines
        .take_while(|l| !l.is_empty() && !l.contains("sorted by"))
        .filter_map(|l| {
            let mut cells = l.split_whitespace().map(String::from);
            Some((cells.next()?, cells.collect()))
        })
        .collect()
}

/// Whether tube `name` shows these ready, reserved, delayed, buried and waiting counts.
fn shows_counts(screen: &str, name: &str, counts: [u64; 5]) -> bool {
    let expected: Vec<String> = counts.iter().map(u64::to_string).collect();
    tube_rows(screen).get(name).is_some_and(|cells| cells.len() == 7 && cells[..5] == expected[..])
}

/// Tube `name`'s rate in column `column` (5: puts, 6: deletes), when it is a number.
fn rate(screen: &str, name: &str, column: usize) -> Option<f64> {
    tube_rows(screen).get(name)?.get(column)?.parse().ok()
}

/// A running server: stopped when dropped.
type Running = Box<dyn std::any::Any>;

/// A server under test, started (again) on the same port by `start`.
struct Target {
    addr: SocketAddr,
    start: Box<dyn Fn(SocketAddr) -> Running>,
}

/// Waits until something accepts connections on `addr`.
fn await_serving(addr: SocketAddr) {
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "nothing serves {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Debian's beanstalkd, killed on drop.
struct Beanstalkd(Child);

impl Drop for Beanstalkd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The whole run against one target, named `name`.
fn top_follows(name: &str, target: Target) {
    let dir = temp_dir(&format!("top-{name}"));
    let mut server = Some((target.start)(target.addr));
    await_serving(target.addr);
    let exit_file = dir.join("top.exit");
    let command = format!("'{}' top --addr {}; echo $? > '{}'", env!("CARGO_BIN_EXE_coolbeans"), target.addr, exit_file.display());
    let tmux = Tmux::start(name, &command);

    // Jobs in every state: alpha 3 ready; beta 1 ready, 1 reserved, 1 delayed, 1 buried;
    // gamma a client waiting.
    let mut producer = Beanstalk::connect(target.addr);
    assert_eq!(producer.ask("use alpha"), "USING alpha");
    let alpha: Vec<u64> = (0..3).map(|i| producer.put(&format!("a{i}"))).collect();
    assert_eq!(producer.ask("use beta"), "USING beta");
    assert!(producer.ask("put 0 100 60 1\r\nd").starts_with("INSERTED "));
    for i in 0..3 {
        producer.put(&format!("b{i}"));
    }
    let mut worker = Beanstalk::connect(target.addr);
    assert_eq!(worker.ask("watch beta"), "WATCHING 2");
    assert_eq!(worker.ask("ignore default"), "WATCHING 1");
    worker.send(b"reserve\r\n");
    worker.reserved();
    worker.send(b"reserve\r\n");
    let (buried, _) = worker.reserved();
    assert_eq!(worker.ask(&format!("bury {buried} 0")), "BURIED");
    let mut waiter = Beanstalk::connect(target.addr);
    assert_eq!(waiter.ask("watch gamma"), "WATCHING 2");
    assert_eq!(waiter.ask("ignore default"), "WATCHING 1");
    waiter.send(b"reserve\r\n");
    tmux.await_screen("each tube's counts", |s| {
        shows_counts(s, "alpha", [3, 0, 0, 0, 0]) && shows_counts(s, "beta", [1, 1, 1, 1, 0]) && shows_counts(s, "gamma", [0, 0, 0, 0, 1])
    });

    // Rates: puts and deletes in alpha show as changes per second.
    assert_eq!(producer.ask("use alpha"), "USING alpha");
    for i in 0..10 {
        producer.put(&format!("more{i}"));
    }
    for id in &alpha {
        assert_eq!(producer.ask(&format!("delete {id}")), "DELETED");
    }
    tmux.await_screen("a put rate in alpha", |s| rate(s, "alpha", 5).is_some_and(|r| r > 0.0));
    tmux.await_screen("a delete rate in alpha", |s| rate(s, "alpha", 6).is_some_and(|r| r > 0.0));
    tmux.await_screen("alpha's new count", |s| shows_counts(s, "alpha", [10, 0, 0, 0, 0]));

    // More tubes than the screen holds: the screen keeps its size and counts the rest.
    for i in 0..40 {
        assert_eq!(producer.ask(&format!("use many-{i:02}")), format!("USING many-{i:02}"));
        producer.put("m");
    }
    let tubes = 3 + 40 + 1; // alpha, beta, gamma, the many, default
    let hidden = tubes - (SCREEN_ROWS - SCREEN_ROWS_NOT_TUBES);
    let screen = tmux.await_screen("the tubes that do not fit counted", |s| s.contains(&format!("+{hidden} more tubes")));
    assert_eq!(tube_rows(&screen).len(), SCREEN_ROWS - SCREEN_ROWS_NOT_TUBES, "{screen}");

    // The server goes away and comes back (empty): top says so, retries, and follows it.
    drop((producer, worker, waiter));
    server.take();
    tmux.await_screen("that the server is not answering", |s| s.contains("NOT ANSWERING for"));
    server = Some((target.start)(target.addr));
    tmux.await_screen("the new server", |s| !s.contains("NOT ANSWERING") && tube_rows(s).keys().eq(["default"]));

    // q quits: top exits 0 and its session ends.
    assert!(tmux.run(&["send-keys", "-t", "top", "q"]).status.success());
    let started = Instant::now();
    while tmux.session_alive() {
        assert!(started.elapsed() < Duration::from_secs(5), "top did not exit on q:\n{}", tmux.screen());
        std::thread::sleep(Duration::from_millis(50));
    }
    let exit = std::fs::read_to_string(&exit_file).unwrap_or_default();
    assert_eq!(exit.trim(), "0", "top's exit status");
    drop(server);
}

fn start_serve(dir: PathBuf) -> impl Fn(SocketAddr) -> Running {
    move |addr: SocketAddr| {
        let args = ["serve", "-l", "127.0.0.1", "-p", &addr.port().to_string()].map(String::from).to_vec();
        let mut proc = Proc::new(args, dir.join("serve.log"));
        proc.start();
        await_serving(addr);
        Box::new(proc) as Running
    }
}

fn start_beanstalkd(log: &Path) -> impl Fn(SocketAddr) -> Running {
    let log = log.to_path_buf();
    move |addr: SocketAddr| {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("open beanstalkd log");
        let child = Command::new("beanstalkd")
            .args(["-l", "127.0.0.1", "-p", &addr.port().to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("spawn beanstalkd");
        let server = Beanstalkd(child);
        await_serving(addr);
        Box::new(server) as Running
    }
}

/// Says why a test did not run, on the real stderr: the test harness keeps what `eprintln!`
/// says of a passing test to itself.
fn skip(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

#[test]
fn top_follows_coolbeans_serve() {
    if !Tmux::installed() {
        return skip("tmux is not installed (.ci/run installs it; `apt-get install tmux`)");
    }
    let dir = temp_dir("top-serve-logs");
    top_follows("serve", Target { addr: loopback(free_port()), start: Box::new(start_serve(dir)) });
}

#[test]
fn top_follows_beanstalkd() {
    if !Tmux::installed() {
        return skip("tmux is not installed (.ci/run installs it; `apt-get install tmux`)");
    }
    if Command::new("beanstalkd").arg("-v").output().is_err() {
        return skip("beanstalkd is not on PATH (.ci/run installs it; `apt-get install beanstalkd`)");
    }
    let dir = temp_dir("top-beanstalkd-logs");
    top_follows("beanstalkd", Target { addr: loopback(free_port()), start: Box::new(start_beanstalkd(&dir.join("beanstalkd.log"))) });
}
