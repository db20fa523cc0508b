//! The put phase: every connection puts jobs as fast as the server takes them, keeping up to
//! `pipeline` puts in flight; and the pre-fill of the reserve-delete phase, which is the same
//! loop stopped by a count instead of a clock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::answer::Answer;
use super::conn::{use_tube, Conn};
use super::measure::{rate_per_sec, Errors, Latencies};
use super::Config;

/// The put's priority: beanstalkd's conventional middle (clients' usual default).
const PUT_PRIORITY: u32 = 1024;

/// The put's time-to-run: far longer than a reserve→delete cycle, so a job reserved in the
/// reserve-delete phase never times out and comes back while the phase runs.
const PUT_TTR_SECS: u32 = 60;

/// Pipeline depth of the pre-fill, whatever `--pipeline` is: it only has to be quick.
const PREFILL_PIPELINE_MIN: usize = 16;

/// `put <pri> 0 <ttr> <bytes>\r\n<body>\r\n`, built once and written as is for every put.
pub fn put_command(body_bytes: usize) -> Arc<[u8]> {
    let mut command = format!("put {PUT_PRIORITY} 0 {PUT_TTR_SECS} {body_bytes}\r\n").into_bytes();
    command.resize(command.len() + body_bytes, b'x');
    command.extend_from_slice(b"\r\n");
    command.into()
}

/// When one connection stops putting: at a deadline (the put phase) or after a count (the
/// pre-fill). It always reads the answers of the puts it has in flight before it returns.
#[derive(Clone, Copy, Debug)]
enum Stop {
    At(Instant),
    After(u64),
}

impl Stop {
    fn more(self, sent: u64, now: Instant) -> bool {
        match self {
            Stop::At(deadline) => now < deadline,
            Stop::After(count) => sent < count,
        }
    }
}

/// What the connections of one run of puts saw, merged.
#[derive(Debug, Default)]
struct PutRun {
    acked: u64,
    latencies: Latencies,
    errors: Errors,
}

impl PutRun {
    fn merge(&mut self, other: PutRun) {
        self.acked += other.acked;
        self.latencies.merge(other.latencies);
        self.errors.merge(other.errors);
    }
}

/// The put phase; its report line.
pub async fn run(config: &Config) -> Result<String, String> {
    let conns = connect_using(config).await?;
    let started = Instant::now();
    let deadline = started + config.phase;
    let run = put_on_all(conns, config, config.pipeline, |_| Stop::At(deadline)).await?;
    let elapsed = started.elapsed();
    Ok(format!(
        "put: conns={} pipeline={} body={}B acked={} rate={}/s {} {}",
        config.connections,
        config.pipeline,
        config.body_bytes,
        run.acked,
        rate_per_sec(run.acked, elapsed),
        run.latencies.summary(),
        run.errors,
    ))
}

/// Puts `config.prefill_jobs` jobs into the tube, spread over the connections; how many the
/// server acknowledged. Any unexpected answer fails it: the phase it prepares would mislead.
pub async fn prefill(config: &Config) -> Result<u64, String> {
    let conns = connect_using(config).await?;
    let share = config.prefill_jobs / config.connections as u64;
    let extra = config.prefill_jobs % config.connections as u64;
    let pipeline = config.pipeline.max(PREFILL_PIPELINE_MIN);
    let run = put_on_all(conns, config, pipeline, |i| Stop::After(share + u64::from((i as u64) < extra))).await?;
    if run.acked != config.prefill_jobs {
        return Err(format!("pre-fill: {} of {} puts acknowledged, {}", run.acked, config.prefill_jobs, run.errors));
    }
    Ok(run.acked)
}

/// `config.connections` connections, each `use`-ing the tube.
async fn connect_using(config: &Config) -> Result<Vec<Conn>, String> {
    let mut conns = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        let mut conn = Conn::connect(&config.addr).await?;
        use_tube(&mut conn, &config.tube).await?;
        conns.push(conn);
    }
    Ok(conns)
}

/// Runs one putting task per connection, connection `i` stopping at `stop(i)`; waits for all
/// and merges what they saw, or returns the first task's error.
async fn put_on_all(conns: Vec<Conn>, config: &Config, pipeline: usize, stop: impl Fn(usize) -> Stop) -> Result<PutRun, String> {
    let command = put_command(config.body_bytes);
    // A guess at each connection's puts that saves most of the latency vector's regrowth.
    let expected = (config.phase.as_secs_f64() * 2000.0) as usize;
    let tasks: Vec<_> =
        conns.into_iter().enumerate().map(|(i, conn)| tokio::spawn(put_loop(conn, command.clone(), pipeline, stop(i), expected))).collect();
    let mut total = PutRun::default();
    let mut first_failure = None;
    for task in tasks {
        match task.await.map_err(|e| format!("put task: {e}")).and_then(|r| r) {
            Ok(run) => total.merge(run),
            Err(e) => first_failure = first_failure.or(Some(e)),
        }
    }
    match first_failure {
        Some(e) => Err(format!("put: {e}")),
        None => Ok(total),
    }
}

/// One connection's puts: keep `pipeline` in flight, timing each from its write to its answer.
async fn put_loop(mut conn: Conn, command: Arc<[u8]>, pipeline: usize, stop: Stop, expected: usize) -> Result<PutRun, String> {
    assert!(pipeline >= 1);
    let mut run = PutRun { latencies: Latencies::with_capacity(expected), ..PutRun::default() };
    // When each put in flight was written, oldest first: answers come in command order.
    let mut sent_at: VecDeque<Instant> = VecDeque::with_capacity(pipeline);
    let mut sent: u64 = 0;
    loop {
        let now = Instant::now();
        let in_flight_before = sent_at.len();
        while sent_at.len() < pipeline && stop.more(sent, now) {
            conn.queue(&command);
            sent_at.push_back(now);
            sent += 1;
        }
        if sent_at.len() > in_flight_before {
            conn.send().await?;
        }
        if sent_at.is_empty() {
            return Ok(run);
        }
        conn.read_answer(|answer| on_answer(&mut run, &mut sent_at, answer)).await?;
        while !sent_at.is_empty() {
            let handled = conn.buffered_answer(|answer| on_answer(&mut run, &mut sent_at, answer))?;
            if handled.is_none() {
                break;
            }
        }
    }
}

/// The answer to the oldest put in flight.
fn on_answer(run: &mut PutRun, sent_at: &mut VecDeque<Instant>, answer: Answer<'_>) {
    let sent = sent_at.pop_front().expect("an answer is read only while a put is in flight");
    match answer {
        Answer::Inserted { .. } => {
            run.acked += 1;
            run.latencies.record(sent.elapsed());
        }
        other => run.errors.note("put", &other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The put command is built once with the body's length on its line and `\r\n` after it.
    #[test]
    fn put_command_bytes() {
        assert_eq!(&*put_command(3), b"put 1024 0 60 3\r\nxxx\r\n");
        assert_eq!(&*put_command(0), b"put 1024 0 60 0\r\n\r\n");
    }
}
