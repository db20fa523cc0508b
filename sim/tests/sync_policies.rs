//! Power loss under each sync policy of `serve -b` (every sync, `-f MS`, `-F`): a lone node, as
//! `serve` runs one, takes puts and deletes while its log is compacted every few entries, and
//! loses power again and again: right after a compaction, at a random moment while it is
//! written to, or a while after the writes stopped. Each time it must start again from what
//! its disk kept (no "corrupt snapshot"), holding the writes of a prefix of those it was given
//! (no hole, nothing invented) that covers every write its policy promised: every acknowledged
//! one (every sync); those acknowledged longer ago than the interval and the timer's period
//! (`-f`); those the last snapshot holds (`-F`, and every policy).
#![cfg(madsim)]

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use coolbeans::fsm::{Op, Reply};
use coolbeans::node::NodeHandle;
use coolbeans::storage::SyncPolicy;
use coolbeans_sim::cluster::{Cluster, NodeSetup};
use coolbeans_sim::lone_node::restart;
use coolbeans_sim::trace::Trace;
use madsim::time::Instant;
use rand::Rng;

/// The `-f` interval under test.
const INTERVAL: Duration = Duration::from_millis(100);
/// Power losses in one world.
const ROUNDS: usize = 12;
/// Seeds run for each policy, unless COOLBEANS_SIM_SEEDS says how many.
const SEEDS_DEFAULT: u64 = 16;
/// Entries between snapshots: small, so that most rounds see several compactions.
const SNAPSHOT_ENTRIES: u64 = 16;

/// When the power goes.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// As soon as a compaction is seen, after writing for a while.
    AfterCompaction,
    /// At a random moment while writes go on.
    WhileWriting,
    /// A random while after the writes stopped: what is owed then is the `-f` timer's to sync.
    AfterWrites,
}

const MOMENTS: [Moment; 3] = [Moment::AfterCompaction, Moment::WhileWriting, Moment::AfterWrites];

/// A write given to the node. Bodies are unique, so the node's jobs show which writes it kept.
#[derive(Clone, Debug)]
enum Write {
    Put { body: Bytes },
    Delete { id: u64, body: Bytes },
}

/// A write the node acknowledged: when, and its applied index just after (the entry holding
/// the write is at or below it).
struct Acked {
    write: Write,
    /// The id a put got.
    id: u64,
    at: Instant,
    applied: u64,
}

/// The writes given to the node since it last started.
#[derive(Default)]
struct Round {
    /// The jobs (id → body) it held when it started.
    start: BTreeMap<u64, Bytes>,
    /// The jobs it holds after the writes acknowledged so far.
    live: BTreeMap<u64, Bytes>,
    acked: Vec<Acked>,
    /// The write out when the power went, if any: it may have been kept or not.
    in_flight: Option<Write>,
    /// Writes given so far, for unique bodies.
    count: u64,
}

/// What a world saw, to show the policies were exercised.
#[derive(Debug, Default)]
struct Seen {
    acked: usize,
    /// Acknowledged writes that a power loss took (allowed where the policy did not promise
    /// them).
    lost: usize,
    /// Power losses with a compaction since the node last started.
    compacted: usize,
}

/// Gives the node random puts and deletes, a few milliseconds apart, until `until` (for ever
/// without it).
async fn write(node: &NodeHandle, round: &mut Round, until: Option<Instant>) -> Result<(), String> {
    while until.is_none_or(|until| Instant::now() < until) {
        let gap = madsim::rand::thread_rng().gen_range(1..=20);
        madsim::time::sleep(Duration::from_millis(gap)).await;
        let write = next_write(round);
        round.in_flight = Some(write.clone());
        let op = match &write {
            Write::Put { body } => Op::Put { client: None, tube: "default".into(), pri: 0, delay_secs: 0, ttr_secs: 60, body: body.clone() },
            Write::Delete { id, .. } => Op::Delete { client: None, id: *id },
        };
        let reply = node.propose(op, None).await.map_err(|e| format!("{write:?} failed: {e}"))?;
        let id = match (&write, reply) {
            (Write::Put { body }, Reply::Put { id }) => {
                round.live.insert(id, body.clone());
                id
            }
            (Write::Delete { id, .. }, Reply::Done) => {
                round.live.remove(id);
                *id
            }
            (write, reply) => return Err(format!("{write:?} answered {reply:?}")),
        };
        round.in_flight = None;
        round.acked.push(Acked { write, id, at: Instant::now(), applied: node.status().applied_index });
    }
    Ok(())
}

