//! A `Call` in beanstalkd's text protocol, and an answer line read back as an `Answer`: what
//! every recording client (the simulator's, the chaos test's) sends and parses, with no I/O.

use super::{Answer, Call, JobId};

/// The bytes of a call on the wire.
pub fn encode(call: &Call) -> Vec<u8> {
    let line = |s: String| s.into_bytes();
    match call {
        Call::Put { pri, delay_secs, ttr_secs, body, .. } => {
            let mut out = format!("put {pri} {delay_secs} {ttr_secs} {}\r\n", body.len()).into_bytes();
            out.extend_from_slice(body);
            out.extend_from_slice(b"\r\n");
            out
        }
        Call::Reserve { timeout_secs: None, .. } => line("reserve\r\n".into()),
        Call::Reserve { timeout_secs: Some(t), .. } => line(format!("reserve-with-timeout {t}\r\n")),
        Call::ReserveJob(id) => line(format!("reserve-job {id}\r\n")),
        Call::Delete(id) => line(format!("delete {id}\r\n")),
        Call::Release { id, pri, delay_secs } => line(format!("release {id} {pri} {delay_secs}\r\n")),
        Call::Bury { id, pri } => line(format!("bury {id} {pri}\r\n")),
        Call::Touch(id) => line(format!("touch {id}\r\n")),
        Call::KickJob(id) => line(format!("kick-job {id}\r\n")),
        Call::Kick { bound, .. } => line(format!("kick {bound}\r\n")),
        Call::PauseTube { tube, delay_secs } => line(format!("pause-tube {tube} {delay_secs}\r\n")),
        Call::Peek(id) => line(format!("peek {id}\r\n")),
    }
}

/// What an answer line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The whole answer.
    Answer(Answer),
    /// `RESERVED` or `FOUND`: a body follows, which completes the answer.
    Body(BodyFollows),
}

/// The head of an answer that carries a job's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyFollows {
    /// `FOUND` (a peek) rather than `RESERVED`.
    found: bool,
    id: JobId,
    /// The body's length; its CRLF follows it.
    pub bytes: usize,
}

impl BodyFollows {
    /// The answer, given the body read after the line.
    pub fn with(self, body: Vec<u8>) -> Answer {
        let BodyFollows { found, id, .. } = self;
        if found {
            Answer::Found { id, body }
        } else {
            Answer::Reserved { id, body }
        }
    }
}

/// Parses an answer line (without its CRLF). A line it does not know, or a known word with
/// malformed numbers, is `Answer::Other`: a reply the client cannot rely on.
pub fn parse_line(line: &str) -> Parsed {
    let words: Vec<&str> = line.split(' ').collect();
    let number = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
    let answer = match (words[0], words.len()) {
        ("INSERTED", 2) => number(1).map(Answer::Inserted),
        ("RESERVED", 3) | ("FOUND", 3) => {
            if let (Some(id), Some(bytes)) = (number(1), number(2)) {
                return Parsed::Body(BodyFollows { found: words[0] == "FOUND", id, bytes: bytes as usize });
            }
            None
        }
        ("KICKED", 2) => number(1).map(|n| Answer::Kicked(n as u32)),
        (word, 1) => simple(word),
        _ => None,
    };
    Parsed::Answer(answer.unwrap_or_else(|| Answer::Other(line.into())))
}

/// A one-word answer.
fn simple(word: &str) -> Option<Answer> {
    Some(match word {
        "TIMED_OUT" => Answer::TimedOut,
        "DEADLINE_SOON" => Answer::DeadlineSoon,
        "DELETED" => Answer::Deleted,
        "RELEASED" => Answer::Released,
        "BURIED" => Answer::Buried,
        "TOUCHED" => Answer::Touched,
        "KICKED" => Answer::KickedJob,
        "PAUSED" => Answer::Paused,
        "NOT_FOUND" => Answer::NotFound,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each answer shape parses as the checkers expect, and a malformed one is `Other`.
    #[test]
    fn answer_lines() {
        assert_eq!(parse_line("INSERTED 7"), Parsed::Answer(Answer::Inserted(7)));
        assert_eq!(parse_line("KICKED 3"), Parsed::Answer(Answer::Kicked(3)));
        assert_eq!(parse_line("KICKED"), Parsed::Answer(Answer::KickedJob));
        assert_eq!(parse_line("NOT_FOUND"), Parsed::Answer(Answer::NotFound));
        assert_eq!(parse_line("DRAINING"), Parsed::Answer(Answer::Other("DRAINING".into())));
        assert_eq!(parse_line("RESERVED x 3"), Parsed::Answer(Answer::Other("RESERVED x 3".into())));
        let Parsed::Body(head) = parse_line("RESERVED 9 2") else { panic!("a body follows") };
        assert_eq!(head.bytes, 2);
        assert_eq!(head.with(b"ab".to_vec()), Answer::Reserved { id: 9, body: b"ab".to_vec() });
        let Parsed::Body(head) = parse_line("FOUND 4 0") else { panic!("a body follows") };
        assert_eq!(head.with(Vec::new()), Answer::Found { id: 4, body: Vec::new() });
    }

    /// A put carries its body and CRLF after the command line.
    #[test]
    fn put_on_the_wire() {
        let put = Call::Put { tube: "t".into(), pri: 1, delay_secs: 2, ttr_secs: 3, body: b"hi".to_vec() };
        assert_eq!(encode(&put), b"put 1 2 3 2\r\nhi\r\n");
        assert_eq!(encode(&Call::Kick { tube: "t".into(), bound: 5 }), b"kick 5\r\n");
    }
}
