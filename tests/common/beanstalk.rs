//! A blocking beanstalkd-protocol client for the tests: one command, one answer line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A blocking beanstalkd-protocol connection with line helpers.
pub struct Beanstalk {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Beanstalk {
    pub fn connect(addr: SocketAddr) -> Beanstalk {
        let started = Instant::now();
        let stream = loop {
            match TcpStream::connect(addr) {
                Ok(s) => break s,
                Err(e) if started.elapsed() > Duration::from_secs(10) => panic!("cannot connect to {addr}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Beanstalk { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read answer");
        assert!(line.ends_with("\r\n"), "answer {line:?} does not end in CRLF");
        line.trim_end().to_string()
    }

    pub fn ask(&mut self, command: &str) -> String {
        self.send(format!("{command}\r\n").as_bytes());
        self.line()
    }

    /// Reads a body of `len` bytes plus its CRLF.
    pub fn body(&mut self, len: usize) -> Vec<u8> {
        let mut body = vec![0; len + 2];
        self.reader.read_exact(&mut body).expect("read body");
        assert_eq!(&body[len..], b"\r\n");
        body.truncate(len);
        body
    }

    pub fn put(&mut self, body: &str) -> u64 {
        let answer = self.ask(&format!("put 10 0 60 {}\r\n{body}", body.len()));
        answer.strip_prefix("INSERTED ").and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("put answered {answer}"))
    }

    /// Reads a RESERVED answer; returns (id, body).
    pub fn reserved(&mut self) -> (u64, String) {
        let line = self.line();
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts.first(), Some(&"RESERVED"), "expected RESERVED, got {line}");
        let id = parts[1].parse().unwrap();
        let body = self.body(parts[2].parse().unwrap());
        (id, String::from_utf8(body).unwrap())
    }
}
