//! The conversation format: one `tests/conversations/<topic>.conv` file is one conversation
//! with a fresh server.
//!
//! ```text
//! # What this conversation shows, in one sentence (the first comment is required).
//! only: 1.13 -- why the 1.12 oracle must skip it
//! c1> put 0 0 10 5           send the line, the harness appends \r\n
//! c1> hello
//! c1< INSERTED $a            expect exactly this line; `$a` captures a job id
//! c1>> put 0 0 1 2\r\nab     send raw bytes (nothing appended): split writes, bad framing
//! c2> reserve
//! c2< RESERVED $a 5          an answer with a body: the body follows on `|` lines
//! c2| hello
//! c1> stats-job $a           a bound capture is substituted in what is sent
//! c1< OK                     `OK` without its count: the count is checked against the body
//! c1| ---                    a YAML body: every `|` line is one line ending in \n
//! c1| id: $a
//! c1| age: *                 a volatile key: any well-formed value ...
//! c1| time-left: 8..10       ... or an integer in a range
//! c1 silent 500              no byte arrives on c1 for 500 ms
//! c1 close                   close c1 (the server sees the client hang up)
//! c2 eof                     the server closes c2 (after `quit`)
//! c1 nudge                   beanstalkd only: wake c1's lost TTR timer (see Dialect)
//! sleep 1100                 wait
//! signal USR1                send a signal to the server process
//! ```
//!
//! Connections (`c1`, `c2`, `worker`, ...) open on first use, in script order; a closed name
//! cannot be used again. Lines are compared byte for byte after the escapes below are applied.
//! Trailing white space of a script line is ignored; write `\s` for a meaningful trailing space.
//!
//! Text escapes, everywhere (sent lines, raw sends, expected lines, body lines):
//! `\r \n \t \s \0 \\ \$ \{ \} \xHH`; `{unit*N}` repeats `unit` N times (`{a*200}`);
//! `$name` is a capture: in an expected line it matches a decimal number, and the first
//! occurrence binds it. Later occurrences must match the bound number, and two names never bind
//! the same number, so ids are compared modulo renumbering. In a sent line, `$name` is replaced
//! by its binding.
//!
//! Bodies: after a `RESERVED`, `FOUND` or `OK` expectation, the `|` lines of the same
//! connection give the body. For `RESERVED`/`FOUND` (a job body) they are joined with `\n`,
//! without a final one (`c1|` alone is an empty body); for `OK` (a YAML document) each line
//! ends in `\n`. The harness reads exactly the announced count of bytes, then `\r\n`.
//! Only the keys in [`VOLATILE_KEYS`] may use `*` or `LO..HI`.
//!
//! What may differ between servers, and nothing else: ids (captures), the volatile keys, the
//! count of an `OK` written without one, and, for the 1.12 oracle only, the quotes of string
//! values (`name: default` is compared as `name: "default"`, see `matching::Dialect`).
//! `only: X.Y -- reason` makes servers older than beanstalkd X.Y skip the conversation.
//! A conversation stops at the first difference; when it ends, every open connection must
//! have received nothing that no step expected.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Keys of YAML bodies whose values legitimately differ between servers and runs: times,
/// process and host identity, and the binlog (a file in beanstalkd, the Raft log here).
/// Only these may be written `*` or `LO..HI` in an expected body; every other value is exact.
pub const VOLATILE_KEYS: &[&str] = &[
    "age",
    "time-left",
    "pause-time-left",
    "uptime",
    "rusage-utime",
    "rusage-stime",
    "pid",
    "version",
    "id",
    "hostname",
    "os",
    "platform",
    "binlog-oldest-index",
    "binlog-current-index",
    "binlog-records-migrated",
    "binlog-records-written",
    "binlog-max-size",
    "current-connections",
    "total-connections",
];

/// One parsed `.conv` file.
#[derive(Debug)]
pub struct Conversation {
    /// The file stem, used in reports and in `CONFORMANCE_ONLY` filters.
    pub name: String,
    pub path: PathBuf,
    /// The first comment: what the conversation shows.
    pub summary: String,
    /// Set by `only: X.Y -- reason`: servers older than X.Y skip the conversation.
    pub since: Option<Since>,
    pub steps: Vec<Step>,
}

/// The oldest beanstalkd version whose behaviour a conversation pins, and why.
#[derive(Debug)]
pub struct Since {
    pub version: (u32, u32),
    pub reason: String,
}

/// One script line (with its body lines, for an expectation).
#[derive(Debug)]
pub struct Step {
    /// 1-based line in the file, for reports.
    pub line_no: usize,
    /// The script line as written.
    pub source: String,
    pub action: Action,
}

