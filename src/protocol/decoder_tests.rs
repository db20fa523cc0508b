//! Byte-for-byte decoding tests: conversations in, commands and error answers out.
//!
//! "live" marks cases whose answers were checked on the same bytes against a running
//! beanstalkd 1.12 (Debian); "1.13" marks cases taken from beanstalkd 1.13's source where 1.12
//! answers otherwise; "ours" marks deliberate differences (see the module docs).

use bytes::{Bytes, BytesMut};

use crate::limits::{JOB_BODY_BYTES_MAX_DEFAULT, JOB_BODY_BYTES_MAX_LIMIT};

use super::split_check::decode_pieces;
use super::{Command, CommandKind, Counted, Decoded, Decoder, ProtocolError, LINE_BYTES_MAX};

const BAD: Decoded = Decoded::Error(ProtocolError::BadFormat);
/// BAD_FORMAT that beanstalkd counts in `cmd-put` or `cmd-pause-tube` all the same.
const BAD_PUT: Decoded = Decoded::Error(ProtocolError::CountedBadFormat(Counted::Put));
const BAD_PAUSE: Decoded = Decoded::Error(ProtocolError::CountedBadFormat(Counted::PauseTube));
const UNKNOWN: Decoded = Decoded::Error(ProtocolError::UnknownCommand);
const EXPECTED_CRLF: Decoded = Decoded::Error(ProtocolError::ExpectedCrlf);
const TOO_BIG: Decoded = Decoded::Error(ProtocolError::JobTooBig);

fn ok(command: Command) -> Decoded {
    Decoded::Command(command)
}

fn put(pri: u32, delay_secs: u32, ttr_secs: u32, body: &'static [u8]) -> Decoded {
    ok(Command::Put { pri, delay_secs, ttr_secs, body: Bytes::from_static(body) })
}

fn tube(name: &str) -> String {
    name.to_owned()
}

/// Everything `wire` decodes to in one read, with the default job limit.
fn decode(wire: &[u8]) -> Vec<Decoded> {
    decode_pieces(JOB_BODY_BYTES_MAX_DEFAULT, [wire]).decoded
}

/// Checks each `(wire, expected)` pair, naming the wire on failure.
fn check(cases: &[(&[u8], Vec<Decoded>)]) {
    for (wire, expected) in cases {
        assert_eq!(&decode(wire), expected, "{:?}", String::from_utf8_lossy(wire));
    }
}

/// One valid line per command, each used up entirely (all answered live).
fn every_command_cases() -> Vec<(&'static [u8], Command)> {
    let id = 18_446_744_073_709_551_615;
    vec![
        (b"put 1 2 3 5\r\nhello\r\n", Command::Put { pri: 1, delay_secs: 2, ttr_secs: 3, body: Bytes::from_static(b"hello") }),
        (b"use foo\r\n", Command::Use { tube: tube("foo") }),
        (b"reserve\r\n", Command::Reserve),
        (b"reserve-with-timeout 7\r\n", Command::ReserveWithTimeout { timeout_secs: 7 }),
        (b"reserve-job 9\r\n", Command::ReserveJob { id: 9 }),
        (b"delete 18446744073709551615\r\n", Command::Delete { id }),
        (b"release 4 4294967295 6\r\n", Command::Release { id: 4, pri: u32::MAX, delay_secs: 6 }),
        (b"bury 4 5\r\n", Command::Bury { id: 4, pri: 5 }),
        (b"touch 4\r\n", Command::Touch { id: 4 }),
        (b"watch a-b\r\n", Command::Watch { tube: tube("a-b") }),
        (b"ignore A0+/;.$_()\r\n", Command::Ignore { tube: tube("A0+/;.$_()") }),
        (b"peek 0\r\n", Command::Peek { id: 0 }),
        (b"peek-ready\r\n", Command::PeekReady),
        (b"peek-delayed\r\n", Command::PeekDelayed),
        (b"peek-buried\r\n", Command::PeekBuried),
        (b"kick 10\r\n", Command::Kick { bound: 10 }),
        (b"kick-job 3\r\n", Command::KickJob { id: 3 }),
        (b"stats-job 3\r\n", Command::StatsJob { id: 3 }),
        (b"stats-tube default\r\n", Command::StatsTube { tube: tube("default") }),
        (b"stats\r\n", Command::Stats),
        (b"list-tubes\r\n", Command::ListTubes),
        (b"list-tube-used\r\n", Command::ListTubeUsed),
        (b"list-tubes-watched\r\n", Command::ListTubesWatched),
        (b"pause-tube default 0\r\n", Command::PauseTube { tube: tube("default"), delay_secs: 0 }),
        (b"quit\r\n", Command::Quit),
    ]
}

