//! The streaming decoder: bytes in, commands or error answers out, one at a time, in order.
//!
//! It is a state machine because what a byte means depends on what came before it, across
//! reads: a line, the body of a put, the rest of an overlong line being discarded, or the body
//! of a too-big put being skipped. It never holds on to what it discards, so a connection's
//! buffer stays bounded (`buffered_bytes_max`) whatever the client sends.

use bytes::{Buf, BytesMut};

use crate::limits::{JOB_BODY_BYTES_MAX_DEFAULT, JOB_BODY_BYTES_MAX_LIMIT};

use super::command::{parse_line, Command, Line, PutHeader};
use super::error::ProtocolError;
use super::limits::{CRLF, LINE_BYTES_MAX};

/// One thing decoded: a command to run, or an error to answer (and carry on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    Command(Command),
    Error(ProtocolError),
}

/// Decodes one connection's byte stream. Keep one per connection, for as long as it lives.
#[derive(Debug)]
pub struct Decoder {
    /// The largest put body accepted (beanstalkd's `-z`); larger ones are skipped.
    job_body_bytes_max: usize,
    /// How many bytes of a line are buffered before it counts as overlong: beanstalkd's 224
    /// by default. A larger value only buffers more of a hopeless line (no valid command is
    /// longer than 224 bytes, so such a line still answers `BAD_FORMAT`).
    line_bytes_max: usize,
    /// What the next bytes are: it outlives each call, since a read may end anywhere.
    state: State,
}

/// Where in the stream the decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Expecting a command line.
    Line,
    /// Discarding a line longer than `LINE_BYTES_MAX` up to its `\r\n`, then `BAD_FORMAT`.
    /// `after_cr`: the last byte discarded was `\r`, so a `\n` first ends the line.
    DiscardLine { after_cr: bool },
    /// A put's line was read; expecting its body and `\r\n`.
    Body(PutHeader),
    /// Skipping the body of a too-big put; `JOB_TOO_BIG` once none is left.
    SkipBody { remaining_bytes: u64 },
}

/// What one step of the state machine came to.
enum Step {
    Done(Decoded),
    NeedMore,
    /// The state changed and the buffer may hold more for the new one.
    Again,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(JOB_BODY_BYTES_MAX_DEFAULT)
    }
}

impl Decoder {
    /// A decoder that accepts put bodies of up to `job_body_bytes_max` bytes.
    pub fn new(job_body_bytes_max: usize) -> Self {
        assert!(job_body_bytes_max <= JOB_BODY_BYTES_MAX_LIMIT);
        Decoder { job_body_bytes_max, line_bytes_max: LINE_BYTES_MAX, state: State::Line }
    }

    /// The same decoder with another line limit, at least beanstalkd's 224 bytes.
    pub fn with_line_bytes_max(mut self, line_bytes_max: usize) -> Self {
        assert!(line_bytes_max >= LINE_BYTES_MAX, "a line limit below 224 bytes refuses valid commands");
        self.line_bytes_max = line_bytes_max;
        self
    }

    /// Whether a put's line was read and its body has not all arrived (nor been skipped).
    pub fn mid_put(&self) -> bool {
        matches!(self.state, State::Body(_) | State::SkipBody { .. })
    }

    /// The most bytes `buf` holds after `decode` returns `None`: a line one byte short of the
    /// limit, or a put body plus its `\r\n` one byte short. Read at most a chunk more before
    /// calling `decode` again and a connection's memory stays within this plus the chunk.
    pub fn buffered_bytes_max(&self) -> usize {
        self.line_bytes_max.max(self.job_body_bytes_max + CRLF.len()) - 1
    }

