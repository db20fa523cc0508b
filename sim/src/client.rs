//! A beanstalkd client for the simulator: one TCP connection to a proxy, one command at a
//! time, its answer parsed into the history's `Answer`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::history::wire::{self, Parsed};
use crate::history::{Answer, Call, JobId};

/// Why a call has no answer.
#[derive(Debug)]
pub enum CallError {
    /// The connection broke or closed.
    Broken(String),
    /// No answer within the client's patience.
    TimedOut,
}

/// One connection speaking the text protocol.
pub struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> Result<Connection, CallError> {
        let stream = TcpStream::connect(addr).await.map_err(|e| CallError::Broken(format!("connect {addr}: {e}")))?;
        Ok(Connection { stream: BufReader::new(stream) })
    }

    /// Sends `use` and `watch` for `tube` and ignores `default`, so the connection uses and
    /// watches `tube` only.
    pub async fn settle_on(&mut self, tube: &str, patience: Duration) -> Result<(), CallError> {
        let expect = |line: String, want: &str| {
            if line == want {
                Ok(())
            } else {
                Err(CallError::Broken(format!("answered {line:?}")))
            }
        };
        expect(self.line_exchange(&format!("use {tube}\r\n"), patience).await?, &format!("USING {tube}"))?;
        let watching = self.line_exchange(&format!("watch {tube}\r\n"), patience).await?;
        if tube != "default" {
            expect(watching, "WATCHING 2")?;
            expect(self.line_exchange("ignore default\r\n", patience).await?, "WATCHING 1")?;
        }
        Ok(())
    }

    /// Sends `use`.
    pub async fn use_tube(&mut self, tube: &str, patience: Duration) -> Result<(), CallError> {
        let line = self.line_exchange(&format!("use {tube}\r\n"), patience).await?;
        if line == format!("USING {tube}") {
            Ok(())
        } else {
            Err(CallError::Broken(format!("answered {line:?}")))
        }
    }

    /// Sends `watch`; answers the count watched.
    pub async fn watch(&mut self, tube: &str, patience: Duration) -> Result<u32, CallError> {
        let line = self.line_exchange(&format!("watch {tube}\r\n"), patience).await?;
        line.strip_prefix("WATCHING ").and_then(|n| n.parse().ok()).ok_or(CallError::Broken(format!("answered {line:?}")))
    }

    /// Sends `quit`.
    pub async fn quit(mut self) {
        let _ = self.stream.get_mut().write_all(b"quit\r\n").await;
        let _ = self.stream.get_mut().flush().await;
    }

    async fn line_exchange(&mut self, command: &str, patience: Duration) -> Result<String, CallError> {
        tokio::time::timeout(patience, async {
            self.send(command.as_bytes()).await?;
            self.read_line().await
        })
        .await
        .map_err(|_| CallError::TimedOut)?
    }

    /// Sends one call and reads its answer, waiting at most `patience`.
    pub async fn call(&mut self, call: &Call, patience: Duration) -> Result<Answer, CallError> {
        let bytes = wire::encode(call);
        tokio::time::timeout(patience, async {
            self.send(&bytes).await?;
            let line = self.read_line().await?;
            self.parse(&line).await
        })
        .await
        .map_err(|_| CallError::TimedOut)?
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), CallError> {
        let s = self.stream.get_mut();
        s.write_all(bytes).await.map_err(|e| CallError::Broken(format!("write: {e}")))?;
        // The simulated stream delivers written bytes only on flush.
        s.flush().await.map_err(|e| CallError::Broken(format!("flush: {e}")))
    }

    async fn read_line(&mut self) -> Result<String, CallError> {
        let mut line = Vec::new();
        let n = self.stream.read_until(b'\n', &mut line).await.map_err(|e| CallError::Broken(format!("read: {e}")))?;
        if n == 0 || !line.ends_with(b"\r\n") {
            return Err(CallError::Broken("connection closed".into()));
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).map_err(|_| CallError::Broken("answer is not UTF-8".into()))
    }

    async fn read_body(&mut self, bytes: usize) -> Result<Vec<u8>, CallError> {
        let mut body = vec![0; bytes + 2];
        self.stream.read_exact(&mut body).await.map_err(|e| CallError::Broken(format!("read body: {e}")))?;
        if !body.ends_with(b"\r\n") {
            return Err(CallError::Broken("body not followed by CRLF".into()));
        }
        body.truncate(bytes);
        Ok(body)
    }

    async fn parse(&mut self, line: &str) -> Result<Answer, CallError> {
        match wire::parse_line(line) {
            Parsed::Answer(answer) => Ok(answer),
            Parsed::Body(head) => {
                let body = self.read_body(head.bytes).await?;
                Ok(head.with(body))
            }
        }
    }
}

/// The job a call names, if any.
pub fn job_of(call: &Call) -> Option<JobId> {
    match call {
        Call::ReserveJob(id) | Call::Delete(id) | Call::Touch(id) | Call::KickJob(id) | Call::Peek(id) => Some(*id),
        Call::Release { id, .. } | Call::Bury { id, .. } => Some(*id),
        _ => None,
    }
}