#[derive(Debug)]
pub enum Action {
    /// `c1> text` (crlf) or `c1>> text` (raw).
    Send { conn: String, text: Text, crlf: bool },
    /// `c1< header`, then the body lines if the header announces one.
    Expect { conn: String, header: Text, body: Option<Body> },
    /// `c1 close`.
    Close { conn: String },
    /// `c1 eof`: the server closes the connection, sending nothing more.
    Eof { conn: String },
    /// `c1 silent MS`.
    Silent { conn: String, wait_ms: u64 },
    /// `c1 nudge`: against a server that loses TTR timers (beanstalkd), an unknown command
    /// on c1 and its UNKNOWN_COMMAND, so that the TTR of a job c1 holds is checked again;
    /// against any other server, nothing. See `Dialect::loses_ttr_timers`.
    Nudge { conn: String },
    /// `sleep MS`.
    Sleep { wait_ms: u64 },
    /// `signal NAME`, e.g. `signal USR1`.
    Signal { name: String },
}

/// An expected body.
#[derive(Debug)]
pub enum Body {
    /// The body of a `RESERVED` or `FOUND` answer.
    Job(Text),
    /// The lines of an `OK` answer's YAML document.
    Yaml(Vec<YamlLine>),
}

/// One expected line of a YAML body.
#[derive(Debug)]
pub enum YamlLine {
    Exact(Text),
    /// `key: *`: any well-formed value.
    Any {
        key: String,
    },
    /// `key: LO..HI`: an integer in `LO..=HI`.
    Range {
        key: String,
        lo: u64,
        hi: u64,
    },
}

/// Bytes with captures in them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Text {
    pub pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Bytes(Vec<u8>),
    /// `$name`: a decimal number, bound on first occurrence.
    Capture(String),
}

impl Text {
    fn push_bytes(&mut self, bytes: &[u8]) {
        if let Some(Piece::Bytes(last)) = self.pieces.last_mut() {
            last.extend_from_slice(bytes);
        } else {
            self.pieces.push(Piece::Bytes(bytes.to_vec()));
        }
    }

    /// The bytes, if the text has no capture.
    pub fn literal(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Bytes(b) => out.extend_from_slice(b),
                Piece::Capture(_) => return None,
            }
        }
        Some(out)
    }

    /// The leading literal bytes (up to the first capture).
    pub fn prefix(&self) -> &[u8] {
        match self.pieces.first() {
            Some(Piece::Bytes(b)) => b,
            _ => &[],
        }
    }
}

/// Every `.conv` file under `dir`, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<Conversation>, String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "conv"))
        .collect();
    paths.sort();
    let mut errors = Vec::new();
    let mut conversations = Vec::new();
    for path in paths {
        match load(&path) {
            Ok(c) => conversations.push(c),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(conversations)
    } else {
        Err(errors.join("\n"))
    }
}

/// Parses one file; errors name the file and line.
pub fn load(path: &Path) -> Result<Conversation, String> {
    let source = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    parse(&name, path, &source).map_err(|(line_no, e)| format!("{}:{line_no}: {e}", path.display()))
}

/// Parses a conversation's text.
pub fn parse(name: &str, path: &Path, source: &str) -> Result<Conversation, (usize, String)> {
    let mut conversation = Conversation { name: name.to_string(), path: path.to_path_buf(), summary: String::new(), since: None, steps: Vec::new() };
    let mut closed = BTreeSet::new();
    for (index, raw) in source.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim_end();
        parse_line(&mut conversation, &mut closed, line_no, line).map_err(|e| (line_no, e))?;
    }
    if conversation.summary.is_empty() {
        return Err((1, "a conversation starts with a comment saying what it shows".into()));
    }
    if conversation.steps.is_empty() {
        return Err((1, "a conversation has no steps".into()));
    }
    for step in &conversation.steps {
        if let Action::Expect { header, body: None, .. } = &step.action {
            if announces_body(header) {
                return Err((step.line_no, "this answer has a body: give it on `|` lines".into()));
            }
        }
    }
    Ok(conversation)
}