/// Every command's canonical line decodes to it and leaves nothing behind.
#[test]
fn every_command() {
    for (wire, command) in every_command_cases() {
        let outcome = decode_pieces(JOB_BODY_BYTES_MAX_DEFAULT, [wire]);
        assert_eq!(outcome.decoded, vec![ok(command)], "{:?}", String::from_utf8_lossy(wire));
        assert!(outcome.leftover.is_empty());
    }
}

/// The test-only encoder writes exactly the canonical lines above, so the proptest's
/// round trip starts from real wire bytes.
#[test]
fn encoder_matches_canonical_lines() {
    for (wire, command) in every_command_cases() {
        assert_eq!(command.to_wire(), wire);
    }
}

/// Spaces before a number are skipped, however many (live); a tube name must follow its
/// command after exactly one space (live); kick skips tabs too, as `strtoul` does (live).
#[test]
fn spaces_before_arguments() {
    check(&[
        (b"put   0   0   1   5\r\nhello\r\n", vec![put(0, 0, 1, b"hello")]),
        (b"peek  1\r\n", vec![ok(Command::Peek { id: 1 })]),
        (b"release 999  1  2\r\n", vec![ok(Command::Release { id: 999, pri: 1, delay_secs: 2 })]),
        (b"bury  5  1\r\n", vec![ok(Command::Bury { id: 5, pri: 1 })]),
        (
            b"kick-job  5\r\ntouch  5\r\ndelete  5\r\nstats-job  5\r\n",
            vec![ok(Command::KickJob { id: 5 }), ok(Command::Touch { id: 5 }), ok(Command::Delete { id: 5 }), ok(Command::StatsJob { id: 5 })],
        ),
        (b"pause-tube  default   0\r\n", vec![ok(Command::PauseTube { tube: tube("default"), delay_secs: 0 })]),
        (b"reserve-with-timeout  0\r\n", vec![ok(Command::ReserveWithTimeout { timeout_secs: 0 })]),
        (b"kick  1\r\nkick \t3\r\n", vec![ok(Command::Kick { bound: 1 }), ok(Command::Kick { bound: 3 })]),
        (b"use  foo\r\n", vec![BAD]),
        (b"stats-tube  default\r\n", vec![BAD]),
    ]);
}

/// Trailing bytes, even one space, are BAD_FORMAT for every command but kick,
/// reserve-with-timeout and quit (live); a refused put line leaves its body to be read as a
/// command, and counts as a put (live).
#[test]
fn trailing_bytes() {
    check(&[
        (b"put 0 0 1 5 \r\nhello\r\n", vec![BAD_PUT, UNKNOWN]),
        (b"put 0 0 1 5x\r\nhello\r\n", vec![BAD_PUT, UNKNOWN]),
        (b"peek 1 \r\npeek 1x\r\n", vec![BAD, BAD]),
        (b"delete 999 \r\ntouch 999 x\r\nkick-job 999x\r\n", vec![BAD, BAD, BAD]),
        (b"stats-job 999 \r\nreserve-job 999 \r\n", vec![BAD, BAD]),
        (b"release 999 1 2 \r\nbury 999 1 \r\n", vec![BAD, BAD]),
        (b"pause-tube default 0 \r\n", vec![BAD]),
        (b"use foo \r\nwatch foo \r\nuse foo bar\r\nstats-tube default \r\n", vec![BAD, BAD, BAD, BAD]),
        (b"stats x\r\nlist-tubes x\r\nreserve x\r\nreserve \r\n", vec![BAD, BAD, BAD, BAD]),
        (b"list-tube-used \r\nlist-tubes-watched \r\npeek-ready \r\n", vec![BAD, BAD, BAD]),
        (b"peek-delayed x\r\npeek-buried x\r\n", vec![BAD, BAD]),
        (b"kick 1x\r\nkick 1 \r\n", vec![ok(Command::Kick { bound: 1 }), ok(Command::Kick { bound: 1 })]),
        // 1.13 ignores what follows the timeout (1.12 too, here).
        (
            b"reserve-with-timeout 0x\r\nreserve-with-timeout 0 \r\n",
            vec![ok(Command::ReserveWithTimeout { timeout_secs: 0 }), ok(Command::ReserveWithTimeout { timeout_secs: 0 })],
        ),
        (b"quit \r\n", vec![ok(Command::Quit)]),
    ]);
}

