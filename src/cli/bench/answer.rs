//! The server's answers as a client reads them: strict, pure, no I/O. The bench speaks to any
//! beanstalkd-protocol server, so it parses the wire bytes itself rather than trusting our own
//! server's encoder to be the reference.

use std::fmt;

/// The longest answer line accepted, `\r\n` included. beanstalkd's longest line is `USING` or
/// `RESERVED` with a 200-byte tube name or two 20-digit numbers; a server that sends more
/// without a line end is broken, and waiting longer would only grow the buffer.
pub const ANSWER_LINE_BYTES_MAX: usize = 256;

/// The largest body (`RESERVED` job or `OK` YAML) accepted. Only the bench's own jobs and
/// `stats-tube` pass through here; the bound keeps a garbage length from growing the buffer.
pub const ANSWER_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;

const CRLF: &[u8] = b"\r\n";

/// One answer, borrowing from the read buffer. Each variant's doc shows its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer<'a> {
    /// `INSERTED <id>\r\n`: put.
    Inserted { id: u64 },
    /// `RESERVED <id> <bytes>\r\n<body>\r\n`: reserve, reserve-with-timeout.
    Reserved { id: u64, body: &'a [u8] },
    /// `DELETED\r\n`: delete.
    Deleted,
    /// `TIMED_OUT\r\n`: reserve-with-timeout, no job in time.
    TimedOut,
    /// `WATCHING <count>\r\n`: watch, ignore.
    Watching { count: u64 },
    /// `USING <tube>\r\n`: use.
    Using { tube: &'a [u8] },
    /// `OK <bytes>\r\n<yaml>\r\n`: the stats commands.
    Ok { yaml: &'a [u8] },
    /// Any other one-line answer (`NOT_FOUND`, `OUT_OF_MEMORY`, `BURIED 7`, ...): well framed,
    /// so the stream stays in step, but never what the bench asked for.
    Other { line: &'a [u8] },
}

/// Bytes that cannot be a beanstalkd answer: the stream is out of step and cannot be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MalformedAnswer(pub String);

impl fmt::Display for MalformedAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed answer: {}", self.0)
    }
}

/// The first answer in `buf` and how many bytes it took; `None` when `buf` holds no whole
/// answer yet (read more and call again).
pub fn parse(buf: &[u8]) -> Result<Option<(Answer<'_>, usize)>, MalformedAnswer> {
    let Some(line_end) = find_crlf(&buf[..buf.len().min(ANSWER_LINE_BYTES_MAX)]) else {
        if buf.len() >= ANSWER_LINE_BYTES_MAX {
            return Err(malformed("no line end", buf));
        }
        return Ok(None);
    };
    if line_end + CRLF.len() > ANSWER_LINE_BYTES_MAX {
        return Err(malformed("line too long", &buf[..line_end]));
    }
    let line = &buf[..line_end];
    let line_bytes = line_end + CRLF.len();
    let (word, rest) = match line.iter().position(|&b| b == b' ') {
        Some(space) => (&line[..space], Some(&line[space + 1..])),
        None => (line, None),
    };
    let answer = match (word, rest) {
        (b"INSERTED", Some(id)) => Answer::Inserted { id: number(id, line)? },
        (b"DELETED", None) => Answer::Deleted,
        (b"TIMED_OUT", None) => Answer::TimedOut,
        (b"WATCHING", Some(count)) => Answer::Watching { count: number(count, line)? },
        (b"USING", Some(tube)) if is_tube_name(tube) => Answer::Using { tube },
        (b"USING", _) => return Err(malformed("bad tube name", line)),
        (b"RESERVED", Some(args)) => return parse_reserved(buf, line, args, line_bytes),
        (b"OK", Some(len)) => return with_body(buf, line, len, line_bytes, |yaml| Answer::Ok { yaml }),
        (b"INSERTED" | b"WATCHING" | b"RESERVED" | b"OK", None) => return Err(malformed("missing argument", line)),
        (b"DELETED" | b"TIMED_OUT", Some(_)) => return Err(malformed("unexpected argument", line)),
        _ if is_printable(line) && !line.is_empty() => Answer::Other { line },
        _ => return Err(malformed("not an answer", line)),
    };
    Ok(Some((answer, line_bytes)))
}

/// `RESERVED <id> <bytes>`: the id, then a body of `bytes` bytes and `\r\n`.
fn parse_reserved<'a>(buf: &'a [u8], line: &[u8], args: &[u8], line_bytes: usize) -> Result<Option<(Answer<'a>, usize)>, MalformedAnswer> {
    let Some(space) = args.iter().position(|&b| b == b' ') else {
        return Err(malformed("missing argument", line));
    };
    let id = number(&args[..space], line)?;
    with_body(buf, line, &args[space + 1..], line_bytes, |body| Answer::Reserved { id, body })
}

