//! A blocking beanstalkd connection that speaks in the history's terms: a `Call` goes out as
//! `coolbeans::history::wire` encodes it and its answer comes back parsed by the same code
//! the simulator's clients use. Every read waits at most the caller's patience.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use coolbeans::history::wire::{self, Parsed};
use coolbeans::history::{Answer, Call};

/// How long a connect may take: a live proxy on loopback answers at once, a dead one
/// refuses at once.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a write may block: commands are small, so only a stalled proxy makes it wait.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        Ok(Conn { reader: BufReader::new(stream.try_clone()?), writer: stream })
    }

    /// Sends `call` and reads its answer, waiting at most `patience` for each read.
    pub fn call(&mut self, call: &Call, patience: Duration) -> io::Result<Answer> {
        self.writer.write_all(&wire::encode(call))?;
        let line = self.line(patience)?;
        match wire::parse_line(&line) {
            Parsed::Answer(answer) => Ok(answer),
            Parsed::Body(head) => {
                let body = self.body(head.bytes)?;
                Ok(head.with(body))
            }
        }
    }

    /// Sends a command that is not a call (`use`, `watch`, `ignore`) and reads its line.
    pub fn exchange(&mut self, command: &str, patience: Duration) -> io::Result<String> {
        self.writer.write_all(format!("{command}\r\n").as_bytes())?;
        self.line(patience)
    }

    /// Sends `command` and expects exactly `want` back.
    pub fn expect(&mut self, command: &str, want: &str, patience: Duration) -> io::Result<()> {
        let line = self.exchange(command, patience)?;
        if line == want {
            Ok(())
        } else {
            Err(io::Error::other(format!("{command} answered {line:?}, not {want:?}")))
        }
    }

    /// Uses and watches `tube` only, from a fresh connection.
    pub fn settle_on(&mut self, tube: &str, patience: Duration) -> io::Result<()> {
        self.expect(&format!("use {tube}"), &format!("USING {tube}"), patience)?;
        self.expect(&format!("watch {tube}"), "WATCHING 2", patience)?;
        self.expect("ignore default", "WATCHING 1", patience)
    }

    /// Sends a command answered `OK <bytes>` and a YAML document; answers the document.
    pub fn yaml(&mut self, command: &str, patience: Duration) -> io::Result<String> {
        let line = self.exchange(command, patience)?;
        let Some(bytes) = line.strip_prefix("OK ").and_then(|n| n.parse().ok()) else {
            return Err(io::Error::other(format!("{command} answered {line:?}")));
        };
        let body = self.body(bytes)?;
        String::from_utf8(body).map_err(|_| io::Error::other(format!("{command}: the document is not UTF-8")))
    }

    /// Says goodbye; whether it arrives does not matter.
    pub fn quit(mut self) {
        let _ = self.writer.write_all(b"quit\r\n");
    }

    fn line(&mut self, patience: Duration) -> io::Result<String> {
        self.reader.get_ref().set_read_timeout(Some(patience))?;
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\r\n") {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).map_err(|_| io::Error::other("answer is not UTF-8"))
    }

    fn body(&mut self, bytes: usize) -> io::Result<Vec<u8>> {
        let mut body = vec![0; bytes + 2];
        self.reader.read_exact(&mut body)?;
        if !body.ends_with(b"\r\n") {
            return Err(io::Error::other("body not followed by CRLF"));
        }
        body.truncate(bytes);
        Ok(body)
    }
}
