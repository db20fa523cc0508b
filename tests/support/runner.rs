//! Plays one conversation against one server, step by step, stopping at the first answer that
//! differs; keeps a transcript of everything sent and received for the report.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::conv::{show, Action, Body, Conversation, Piece, Step, Text};
use super::matching::{match_text, match_yaml, show_text, yaml_lines, Captures, Dialect};
use super::server::Server;
use super::wire::{ReadError, Wire};

/// How long an expected answer may take. Conversations wait at most 2-3 s for timers, so
/// this only bounds how long a missing answer takes to be reported.
const ANSWER_TIMEOUT_MS: u64 = 5_000;

/// How long the end-of-conversation check listens for answers nobody expected.
const TRAILING_SILENCE_MS: u64 = 30;

/// What `nudge` sends: a command that does not exist, so it changes no state and no statistic.
const NUDGE: &[u8] = b"nudge-ttr-timer";

/// Where and why a conversation failed.
#[derive(Debug)]
pub struct Failure {
    /// The script line at fault (1-based) and its text; `None` for the final checks.
    pub step: Option<(usize, String)>,
    pub reason: String,
    pub transcript: Vec<String>,
}

/// One conversation in progress.
struct Session<'a> {
    dialect: Dialect,
    server: &'a mut Server,
    conns: BTreeMap<String, Wire>,
    captures: Captures,
    /// Every exchange so far, as script lines (`c1> ...`, `c1< ...`, `c1| ...`), each after
    /// the seconds since the conversation began.
    transcript: Vec<String>,
    started: Instant,
}

/// Plays `conversation` against `server`; answers the transcript on success.
pub fn run(conversation: &Conversation, server: &mut Server, dialect: Dialect) -> Result<Vec<String>, Failure> {
    let mut session =
        Session { dialect, server, conns: BTreeMap::new(), captures: Captures::default(), transcript: Vec::new(), started: Instant::now() };
    for step in &conversation.steps {
        if let Err(reason) = session.play(step) {
            session.transcript.push(format!("        ^^^ differs (script line {})", step.line_no));
            return Err(Failure { step: Some((step.line_no, step.source.clone())), reason, transcript: session.transcript });
        }
    }
    if let Err(reason) = session.check_nothing_unexpected() {
        return Err(Failure { step: None, reason, transcript: session.transcript });
    }
    Ok(session.transcript)
}

