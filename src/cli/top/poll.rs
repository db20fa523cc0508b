//! `top`'s looks at the server: every interval, `list-tubes`, then `stats-tube` of each tube
//! and `stats`, pipelined on one connection, each result handed to the screen. A failed look
//! drops the connection, and the next one connects again.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::stats::{self, Sample};
use crate::cli::bench::answer::Answer;
use crate::cli::bench::conn::Conn;

/// How long one look may take: a server that takes longer is shown as not answering.
const LOOK_TIMEOUT: Duration = Duration::from_secs(3);
/// `stats-tube` commands sent before their answers are read: the answers (about 300 bytes
/// each) must fit the socket buffers, or a server that stops reading until its answers are
/// taken (ours does) would wait on us while we wait on it.
const TUBES_PER_BATCH: usize = 64;

/// One look's outcome and when it ended.
pub type Look = (Result<Sample, String>, Instant);

/// Looks at `addr` every `interval` until `looks` is closed.
pub async fn run(addr: String, interval: Duration, looks: mpsc::Sender<Look>) {
    let mut conn: Option<Conn> = None;
    let mut next = Instant::now();
    loop {
        let result = match tokio::time::timeout(LOOK_TIMEOUT, look(&addr, &mut conn)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {LOOK_TIMEOUT:?}")),
        };
        if result.is_err() {
            conn = None;
        }
        if looks.send((result, Instant::now())).await.is_err() {
            return;
        }
        next = (next + interval).max(Instant::now());
        tokio::time::sleep_until(next).await;
    }
}

/// One look, connecting first if there is no connection.
async fn look(addr: &str, conn: &mut Option<Conn>) -> Result<Sample, String> {
    let conn = match conn {
        Some(conn) => conn,
        None => conn.insert(Conn::connect(addr).await?),
    };
    let names = conn
        .request(b"list-tubes\r\n", |a| match a {
            Answer::Ok { yaml } => Ok(stats::tube_names(yaml)),
            other => Err(format!("list-tubes: answered {}", other.describe())),
        })
        .await??;
    // A name that is not a tube name would not make a command; no server gives one.
    let names: Vec<String> = names.into_iter().filter(|n| crate::fsm::validate_tube_name(n).is_ok()).collect();
    let mut tubes = Vec::with_capacity(names.len());
    for batch in names.chunks(TUBES_PER_BATCH) {
        for name in batch {
            conn.queue(format!("stats-tube {name}\r\n").as_bytes());
        }
        conn.send().await?;
        for name in batch {
            // A tube dropped since the list (NOT_FOUND) is left out.
            let tube = conn
                .read_answer(|a| match a {
                    Answer::Ok { yaml } => stats::tube_stats(name, yaml).map(Some),
                    Answer::Other { line: b"NOT_FOUND" } => Ok(None),
                    other => Err(format!("stats-tube {name}: answered {}", other.describe())),
                })
                .await??;
            tubes.extend(tube);
        }
    }
    let server = conn
        .request(b"stats\r\n", |a| match a {
            Answer::Ok { yaml } => stats::server_stats(yaml),
            other => Err(format!("stats: answered {}", other.describe())),
        })
        .await??;
    Ok(Sample { server, tubes })
}