/// An answer whose line gives the length of a body that follows it, ended by `\r\n`.
fn with_body<'a>(
    buf: &'a [u8],
    line: &[u8],
    len: &[u8],
    line_bytes: usize,
    answer: impl FnOnce(&'a [u8]) -> Answer<'a>,
) -> Result<Option<(Answer<'a>, usize)>, MalformedAnswer> {
    let body_bytes = number(len, line)?;
    if body_bytes > ANSWER_BODY_BYTES_MAX as u64 {
        return Err(malformed("body too large", line));
    }
    let body_end = line_bytes + body_bytes as usize;
    let total_bytes = body_end + CRLF.len();
    if buf.len() < total_bytes {
        return Ok(None);
    }
    if &buf[body_end..total_bytes] != CRLF {
        return Err(malformed("body not followed by \\r\\n", line));
    }
    Ok(Some((answer(&buf[line_bytes..body_end]), total_bytes)))
}

/// A decimal number of 1 to 20 digits that fits u64: no sign, no spaces, no other bytes.
fn number(digits: &[u8], line: &[u8]) -> Result<u64, MalformedAnswer> {
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(malformed("bad number", line));
    }
    digits.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0'))).ok_or_else(|| malformed("number out of range", line))
}

fn is_tube_name(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= crate::fsm::TUBE_NAME_BYTES_MAX && name[0] != b'-' && name.iter().all(|&b| crate::fsm::is_tube_name_byte(b))
}

fn is_printable(line: &[u8]) -> bool {
    line.iter().all(|&b| b.is_ascii_graphic() || b == b' ')
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == CRLF)
}

fn malformed(why: &str, bytes: &[u8]) -> MalformedAnswer {
    MalformedAnswer(format!("{why}: {}", show(bytes)))
}

/// An answer's line as text for a report: quoted, escaped, cut to 80 bytes.
pub fn show(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(80)];
    let more = if bytes.len() > cut.len() { "..." } else { "" };
    format!("{:?}{more}", String::from_utf8_lossy(cut))
}

impl Answer<'_> {
    /// The answer's first line as text, for the report of an unexpected answer.
    pub fn describe(&self) -> String {
        match self {
            Answer::Inserted { id } => format!("\"INSERTED {id}\""),
            Answer::Reserved { id, body } => format!("\"RESERVED {id} {}\"", body.len()),
            Answer::Deleted => "\"DELETED\"".to_string(),
            Answer::TimedOut => "\"TIMED_OUT\"".to_string(),
            Answer::Watching { count } => format!("\"WATCHING {count}\""),
            Answer::Using { tube } => format!("\"USING {}\"", String::from_utf8_lossy(tube)),
            Answer::Ok { yaml } => format!("\"OK {}\"", yaml.len()),
            Answer::Other { line } => show(line),
        }
    }
}