/// A command name is matched as the start of the line, first match wins, as beanstalkd does
/// (live): a known name glued to more is that command with trailing bytes, a name missing the
/// space its arguments need is unknown, and `quitx` quits.
#[test]
fn names_are_prefixes() {
    check(&[
        (b"statsx\r\nlist-tubesx\r\nreservex\r\npeek-buriedx\r\n", vec![BAD, BAD, BAD, BAD]),
        (b"list-tubes-watchedX\r\nlist-tube-usedx\r\n", vec![BAD, BAD]),
        (b"stats-job\r\nstats-tube\r\nreserve-job\r\nreserve-with-timeout\r\n", vec![BAD, BAD, BAD, BAD]),
        (b"put\r\npeek\r\nuse\r\nkick\r\ndelete\r\nlist-tube\r\nkick-job\r\n", vec![UNKNOWN; 7]),
        (b"quitx\r\nquitting\r\n", vec![ok(Command::Quit), ok(Command::Quit)]),
        (b"pause-tubedefault 0\r\n", vec![ok(Command::PauseTube { tube: tube("default"), delay_secs: 0 })]),
    ]);
}

/// Missing arguments are BAD_FORMAT (live), except the reserve-with-timeout ones that 1.12
/// took as a timeout and 1.13 refuses (1.13).
#[test]
fn missing_arguments() {
    check(&[
        (b"put 0 0 1\r\nput 0 0 1 \r\n", vec![BAD, BAD]),
        (b"release 999 1\r\nbury 999\r\npeek \r\nkick \r\n", vec![BAD, BAD, BAD, BAD]),
        (b"use \r\npause-tube default\r\npause-tube\r\n", vec![BAD, BAD, BAD]),
        (b"reserve-with-timeout \r\n", vec![BAD]),
    ]);
}

/// Names are case-sensitive and an empty line is an unknown command (live).
#[test]
fn unknown_commands() {
    check(&[(b"STATS\r\n\r\nfoo bar\r\n", vec![UNKNOWN, UNKNOWN, UNKNOWN])]);
}

