//! The wakeup phase: how long a client blocked in `reserve` waits after a job is put for it.
//! One connection waits watching a tube of its own; another puts one job there. Samples run
//! one after another, so each measures a lone waiter woken by a lone put on an empty tube.

use std::time::{Duration, Instant};

use super::answer::Answer;
use super::conn::{stats_tube_number, use_tube, watch_only, Conn};
use super::measure::{Errors, Latencies};
use super::put::put_command;
use super::Config;

/// `stats-tube` polls, per sample, for the server to report the waiter as waiting before the
/// put is written. Without that a put could overtake the reserve and the sample would time a
/// reserve of a ready job instead of a wake-up.
const WAIT_CONFIRM_POLLS_MAX: u32 = 50;

/// Samples in a row the server may fail to confirm before the bench stops asking (it may not
/// count waiters in `stats-tube`) and only pauses before each put.
const UNCONFIRMED_IN_A_ROW_MAX: u32 = 10;

/// The pause before a put whose waiter was not confirmed: ample for a written `reserve` to
/// reach the server and be processed on loopback.
const UNCONFIRMED_PAUSE: Duration = Duration::from_millis(2);

/// The two connections of the phase and the waiter's tube.
struct Pair {
    waiter: Conn,
    putter: Conn,
    tube: String,
}

/// The wakeup phase; its report line.
pub async fn run(config: &Config) -> Result<String, String> {
    let tube = format!("{}-wakeup", config.tube);
    let mut waiter = Conn::connect(&config.addr).await?;
    watch_only(&mut waiter, &tube).await?;
    let mut putter = Conn::connect(&config.addr).await?;
    use_tube(&mut putter, &tube).await?;
    let mut pair = Pair { waiter, putter, tube };
    let command = put_command(config.body_bytes);
    let mut latencies = Latencies::with_capacity(config.wakeup_samples);
    let mut errors = Errors::default();
    let mut unconfirmed: u64 = 0;
    let mut unconfirmed_in_a_row: u32 = 0;
    for _ in 0..config.wakeup_samples {
        pair.waiter.queue(b"reserve\r\n");
        pair.waiter.send().await?;
        let confirmed = unconfirmed_in_a_row < UNCONFIRMED_IN_A_ROW_MAX && confirm_waiting(&mut pair).await?;
        if !confirmed {
            unconfirmed += 1;
            unconfirmed_in_a_row += 1;
            tokio::time::sleep(UNCONFIRMED_PAUSE).await;
        } else {
            unconfirmed_in_a_row = 0;
        }
        let (latency, id) = sample(&mut pair, &command).await?;
        latencies.record(latency);
        pair.waiter.queue_with_number("delete", id);
        pair.waiter.send().await?;
        pair.waiter
            .read_answer(|answer| {
                if answer != Answer::Deleted {
                    errors.note("delete", &answer)
                }
            })
            .await?;
    }
    Ok(format!("wakeup: samples={} body={}B {} unconfirmed={unconfirmed} {errors}", latencies.count(), config.body_bytes, latencies.summary(),))
}

/// Whether the server reports the waiter as waiting on its tube, polling a few times.
async fn confirm_waiting(pair: &mut Pair) -> Result<bool, String> {
    for _ in 0..WAIT_CONFIRM_POLLS_MAX {
        if stats_tube_number(&mut pair.putter, &pair.tube, "current-waiting").await? >= 1 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Puts one job and reads both the put's answer and the waiter's `RESERVED`; the time from
/// just before the put is written to the `RESERVED`, and the reserved id. An unexpected answer
/// ends the phase: the waiter would be left waiting, and the next sample would not be clean.
async fn sample(pair: &mut Pair, command: &[u8]) -> Result<(Duration, u64), String> {
    let Pair { waiter, putter, .. } = pair;
    let started = Instant::now();
    putter.queue(command);
    putter.send().await?;
    let put = async {
        putter
            .read_answer(|answer| match answer {
                Answer::Inserted { id } => Ok(id),
                other => Err(format!("wakeup: put answered {}", other.describe())),
            })
            .await?
    };
    let reserve = async {
        waiter
            .read_answer(|answer| match answer {
                Answer::Reserved { id, .. } => Ok((started.elapsed(), id)),
                other => Err(format!("wakeup: reserve answered {}", other.describe())),
            })
            .await?
    };
    let (put_id, (latency, reserved_id)) = tokio::try_join!(put, reserve)?;
    if put_id != reserved_id {
        return Err(format!("wakeup: put job {put_id} but the waiter reserved job {reserved_id}"));
    }
    Ok((latency, reserved_id))
}
