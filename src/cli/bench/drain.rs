//! The reserve-delete phase: every connection watches the tube alone and loops
//! `reserve-with-timeout 0` → `delete <id>` until the tube is drained or the phase's time is up.
//! A delete needs the id its reserve returned, so a connection pipelines `pipeline` reserves,
//! then their deletes: a cycle is one such batch.

use std::time::Instant;

use super::answer::Answer;
use super::conn::{stats_tube_number, watch_only, Conn};
use super::measure::{rate_per_sec, Errors, Latencies};
use super::Config;

/// Reserve without waiting: `TIMED_OUT` at once means no job is ready, so the tube is drained
/// (nothing puts into it during this phase).
const RESERVE_NOW: &[u8] = b"reserve-with-timeout 0\r\n";

/// What the connections saw, merged.
#[derive(Debug, Default)]
struct DrainRun {
    /// Reserves whose delete was answered `DELETED`.
    pairs: u64,
    /// `TIMED_OUT` answers: at most one batch's worth per connection, at the end.
    timed_out: u64,
    /// Connections that stopped on `TIMED_OUT` rather than at the deadline.
    drained_conns: usize,
    /// Each pair's time from its reserve's write to its delete's answer.
    latencies: Latencies,
    errors: Errors,
}

impl DrainRun {
    fn merge(&mut self, other: DrainRun) {
        self.pairs += other.pairs;
        self.timed_out += other.timed_out;
        self.drained_conns += other.drained_conns;
        self.latencies.merge(other.latencies);
        self.errors.merge(other.errors);
    }
}

/// The reserve-delete phase; its report line. `prefilled` is how many jobs were put just for it
/// (0 when the put phase ran before it).
pub async fn run(config: &Config, prefilled: u64) -> Result<String, String> {
    let mut conns = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        let mut conn = Conn::connect(&config.addr).await?;
        watch_only(&mut conn, &config.tube).await?;
        conns.push(conn);
    }
    let started = Instant::now();
    let deadline = started + config.phase;
    let tasks: Vec<_> = conns.into_iter().map(|conn| tokio::spawn(drain_loop(conn, config.pipeline, deadline))).collect();
    let mut total = DrainRun::default();
    let mut first_failure = None;
    for task in tasks {
        match task.await.map_err(|e| format!("reserve-delete task: {e}")).and_then(|r| r) {
            Ok(run) => total.merge(run),
            Err(e) => first_failure = first_failure.or(Some(e)),
        }
    }
    let elapsed = started.elapsed();
    if let Some(e) = first_failure {
        return Err(format!("reserve-delete: {e}"));
    }
    let mut probe = Conn::connect(&config.addr).await?;
    let left = stats_tube_number(&mut probe, &config.tube, "current-jobs-ready").await?;
    let drained = if total.drained_conns == config.connections { "yes" } else { "no" };
    Ok(format!(
        "reserve-delete: conns={} pipeline={} prefilled={prefilled} pairs={} rate={}/s {} timed_out={} drained={drained} left={left} {}",
        config.connections,
        config.pipeline,
        total.pairs,
        rate_per_sec(total.pairs, elapsed),
        total.latencies.summary(),
        total.timed_out,
        total.errors,
    ))
}

/// One connection's reserve→delete cycles, until a reserve times out or the deadline passes.
async fn drain_loop(mut conn: Conn, pipeline: usize, deadline: Instant) -> Result<DrainRun, String> {
    assert!(pipeline >= 1);
    let mut run = DrainRun::default();
    // The ids reserved in the current batch, to delete.
    let mut ids: Vec<u64> = Vec::with_capacity(pipeline);
    while Instant::now() < deadline {
        let started = Instant::now();
        for _ in 0..pipeline {
            conn.queue(RESERVE_NOW);
        }
        conn.send().await?;
        ids.clear();
        let mut timed_out = 0;
        for _ in 0..pipeline {
            conn.read_answer(|answer| match answer {
                Answer::Reserved { id, .. } => ids.push(id),
                Answer::TimedOut => timed_out += 1,
                other => run.errors.note("reserve-with-timeout", &other),
            })
            .await?;
        }
        delete_all(&mut conn, &ids, started, &mut run).await?;
        if timed_out > 0 {
            run.timed_out += timed_out;
            run.drained_conns = 1;
            break;
        }
    }
    Ok(run)
}

/// Deletes the batch's reserved jobs, pipelined, timing each pair from the batch's start.
async fn delete_all(conn: &mut Conn, ids: &[u64], started: Instant, run: &mut DrainRun) -> Result<(), String> {
    if ids.is_empty() {
        return Ok(());
    }
    for &id in ids {
        conn.queue_with_number("delete", id);
    }
    conn.send().await?;
    for _ in ids {
        conn.read_answer(|answer| match answer {
            Answer::Deleted => {
                run.pairs += 1;
                run.latencies.record(started.elapsed());
            }
            other => run.errors.note("delete", &other),
        })
        .await?;
    }
    Ok(())
}
