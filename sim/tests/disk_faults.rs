//! A full disk (ENOSPC) and a failing fsync (EIO) stop a lone node, as `serve -b` runs one,
//! with an error naming the cause and the file, never a write acknowledged that was not
//! durable: once the disk has room again, or after the crash that follows a failed fsync,
//! the node starts again holding every write it acknowledged.
#![cfg(madsim)]

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use coolbeans::fsm::{Op, Reply};
use coolbeans::node::{NodeHandle, NodeStop};
use coolbeans_sim::cluster::{Cluster, NodeSetup};
use coolbeans_sim::lone_node::restart;
use coolbeans_sim::trace::Trace;

/// Seeds run for each fault, unless COOLBEANS_SIM_SEEDS says how many.
const SEEDS_DEFAULT: u64 = 8;

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The file system has this many bytes of room left.
    Full { room: u64 },
    /// Every fsync fails with EIO.
    FailedSync,
}

/// Puts a job of a new body; answers its id, or the node's refusal.
async fn put(node: &NodeHandle, n: u64) -> Result<(u64, Bytes), String> {
    let body = Bytes::from(format!("job {n} {}", "x".repeat(200)));
    let op = Op::Put { client: None, tube: "default".into(), pri: 0, delay_secs: 0, ttr_secs: 60, body: body.clone() };
    match node.propose(op, None).await {
        Ok(Reply::Put { id }) => Ok((id, body)),
        Ok(other) => Err(format!("a put answered {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Puts until the node stops; every put acknowledged goes into `acked`.
async fn put_until_stopped(node: &NodeHandle, acked: &mut BTreeMap<Bytes, u64>, from: u64) -> Result<String, String> {
    let mut n = from;
    let writes = async {
        loop {
            n += 1;
            if let Ok((id, body)) = put(node, n).await {
                acked.insert(body, id);
            }
            madsim::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let stop = tokio::select! {
        stop = node.stopped() => stop,
        () = writes => unreachable!("the writes never end"),
        () = madsim::time::sleep(Duration::from_secs(60)) => return Err("the node did not stop within 60 s of the fault".into()),
    };
    match stop {
        NodeStop::Failed(why) => Ok(why),
        other => Err(format!("the node stopped, but not as failed: {other}")),
    }
}

async fn fault_then_restart(fault: Fault) -> Result<usize, String> {
    // Snapshots every few entries, so the fault may meet a snapshot's write as well as a log's.
    let setup = NodeSetup { snapshot_entries: 40, ..NodeSetup::default() };
    let mut cluster = Cluster::start(1, setup, Trace::new());
    cluster.await_leader(Duration::from_secs(10), None).await.ok_or("no leader")?;
    let node = cluster.handle(1).ok_or("the node does not run")?;
    let mut acked = BTreeMap::new();
    for n in 0..30 {
        let (id, body) = put(&node, n).await?;
        acked.insert(body, id);
    }
    let disk = cluster.nodes.get(&1).ok_or("no node 1")?.disk.clone();
    match fault {
        Fault::Full { room } => disk.fill_at(Some(disk.used_bytes() + room)),
        Fault::FailedSync => disk.fail_syncs(),
    }
    let why = put_until_stopped(&node, &mut acked, 30).await?;
    let cause = match fault {
        Fault::Full { .. } => "No space left on device",
        Fault::FailedSync => "Input/output error",
    };
    if !why.contains(cause) || !why.contains("data/") {
        return Err(format!("the node stopped with {why:?}, which names no file or not the cause ({cause})"));
    }
    // The process dies (its unsynced writes with it), the operator makes room, it starts again.
    cluster.kill(1);
    disk.fill_at(None);
    let jobs = restart(&mut cluster).await?;
    for (body, id) in &acked {
        if jobs.get(body) != Some(id) {
            return Err(format!("acknowledged job {id} is not there after the restart ({} of {} kept)", jobs.len(), acked.len()));
        }
    }
    Ok(acked.len())
}

fn sweep(fault: impl Fn(u64) -> Fault) {
    let seeds = std::env::var("COOLBEANS_SIM_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(SEEDS_DEFAULT);
    for seed in 1..=seeds {
        let fault = fault(seed);
        let acked = coolbeans_sim::in_fresh_world(seed, move || fault_then_restart(fault));
        let acked = acked.unwrap_or_else(|e| panic!("{fault:?}, seed {seed}: {e}"));
        eprintln!("{fault:?}, seed {seed}: {acked} acknowledged puts kept");
    }
}

#[test]
fn a_full_disk_stops_the_node_and_loses_nothing_acknowledged() {
    // From no room at all to a few records' worth.
    sweep(|seed| Fault::Full { room: (seed - 1) * 700 });
}

#[test]
fn a_failed_fsync_stops_the_node_and_loses_nothing_acknowledged() {
    sweep(|_| Fault::FailedSync);
}
