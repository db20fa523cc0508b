//! The answers the server sends, and their exact bytes.

use bytes::{BufMut, Bytes, BytesMut};

use crate::fsm::JobId;

use super::limits::CRLF;

/// An answer to one command. Each variant's doc shows its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// `INSERTED <id>\r\n`: put.
    Inserted { id: JobId },
    /// `BURIED <id>\r\n`: put, but the server could not grow the ready queue, so the new job
    /// was buried.
    BuriedId { id: JobId },
    /// `EXPECTED_CRLF\r\n`: put, the body was not followed by `\r\n`.
    ExpectedCrlf,
    /// `JOB_TOO_BIG\r\n`: put, the body is larger than the limit.
    JobTooBig,
    /// `DRAINING\r\n`: put, while the server takes no new jobs.
    Draining,
    /// `USING <tube>\r\n`: use, list-tube-used.
    Using { tube: String },
    /// `RESERVED <id> <bytes>\r\n<body>\r\n`: reserve, reserve-with-timeout, reserve-job.
    Reserved { id: JobId, body: Bytes },
    /// `DEADLINE_SOON\r\n`: reserve, a job this client holds is within a second of its TTR.
    DeadlineSoon,
    /// `TIMED_OUT\r\n`: reserve-with-timeout, no job in time.
    TimedOut,
    /// `DELETED\r\n`
    Deleted,
    /// `NOT_FOUND\r\n`
    NotFound,
    /// `RELEASED\r\n`
    Released,
    /// `BURIED\r\n`: bury, or release when the ready queue could not grow.
    Buried,
    /// `TOUCHED\r\n`
    Touched,
    /// `WATCHING <count>\r\n`: watch, ignore.
    Watching { count: u32 },
    /// `NOT_IGNORED\r\n`: ignore of the last watched tube.
    NotIgnored,
    /// `FOUND <id> <bytes>\r\n<body>\r\n`: the peek commands.
    Found { id: JobId, body: Bytes },
    /// `KICKED <count>\r\n`: kick.
    Kicked { count: u32 },
    /// `KICKED\r\n`: kick-job.
    KickedJob,
    /// `OK <bytes>\r\n<yaml>\r\n`: the stats and list commands; `bytes` is the YAML's length,
    /// without the final `\r\n`. Build list bodies with `yaml_list`.
    Ok { yaml: Bytes },
    /// `PAUSED\r\n`
    Paused,
    /// `BAD_FORMAT\r\n`
    BadFormat,
    /// `UNKNOWN_COMMAND\r\n`
    UnknownCommand,
    /// `OUT_OF_MEMORY\r\n`
    OutOfMemory,
    /// `INTERNAL_ERROR\r\n`
    InternalError,
}

/// Appends the bytes of `response` to `out`.
pub fn encode(response: &Response, out: &mut BytesMut) {
    match response {
        Response::Inserted { id } => line(out, format_args!("INSERTED {id}")),
        Response::BuriedId { id } => line(out, format_args!("BURIED {id}")),
        Response::ExpectedCrlf => word(out, "EXPECTED_CRLF"),
        Response::JobTooBig => word(out, "JOB_TOO_BIG"),
        Response::Draining => word(out, "DRAINING"),
        Response::Using { tube } => line(out, format_args!("USING {tube}")),
        Response::Reserved { id, body } => with_body(out, format_args!("RESERVED {id} {}", body.len()), body),
        Response::DeadlineSoon => word(out, "DEADLINE_SOON"),
        Response::TimedOut => word(out, "TIMED_OUT"),
        Response::Deleted => word(out, "DELETED"),
        Response::NotFound => word(out, "NOT_FOUND"),
        Response::Released => word(out, "RELEASED"),
        Response::Buried => word(out, "BURIED"),
        Response::Touched => word(out, "TOUCHED"),
        Response::Watching { count } => line(out, format_args!("WATCHING {count}")),
        Response::NotIgnored => word(out, "NOT_IGNORED"),
        Response::Found { id, body } => with_body(out, format_args!("FOUND {id} {}", body.len()), body),
        Response::Kicked { count } => line(out, format_args!("KICKED {count}")),
        Response::KickedJob => word(out, "KICKED"),
        Response::Ok { yaml } => with_body(out, format_args!("OK {}", yaml.len()), yaml),
        Response::Paused => word(out, "PAUSED"),
        Response::BadFormat => word(out, "BAD_FORMAT"),
        Response::UnknownCommand => word(out, "UNKNOWN_COMMAND"),
        Response::OutOfMemory => word(out, "OUT_OF_MEMORY"),
        Response::InternalError => word(out, "INTERNAL_ERROR"),
    }
}

/// An answer that is one fixed word.
fn word(out: &mut BytesMut, word: &str) {
    out.put_slice(word.as_bytes());
    out.put_slice(CRLF);
}

fn line(out: &mut BytesMut, text: std::fmt::Arguments<'_>) {
    use std::fmt::Write;
    out.write_fmt(text).expect("BytesMut grows as needed");
    out.put_slice(CRLF);
}