/// The value of a top-level `key: <number>` line of a stats YAML document.
pub fn yaml_number(yaml: &[u8], key: &str) -> Option<u64> {
    yaml.split(|&b| b == b'\n').find_map(|line| {
        let value = line.strip_prefix(key.as_bytes())?.strip_prefix(b": ")?;
        let value = value.strip_suffix(b"\r").unwrap_or(value);
        number(value, line).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(buf: &[u8]) -> Answer<'_> {
        let (answer, used) = parse(buf).unwrap().unwrap();
        assert_eq!(used, buf.len(), "the answer takes the whole buffer");
        answer
    }

    /// Each one-line answer the bench expects parses to its variant and takes exactly its line.
    #[test]
    fn one_line_answers() {
        assert_eq!(whole(b"INSERTED 42\r\n"), Answer::Inserted { id: 42 });
        assert_eq!(whole(b"DELETED\r\n"), Answer::Deleted);
        assert_eq!(whole(b"TIMED_OUT\r\n"), Answer::TimedOut);
        assert_eq!(whole(b"WATCHING 2\r\n"), Answer::Watching { count: 2 });
        assert_eq!(whole(b"USING bench-1\r\n"), Answer::Using { tube: b"bench-1" });
        assert_eq!(whole(b"INSERTED 18446744073709551615\r\n"), Answer::Inserted { id: u64::MAX });
    }

    /// A RESERVED answer carries its body, which may itself hold `\r\n`, and ends after it.
    #[test]
    fn reserved_with_body() {
        let buf = b"RESERVED 7 5\r\na\r\nbc\r\nDELETED\r\n";
        let (answer, used) = parse(buf).unwrap().unwrap();
        assert_eq!(answer, Answer::Reserved { id: 7, body: b"a\r\nbc" });
        assert_eq!(&buf[used..], b"DELETED\r\n");
        assert_eq!(whole(b"RESERVED 1 0\r\n\r\n"), Answer::Reserved { id: 1, body: b"" });
    }

    /// An OK answer's YAML body is returned whole, and its numbers can be looked up by key.
    #[test]
    fn ok_yaml_and_its_numbers() {
        let yaml = "---\nname: t\ncurrent-jobs-ready: 12\ncurrent-waiting: 1\n";
        let buf = format!("OK {}\r\n{yaml}\r\n", yaml.len());
        assert_eq!(whole(buf.as_bytes()), Answer::Ok { yaml: yaml.as_bytes() });
        let yaml = yaml.as_bytes();
        assert_eq!(yaml_number(yaml, "current-jobs-ready"), Some(12));
        assert_eq!(yaml_number(yaml, "current-waiting"), Some(1));
        assert_eq!(yaml_number(yaml, "current-jobs"), None);
        assert_eq!(yaml_number(yaml, "name"), None);
    }

    /// Every prefix of a whole answer is "need more bytes", never an error.
    #[test]
    fn partial_answers_need_more() {
        for whole in [&b"INSERTED 42\r\n"[..], b"RESERVED 7 3\r\nabc\r\n", b"OK 2\r\nab\r\n", b"DELETED\r\n"] {
            for cut in 0..whole.len() {
                assert_eq!(parse(&whole[..cut]), Ok(None), "prefix {:?}", show(&whole[..cut]));
            }
        }
    }

    /// Well-framed answers the bench did not ask for are `Other`, so they count as errors
    /// while the stream stays in step.
    #[test]
    fn other_answers_keep_the_stream_in_step() {
        assert_eq!(whole(b"OUT_OF_MEMORY\r\n"), Answer::Other { line: b"OUT_OF_MEMORY" });
        assert_eq!(whole(b"BURIED 9\r\n"), Answer::Other { line: b"BURIED 9" });
        assert_eq!(whole(b"NOT_FOUND\r\n"), Answer::Other { line: b"NOT_FOUND" });
        assert_eq!(whole(b"DEADLINE_SOON\r\n"), Answer::Other { line: b"DEADLINE_SOON" });
    }

    /// Bad numbers, stray arguments, a body without its `\r\n` and control bytes are
    /// malformed: the bench cannot tell where the next answer starts.
    #[test]
    fn malformed_answers_are_errors() {
        for bad in [
            &b"INSERTED\r\n"[..],
            b"INSERTED -1\r\n",
            b"INSERTED +1\r\n",
            b"INSERTED 1 2\r\n",
            b"INSERTED 18446744073709551616\r\n",
            b"INSERTED x\r\n",
            b"DELETED now\r\n",
            b"TIMED_OUT \r\n",
            b"WATCHING\r\n",
            b"USING\r\n",
            b"USING a b\r\n",
            b"USING -a\r\n",
            b"RESERVED 7\r\n",
            b"RESERVED 7 x\r\n",
            b"RESERVED 7 3\r\nabcd\r\n",
            b"RESERVED 7 99999999999\r\n",
            b"OK\r\n",
            b"\r\n",
            b"HELLO\x01\r\n",
        ] {
            assert!(parse(bad).is_err(), "{} should be malformed", show(bad));
        }
    }

    /// A line longer than any answer is an error before its end arrives, so a garbage stream
    /// cannot grow the buffer.
    #[test]
    fn overlong_line_is_an_error() {
        let long = vec![b'A'; ANSWER_LINE_BYTES_MAX];
        assert!(parse(&long).is_err());
        assert_eq!(parse(&long[..ANSWER_LINE_BYTES_MAX - 1]), Ok(None));
        let mut line = vec![b'A'; ANSWER_LINE_BYTES_MAX - 1];
        line.extend_from_slice(CRLF);
        assert!(parse(&line).is_err());
    }
}