/// A put of a new body (of 10 to 1500 bytes, so batches cross the log's preallocated space)
/// or, a third of the time, the delete of a job the node holds.
fn next_write(round: &mut Round) -> Write {
    let mut rng = madsim::rand::thread_rng();
    round.count += 1;
    if !round.live.is_empty() && rng.gen_ratio(1, 3) {
        let nth = rng.gen_range(0..round.live.len());
        let (id, body) = round.live.iter().nth(nth).expect("a live job");
        return Write::Delete { id: *id, body: body.clone() };
    }
    let mut body = format!("write {} ", round.count).into_bytes();
    body.resize(rng.gen_range(10..1500).max(body.len()), b'x');
    Write::Put { body: body.into() }
}

/// Writes until the moment comes, then cuts the power; answers when it went, and the snapshot
/// index the node had then.
async fn write_then_lose_power(cluster: &mut Cluster, round: &mut Round, moment: Moment) -> Result<(Instant, u64), String> {
    let node = cluster.handle(1).ok_or("the node does not run")?;
    let writing = Duration::from_millis(madsim::rand::thread_rng().gen_range(50..2000));
    match moment {
        Moment::AfterCompaction => {
            tokio::select! {
                written = write(&node, round, None) => written?,
                () = compaction_after(cluster, writing) => {}
            }
        }
        Moment::WhileWriting => {
            tokio::select! {
                written = write(&node, round, None) => written?,
                () = madsim::time::sleep(writing) => {}
            }
        }
        Moment::AfterWrites => {
            write(&node, round, Some(Instant::now() + writing)).await?;
            let quiet = madsim::rand::thread_rng().gen_range(0..4 * INTERVAL.as_millis() as u64);
            madsim::time::sleep(Duration::from_millis(quiet)).await;
        }
    }
    let snapshot_index = cluster.status(1).ok_or("the node does not run")?.snapshot_index;
    let lost_at = Instant::now();
    cluster.kill(1);
    Ok((lost_at, snapshot_index))
}

/// Completes as soon as a compaction is seen after `after`.
async fn compaction_after(cluster: &Cluster, after: Duration) {
    madsim::time::sleep(after).await;
    let snapshot_index = |c: &Cluster| c.status(1).map_or(0, |s| s.snapshot_index);
    let before = snapshot_index(cluster);
    while snapshot_index(cluster) <= before {
        madsim::time::sleep(Duration::from_millis(1)).await;
    }
}

/// How many of the round's acknowledged writes the policy promised to keep through a power
/// loss at `lost_at`, when the node's latest snapshot was at `snapshot_index`.
fn promised(round: &Round, policy: SyncPolicy, lost_at: Instant, snapshot_index: u64) -> usize {
    let by_snapshot = round.acked.iter().take_while(|a| a.applied <= snapshot_index).count();
    let by_policy = match (policy, policy.unsynced_at_most()) {
        (SyncPolicy::Always, _) => round.acked.len(),
        // Strictly before: a timer's sync due at the very moment may come after the loss.
        (_, Some(unsynced)) => round.acked.iter().take_while(|a| a.at + unsynced < lost_at).count(),
        (_, None) => 0,
    };
    by_snapshot.max(by_policy)
}

