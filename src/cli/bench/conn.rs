//! One client connection: commands are queued into a reused buffer and sent with one write and
//! a flush; answers are parsed out of a reused read buffer. Every read and write is bounded by
//! a timeout, so a stuck server ends the bench with an error instead of hanging it.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::answer::{self, Answer};

/// How long a connect, a read of an awaited answer or a write may take. Generous: a loaded
/// server on a 2-core machine stalls for tens of milliseconds, never for seconds.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Spare room made in the read buffer before each read: many pipelined answers per syscall.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// A connection to the server under test, owned by one task.
pub struct Conn {
    /// The server's address, for error messages.
    addr: String,
    /// The stream's two halves, so a read and a write need not wait for each other.
    reader: ReadHalf<TcpStream>,
    writer: WriteHalf<TcpStream>,
    /// Bytes read and not yet parsed; consumed from the front as answers are handled.
    read_buf: BytesMut,
    /// Commands queued for the next `send`; cleared, not freed, after each.
    write_buf: Vec<u8>,
}

impl Conn {
    pub async fn connect(addr: &str) -> Result<Conn, String> {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connect to {addr}: no answer within {IO_TIMEOUT:?}"))?
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| format!("set TCP_NODELAY on {addr}: {e}"))?;
        // madsim's simulated stream has no `into_split`; `tokio::io::split` works for both.
        let (reader, writer) = tokio::io::split(stream);
        Ok(Conn {
            addr: addr.to_string(),
            reader,
            writer,
            read_buf: BytesMut::with_capacity(READ_CHUNK_BYTES),
            write_buf: Vec::with_capacity(READ_CHUNK_BYTES),
        })
    }

    /// Adds a whole command (line, and body if any) to the next `send`.
    pub fn queue(&mut self, command: &[u8]) {
        self.write_buf.extend_from_slice(command);
    }

    /// Adds `<word> <number>\r\n` to the next `send`, without allocating.
    pub fn queue_with_number(&mut self, word: &str, number: u64) {
        use std::io::Write;
        // Writing into a Vec cannot fail.
        let _ = write!(self.write_buf, "{word} {number}\r\n");
    }

    /// Writes everything queued and flushes: the simulated stream delivers only on flush.
    pub async fn send(&mut self) -> Result<(), String> {
        let write = async {
            self.writer.write_all(&self.write_buf).await?;
            self.writer.flush().await
        };
        tokio::time::timeout(IO_TIMEOUT, write)
            .await
            .map_err(|_| format!("write to {}: not taken within {IO_TIMEOUT:?}", self.addr))?
            .map_err(|e| format!("write to {}: {e}", self.addr))?;
        self.write_buf.clear();
        Ok(())
    }

    /// Hands the next answer to `handle`, reading (with a timeout) until a whole one is here.
    pub async fn read_answer<T>(&mut self, handle: impl FnOnce(Answer<'_>) -> T) -> Result<T, String> {
        let mut handle = Some(handle);
        loop {
            let parsed = answer::parse(&self.read_buf).map_err(|e| format!("from {}: {e}", self.addr))?;
            if let Some((answer, used)) = parsed {
                let handle = handle.take().expect("an answer is handled once");
                let out = handle(answer);
                self.read_buf.advance(used);
                return Ok(out);
            }
            self.fill().await?;
        }
    }

    /// Hands the next answer to `handle` if a whole one is already buffered; never reads.
    pub fn buffered_answer<T>(&mut self, handle: impl FnOnce(Answer<'_>) -> T) -> Result<Option<T>, String> {
        let parsed = answer::parse(&self.read_buf).map_err(|e| format!("from {}: {e}", self.addr))?;
        let Some((answer, used)) = parsed else { return Ok(None) };
        let out = handle(answer);
        self.read_buf.advance(used);
        Ok(Some(out))
    }

    /// Sends `command` alone and hands its answer to `handle`: for setup, not the hot loop.
    pub async fn request<T>(&mut self, command: &[u8], handle: impl FnOnce(Answer<'_>) -> T) -> Result<T, String> {
        self.queue(command);
        self.send().await?;
        self.read_answer(handle).await
    }

    /// One read into the buffer's spare room; end of stream and silence are errors, since
    /// the bench only reads when it awaits an answer.
    async fn fill(&mut self) -> Result<(), String> {
        self.read_buf.reserve(READ_CHUNK_BYTES);
        let read = tokio::time::timeout(IO_TIMEOUT, self.reader.read_buf(&mut self.read_buf))
            .await
            .map_err(|_| format!("read from {}: no answer within {IO_TIMEOUT:?} (server stuck?)", self.addr))?
            .map_err(|e| format!("read from {}: {e}", self.addr))?;
        if read == 0 {
            return Err(format!("read from {}: the server closed the connection", self.addr));
        }
        Ok(())
    }
}

/// `use <tube>`, expecting `USING <tube>`.
pub async fn use_tube(conn: &mut Conn, tube: &str) -> Result<(), String> {
    let command = format!("use {tube}\r\n");
    conn.request(command.as_bytes(), |a| match a {
        Answer::Using { tube: used } if used == tube.as_bytes() => Ok(()),
        other => Err(format!("use {tube}: answered {}", other.describe())),
    })
    .await?
}

/// `watch <tube>`, then `ignore default` unless the tube is `default`: the connection then
/// reserves from `tube` alone.
pub async fn watch_only(conn: &mut Conn, tube: &str) -> Result<(), String> {
    let command = format!("watch {tube}\r\n");
    conn.request(command.as_bytes(), |a| match a {
        Answer::Watching { count: 1..=2 } => Ok(()),
        other => Err(format!("watch {tube}: answered {}", other.describe())),
    })
    .await??;
    if tube == crate::fsm::DEFAULT_TUBE {
        return Ok(());
    }
    conn.request(b"ignore default\r\n", |a| match a {
        Answer::Watching { count: 1 } => Ok(()),
        other => Err(format!("ignore default: answered {}", other.describe())),
    })
    .await?
}

/// The number `key` in `stats-tube <tube>`'s YAML; 0 when the server has no such tube
/// (beanstalkd drops an empty tube nobody uses).
pub async fn stats_tube_number(conn: &mut Conn, tube: &str, key: &str) -> Result<u64, String> {
    let command = format!("stats-tube {tube}\r\n");
    conn.request(command.as_bytes(), |a| match a {
        Answer::Ok { yaml } => answer::yaml_number(yaml, key).ok_or_else(|| format!("stats-tube {tube}: no number {key} in its YAML")),
        Answer::Other { line: b"NOT_FOUND" } => Ok(0),
        other => Err(format!("stats-tube {tube}: answered {}", other.describe())),
    })
    .await?
}
