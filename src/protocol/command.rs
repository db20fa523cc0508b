//! The commands clients send: each variant's doc shows its wire format, and its line parser
//! follows below in the same order.
//!
//! A line is matched like beanstalkd matches it: the first command name (in `COMMANDS` order)
//! that the line starts with wins, and its parser judges the rest. So `statsx` is `stats` with
//! trailing bytes (`BAD_FORMAT`, not `UNKNOWN_COMMAND`), `put` alone is unknown (the name is
//! `put `), and `quitx` quits. All of this was checked against a live beanstalkd 1.12.

use bytes::Bytes;

use crate::fsm::{is_tube_name_byte, JobId};

use super::args::{end_of_line, leading_u32, leading_u64, skip_spaces, whole_tube_name, whole_u32, whole_u64};
use super::error::{Counted, ProtocolError};
use super::limits::{CRLF, LINE_BYTES_MAX, RESERVE_TIMEOUT_SECS_MAX};

/// A client's request, its arguments checked. Durations are whole seconds, as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `put <pri> <delay> <ttr> <bytes>\r\n<data>\r\n`: a job in the used tube. `ttr` 0 is
    /// kept as sent; the state machine raises it to 1.
    Put { pri: u32, delay_secs: u32, ttr_secs: u32, body: Bytes },
    /// `use <tube>\r\n`
    Use { tube: String },
    /// `reserve\r\n`
    Reserve,
    /// `reserve-with-timeout <seconds>\r\n`, seconds at most `RESERVE_TIMEOUT_SECS_MAX`.
    ReserveWithTimeout { timeout_secs: u32 },
    /// `reserve-job <id>\r\n`
    ReserveJob { id: JobId },
    /// `delete <id>\r\n`
    Delete { id: JobId },
    /// `release <id> <pri> <delay>\r\n`
    Release { id: JobId, pri: u32, delay_secs: u32 },
    /// `bury <id> <pri>\r\n`
    Bury { id: JobId, pri: u32 },
    /// `touch <id>\r\n`
    Touch { id: JobId },
    /// `watch <tube>\r\n`
    Watch { tube: String },
    /// `ignore <tube>\r\n`
    Ignore { tube: String },
    /// `peek <id>\r\n`
    Peek { id: JobId },
    /// `peek-ready\r\n`
    PeekReady,
    /// `peek-delayed\r\n`
    PeekDelayed,
    /// `peek-buried\r\n`
    PeekBuried,
    /// `kick <bound>\r\n`
    Kick { bound: u32 },
    /// `kick-job <id>\r\n`
    KickJob { id: JobId },
    /// `stats-job <id>\r\n`
    StatsJob { id: JobId },
    /// `stats-tube <tube>\r\n`
    StatsTube { tube: String },
    /// `stats\r\n`
    Stats,
    /// `list-tubes\r\n`
    ListTubes,
    /// `list-tube-used\r\n`
    ListTubeUsed,
    /// `list-tubes-watched\r\n`
    ListTubesWatched,
    /// `pause-tube <tube> <delay>\r\n`
    PauseTube { tube: String, delay_secs: u32 },
    /// `quit\r\n`
    Quit,
}

/// Each command but `quit` (which ends the connection and is neither counted nor timed), in
/// the order of `CommandKind::NAMES`: what the proxy counts commands and times them by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandKind {
    Put,
    Use,
    Reserve,
    ReserveWithTimeout,
    ReserveJob,
    Delete,
    Release,
    Bury,
    Touch,
    Watch,
    Ignore,
    Peek,
    PeekReady,
    PeekDelayed,
    PeekBuried,
    Kick,
    KickJob,
    StatsJob,
    StatsTube,
    Stats,
    ListTubes,
    ListTubeUsed,
    ListTubesWatched,
    PauseTube,
}

impl CommandKind {
    /// Each kind's command name, by `index`.
    pub const NAMES: [&'static str; 24] = [
        "put",
        "use",
        "reserve",
        "reserve-with-timeout",
        "reserve-job",
        "delete",
        "release",
        "bury",
        "touch",
        "watch",
        "ignore",
        "peek",
        "peek-ready",
        "peek-delayed",
        "peek-buried",
        "kick",
        "kick-job",
        "stats-job",
        "stats-tube",
        "stats",
        "list-tubes",
        "list-tube-used",
        "list-tubes-watched",
        "pause-tube",
    ];

    /// How many kinds there are: the length of arrays indexed by `index`.
    pub const COUNT: usize = Self::NAMES.len();

    /// Its place in `NAMES` and in arrays of per-command counts.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self.index()]
    }
}