/// How many of the round's writes (the one in flight last) the node's jobs (body → id) hold:
/// they must be those of a prefix, with the ids acknowledged. The longest such prefix, as a
/// put and then the delete of its job leave the jobs as they were.
fn prefix_kept(round: &Round, jobs: &BTreeMap<Bytes, u64>) -> Result<usize, String> {
    // Body → id, `None` for a put never acknowledged.
    let mut held: BTreeMap<Bytes, Option<u64>> = round.start.iter().map(|(id, body)| (body.clone(), Some(*id))).collect();
    let matches = |held: &BTreeMap<Bytes, Option<u64>>| {
        held.len() == jobs.len() && held.iter().all(|(body, id)| jobs.get(body).is_some_and(|j| id.is_none_or(|id| id == *j)))
    };
    let mut kept = matches(&held).then_some(0);
    let writes = round.acked.iter().map(|a| (&a.write, Some(a.id))).chain(round.in_flight.iter().map(|w| (w, None)));
    for (count, (write, id)) in writes.enumerate() {
        match write {
            Write::Put { body } => held.insert(body.clone(), id),
            Write::Delete { body, .. } => held.remove(body),
        };
        if matches(&held) {
            kept = Some(count + 1);
        }
    }
    kept.ok_or_else(|| {
        format!(
            "the node's {} jobs are no prefix of the {} writes given (a hole, or a write invented); ids: {:?}",
            jobs.len(),
            round.acked.len() + usize::from(round.in_flight.is_some()),
            jobs.values().collect::<Vec<_>>()
        )
    })
}

/// One world: a lone node under `policy` loses power `ROUNDS` times.
async fn lose_power_again_and_again(policy: SyncPolicy) -> Result<Seen, String> {
    // Buggify rolls the log over to new segments now and then, and snapshots at odd moments.
    coolbeans::chaos::buggify::enable(true);
    let setup = NodeSetup { snapshot_entries: SNAPSHOT_ENTRIES, sync_policy: policy, ..NodeSetup::default() };
    let mut cluster = Cluster::start(1, setup, Trace::new());
    cluster.await_leader(Duration::from_secs(10), None).await.ok_or("no leader")?;
    let mut seen = Seen::default();
    let mut round = Round::default();
    for n in 0..ROUNDS {
        let moment = MOMENTS[n % MOMENTS.len()];
        let started_at_snapshot = cluster.status(1).ok_or("the node does not run")?.snapshot_index;
        let (lost_at, snapshot_index) = write_then_lose_power(&mut cluster, &mut round, moment).await?;
        seen.compacted += usize::from(snapshot_index > started_at_snapshot);
        let jobs = restart(&mut cluster).await.map_err(|e| format!("round {n} ({moment:?}): {e}"))?;
        let kept = prefix_kept(&round, &jobs).map_err(|e| format!("round {n} ({moment:?}): {e}"))?;
        let promised = promised(&round, policy, lost_at, snapshot_index);
        if kept < promised {
            return Err(format!(
                "round {n} ({moment:?}): {kept} of {} acknowledged writes kept, {promised} promised (snapshot at {snapshot_index})",
                round.acked.len()
            ));
        }
        seen.acked += round.acked.len();
        seen.lost += round.acked.len().saturating_sub(kept);
        let live: BTreeMap<u64, Bytes> = jobs.into_iter().map(|(body, id)| (id, body)).collect();
        round = Round { start: live.clone(), live, count: round.count, ..Round::default() };
    }
    Ok(seen)
}

/// Runs a world for each seed; a seed that fails names itself.
fn sweep(policy: SyncPolicy) -> Vec<Seen> {
    let seeds = std::env::var("COOLBEANS_SIM_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(SEEDS_DEFAULT);
    (1..=seeds)
        .map(|seed| {
            let seen = coolbeans_sim::in_fresh_world(seed, move || lose_power_again_and_again(policy));
            let seen = seen.unwrap_or_else(|e| panic!("{policy:?}, seed {seed}: {e}"));
            eprintln!("{policy:?}, seed {seed}: {seen:?}");
            seen
        })
        .collect()
}

#[test]
fn every_sync_keeps_every_acknowledged_write() {
    let seen = sweep(SyncPolicy::Always);
    assert!(seen.iter().all(|s| s.lost == 0), "{seen:?}");
}

#[test]
fn f_keeps_the_writes_older_than_its_interval() {
    let seen = sweep(SyncPolicy::AtMostEvery(INTERVAL));
    assert!(seen.iter().any(|s| s.lost > 0), "no power loss took a write: the policy never put a sync off? {seen:?}");
}

#[test]
#[allow(non_snake_case)]
fn F_keeps_the_snapshot_and_a_prefix_of_the_log() {
    let seen = sweep(SyncPolicy::Never);
    assert!(seen.iter().any(|s| s.lost > 0), "no power loss took a write: the policy never put a sync off? {seen:?}");
}
