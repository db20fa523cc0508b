//! A small blocking WebDriver client: Debian's chromedriver driving its headless chromium,
//! enough to open the console, click, type, read the page and take screenshots.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The key WebDriver gives an element's reference under.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// The chromedriver process, killed when dropped: also when the session never starts and
/// the test fails before a `Browser` exists.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Browser {
    /// Dropped after the session is ended (fields drop after `Browser::drop`).
    _driver: Driver,
    addr: SocketAddr,
    session: String,
    /// Where screenshots go.
    shots: PathBuf,
}

/// One HTTP exchange with the driver: the status and the JSON answer.
fn exchange(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let (status, body) = read_answer(&mut stream)?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// An HTTP answer's status and body, read as far as its Content-Length: chromedriver may keep
/// a connection open after answering, whatever the request said.
fn read_answer(stream: &mut TcpStream) -> std::io::Result<(u16, Vec<u8>)> {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the driver closed before answering"));
        }
        answer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(length) => {
            while answer.len() < head_end + length {
                let read = stream.read(&mut chunk)?;
                if read == 0 {
                    break;
                }
                answer.extend_from_slice(&chunk[..read]);
            }
        }
        None => {
            stream.read_to_end(&mut answer)?;
        }
    }
    Ok((status, answer.split_off(head_end)))
}

impl Browser {
    /// Starts chromedriver and a headless chromium session; fails the test with what to
    /// install when either is missing, never skips.
    pub fn start(port: u16, shots: &Path) -> Browser {
        for program in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: the console's browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run installs them)"
            );
        }
        std::fs::create_dir_all(shots).expect("create the screenshot dir");
        let log = std::fs::File::create(shots.join(format!("chromedriver-{port}.log"))).expect("create the driver's log");
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(log.try_clone().expect("the log again"))
            .stderr(log)
            .spawn()
            .map(Driver)
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        while !matches!(exchange(addr, "GET", "/status", None), Ok((200, _))) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not answer on {addr} within 20 s; its log is in {}",
                shots.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1100"],
            },
        }}});
        let (status, answer) = exchange(addr, "POST", "/session", Some(&capabilities)).expect("ask chromedriver for a session");
        let session = answer["value"]["sessionId"].as_str().map(str::to_string);
        let Some(session) = session.filter(|_| status == 200) else {
            panic!("chromium did not start (HTTP {status}): {answer}");
        };
        let mut browser = Browser { _driver: driver, addr, session, shots: shots.to_path_buf() };
        browser.driver_call("POST", "/timeouts", json!({"implicit": 0, "script": 10_000, "pageLoad": 20_000}));
        browser
    }

    /// A command of this session; panics with the driver's error.
    fn driver_call(&mut self, method: &str, path: &str, body: Value) -> Value {
        let body = (method == "POST").then_some(body);
        let path = format!("/session/{}{path}", self.session);
        let (status, answer) = exchange(self.addr, method, &path, body.as_ref()).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer["value"].clone()
    }

    pub fn open(&mut self, url: &str) {
        self.driver_call("POST", "/url", json!({ "url": url }));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub fn run(&mut self, script: &str, args: Value) -> Value {
        self.driver_call("POST", "/execute/sync", json!({ "script": script, "args": args }))
    }

    /// The text of the first element matching `css`, or `None`.
    pub fn text(&mut self, css: &str) -> Option<String> {
        self.run("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", json!([css])).as_str().map(str::to_string)
    }

    fn element(&mut self, css: &str) -> String {
        let found = self.driver_call("POST", "/element", json!({ "using": "css selector", "value": css }));
        found[ELEMENT_KEY].as_str().unwrap_or_else(|| panic!("no element {css}: {found}")).to_string()
    }

    /// A real click (the driver's, as a user's) on an element that stays in the page.
    pub fn click(&mut self, css: &str) {
        let id = self.element(css);
        self.driver_call("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// Clicks an element of a table the page redraws every second, in the page itself: a
    /// reference held across a redraw would go stale.
    pub fn click_row(&mut self, css: &str) {
        let clicked = self.run("const e = document.querySelector(arguments[0]); if (!e) return false; e.click(); return true;", json!([css]));
        assert_eq!(clicked, Value::Bool(true), "no row {css} to click");
    }

    /// Types `text` into an input, replacing what it held.
    pub fn type_into(&mut self, css: &str, text: &str) {
        let id = self.element(css);
        self.driver_call("POST", &format!("/element/{id}/clear"), json!({}));
        self.driver_call("POST", &format!("/element/{id}/value"), json!({ "text": text }));
    }

    /// Waits until `check` holds, up to `limit`; on failure takes a screenshot and fails the
    /// test saying what was awaited.
    pub fn wait_for(&mut self, what: &str, limit: Duration, mut check: impl FnMut(&mut Browser) -> bool) {
        let started = Instant::now();
        while !check(self) {
            if started.elapsed() > limit {
                let shot = self.screenshot("failed");
                panic!("the page did not show {what} within {limit:?}; screenshot {}", shot.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG of the page as `NAME.png` in the screenshot dir; answers its path.
    pub fn screenshot(&mut self, name: &str) -> PathBuf {
        let encoded = self.driver_call("GET", "/screenshot", Value::Null);
        let png = decode_base64(encoded.as_str().unwrap_or_default());
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = exchange(self.addr, "DELETE", &format!("/session/{}", self.session), None);
    }
}

/// Standard base64 (the driver's screenshots), padding and line breaks ignored.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let (mut out, mut acc, mut bits) = (Vec::with_capacity(text.len() * 3 / 4), 0u32, 0);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(decode_base64("aGVsbG8="), b"hello");
    assert_eq!(decode_base64("aGVsbG8h"), b"hello!");
}