const _: () = assert!(CommandKind::PauseTube as usize == CommandKind::COUNT - 1);

impl Command {
    /// The command's kind; None for `quit`.
    pub fn kind(&self) -> Option<CommandKind> {
        Some(match self {
            Command::Put { .. } => CommandKind::Put,
            Command::Use { .. } => CommandKind::Use,
            Command::Reserve => CommandKind::Reserve,
            Command::ReserveWithTimeout { .. } => CommandKind::ReserveWithTimeout,
            Command::ReserveJob { .. } => CommandKind::ReserveJob,
            Command::Delete { .. } => CommandKind::Delete,
            Command::Release { .. } => CommandKind::Release,
            Command::Bury { .. } => CommandKind::Bury,
            Command::Touch { .. } => CommandKind::Touch,
            Command::Watch { .. } => CommandKind::Watch,
            Command::Ignore { .. } => CommandKind::Ignore,
            Command::Peek { .. } => CommandKind::Peek,
            Command::PeekReady => CommandKind::PeekReady,
            Command::PeekDelayed => CommandKind::PeekDelayed,
            Command::PeekBuried => CommandKind::PeekBuried,
            Command::Kick { .. } => CommandKind::Kick,
            Command::KickJob { .. } => CommandKind::KickJob,
            Command::StatsJob { .. } => CommandKind::StatsJob,
            Command::StatsTube { .. } => CommandKind::StatsTube,
            Command::Stats => CommandKind::Stats,
            Command::ListTubes => CommandKind::ListTubes,
            Command::ListTubeUsed => CommandKind::ListTubeUsed,
            Command::ListTubesWatched => CommandKind::ListTubesWatched,
            Command::PauseTube { .. } => CommandKind::PauseTube,
            Command::Quit => return None,
        })
    }
}

/// What one command line asks the decoder to do next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A whole command.
    Command(Command),
    /// A put's line: `body_bytes` of body and `\r\n` follow.
    Put(PutHeader),
    /// A put announcing more body than the limit: skip `skip_bytes` (the body and its `\r\n`
    /// as announced), then answer `JOB_TOO_BIG`.
    PutTooBig { skip_bytes: u64 },
}

/// The numbers of a put's line, waiting for its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PutHeader {
    pub pri: u32,
    pub delay_secs: u32,
    pub ttr_secs: u32,
    /// At most the decoder's job body limit, so a `usize`.
    pub body_bytes: usize,
}

impl PutHeader {
    /// The put, once its body has arrived.
    pub(crate) fn into_command(self, body: Bytes) -> Command {
        assert_eq!(body.len(), self.body_bytes);
        Command::Put { pri: self.pri, delay_secs: self.delay_secs, ttr_secs: self.ttr_secs, body }
    }
}

/// Parses the rest of a line after its command name; the second argument is the job body
/// limit, which only `put` reads.
type Parse = fn(&[u8], usize) -> Result<Line, ProtocolError>;

/// Command names and their parsers, tried in this order: a name that another starts with
/// (`reserve`, `stats`, `list-tubes`) comes after it.
const COMMANDS: &[(&[u8], Parse)] = &[
    (b"put ", put),
    (b"peek ", peek),
    (b"peek-ready", |rest, _| no_args(rest, Command::PeekReady)),
    (b"peek-delayed", |rest, _| no_args(rest, Command::PeekDelayed)),
    (b"peek-buried", |rest, _| no_args(rest, Command::PeekBuried)),
    (b"reserve-with-timeout ", reserve_with_timeout),
    (b"reserve-job ", reserve_job),
    (b"reserve", |rest, _| no_args(rest, Command::Reserve)),
    (b"delete ", delete),
    (b"release ", release),
    (b"bury ", bury),
    (b"kick ", kick),
    (b"kick-job ", kick_job),
    (b"touch ", touch),
    (b"stats-job ", stats_job),
    (b"stats-tube ", stats_tube),
    (b"stats", |rest, _| no_args(rest, Command::Stats)),
    (b"use ", use_tube),
    (b"watch ", watch),
    (b"ignore ", ignore),
    (b"list-tubes-watched", |rest, _| no_args(rest, Command::ListTubesWatched)),
    (b"list-tube-used", |rest, _| no_args(rest, Command::ListTubeUsed)),
    (b"list-tubes", |rest, _| no_args(rest, Command::ListTubes)),
    (b"quit", |_, _| Ok(Line::Command(Command::Quit))),
    (b"pause-tube", pause_tube),
];