impl Session<'_> {
    fn note(&mut self, line: String) {
        self.transcript.push(format!("{:>6.3}  {line}", self.started.elapsed().as_secs_f64()));
    }

    fn play(&mut self, step: &Step) -> Result<(), String> {
        match &step.action {
            Action::Send { conn, text, crlf } => self.send(conn, text, *crlf),
            Action::Expect { conn, header, body } => self.expect(conn, header, body.as_ref()),
            Action::Close { conn } => self.close(conn),
            Action::Eof { conn } => self.expect_eof(conn),
            Action::Silent { conn, wait_ms } => self.expect_silence(conn, *wait_ms),
            Action::Nudge { conn } => self.nudge(conn),
            Action::Sleep { wait_ms } => {
                self.note(format!("sleep {wait_ms}"));
                std::thread::sleep(Duration::from_millis(*wait_ms));
                Ok(())
            }
            Action::Signal { name } => {
                self.note(format!("signal {name}"));
                self.server.signal(name)
            }
        }
    }

    /// The connection named `conn`, opened on first use.
    fn wire(&mut self, conn: &str) -> Result<&mut Wire, String> {
        if !self.conns.contains_key(conn) {
            let stream = match self.server.take_first_connection() {
                Some(stream) => stream,
                None => std::net::TcpStream::connect(self.server.addr).map_err(|e| format!("connect {conn}: {e}"))?,
            };
            self.conns.insert(conn.to_string(), Wire::new(stream));
        }
        Ok(self.conns.get_mut(conn).expect("inserted above"))
    }

    fn send(&mut self, conn: &str, text: &Text, crlf: bool) -> Result<(), String> {
        let mut bytes = self.captures.substitute(text)?;
        let shown = if crlf {
            format!("{conn}> {}", show(&bytes))
        } else {
            format!("{conn}>> {}", show(&bytes))
        };
        self.note(shown);
        if crlf {
            bytes.extend_from_slice(b"\r\n");
        }
        self.wire(conn)?.send(&bytes)
    }

    fn expect(&mut self, conn: &str, header: &Text, body: Option<&Body>) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_millis(ANSWER_TIMEOUT_MS);
        let wire = self.wire(conn)?;
        let line = wire.read_line(deadline).map_err(|e| describe(e, "an answer"))?;
        let announced = body_count(&line);
        let received = match announced {
            Some(count) => Some(read_body(wire, count, deadline)?),
            None => None,
        };
        self.note(format!("{conn}< {}", show(&line)));
        if let Some(received) = &received {
            self.record_body(conn, &line, received);
        }
        self.match_header(header, &line, received.as_deref())?;
        match (body, received) {
            (None, None) => Ok(()),
            (Some(Body::Job(want)), Some(got)) => match_text(want, &got, &mut self.captures).map_err(|e| format!("job body: {e}")),
            (Some(Body::Yaml(want)), Some(got)) => {
                let lines = yaml_lines(&got, self.dialect)?;
                match_yaml(want, &lines, &mut self.captures)
            }
            (Some(_), None) => Err(format!("expected an answer with a body, got `{}`", show(&line))),
            (None, Some(_)) => Err(format!("expected `{}`, got an answer with a body: `{}`", show_text(header), show(&line))),
        }
    }

    /// Compares the header line. `OK` alone stands for `OK <count>`, whose count was checked
    /// against the bytes received when the body was read.
    fn match_header(&mut self, header: &Text, line: &[u8], body: Option<&[u8]>) -> Result<(), String> {
        if header.literal().as_deref() == Some(b"OK".as_slice()) && line.starts_with(b"OK ") && body.is_some() {
            return Ok(());
        }
        match_text(header, line, &mut self.captures)
    }

    fn record_body(&mut self, conn: &str, line: &[u8], body: &[u8]) {
        if line.starts_with(b"OK ") {
            let content = body.strip_suffix(b"\n").unwrap_or(body);
            for body_line in content.split(|b| *b == b'\n') {
                self.note(format!("{conn}| {}", show(body_line)));
            }
        } else {
            self.note(format!("{conn}| {}", show(body)));
        }
    }

    /// Works around beanstalkd's lost TTR timers (see `Dialect::loses_ttr_timers`).
    fn nudge(&mut self, conn: &str) -> Result<(), String> {
        if !self.dialect.loses_ttr_timers {
            self.note(format!("{conn} nudge (nothing sent: this server keeps its TTR timers)"));
            return Ok(());
        }
        self.note(format!("{conn} nudge (beanstalkd loses TTR timers):"));
        self.send(conn, &Text { pieces: vec![Piece::Bytes(NUDGE.to_vec())] }, true)?;
        let unknown = Text { pieces: vec![Piece::Bytes(b"UNKNOWN_COMMAND".to_vec())] };
        self.expect(conn, &unknown, None)
    }

    fn close(&mut self, conn: &str) -> Result<(), String> {
        self.note(format!("{conn} close"));
        let mut wire = self.conns.remove(conn).ok_or_else(|| format!("{conn} was never opened"))?;
        let (unread, _) = wire.drain_until(Instant::now()).map_err(|e| describe(e, "unread bytes"))?;
        if !unread.is_empty() {
            return Err(format!("{conn} had unexpected unread bytes when closed: `{}`", show(&unread)));
        }
        Ok(())
    }

    fn expect_eof(&mut self, conn: &str) -> Result<(), String> {
        self.note(format!("{conn} eof"));
        let deadline = Instant::now() + Duration::from_millis(ANSWER_TIMEOUT_MS);
        let unread = self.wire(conn)?.read_to_close(deadline).map_err(|e| describe(e, "the server to close"))?;
        self.conns.remove(conn);
        if !unread.is_empty() {
            return Err(format!("expected the server to close {conn}, got `{}` first", show(&unread)));
        }
        Ok(())
    }

    fn expect_silence(&mut self, conn: &str, wait_ms: u64) -> Result<(), String> {
        self.note(format!("{conn} silent {wait_ms}"));
        let deadline = Instant::now() + Duration::from_millis(wait_ms);
        let (unexpected, closed) = self.wire(conn)?.drain_until(deadline).map_err(|e| describe(e, "silence"))?;
        if !unexpected.is_empty() {
            return Err(format!("expected silence on {conn} for {wait_ms} ms, got `{}`", show(&unexpected)));
        }
        if closed {
            return Err(format!("expected silence on {conn}, the server closed it"));
        }
        Ok(())
    }

    /// Every open connection has nothing left that no step expected.
    fn check_nothing_unexpected(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_millis(TRAILING_SILENCE_MS);
        let mut unexpected = None;
        for (conn, wire) in &mut self.conns {
            let (unread, _) = wire.drain_until(deadline).map_err(|e| describe(e, "the end"))?;
            if !unread.is_empty() {
                unexpected = Some((conn.clone(), unread));
                break;
            }
        }
        let Some((conn, unread)) = unexpected else { return Ok(()) };
        self.note(format!("{conn}< {}", show(&unread)));
        Err(format!("{conn} received bytes that no step expected: `{}`", show(&unread)))
    }
}

/// The body byte count announced by `OK <n>`, `RESERVED <id> <n>` or `FOUND <id> <n>`.
fn body_count(line: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split(' ');
    let count = match words.next()? {
        "OK" => words.next()?,
        "RESERVED" | "FOUND" => {
            words.next()?;
            words.next()?
        }
        _ => return None,
    };
    if words.next().is_some() {
        return None;
    }
    count.parse().ok()
}

/// Reads an announced body and its `\r\n`; answers the body alone.
fn read_body(wire: &mut Wire, count: usize, deadline: Instant) -> Result<Vec<u8>, String> {
    let mut body = wire.read_bytes(count + 2, deadline).map_err(|e| describe(e, &format!("a body of {count} bytes and \\r\\n")))?;
    if !body.ends_with(b"\r\n") {
        return Err(format!("the body announced as {count} bytes is not followed by \\r\\n: `{}`", show(&body)));
    }
    body.truncate(count);
    Ok(body)
}

fn describe(error: ReadError, waiting_for: &str) -> String {
    match error {
        ReadError::Timeout { partial } if partial.is_empty() => {
            format!("no answer: waited {ANSWER_TIMEOUT_MS} ms for {waiting_for}")
        }
        ReadError::Timeout { partial } => {
            format!("incomplete answer `{}` while waiting for {waiting_for}", show(&partial))
        }
        ReadError::Closed { partial } if partial.is_empty() => {
            format!("the server closed the connection; expected {waiting_for}")
        }
        ReadError::Closed { partial } => {
            format!("the server closed the connection after `{}`; expected {waiting_for}", show(&partial))
        }
        ReadError::Io(e) => format!("read failed ({e}) while waiting for {waiting_for}"),
    }
}
