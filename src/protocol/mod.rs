//! The beanstalkd text protocol: bytes in to commands, answers out to bytes. Pure: no I/O, no
//! clock, no async. A connection keeps one `Decoder`, feeds it what it reads, and `encode`s
//! each `Response` into its write buffer. The stats commands' YAML is written here too, from
//! the typed stats the state machine and the server give.
//!
//! The behaviour follows beanstalkd 1.13 (`prot.c`), checked against a live beanstalkd 1.12
//! where they agree (the tests say which answers were seen live). Where we differ on purpose:
//! - `reserve-with-timeout`: 1.13's rules (a number is required, above `INT_MAX` is
//!   `BAD_FORMAT`, trailing bytes are ignored); 1.12 took `-1`, `x` and nothing as timeouts.
//! - `kick`: a sign or a bound above u32 is `BAD_FORMAT`; beanstalkd (both versions) wraps `-1`
//!   to 4294967295 and truncates large bounds. Trailing bytes are ignored, as in beanstalkd.
//! - A line is ended by its first `\r\n`, wherever it falls. beanstalkd discards overlong lines
//!   in 224-byte windows and misses a `\r\n` split across two windows, and a stray `\r` hides
//!   a line's end from it; either way it then swallows the next command. We answer such a line
//!   `BAD_FORMAT` at its own `\r\n` and decode the next command.

mod args;
mod command;
mod decoder;
mod error;
mod limits;
mod response;
pub mod split_check;
mod stats;

pub use command::{Command, CommandKind};
pub use decoder::{Decoded, Decoder};
pub use error::{Counted, ProtocolError};
pub use limits::{CRLF, LINE_BYTES_MAX, RESERVE_TIMEOUT_SECS_MAX, U32_DIGITS_MAX};
pub use response::{encode, yaml_list, Response};
pub use stats::{job_stats_yaml, stats_yaml, tube_stats_yaml, ServerStats, Stats};

#[cfg(test)]
mod decoder_tests;
#[cfg(test)]
mod proptests;