/// u32 fields refuse a sign, non-digits and overflow, and take 4294967295 and leading zeros
/// (live); ids are u64 (live); kick's sign and overflow are refused (ours: beanstalkd
/// wraps them); reserve-with-timeout stops at `INT_MAX` (1.13).
#[test]
fn integers() {
    check(&[
        (b"put -1 0 1 5\r\nhello\r\n", vec![BAD, UNKNOWN]),
        (b"put +1 0 1 5\r\nhello\r\n", vec![BAD, UNKNOWN]),
        (b"put 4294967296 0 1 5\r\nhello\r\n", vec![BAD, UNKNOWN]),
        (b"put 0 4294967296 1 5\r\nhello\r\n", vec![BAD, UNKNOWN]),
        (b"put 0 0 4294967296 5\r\nhello\r\n", vec![BAD, UNKNOWN]),
        (b"put 0 0 1 -5\r\nput 0 0 1 4294967296\r\n", vec![BAD, BAD]),
        (b"put 4294967295 0 0 5\r\nhello\r\n", vec![put(u32::MAX, 0, 0, b"hello")]),
        (b"put 00 0 1 5\r\nhello\r\n", vec![put(0, 0, 1, b"hello")]),
        (b"peek 18446744073709551616\r\npeek -1\r\npeek +1\r\n", vec![BAD, BAD, BAD]),
        (b"release 999 -1 2\r\nrelease 999 1 4294967296\r\nbury 999 4294967296\r\n", vec![BAD, BAD, BAD]),
        (b"pause-tube default -1\r\npause-tube default 4294967296\r\n", vec![BAD, BAD]),
        (b"kick x\r\nkick -1\r\nkick +1\r\nkick 4294967296\r\nkick 99999999999\r\n", vec![BAD; 5]),
        (b"kick 4294967295\r\n", vec![ok(Command::Kick { bound: u32::MAX })]),
        (b"reserve-with-timeout -1\r\nreserve-with-timeout x\r\n", vec![BAD, BAD]),
        (b"reserve-with-timeout 4294967296\r\nreserve-with-timeout 2147483648\r\n", vec![BAD, BAD]),
        (b"reserve-with-timeout 2147483647\r\n", vec![ok(Command::ReserveWithTimeout { timeout_secs: i32::MAX as u32 })]),
    ]);
}

/// Tube names follow the shared rule: 1 to 200 name bytes, no leading hyphen (live); the
/// pause-tube name is the run of name bytes after the command, judged as a name once the
/// delay has read, and then counted as a pause-tube (live).
#[test]
fn tube_names() {
    let name_200 = "a".repeat(200);
    let use_200 = format!("use {name_200}\r\n");
    let use_201 = format!("use {name_200}a\r\n");
    let pause_201 = format!("pause-tube {name_200}a 0\r\n");
    check(&[
        (use_200.as_bytes(), vec![ok(Command::Use { tube: name_200.clone() })]),
        (use_201.as_bytes(), vec![BAD]),
        (pause_201.as_bytes(), vec![BAD_PAUSE]),
        (b"use -foo\r\nuse a*\r\nuse \xc3\xa9\r\n", vec![BAD, BAD, BAD]),
        (b"use f-oo\r\n", vec![ok(Command::Use { tube: tube("f-oo") })]),
        (b"pause-tube -foo 0\r\npause-tube default*1\r\npause-tube default0\r\n", vec![BAD_PAUSE, BAD, BAD]),
        (b"pause-tube-foo 0\r\npause-tube -foo x\r\n", vec![BAD_PAUSE, BAD]),
    ]);
}

/// A NUL anywhere in a line is BAD_FORMAT, even in an unknown command (live); `\n` alone
/// ends nothing (live); a stray `\r` makes the line BAD_FORMAT at its `\r\n` (ours:
/// beanstalkd swallows the next command too).
#[test]
fn stray_bytes_in_lines() {
    check(&[
        (b"stats\0\r\nfoo\0\r\n", vec![BAD, BAD]),
        (b"stats\nstats\r\n", vec![BAD]),
        (b"stats\n", vec![]),
        (b"stats\rX\r\nlist-tube-used\r\n", vec![BAD, ok(Command::ListTubeUsed)]),
    ]);
}

/// A line of exactly `LINE_BYTES_MAX` bytes with its `\r\n` is read (live: the longest
/// pause-tube); one byte more is discarded as BAD_FORMAT (live) and the next command is
/// decoded (ours: beanstalkd misses that `\r\n`, which straddles its 224-byte window, and
/// swallows the next command).
#[test]
fn line_limit() {
    let name_200 = "a".repeat(200);
    let longest = format!("pause-tube {name_200} 4294967295\r\nstats\r\n");
    let overlong = format!("pause-tube {name_200} 04294967295\r\nstats\r\n");
    assert_eq!(longest.find('\n'), Some(LINE_BYTES_MAX - 1));
    check(&[
        (longest.as_bytes(), vec![ok(Command::PauseTube { tube: name_200, delay_secs: u32::MAX }), ok(Command::Stats)]),
        (overlong.as_bytes(), vec![BAD, ok(Command::Stats)]),
    ]);
}

