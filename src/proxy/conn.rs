//! One client connection: decode commands, answer each in order, keep the connection's own
//! state (used tube, watch list). A reserve that waits keeps reading, so a client that hangs
//! up while waiting is noticed. Closing (or `quit`) ends the client's session upstream, which
//! releases every job it had reserved.
//!
//! Memory stays bounded whatever the client does: answers are written once they pass
//! `CONNECTION_OUTPUT_BYTES_MAX`, and no further command runs (nor is anything more read)
//! until the client has taken them; buffers that grew are given back once drained.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::shared::Proxy;
use crate::client::{Answer, Query, UpstreamError};
use crate::fsm::{ClientKey, FsmError, Op, Reply, ReserveOutcome, DEFAULT_TUBE};
use crate::limits::{CONNECTION_BUFFER_BYTES_KEPT_MAX, CONNECTION_OUTPUT_BYTES_MAX};
use crate::protocol::{encode, job_stats_yaml, stats_yaml, tube_stats_yaml, yaml_list, Command, Counted, Decoded, Decoder, ProtocolError, Response};

/// Bytes read at once, and what each buffer starts with.
const READ_CHUNK_BYTES: usize = 16 * 1024;

const _: () = assert!(READ_CHUNK_BYTES <= CONNECTION_BUFFER_BYTES_KEPT_MAX);

/// Why a connection's loop ends: the client closed, sent `quit`, or the socket failed.
struct Closed;

pub struct Conn<S> {
    proxy: Arc<Proxy>,
    client: ClientKey,
    /// The client's socket: one owner reads and writes it, so it needs no split (whose
    /// lock costs on every read and write).
    stream: S,
    input: BytesMut,
    output: BytesMut,
    decoder: Decoder,
    used: String,
    watched: Vec<String>,
    /// The session upstream has been started (on the first command).
    said_hello: bool,
    next_request: u64,
    /// Ready once the cluster ended this proxy's sessions: the connection then closes.
    /// One future for the connection's life, polled beside every read, rather than a new
    /// `changed()` future per read; the connection ends when it is ready, never polling it
    /// again.
    sessions_lost: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// When the partial command buffered began to arrive, if one is.
    partial_since: Option<Instant>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(proxy: Arc<Proxy>, stream: S) -> Self {
        let client = ClientKey::new(proxy.upstream.proxy_id(), &proxy.next_client_id());
        let mut lost = proxy.sessions_lost.subscribe();
        let sessions_lost = Box::pin(async move {
            let _ = lost.changed().await;
        });
        let decoder = Decoder::new(proxy.limits.job_body_bytes_max).with_line_bytes_max(proxy.limits.line_bytes_max);
        Conn {
            proxy,
            client,
            stream,
            input: BytesMut::with_capacity(READ_CHUNK_BYTES),
            output: BytesMut::with_capacity(READ_CHUNK_BYTES),
            decoder,
            used: DEFAULT_TUBE.to_string(),
            watched: vec![DEFAULT_TUBE.to_string()],
            said_hello: false,
            next_request: 1,
            sessions_lost,
            partial_since: None,
        }
    }

    /// Serves the connection until it closes, then ends its session upstream.
    pub async fn run(mut self) {
        let _ = self.serve().await;
        // beanstalkd counts a put at its line: one whose body never came counts too.
        if self.decoder.mid_put() {
            self.proxy.count_unlogged(Counted::Put);
        }
        if self.said_hello {
            if let Err(e) = self.proxy.upstream.write(Op::ClientGone { client: self.client.clone() }).await {
                tracing::warn!(client = %self.client, error = ?e, "could not end the session; the lease will");
            }
        }
    }