    /// The next command or error in `buf`, removing the bytes it used (and any it discards);
    /// `None` when `buf` holds no whole one yet: read more and call again. Call until `None`
    /// after every read, since a read may bring several commands.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Option<Decoded> {
        loop {
            let step = match self.state {
                State::Line => self.line(buf),
                State::DiscardLine { after_cr } => self.discard_line(buf, after_cr),
                State::Body(header) => self.body(buf, header),
                State::SkipBody { remaining_bytes } => self.skip_body(buf, remaining_bytes),
            };
            match step {
                Step::Done(decoded) => return Some(decoded),
                Step::NeedMore => {
                    assert!(buf.len() <= self.buffered_bytes_max());
                    return None;
                }
                Step::Again => continue,
            }
        }
    }

    /// A line ends at the first `\r\n` within `LINE_BYTES_MAX` bytes. With no `\r\n` there
    /// and that many bytes buffered, the line is overlong: discard it. (beanstalkd discards in
    /// 224-byte windows and misses a `\r\n` that straddles two; we do not.)
    fn line(&mut self, buf: &mut BytesMut) -> Step {
        let window = &buf[..buf.len().min(self.line_bytes_max)];
        let Some(line_bytes) = find_crlf(window) else {
            if buf.len() < self.line_bytes_max {
                return Step::NeedMore;
            }
            self.state = State::DiscardLine { after_cr: false };
            return Step::Again;
        };
        let parsed = parse_line(&buf[..line_bytes], self.job_body_bytes_max);
        buf.advance(line_bytes + CRLF.len());
        match parsed {
            Ok(Line::Command(command)) => Step::Done(Decoded::Command(command)),
            Ok(Line::Put(header)) => {
                self.state = State::Body(header);
                Step::Again
            }
            Ok(Line::PutTooBig { skip_bytes }) => {
                self.state = State::SkipBody { remaining_bytes: skip_bytes };
                Step::Again
            }
            Err(error) => Step::Done(Decoded::Error(error)),
        }
    }

    /// Drops bytes up to and including the overlong line's `\r\n`, answering `BAD_FORMAT`
    /// only then (as beanstalkd does): nothing of the line is kept meanwhile.
    fn discard_line(&mut self, buf: &mut BytesMut, after_cr: bool) -> Step {
        let end = if after_cr && buf.first() == Some(&b'\n') {
            Some(1)
        } else {
            find_crlf(buf).map(|at| at + CRLF.len())
        };
        match end {
            Some(end) => {
                buf.advance(end);
                self.state = State::Line;
                Step::Done(Decoded::Error(ProtocolError::BadFormat))
            }
            None => {
                let after_cr = buf.last().map_or(after_cr, |&b| b == b'\r');
                buf.clear();
                self.state = State::DiscardLine { after_cr };
                Step::NeedMore
            }
        }
    }

    /// Waits for the whole body and the 2 bytes after it; those must be `\r\n`, else
    /// `EXPECTED_CRLF` and the job is dropped (the 2 bytes are used up either way).
    fn body(&mut self, buf: &mut BytesMut, header: PutHeader) -> Step {
        let wanted_bytes = header.body_bytes + CRLF.len();
        if buf.len() < wanted_bytes {
            buf.reserve(wanted_bytes - buf.len());
            return Step::NeedMore;
        }
        let body = buf.split_to(header.body_bytes).freeze();
        let trailer_ok = &buf[..CRLF.len()] == CRLF;
        buf.advance(CRLF.len());
        self.state = State::Line;
        if trailer_ok {
            Step::Done(Decoded::Command(header.into_command(body)))
        } else {
            Step::Done(Decoded::Error(ProtocolError::ExpectedCrlf))
        }
    }

    /// Drops the announced body and `\r\n` of a too-big put, whatever they hold, then answers
    /// `JOB_TOO_BIG` (beanstalkd answers only after the last byte, too).
    fn skip_body(&mut self, buf: &mut BytesMut, remaining_bytes: u64) -> Step {
        let skipped_bytes = remaining_bytes.min(buf.len() as u64);
        buf.advance(skipped_bytes as usize);
        let remaining_bytes = remaining_bytes - skipped_bytes;
        if remaining_bytes > 0 {
            self.state = State::SkipBody { remaining_bytes };
            return Step::NeedMore;
        }
        self.state = State::Line;
        Step::Done(Decoded::Error(ProtocolError::JobTooBig))
    }
}

/// Where the first `\r\n` in `bytes` starts.
fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(CRLF.len()).position(|pair| pair == CRLF)
}
