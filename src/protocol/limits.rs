//! The protocol's limits, each with why it is what it is. (The job body limit is a parameter
//! of the decoder; its default lives in `crate::limits`.)

use crate::fsm::TUBE_NAME_BYTES_MAX;

/// Every line, command or answer, ends with these two bytes. A bare `\n` ends nothing.
pub const CRLF: &[u8; 2] = b"\r\n";

/// The longest command line beanstalkd reads, in bytes including its `\r\n`. A longer line is
/// discarded up to its `\r\n` and answered `BAD_FORMAT`. beanstalkd derives it from the
/// longest command, `pause-tube <200-byte name> <u32>\r\n`.
pub const LINE_BYTES_MAX: usize = 224;

/// The most decimal digits of a u32 (4294967295).
pub const U32_DIGITS_MAX: usize = 10;

/// The longest `reserve-with-timeout` timeout, in seconds: beanstalkd 1.13 keeps it in a C
/// `int` and answers `BAD_FORMAT` above `INT_MAX` (1.12 parsed it with `strtol` and took
/// anything).
pub const RESERVE_TIMEOUT_SECS_MAX: u32 = i32::MAX as u32;

/// The longest valid command line: `pause-tube <name> <delay>\r\n` with the longest name and
/// delay.
const PAUSE_TUBE_LINE_BYTES_MAX: usize = "pause-tube ".len() + TUBE_NAME_BYTES_MAX + " ".len() + U32_DIGITS_MAX + CRLF.len();

// Every valid command fits in a line, and not one byte more is read: beanstalkd's own limit.
const _: () = assert!(PAUSE_TUBE_LINE_BYTES_MAX == LINE_BYTES_MAX);