fn with_body(out: &mut BytesMut, header: std::fmt::Arguments<'_>, body: &[u8]) {
    line(out, header);
    out.put_slice(body);
    out.put_slice(CRLF);
}

/// The YAML body of `list-tubes` and `list-tubes-watched`: `---\n` then `- <name>\n` per
/// tube, names unquoted (as beanstalkd 1.13 sends them, unlike the stats values).
pub fn yaml_list<'a>(names: impl IntoIterator<Item = &'a str>) -> Bytes {
    let mut yaml = BytesMut::from(&b"---\n"[..]);
    for name in names {
        yaml.put_slice(b"- ");
        yaml.put_slice(name.as_bytes());
        yaml.put_u8(b'\n');
    }
    yaml.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(response: Response) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(&response, &mut out);
        out.to_vec()
    }

    /// Every answer encodes to beanstalkd's exact bytes; those also seen from a live
    /// beanstalkd 1.12 in this module's conversations are marked (live).
    #[test]
    fn every_response() {
        let body = Bytes::from_static(b"he\r\nlo");
        let cases: Vec<(Response, &[u8])> = vec![
            (Response::Inserted { id: 1 }, b"INSERTED 1\r\n"), // live
            (Response::BuriedId { id: u64::MAX }, b"BURIED 18446744073709551615\r\n"),
            (Response::ExpectedCrlf, b"EXPECTED_CRLF\r\n"), // live
            (Response::JobTooBig, b"JOB_TOO_BIG\r\n"),      // live
            (Response::Draining, b"DRAINING\r\n"),
            (Response::Using { tube: "default".into() }, b"USING default\r\n"), // live
            (Response::Reserved { id: 7, body: body.clone() }, b"RESERVED 7 6\r\nhe\r\nlo\r\n"),
            (Response::Reserved { id: 1, body: Bytes::new() }, b"RESERVED 1 0\r\n\r\n"),
            (Response::DeadlineSoon, b"DEADLINE_SOON\r\n"),
            (Response::TimedOut, b"TIMED_OUT\r\n"),
            (Response::Deleted, b"DELETED\r\n"),    // live
            (Response::NotFound, b"NOT_FOUND\r\n"), // live
            (Response::Released, b"RELEASED\r\n"),
            (Response::Buried, b"BURIED\r\n"),
            (Response::Touched, b"TOUCHED\r\n"),
            (Response::Watching { count: 2 }, b"WATCHING 2\r\n"), // live
            (Response::NotIgnored, b"NOT_IGNORED\r\n"),           // live
            (Response::Found { id: 1, body: Bytes::from_static(b"hello") }, b"FOUND 1 5\r\nhello\r\n"), // live
            (Response::Kicked { count: 0 }, b"KICKED 0\r\n"),     // live
            (Response::KickedJob, b"KICKED\r\n"),
            (Response::Ok { yaml: yaml_list(["default"]) }, b"OK 14\r\n---\n- default\n\r\n"), // live
            (Response::Paused, b"PAUSED\r\n"),                                                 // live
            (Response::BadFormat, b"BAD_FORMAT\r\n"),                                          // live
            (Response::UnknownCommand, b"UNKNOWN_COMMAND\r\n"),                                // live
            (Response::OutOfMemory, b"OUT_OF_MEMORY\r\n"),
            (Response::InternalError, b"INTERNAL_ERROR\r\n"),
        ];
        for (response, wire) in cases {
            assert_eq!(bytes_of(response.clone()), wire, "{response:?}");
        }
    }

    /// Encoding appends: answers to pipelined commands go out back to back in one buffer.
    #[test]
    fn encode_appends() {
        let mut out = BytesMut::new();
        encode(&Response::Deleted, &mut out);
        encode(&Response::Kicked { count: 3 }, &mut out);
        assert_eq!(&out[..], b"DELETED\r\nKICKED 3\r\n");
    }

    /// A list body is `---` and one `- name` line per tube, in the order given; an empty list
    /// is just the document start.
    #[test]
    fn yaml_lists() {
        assert_eq!(&yaml_list(["default", "a(b)"])[..], b"---\n- default\n- a(b)\n");
        assert_eq!(&yaml_list([])[..], b"---\n");
    }

    /// Every protocol error maps to the answer with its name.
    #[test]
    fn errors_answer() {
        use super::super::error::ProtocolError;
        assert_eq!(ProtocolError::BadFormat.response(), Response::BadFormat);
        assert_eq!(ProtocolError::CountedBadFormat(super::super::Counted::Put).response(), Response::BadFormat);
        assert_eq!(ProtocolError::UnknownCommand.response(), Response::UnknownCommand);
        assert_eq!(ProtocolError::ExpectedCrlf.response(), Response::ExpectedCrlf);
        assert_eq!(ProtocolError::JobTooBig.response(), Response::JobTooBig);
    }
}