/// One command line, without its `\r\n`, at most `LINE_BYTES_MAX - 2` bytes.
///
/// A NUL anywhere is `BAD_FORMAT` (beanstalkd checks that before the name). So is a `\r`: in
/// beanstalkd a stray `\r` hides the line's end until 224 bytes have gone by, and then the
/// line is discarded as overlong, swallowing the commands behind it; we answer the same
/// `BAD_FORMAT` but at the line's own `\r\n`.
pub(crate) fn parse_line(line: &[u8], job_body_bytes_max: usize) -> Result<Line, ProtocolError> {
    // Past 224 bytes only with a raised line limit, and never a valid command.
    if line.len() + CRLF.len() > LINE_BYTES_MAX {
        return Err(ProtocolError::BadFormat);
    }
    if line.iter().any(|&b| b == b'\0' || b == b'\r') {
        return Err(ProtocolError::BadFormat);
    }
    let (name, parse) = COMMANDS.iter().find(|(name, _)| line.starts_with(name)).ok_or(ProtocolError::UnknownCommand)?;
    parse(&line[name.len()..], job_body_bytes_max)
}

/// Commands without arguments refuse anything after the name, even a space.
fn no_args(rest: &[u8], command: Command) -> Result<Line, ProtocolError> {
    end_of_line(rest)?;
    Ok(Line::Command(command))
}

/// Commands whose only argument is a job id: the rest is the id, nothing after it.
fn id_only(rest: &[u8], command: fn(JobId) -> Command) -> Result<Line, ProtocolError> {
    Ok(Line::Command(command(whole_u64(rest)?)))
}

/// Commands whose only argument is a tube: the rest is the name, exactly.
fn tube_only(rest: &[u8], command: fn(String) -> Command) -> Result<Line, ProtocolError> {
    Ok(Line::Command(command(whole_tube_name(rest)?)))
}

/// `put`: four u32s. As in beanstalkd, a too-big `bytes` is judged before trailing bytes, so
/// `put 0 0 1 99999 x` skips the body; other trailing bytes are `BAD_FORMAT` and the body is
/// then read as commands. Both count as a put, since beanstalkd counts once the numbers read.
fn put(rest: &[u8], job_body_bytes_max: usize) -> Result<Line, ProtocolError> {
    let (pri, rest) = leading_u32(rest)?;
    let (delay_secs, rest) = leading_u32(rest)?;
    let (ttr_secs, rest) = leading_u32(rest)?;
    let (body_bytes, rest) = leading_u32(rest)?;
    let body_bytes = body_bytes as usize;
    if body_bytes > job_body_bytes_max {
        let skip_bytes = body_bytes as u64 + CRLF.len() as u64;
        return Ok(Line::PutTooBig { skip_bytes });
    }
    end_of_line(rest).map_err(|_| ProtocolError::CountedBadFormat(Counted::Put))?;
    Ok(Line::Put(PutHeader { pri, delay_secs, ttr_secs, body_bytes }))
}

fn use_tube(rest: &[u8], _: usize) -> Result<Line, ProtocolError> {
    tube_only(rest, |tube| Command::Use { tube })
}

/// `reserve-with-timeout`: leading spaces skipped, and (as in beanstalkd 1.13) anything after
/// the number ignored; above `RESERVE_TIMEOUT_SECS_MAX` is `BAD_FORMAT`.
fn reserve_with_timeout(rest: &[u8], _: usize) -> Result<Line, ProtocolError> {
    let (timeout_secs, _ignored) = leading_u32(rest)?;
    if timeout_secs > RESERVE_TIMEOUT_SECS_MAX {
        return Err(ProtocolError::BadFormat);
    }
    Ok(Line::Command(Command::ReserveWithTimeout { timeout_secs }))
}

fn reserve_job(rest: &[u8], _: usize) -> Result<Line, ProtocolError> {
    id_only(rest, |id| Command::ReserveJob { id })
}

fn delete(rest: &[u8], _: usize) -> Result<Line, ProtocolError> {
    id_only(rest, |id| Command::Delete { id })
}

fn release(rest: &[u8], _: usize) -> Result<Line, ProtocolError> {
    let (id, rest) = leading_u64(rest)?;
    let (pri, rest) = leading_u32(rest)?;
    let delay_secs = whole_u32(rest)?;
    Ok(Line::Command(Command::Release { id, pri, delay_secs }))
}

fn bury(rest: &[u8], _: usize) -> Result<Line, ProtocolError> {
    let (id, rest) = leading_u64(rest)?;
    let pri = whole_u32(rest)?;
    Ok(Line::Command(Command::Bury { id, pri }))
}

fn touch(rest: &[u8], _: usize) -> Result<Line, ProtocolError> {
    id_only(rest, |id| Command::Touch { id })
}

fn watch(rest: &[u8], _: usize) -> Result<Line, ProtocolError> {
    tube_only(rest, |tube| Command::Watch { tube })
}