fn parse_line(conv: &mut Conversation, closed: &mut BTreeSet<String>, line_no: usize, line: &str) -> Result<(), String> {
    if line.is_empty() {
        return Ok(());
    }
    if let Some(comment) = line.strip_prefix('#') {
        if conv.summary.is_empty() && conv.steps.is_empty() {
            conv.summary = comment.trim().to_string();
        }
        return Ok(());
    }
    if let Some(rest) = line.strip_prefix("only:") {
        conv.since = Some(parse_since(rest)?);
        return Ok(());
    }
    let step = |action| Step { line_no, source: line.to_string(), action };
    if let Some(ms) = line.strip_prefix("sleep ") {
        conv.steps.push(step(Action::Sleep { wait_ms: parse_ms(ms)? }));
        return Ok(());
    }
    if let Some(name) = line.strip_prefix("signal ") {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
            return Err(format!("`{name}` is not a signal name such as USR1"));
        }
        conv.steps.push(step(Action::Signal { name: name.to_string() }));
        return Ok(());
    }
    let conn_len = line.bytes().take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_').count();
    if conn_len == 0 || !line.as_bytes()[0].is_ascii_lowercase() {
        return Err(format!("cannot parse `{line}`: expected a connection name such as c1, or sleep/signal/only:"));
    }
    let conn = line[..conn_len].to_string();
    if closed.contains(&conn) {
        return Err(format!("connection {conn} was closed; use a new name"));
    }
    let rest = &line[conn_len..];
    if let Some(body_line) = strip_marker(rest, "|") {
        return attach_body_line(conv, &conn, body_line);
    }
    let action = parse_conn_action(conn.clone(), rest)?;
    if matches!(action, Action::Close { .. } | Action::Eof { .. }) {
        closed.insert(conn);
    }
    conv.steps.push(step(action));
    Ok(())
}

fn parse_conn_action(conn: String, rest: &str) -> Result<Action, String> {
    if let Some(text) = strip_marker(rest, ">>") {
        return Ok(Action::Send { conn, text: parse_text(text)?, crlf: false });
    }
    if let Some(text) = strip_marker(rest, ">") {
        return Ok(Action::Send { conn, text: parse_text(text)?, crlf: true });
    }
    if let Some(text) = strip_marker(rest, "<") {
        return Ok(Action::Expect { conn, header: parse_text(text)?, body: None });
    }
    match rest.trim_start().split_once(' ').unwrap_or((rest.trim_start(), "")) {
        ("close", "") => Ok(Action::Close { conn }),
        ("eof", "") => Ok(Action::Eof { conn }),
        ("silent", ms) => Ok(Action::Silent { conn, wait_ms: parse_ms(ms)? }),
        ("nudge", "") => Ok(Action::Nudge { conn }),
        _ => Err(format!("cannot parse `{conn}{rest}`: expected {conn}>, {conn}>>, {conn}<, {conn}|, close, eof or silent MS")),
    }
}

/// `rest` without its marker and the one space after it; `None` if it has another marker.
fn strip_marker<'a>(rest: &'a str, marker: &str) -> Option<&'a str> {
    let after = rest.strip_prefix(marker)?;
    if after.is_empty() {
        return Some("");
    }
    after.strip_prefix(' ')
}

fn attach_body_line(conv: &mut Conversation, conn: &str, line: &str) -> Result<(), String> {
    let Some(Step { action: Action::Expect { conn: expect_conn, header, body }, .. }) = conv.steps.last_mut() else {
        return Err("a `|` body line must follow an expected answer".into());
    };
    if expect_conn != conn {
        return Err(format!("this body line belongs to {conn} but follows an answer on {expect_conn}"));
    }
    let prefix = header.prefix();
    if prefix.starts_with(b"OK") {
        let lines = match body.get_or_insert_with(|| Body::Yaml(Vec::new())) {
            Body::Yaml(lines) => lines,
            Body::Job(_) => unreachable!("an OK answer has a YAML body"),
        };
        lines.push(parse_yaml_line(line)?);
        return Ok(());
    }
    if !announces_body(header) {
        return Err("only RESERVED, FOUND and OK answers have a body".into());
    }
    let text = parse_text(line)?;
    match body {
        None => *body = Some(Body::Job(text)),
        Some(Body::Job(existing)) => {
            existing.push_bytes(b"\n");
            for piece in text.pieces {
                match piece {
                    Piece::Bytes(b) => existing.push_bytes(&b),
                    capture => existing.pieces.push(capture),
                }
            }
        }
        Some(Body::Yaml(_)) => unreachable!("a job answer has a job body"),
    }
    Ok(())
}

/// Whether an expected header is one whose answer carries a body.
pub fn announces_body(header: &Text) -> bool {
    let prefix = header.prefix();
    prefix == b"OK" || prefix.starts_with(b"OK ") || prefix.starts_with(b"RESERVED ") || prefix.starts_with(b"FOUND ")
}

fn parse_yaml_line(line: &str) -> Result<YamlLine, String> {
    if let Some((key, value)) = line.split_once(": ") {
        let range = value.split_once("..").and_then(|(lo, hi)| Some((lo.parse::<u64>().ok()?, hi.parse::<u64>().ok()?)));
        if value == "*" || range.is_some() {
            if !VOLATILE_KEYS.contains(&key) {
                return Err(format!("`{key}` is compared exactly; only {VOLATILE_KEYS:?} take `*` or LO..HI"));
            }
            return Ok(match range {
                Some((lo, hi)) => YamlLine::Range { key: key.to_string(), lo, hi },
                None => YamlLine::Any { key: key.to_string() },
            });
        }
    }
    Ok(YamlLine::Exact(parse_text(line)?))
}

