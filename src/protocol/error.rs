//! The answers the decoder itself gives, before a command reaches the queue.

use std::fmt;

use super::response::Response;

/// Why bytes did not make a command. Each is answered on the wire and the connection goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolError {
    /// `BAD_FORMAT`: an overlong line, a NUL or stray `\r` in a line, a malformed or missing
    /// argument, or trailing bytes where the command allows none.
    BadFormat,
    /// `BAD_FORMAT` for a command beanstalkd counts in `stats` before refusing it: it counts
    /// once the arguments read as numbers and name bytes, and only then checks the rest
    /// (bytes after a put's four numbers; a pause-tube name of name bytes that is not a valid
    /// name).
    CountedBadFormat(Counted),
    /// `UNKNOWN_COMMAND`: no command name matches the start of the line (names are
    /// case-sensitive; an empty line is unknown too).
    UnknownCommand,
    /// `EXPECTED_CRLF`: a put's body was not followed by `\r\n`. The job is dropped.
    ExpectedCrlf,
    /// `JOB_TOO_BIG`: a put announced more body bytes than the limit; they were skipped.
    JobTooBig,
}

/// A command whose `cmd-*` counter a refusal still counts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counted {
    Put,
    PauseTube,
}

impl ProtocolError {
    /// The answer that tells the client.
    pub fn response(self) -> Response {
        match self {
            ProtocolError::BadFormat | ProtocolError::CountedBadFormat(_) => Response::BadFormat,
            ProtocolError::UnknownCommand => Response::UnknownCommand,
            ProtocolError::ExpectedCrlf => Response::ExpectedCrlf,
            ProtocolError::JobTooBig => Response::JobTooBig,
        }
    }

    /// The command this refusal counts as in `stats`, as beanstalkd counts it. `None` for
    /// EXPECTED_CRLF too: its put is counted by the state machine, as it uses up a job id.
    pub fn counted(self) -> Option<Counted> {
        match self {
            ProtocolError::CountedBadFormat(counted) => Some(counted),
            ProtocolError::JobTooBig => Some(Counted::Put),
            ProtocolError::BadFormat | ProtocolError::UnknownCommand | ProtocolError::ExpectedCrlf => None,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProtocolError::BadFormat | ProtocolError::CountedBadFormat(_) => "bad format",
            ProtocolError::UnknownCommand => "unknown command",
            ProtocolError::ExpectedCrlf => "expected CRLF after the job body",
            ProtocolError::JobTooBig => "job body larger than the limit",
        })
    }
}

impl std::error::Error for ProtocolError {}
