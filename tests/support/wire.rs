//! One client connection: blocking writes, and reads against a deadline into a buffer, so
//! that lines and counted bodies can be taken off it whatever the packet boundaries.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Why a read did not produce what was asked for.
#[derive(Debug)]
pub enum ReadError {
    /// Nothing complete arrived before the deadline; `partial` is what did.
    Timeout {
        partial: Vec<u8>,
    },
    /// The server closed the connection; `partial` is what came before.
    Closed {
        partial: Vec<u8>,
    },
    Io(String),
}

pub struct Wire {
    stream: TcpStream,
    /// Received and not yet consumed.
    buffer: Vec<u8>,
    /// The server has closed its side.
    closed: bool,
}

impl Wire {
    pub fn new(stream: TcpStream) -> Wire {
        let _ = stream.set_nodelay(true);
        Wire { stream, buffer: Vec::new(), closed: false }
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream.write_all(bytes).and_then(|()| self.stream.flush()).map_err(|e| format!("send failed: {e}"))
    }

    /// One line, without its `\r\n`.
    pub fn read_line(&mut self, deadline: Instant) -> Result<Vec<u8>, ReadError> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let mut line: Vec<u8> = self.buffer.drain(..end + 2).collect();
                line.truncate(end);
                return Ok(line);
            }
            self.fill_or_fail(deadline)?;
        }
    }

    /// Exactly `count` bytes.
    pub fn read_bytes(&mut self, count: usize, deadline: Instant) -> Result<Vec<u8>, ReadError> {
        while self.buffer.len() < count {
            self.fill_or_fail(deadline)?;
        }
        Ok(self.buffer.drain(..count).collect())
    }

    /// Whatever arrives until `deadline` (or the server closes), and whether it closed.
    pub fn drain_until(&mut self, deadline: Instant) -> Result<(Vec<u8>, bool), ReadError> {
        while !self.closed && self.fill(deadline)? {}
        Ok((std::mem::take(&mut self.buffer), self.closed))
    }

    /// Waits for the server to close the connection; answers the bytes that came before.
    pub fn read_to_close(&mut self, deadline: Instant) -> Result<Vec<u8>, ReadError> {
        while !self.closed {
            if !self.fill(deadline)? {
                return Err(ReadError::Timeout { partial: std::mem::take(&mut self.buffer) });
            }
        }
        Ok(std::mem::take(&mut self.buffer))
    }

    fn fill_or_fail(&mut self, deadline: Instant) -> Result<(), ReadError> {
        if self.closed {
            return Err(ReadError::Closed { partial: std::mem::take(&mut self.buffer) });
        }
        if !self.fill(deadline)? {
            return Err(ReadError::Timeout { partial: std::mem::take(&mut self.buffer) });
        }
        Ok(())
    }

    /// Reads once; `Ok(false)` when the deadline passed with nothing read.
    fn fill(&mut self, deadline: Instant) -> Result<bool, ReadError> {
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        let wait = (deadline - now).max(Duration::from_millis(1));
        self.stream.set_read_timeout(Some(wait)).map_err(|e| ReadError::Io(e.to_string()))?;
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.closed = true;
                Ok(true)
            }
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => {
                self.closed = true;
                Ok(true)
            }
            Err(e) => Err(ReadError::Io(e.to_string())),
        }
    }
}