fn parse_since(rest: &str) -> Result<Since, String> {
    let (version, reason) = rest.split_once("--").ok_or("write `only: 1.13 -- the reason`")?;
    let (major, minor) = version.trim().split_once('.').ok_or("the version is MAJOR.MINOR")?;
    let version = (major.parse().map_err(|_| "bad major version")?, minor.parse().map_err(|_| "bad minor version")?);
    let reason = reason.trim().to_string();
    if reason.is_empty() {
        return Err("say why the conversation needs this version".into());
    }
    Ok(Since { version, reason })
}

fn parse_ms(text: &str) -> Result<u64, String> {
    text.trim().parse().map_err(|_| format!("`{text}` is not a count of milliseconds"))
}

/// Parses the escapes, repetitions and captures of a script text.
pub fn parse_text(source: &str) -> Result<Text, String> {
    let bytes = source.as_bytes();
    let mut text = Text::default();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                let (byte, used) = parse_escape(&bytes[i..])?;
                text.push_bytes(&[byte]);
                i += used;
            }
            b'$' => {
                let len = bytes[i + 1..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
                if len == 0 {
                    return Err("`$` starts a capture name such as $a; write \\$ for a dollar".into());
                }
                text.pieces.push(Piece::Capture(source[i + 1..i + 1 + len].to_string()));
                i += 1 + len;
            }
            b'{' => {
                let end = source[i..].find('}').ok_or("`{` opens a repetition {unit*N}; write \\{ for a brace")? + i;
                text.push_bytes(&parse_repetition(&source[i + 1..end])?);
                i = end + 1;
            }
            byte => {
                text.push_bytes(&[byte]);
                i += 1;
            }
        }
    }
    Ok(text)
}

fn parse_repetition(inner: &str) -> Result<Vec<u8>, String> {
    let (unit, count) = inner.rsplit_once('*').ok_or_else(|| format!("`{{{inner}}}` is not a repetition {{unit*N}}"))?;
    let count: usize = count.parse().map_err(|_| format!("`{count}` is not a repetition count"))?;
    let unit = parse_text(unit)?.literal().ok_or("a repeated unit cannot hold a capture")?;
    Ok(unit.repeat(count))
}

fn parse_escape(bytes: &[u8]) -> Result<(u8, usize), String> {
    let byte = match bytes.get(1) {
        Some(b'r') => b'\r',
        Some(b'n') => b'\n',
        Some(b't') => b'\t',
        Some(b's') => b' ',
        Some(b'0') => 0,
        Some(b @ (b'\\' | b'$' | b'{' | b'}')) => *b,
        Some(b'x') => {
            let hex = bytes.get(2..4).and_then(|h| std::str::from_utf8(h).ok()).ok_or("\\x takes two hex digits")?;
            return Ok((u8::from_str_radix(hex, 16).map_err(|_| format!("`\\x{hex}` is not a hex byte"))?, 4));
        }
        _ => return Err("unknown escape: use \\r \\n \\t \\s \\0 \\\\ \\$ \\{ \\} or \\xHH".into()),
    };
    Ok((byte, 2))
}

/// Renders bytes for a transcript: printable ASCII as is, the rest escaped as in scripts, and
/// long runs of one byte as `{b*N}`.
pub fn show(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..].iter().take_while(|b| **b == bytes[i]).count();
        if run >= 16 {
            out.push('{');
            push_shown(&mut out, bytes[i]);
            out.push_str(&format!("*{run}}}"));
            i += run;
        } else {
            push_shown(&mut out, bytes[i]);
            i += 1;
        }
    }
    out
}

fn push_shown(out: &mut String, byte: u8) {
    match byte {
        b'\r' => out.push_str("\\r"),
        b'\n' => out.push_str("\\n"),
        b'\t' => out.push_str("\\t"),
        b'\\' | b'{' | b'}' | b'$' => {
            out.push('\\');
            out.push(byte as char);
        }
        0x20..=0x7e => out.push(byte as char),
        _ => out.push_str(&format!("\\x{byte:02x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_repetitions_and_captures() {
        let text = parse_text("put {a*3}\\r\\n$id\\$").unwrap();
        assert_eq!(text.pieces, vec![Piece::Bytes(b"put aaa\r\n".to_vec()), Piece::Capture("id".into()), Piece::Bytes(b"$".to_vec())]);
        assert_eq!(show(b"x\r\n$"), "x\\r\\n\\$");
    }
}