/// An overlong line is answered only when its `\r\n` arrives (live), and nothing of it is
/// kept meanwhile: even a `\r` and `\n` in separate reads end it (live).
#[test]
fn overlong_line_answered_at_its_end() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&[b'x'; 300][..]);
    assert_eq!(decoder.decode(&mut buf), None);
    assert!(buf.is_empty());
    buf.extend_from_slice(b"xx\r");
    assert_eq!(decoder.decode(&mut buf), None);
    assert!(buf.is_empty());
    buf.extend_from_slice(b"\nlist-tube-used\r\n");
    assert_eq!(decoder.decode(&mut buf), Some(BAD));
    assert_eq!(decoder.decode(&mut buf), Some(ok(Command::ListTubeUsed)));
    assert_eq!(decoder.decode(&mut buf), None);
}

/// An endless line (1 MiB, no `\r\n`, fed in 4 KiB reads) keeps the buffer below the line
/// limit, then yields exactly one BAD_FORMAT at its `\r\n` (live, in one write).
#[test]
fn endless_line_stays_bounded() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let chunk = [b'x'; 4096];
    for _ in 0..(1 << 20) / chunk.len() {
        buf.extend_from_slice(&chunk);
        assert_eq!(decoder.decode(&mut buf), None);
        assert!(buf.len() < LINE_BYTES_MAX);
    }
    buf.extend_from_slice(b"\r\nlist-tube-used\r\n");
    assert_eq!(decoder.decode(&mut buf), Some(BAD));
    assert_eq!(decoder.decode(&mut buf), Some(ok(Command::ListTubeUsed)));
    assert_eq!(decoder.decode(&mut buf), None);
}

/// A body is exactly `bytes` bytes, `\r\n` included (live), possibly empty (live), up to
/// the limit (live: 65535; here fed in 4 KiB reads).
#[test]
fn put_bodies() {
    let mut max_wire = b"put 0 0 1 65535\r\n".to_vec();
    max_wire.extend_from_slice(&[b'a'; 65535]);
    max_wire.extend_from_slice(b"\r\n");
    let decoded = decode_pieces(JOB_BODY_BYTES_MAX_DEFAULT, max_wire.chunks(4096)).decoded;
    assert!(matches!(&decoded[..], [Decoded::Command(Command::Put { body, .. })] if body.len() == 65535));
    check(&[
        (b"put 0 0 1 5\r\nhe\r\no\r\n", vec![put(0, 0, 1, b"he\r\no")]),
        (b"put 0 0 1 0\r\n\r\n", vec![put(0, 0, 1, b"")]),
        (b"put 0 0 1 2\r\n\r\n\r\n", vec![put(0, 0, 1, b"\r\n")]),
        // An overlong put line is refused and its body read as a command (live).
        (&[&b"put 0 0 1 5"[..], &[b' '; 300], b"\r\nhello\r\n"].concat(), vec![BAD, UNKNOWN]),
    ]);
}

/// Without `\r\n` after the body: EXPECTED_CRLF, having used exactly `bytes + 2` bytes, and
/// the stream goes on right after them (live, all five).
#[test]
fn expected_crlf() {
    check(&[
        (b"put 0 0 1 5\r\nhelloXYstats\r\n", vec![EXPECTED_CRLF, ok(Command::Stats)]),
        (b"put 0 0 1 5\r\nhelloX\r\nstats\r\n", vec![EXPECTED_CRLF, UNKNOWN]),
        (b"put 0 0 1 5\r\nhello\n\r\n", vec![EXPECTED_CRLF]),
        (b"put 0 0 1 5\r\nhello\rXstats\r\n", vec![EXPECTED_CRLF, ok(Command::Stats)]),
        (b"put 0 0 1 5\r\nhello\r\r\nstats\r\n", vec![EXPECTED_CRLF, UNKNOWN]),
    ]);
}