    async fn serve(&mut self) -> Result<(), Closed> {
        loop {
            while let Some(decoded) = self.decoder.decode(&mut self.input) {
                // What is buffered now is a new command, whose clock starts at the next read.
                self.partial_since = None;
                if let (Decoded::Error(_), Some(metrics)) = (&decoded, &self.proxy.metrics) {
                    metrics.bad_command();
                }
                let response = match decoded {
                    Decoded::Error(ProtocolError::ExpectedCrlf) => Some(self.discard_put(Response::ExpectedCrlf).await),
                    Decoded::Error(e) => {
                        if let Some(command) = e.counted() {
                            self.proxy.count_unlogged(command);
                        }
                        Some(e.response())
                    }
                    Decoded::Command(command) => {
                        // Only `quit` has no kind: it ends the connection, neither counted nor timed.
                        let Some(kind) = command.kind() else {
                            self.flush().await?;
                            return Err(Closed);
                        };
                        // Counted before it runs: a `stats` includes itself.
                        self.proxy.count(kind);
                        let timing = self.proxy.metrics.as_ref().map(|m| m.time(kind));
                        let response = self.execute(command).await?;
                        if let (Some(metrics), Some(timing)) = (&self.proxy.metrics, timing) {
                            metrics.answered(timing, &response);
                        }
                        Some(response)
                    }
                };
                if let Some(response) = response {
                    encode(&response, &mut self.output);
                    // Write as we go: the next command runs only once the client took these.
                    if self.output.len() >= CONNECTION_OUTPUT_BYTES_MAX {
                        self.flush().await?;
                    }
                }
            }
            self.flush().await?;
            self.read_more().await?;
        }
    }

    /// Writes every encoded answer. It waits as long as the client does not read (that is the
    /// backpressure), but not past the end of the proxy's sessions.
    async fn flush(&mut self) -> Result<(), Closed> {
        if self.output.is_empty() {
            return Ok(());
        }
        let (stream, output) = (&mut self.stream, &self.output);
        let write = async move {
            stream.write_all(output).await?;
            // Simulated sockets deliver only on flush; real ones make it a no-op.
            stream.flush().await
        };
        tokio::select! {
            biased;
            written = write => written.map_err(|_| Closed)?,
            _ = &mut self.sessions_lost => return Err(Closed),
        }
        self.output.clear();
        Ok(())
    }