fn ignore(rest: &[u8], _: usize) -> Result<Line, ProtocolError> {
    tube_only(rest, |tube| Command::Ignore { tube })
}

fn peek(rest: &[u8], _: usize) -> Result<Line, ProtocolError> {
    id_only(rest, |id| Command::Peek { id })
}

/// `kick`: beanstalkd reads the bound with `strtoul`, which skips any C whitespace and ignores
/// what follows the digits; we do the same, but refuse a sign and overflow (`strtoul` would
/// wrap `-1` to 4294967295 and truncate above u32) as every other u32 is refused.
fn kick(rest: &[u8], _: usize) -> Result<Line, ProtocolError> {
    let start = rest.iter().position(|&b| !is_c_space(b)).unwrap_or(rest.len());
    let (bound, _ignored) = leading_u32(&rest[start..])?;
    Ok(Line::Command(Command::Kick { bound }))
}

/// C's `isspace` in the C locale (`\r` never reaches a parser).
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c')
}

fn kick_job(rest: &[u8], _: usize) -> Result<Line, ProtocolError> {
    id_only(rest, |id| Command::KickJob { id })
}

fn stats_job(rest: &[u8], _: usize) -> Result<Line, ProtocolError> {
    id_only(rest, |id| Command::StatsJob { id })
}

fn stats_tube(rest: &[u8], _: usize) -> Result<Line, ProtocolError> {
    tube_only(rest, |tube| Command::StatsTube { tube })
}

/// `pause-tube`: the name is `pause-tube` without a space, then spaces, a run of tube-name
/// bytes, spaces, and a u32 that ends the line. So `pause-tubefoo 1` pauses `foo`, as in
/// beanstalkd. That run is judged as a name (length, leading `-`) only after the delay has
/// read, and beanstalkd counts the command in between.
fn pause_tube(rest: &[u8], _: usize) -> Result<Line, ProtocolError> {
    let rest = skip_spaces(rest);
    let name_bytes = rest.iter().position(|&b| !is_tube_name_byte(b)).unwrap_or(rest.len());
    if name_bytes == 0 {
        return Err(ProtocolError::BadFormat);
    }
    let delay_secs = whole_u32(&rest[name_bytes..])?;
    let tube = whole_tube_name(&rest[..name_bytes]).map_err(|_| ProtocolError::CountedBadFormat(Counted::PauseTube))?;
    Ok(Line::Command(Command::PauseTube { tube, delay_secs }))
}

/// The test-only encoder: the canonical bytes of a command, one space between arguments.
#[cfg(test)]
impl Command {
    pub(crate) fn to_wire(&self) -> Vec<u8> {
        let line = match self {
            Command::Put { pri, delay_secs, ttr_secs, body } => {
                let mut out = format!("put {pri} {delay_secs} {ttr_secs} {}\r\n", body.len()).into_bytes();
                out.extend_from_slice(body);
                out.extend_from_slice(b"\r\n");
                return out;
            }
            Command::Use { tube } => format!("use {tube}"),
            Command::Reserve => "reserve".into(),
            Command::ReserveWithTimeout { timeout_secs } => format!("reserve-with-timeout {timeout_secs}"),
            Command::ReserveJob { id } => format!("reserve-job {id}"),
            Command::Delete { id } => format!("delete {id}"),
            Command::Release { id, pri, delay_secs } => format!("release {id} {pri} {delay_secs}"),
            Command::Bury { id, pri } => format!("bury {id} {pri}"),
            Command::Touch { id } => format!("touch {id}"),
            Command::Watch { tube } => format!("watch {tube}"),
            Command::Ignore { tube } => format!("ignore {tube}"),
            Command::Peek { id } => format!("peek {id}"),
            Command::PeekReady => "peek-ready".into(),
            Command::PeekDelayed => "peek-delayed".into(),
            Command::PeekBuried => "peek-buried".into(),
            Command::Kick { bound } => format!("kick {bound}"),
            Command::KickJob { id } => format!("kick-job {id}"),
            Command::StatsJob { id } => format!("stats-job {id}"),
            Command::StatsTube { tube } => format!("stats-tube {tube}"),
            Command::Stats => "stats".into(),
            Command::ListTubes => "list-tubes".into(),
            Command::ListTubeUsed => "list-tube-used".into(),
            Command::ListTubesWatched => "list-tubes-watched".into(),
            Command::PauseTube { tube, delay_secs } => format!("pause-tube {tube} {delay_secs}"),
            Command::Quit => "quit".into(),
        };
        format!("{line}\r\n").into_bytes()
    }
}