/// Above the limit: exactly `bytes + 2` bytes are skipped, whatever they are, then
/// JOB_TOO_BIG and the next command (live); the size is judged before trailing bytes (live).
#[test]
fn job_too_big() {
    let mut wire = b"put 0 0 1 65536\r\n".to_vec();
    wire.extend_from_slice(&[b'z'; 65538]);
    wire.extend_from_slice(b"list-tube-used\r\n");
    let mut with_garbage = b"put 0 0 1 65536 x\r\n".to_vec();
    with_garbage.extend_from_slice(&[b'a'; 65538]);
    check(&[(&wire, vec![TOO_BIG, ok(Command::ListTubeUsed)]), (&with_garbage, vec![TOO_BIG])]);
    let small = decode_pieces(3, [&b"put 0 0 1 4\r\nabcd\r\nstats\r\nput 0 0 1 3\r\nabc\r\n"[..]]);
    assert_eq!(small.decoded, vec![TOO_BIG, ok(Command::Stats), put(0, 0, 1, b"abc")]);
}

/// JOB_TOO_BIG comes only after the last skipped byte (live), and skipping holds nothing:
/// even 4 GiB announced keeps the buffer empty (live: no answer yet after 100000 bytes).
#[test]
fn job_too_big_waits_for_the_skip() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"put 0 0 1 4294967295\r\n"[..]);
    assert_eq!(decoder.decode(&mut buf), None);
    buf.extend_from_slice(&[b'x'; 100_000]);
    assert_eq!(decoder.decode(&mut buf), None);
    assert!(buf.is_empty());

    let mut decoder = Decoder::new(3);
    let mut buf = BytesMut::from(&b"put 0 0 1 4\r\nabcd\r"[..]);
    assert_eq!(decoder.decode(&mut buf), None);
    buf.extend_from_slice(b"\n");
    assert_eq!(decoder.decode(&mut buf), Some(TOO_BIG));
}

/// Several commands in one read come out in order, whatever mix of lines, bodies and
/// errors (live: the same bytes in one write got these answers in this order).
#[test]
fn pipelined() {
    let mut wire = b"use a\r\nuse b\r\nlist-tube-used\r\nput 0 0 1 3\r\nabc\r\nput 0 0 1 65536\r\n".to_vec();
    wire.extend_from_slice(&[b'z'; 65536]);
    wire.extend_from_slice(b"\r\nlist-tube-used\r\nput 0 0 1 2\r\nabXYlist-tubes-watched\r\n");
    check(&[(
        &wire,
        vec![
            ok(Command::Use { tube: tube("a") }),
            ok(Command::Use { tube: tube("b") }),
            ok(Command::ListTubeUsed),
            put(0, 0, 1, b"abc"),
            TOO_BIG,
            ok(Command::ListTubeUsed),
            EXPECTED_CRLF,
            ok(Command::ListTubesWatched),
        ],
    )]);
}

/// A conversation of every command and every error, cut into two reads at every byte
/// position, and fed one byte per read, decodes as it does in one read.
#[test]
fn split_at_every_byte() {
    let limit = 5;
    let mut wire: Vec<u8> = every_command_cases().iter().flat_map(|(line, _)| line.to_vec()).collect();
    wire.extend_from_slice(b"put 0 0 1 5\r\nhelloXYstats x\r\nSTATS\r\n");
    wire.extend_from_slice(&[b'y'; 300]);
    wire.extend_from_slice(b"\r\nput 0 0 1 2\r\n\r\n\r\nput 0 0 1 6\r\n123456\r\nstats\r\n");
    let whole = decode_pieces(limit, [&wire[..]]);
    let mut expected: Vec<Decoded> = every_command_cases().into_iter().map(|(_, command)| ok(command)).collect();
    expected.extend([EXPECTED_CRLF, BAD, UNKNOWN, BAD, put(0, 0, 1, b"\r\n"), TOO_BIG, ok(Command::Stats)]);
    assert_eq!(whole.decoded, expected);
    assert!(whole.leftover.is_empty());
    for cut in 0..=wire.len() {
        let (head, tail) = wire.split_at(cut);
        assert_eq!(decode_pieces(limit, [head, tail]), whole, "cut at {cut}");
    }
    assert_eq!(decode_pieces(limit, wire.chunks(1)), whole);
}