    /// Reads what the client sent next; `Closed` at end of stream. Both buffers are drained
    /// but for a partial command, so this is where those that grew are made small again.
    async fn read_more(&mut self) -> Result<(), Closed> {
        debug_assert!(self.output.is_empty());
        shrink(&mut self.output);
        // After the reserve: a buffer whose earlier contents were all consumed takes its whole
        // allocation back here, which `capacity` shows only now.
        self.input.reserve(READ_CHUNK_BYTES);
        shrink(&mut self.input);
        let deadline = self.read_deadline();
        // Without a deadline no timer is made (most reads): only a future that never ends.
        let timed_out = async move {
            match deadline {
                Some((at, why)) => {
                    tokio::time::sleep_until(at).await;
                    why
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            read = self.stream.read_buf(&mut self.input) => match read {
                Ok(0) | Err(_) => Err(Closed),
                Ok(_) => Ok(()),
            },
            _ = &mut self.sessions_lost => Err(Closed),
            why = timed_out => {
                tracing::info!(client = %self.client, why, "closing a connection");
                Err(Closed)
            }
        }
    }

    /// When the next read must have come, and why: a partial command (all whole ones were run
    /// before a read) must be whole within the command timeout of its first byte, and a
    /// connection with nothing pending must speak within the idle timeout.
    fn read_deadline(&mut self) -> Option<(Instant, &'static str)> {
        let partial = !self.input.is_empty() || self.decoder.mid_put();
        self.partial_since = partial.then(|| self.partial_since.unwrap_or_else(Instant::now));
        let limits = &self.proxy.limits;
        match self.partial_since {
            Some(since) => limits.command_timeout.map(|t| (since + t, "a command did not arrive whole within --command-timeout")),
            None => limits.idle_timeout.map(|t| (Instant::now() + t, "idle for --idle-timeout")),
        }
    }

    /// A put refused after its body was read: `answer` (EXPECTED_CRLF, DRAINING), once the
    /// state machine has used up a job id for it, as beanstalkd does. The answer stands even
    /// if the cluster could not be told: the id is all that would differ.
    async fn discard_put(&mut self, answer: Response) -> Response {
        let discarded = match self.hello().await {
            Ok(()) => self.proxy.upstream.write(Op::DiscardPut { client: self.client.clone() }).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = discarded {
            tracing::warn!(client = %self.client, error = ?e, "a refused put's job id was not used up");
        }
        answer
    }

    async fn hello(&mut self) -> Result<(), UpstreamError> {
        if !self.said_hello {
            self.proxy.upstream.write(Op::ClientHello { client: self.client.clone() }).await?;
            self.said_hello = true;
        }
        Ok(())
    }

    /// Runs one command; `Closed` when the connection closed while it waited.
    async fn execute(&mut self, command: Command) -> Result<Response, Closed> {
        if let Err(e) = self.hello().await {
            return Ok(error_response(e));
        }
        Ok(match command {
            Command::Reserve => return self.reserve(None).await,
            Command::ReserveWithTimeout { timeout_secs } => return self.reserve(Some(timeout_secs)).await,
            Command::Put { pri, delay_secs, ttr_secs, body } => self.put(pri, delay_secs, ttr_secs, body).await,
            Command::Use { tube } => self.use_tube(tube).await,
            Command::Watch { tube } => self.watch(tube).await,
            Command::Ignore { tube } => self.ignore(tube).await,
            Command::ReserveJob { id } => {
                self.write(Op::ReserveJob { client: self.client.clone(), id }, |r| match r {
                    Reply::ReservedJob { id, body } => Response::Reserved { id, body },
                    other => unexpected(other),
                })
                .await
            }
            Command::Delete { id } => self.write(Op::Delete { client: Some(self.client.clone()), id }, |_| Response::Deleted).await,
            Command::Release { id, pri, delay_secs } => {
                self.write(Op::Release { client: self.client.clone(), id, pri, delay_secs }, |_| Response::Released).await
            }
            Command::Bury { id, pri } => self.write(Op::Bury { client: self.client.clone(), id, pri }, |_| Response::Buried).await,
            Command::Touch { id } => self.write(Op::Touch { client: self.client.clone(), id }, |_| Response::Touched).await,
            Command::Kick { bound } => {
                self.write(Op::Kick { tube: self.used.clone(), bound }, |r| match r {
                    Reply::Kicked { count } => Response::Kicked { count },
                    other => unexpected(other),
                })
                .await
            }
            Command::KickJob { id } => self.write(Op::KickJob { id }, |_| Response::KickedJob).await,
            Command::PauseTube { tube, delay_secs } => self.write(Op::PauseTube { tube, delay_secs }, |_| Response::Paused).await,
            Command::Peek { id } => self.found(Query::Job(id)).await,
            Command::PeekReady => self.found(Query::PeekReady(self.used.clone())).await,
            Command::PeekDelayed => self.found(Query::PeekDelayed(self.used.clone())).await,
            Command::PeekBuried => self.found(Query::PeekBuried(self.used.clone())).await,
            Command::StatsJob { id } => self.stats(Query::StatsJob(id)).await,
            Command::StatsTube { tube } => self.stats(Query::StatsTube(tube)).await,
            Command::Stats => self.stats(Query::Stats).await,
            Command::ListTubes => self.list_tubes().await,
            Command::ListTubeUsed => Response::Using { tube: self.used.clone() },
            Command::ListTubesWatched => Response::Ok { yaml: yaml_list(self.watched.iter().map(String::as_str)) },
            // `serve` ends the connection before it gets here; the same if it did.
            Command::Quit => {
                self.flush().await?;
                return Err(Closed);
            }
        })
    }

    async fn put(&mut self, pri: u32, delay_secs: u32, ttr_secs: u32, body: bytes::Bytes) -> Response {
        if self.proxy.draining.load(Ordering::Relaxed) {
            return self.discard_put(Response::Draining).await;
        }
        let op = Op::Put { client: Some(self.client.clone()), tube: self.used.clone(), pri, delay_secs, ttr_secs, body };
        self.write(op, |r| match r {
            Reply::Put { id } => Response::Inserted { id },
            other => unexpected(other),
        })
        .await
    }

    async fn use_tube(&mut self, tube: String) -> Response {
        let op = Op::Use { client: self.client.clone(), tube: tube.clone() };
        let response = self.write(op, |_| Response::Using { tube: tube.clone() }).await;
        if matches!(response, Response::Using { .. }) {
            self.used = tube;
        }
        response
    }

    async fn watch(&mut self, tube: String) -> Response {
        let response = self.write(Op::Watch { client: self.client.clone(), tube: tube.clone() }, watching).await;
        if matches!(response, Response::Watching { .. }) && !self.watched.contains(&tube) {
            self.watched.push(tube);
        }
        response
    }

    async fn ignore(&mut self, tube: String) -> Response {
        let response = self.write(Op::Ignore { client: self.client.clone(), tube: tube.clone() }, watching).await;
        if matches!(response, Response::Watching { .. }) {
            self.watched.retain(|t| *t != tube);
        }
        response
    }

    async fn list_tubes(&mut self) -> Response {
        match self.proxy.upstream.query(Query::ListTubes).await {
            Ok(Answer::Tubes(tubes)) => Response::Ok { yaml: yaml_list(tubes.iter().map(String::as_str)) },
            Ok(_) => Response::InternalError,
            Err(e) => error_response(e),
        }
    }

    async fn write(&mut self, op: Op, answer: impl FnOnce(Reply) -> Response) -> Response {
        match self.proxy.upstream.write(op).await {
            Ok(reply) => answer(reply),
            Err(e) => error_response(e),
        }
    }

    /// A peek: answered FOUND or NOT_FOUND.
    async fn found(&mut self, query: Query) -> Response {
        match self.proxy.upstream.query(query).await {
            Ok(Answer::Job(Some((id, body)))) => Response::Found { id, body },
            Ok(Answer::Job(None)) => Response::NotFound,
            Ok(_) => Response::InternalError,
            Err(e) => error_response(e),
        }
    }

    /// A stats command: the cluster's stats (with this proxy's own, for `stats`) written
    /// as YAML, or NOT_FOUND.
    async fn stats(&mut self, query: Query) -> Response {
        let yaml = match self.proxy.upstream.query(query).await {
            Ok(Answer::JobStats(job)) => job.map(|job| job_stats_yaml(&job)),
            Ok(Answer::TubeStats(tube)) => tube.map(|tube| tube_stats_yaml(&tube)),
            Ok(Answer::Stats(cluster)) => Some(stats_yaml(&self.proxy.stats(*cluster))),
            Ok(_) => return Response::InternalError,
            Err(e) => return error_response(e),
        };
        yaml.map_or(Response::NotFound, |yaml| Response::Ok { yaml: yaml.into() })
    }

    /// `reserve` / `reserve-with-timeout`: answered at once, or after waiting for the state
    /// machine to hand a job, time out, or warn of a deadline. Reads on while waiting, so a
    /// client that hangs up is noticed (its wait then ends with its session).
    async fn reserve(&mut self, timeout_secs: Option<u32>) -> Result<Response, Closed> {
        let request_id = self.next_request.to_string();
        self.next_request += 1;
        let answer = self.proxy.waiters.register(&self.client.client, &request_id, timeout_secs);
        let op = Op::Reserve { client: self.client.clone(), request_id: request_id.clone(), timeout_secs, tubes: Vec::new() };
        let outcome = match self.proxy.upstream.write(op).await {
            Ok(Reply::Reserve(Some(outcome))) => Some(outcome),
            Ok(Reply::Reserve(None)) => None,
            Ok(other) => {
                self.proxy.waiters.forget(&self.client.client, &request_id);
                return Ok(unexpected(other));
            }
            Err(e) => {
                self.proxy.waiters.forget(&self.client.client, &request_id);
                return Ok(error_response(e));
            }
        };
        let outcome = match outcome {
            Some(outcome) => {
                self.proxy.waiters.forget(&self.client.client, &request_id);
                outcome
            }
            None => match self.wait_for(&request_id, answer).await {
                Ok(outcome) => outcome,
                Err(end) => {
                    self.proxy.waiters.forget(&self.client.client, &request_id);
                    return Err(end);
                }
            },
        };
        Ok(match outcome {
            ReserveOutcome::Reserved { id, body } => Response::Reserved { id, body },
            ReserveOutcome::TimedOut => Response::TimedOut,
            ReserveOutcome::DeadlineSoon => Response::DeadlineSoon,
        })
    }

    /// Waits for a reservation's answer while reading ahead (bounded), so a hang-up is seen.
    async fn wait_for(&mut self, request_id: &str, mut answer: tokio::sync::oneshot::Receiver<ReserveOutcome>) -> Result<ReserveOutcome, Closed> {
        self.proxy.waiters.mark_waiting(&self.client.client, request_id);
        self.flush().await?;
        loop {
            let room = self.input.len() < self.proxy.limits.connection_buffer_bytes_max;
            tokio::select! {
                // In order: tokio picks branches at random from a process-wide seed, which would make
                // a simulated run depend on how many ran before it in the same process.
                biased;
                outcome = &mut answer => {
                    return outcome.map_err(|_| Closed);
                }
                _ = &mut self.sessions_lost => return Err(Closed),
                read = self.stream.read_buf(&mut self.input), if room => {
                    if matches!(read, Ok(0) | Err(_)) {
                        return Err(Closed);
                    }
                }
            }
        }
    }
}

/// Replaces a buffer that grew past `CONNECTION_BUFFER_BYTES_KEPT_MAX` with a small one, unless
/// it holds much (the start of a large put, still needed).
fn shrink(buffer: &mut BytesMut) {
    if buffer.capacity() <= CONNECTION_BUFFER_BYTES_KEPT_MAX || buffer.len() > READ_CHUNK_BYTES {
        return;
    }
    let mut small = BytesMut::with_capacity(buffer.len() + READ_CHUNK_BYTES);
    small.extend_from_slice(buffer);
    *buffer = small;
}

fn watching(reply: Reply) -> Response {
    match reply {
        Reply::Watching { count } => Response::Watching { count },
        other => unexpected(other),
    }
}

fn unexpected(reply: Reply) -> Response {
    tracing::error!(?reply, "unexpected reply from the state machine");
    Response::InternalError
}

/// The beanstalkd answer to an upstream error.
fn error_response(e: UpstreamError) -> Response {
    match e {
        UpstreamError::Fsm(FsmError::NotFound | FsmError::WrongState | FsmError::NotYours) => Response::NotFound,
        UpstreamError::Fsm(FsmError::LastWatchedTube) => Response::NotIgnored,
        UpstreamError::Fsm(FsmError::BadArgument(_)) => Response::BadFormat,
        UpstreamError::Fsm(FsmError::OutOfMemory) => Response::OutOfMemory,
        // A command the cluster does not run yet, as an older server would answer it.
        UpstreamError::NotUpgraded(why) => {
            tracing::warn!(%why, "operation refused until every voter is upgraded");
            Response::UnknownCommand
        }
        UpstreamError::Unavailable(why) => {
            tracing::warn!(%why, "cluster unavailable");
            Response::InternalError
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer that grew for a large put is made small once the put was taken out of it,
    /// including when the space it held comes back only at the next `reserve`.
    #[test]
    fn drained_buffers_shrink() {
        let mut input = BytesMut::with_capacity(READ_CHUNK_BYTES);
        input.extend_from_slice(&vec![b'x'; 1024 * 1024]);
        drop(input.split_to(1024 * 1024 - 10));
        input.reserve(READ_CHUNK_BYTES);
        assert!(input.capacity() > CONNECTION_BUFFER_BYTES_KEPT_MAX, "the drained space came back");
        shrink(&mut input);
        assert_eq!(input.len(), 10, "what was left is kept");
        assert!(input.capacity() <= 10 + READ_CHUNK_BYTES);

        let mut output = BytesMut::with_capacity(READ_CHUNK_BYTES);
        output.extend_from_slice(&vec![b'y'; 1024 * 1024]);
        output.clear();
        shrink(&mut output);
        assert_eq!(output.capacity(), READ_CHUNK_BYTES);
    }

    /// A buffer holding the start of a large put keeps its room: the rest is on its way.
    #[test]
    fn a_partial_put_keeps_its_buffer() {
        let mut input = BytesMut::with_capacity(1024 * 1024);
        input.extend_from_slice(&vec![b'x'; READ_CHUNK_BYTES + 1]);
        shrink(&mut input);
        assert_eq!(input.capacity(), 1024 * 1024);
        assert_eq!(input.len(), READ_CHUNK_BYTES + 1);
    }

    /// An operation the cluster refuses until every voter is upgraded is answered as a
    /// server without the command answers it.
    #[test]
    fn not_upgraded_is_an_unknown_command() {
        assert_eq!(error_response(UpstreamError::NotUpgraded("node 3 runs version 1".into())), Response::UnknownCommand);
    }
}