/// The decoder's buffer bound is under the line limit plus the job limit plus the body's
/// `\r\n`, and no smaller than the longest line still waiting for its end, for any limit.
#[test]
fn buffer_bound() {
    for limit in [0, 1, 221, 222, 223, JOB_BODY_BYTES_MAX_DEFAULT, JOB_BODY_BYTES_MAX_LIMIT] {
        let bound_bytes = Decoder::new(limit).buffered_bytes_max();
        assert!(bound_bytes <= LINE_BYTES_MAX + limit + 2);
        assert!(bound_bytes >= LINE_BYTES_MAX - 1);
        assert!(bound_bytes > limit);
    }
}

/// A raised line limit buffers more of a long line, but the line still answers BAD_FORMAT (no
/// valid command is longer than 224 bytes), and the next command decodes.
#[test]
fn raised_line_limit_still_refuses_long_lines() {
    let mut decoder = Decoder::default().with_line_bytes_max(1024);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[b'x'; 500]);
    assert_eq!(decoder.decode(&mut buf), None, "500 bytes fit the raised limit");
    buf.extend_from_slice(b"\r\nstats\r\n");
    assert_eq!(decoder.decode(&mut buf), Some(Decoded::Error(ProtocolError::BadFormat)));
    assert_eq!(decoder.decode(&mut buf), Some(Decoded::Command(Command::Stats)));
    assert_eq!(decoder.buffered_bytes_max(), 1024.max(JOB_BODY_BYTES_MAX_DEFAULT + 2) - 1);
}

/// A put is in progress from its line until its body is taken or skipped: what a connection
/// that ends meanwhile counts as a put, as beanstalkd counts it at its line.
#[test]
fn mid_put_lasts_from_line_to_body() {
    let mut decoder = Decoder::new(10);
    let mut buf = BytesMut::from(&b"put 0 0 1 3\r\nab"[..]);
    assert_eq!(decoder.decode(&mut buf), None);
    assert!(decoder.mid_put(), "the body has not all come");
    buf.extend_from_slice(b"c\r\nput 0 0 1 11\r\nxyz");
    assert_eq!(decoder.decode(&mut buf), Some(put(0, 0, 1, b"abc")));
    assert!(!decoder.mid_put());
    assert_eq!(decoder.decode(&mut buf), None);
    assert!(decoder.mid_put(), "a too-big body being skipped");
    buf.extend_from_slice(b"01234567\r\nstats x\r\n");
    assert_eq!(decoder.decode(&mut buf), Some(TOO_BIG));
    assert_eq!(decoder.decode(&mut buf), Some(BAD));
    assert!(!decoder.mid_put());
}

/// Each command, decoded from its own line, has the kind of its own name (what it is counted
/// and timed under); `quit` has none.
#[test]
fn every_command_has_the_kind_of_its_name() {
    let lines = [
        "put 0 0 1 1\r\nx\r\n",
        "use t\r\n",
        "reserve\r\n",
        "reserve-with-timeout 1\r\n",
        "reserve-job 1\r\n",
        "delete 1\r\n",
        "release 1 0 0\r\n",
        "bury 1 0\r\n",
        "touch 1\r\n",
        "watch t\r\n",
        "ignore t\r\n",
        "peek 1\r\n",
        "peek-ready\r\n",
        "peek-delayed\r\n",
        "peek-buried\r\n",
        "kick 1\r\n",
        "kick-job 1\r\n",
        "stats-job 1\r\n",
        "stats-tube t\r\n",
        "stats\r\n",
        "list-tubes\r\n",
        "list-tube-used\r\n",
        "list-tubes-watched\r\n",
        "pause-tube t 1\r\n",
    ];
    assert_eq!(lines.len(), CommandKind::COUNT);
    for line in lines {
        let mut input = BytesMut::from(line);
        let Some(Decoded::Command(command)) = Decoder::new(1024).decode(&mut input) else { panic!("{line:?} decodes") };
        let name = command.kind().expect("not quit").name();
        assert!(line.starts_with(&format!("{name} ")) || line.starts_with(&format!("{name}\r")), "{line:?} is counted as {name}");
    }
    assert_eq!(Command::Quit.kind(), None);
}
