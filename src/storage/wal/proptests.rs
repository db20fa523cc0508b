//! Property test of the write-ahead log on SimDisk: random appends, hard states, syncs,
//! snapshots, failing disks, crashes with random tears and reopens, against a plain model of
//! what the last acknowledged call made durable.
//!
//! The model is a `Recovered` kept by hand: `appended` mirrors the log's memory, `synced` is
//! what the last successful `sync` or `save_snapshot` made durable. A call that fails leaves
//! the durable state unknown among a few candidates (nothing of it, or all of it: batches are
//! atomic), so the harness then crashes or reopens at once and accepts any candidate.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use raft::eraftpb::{Entry, HardState, Snapshot};

use super::{Recovered, Wal, WalOptions};
use crate::storage::disk::{Disk, SimDisk};

const DIR: &str = "data";
const OPS_MAX: usize = 40;
const DEFAULT_CASES: u32 = 256;

#[derive(Clone, Debug)]
enum Op {
    /// Appends `count` entries starting `back` before the end (clamped to the first index).
    Append {
        back: u64,
        count: u64,
        term: u64,
    },
    SetHardState {
        term: u64,
        vote: u64,
        commit: u64,
    },
    Sync,
    /// A snapshot `back` entries before the end; agreeing with the log at its index, or not
    /// (then it may also lie `ahead` past the end, like one a leader sends).
    SaveSnapshot {
        back: u64,
        ahead: u64,
        agree: bool,
    },
    /// Fails the disk after `calls` more calls, runs `then`, and if it failed, crashes with
    /// `tear` (or, without a tear, just reopens, reading the page cache).
    Faulty {
        calls: u64,
        then: Box<Op>,
        tear: Option<u64>,
    },
    Crash {
        tear: Option<u64>,
    },
    Reopen,
}

fn plain_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4u64, 1..4u64, 1..5u64).prop_map(|(back, count, term)| Op::Append { back, count, term }),
        2 => (0..5u64, 0..4u64, 0..20u64).prop_map(|(term, vote, commit)| Op::SetHardState { term, vote, commit }),
        3 => Just(Op::Sync),
        1 => (0..6u64, 0..3u64, any::<bool>()).prop_map(|(back, ahead, agree)| Op::SaveSnapshot { back, ahead, agree }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let failing =
        prop_oneof![Just(Op::Sync), (0..6u64, 0..3u64, any::<bool>()).prop_map(|(back, ahead, agree)| Op::SaveSnapshot { back, ahead, agree })];
    prop_oneof![
        8 => plain_op(),
        1 => (0..14u64, failing, proptest::option::of(any::<u64>()))
            .prop_map(|(calls, then, tear)| Op::Faulty { calls, then: Box::new(then), tear }),
        1 => proptest::option::of(any::<u64>()).prop_map(|tear| Op::Crash { tear }),
        1 => Just(Op::Reopen),
    ]
}

fn entry(index: u64, term: u64) -> Entry {
    Entry { index, term, data: vec![index as u8; (index % 7) as usize].into(), ..Entry::default() }
}

/// The model's reading of the snapshot rules, written out plainly.
fn snapshot_index_term(state: &Recovered) -> (u64, u64) {
    state.snapshot.as_ref().map_or((0, 0), |s| (s.get_metadata().index, s.get_metadata().term))
}

fn last_index(state: &Recovered) -> u64 {
    state.entries.last().map_or(snapshot_index_term(state).0, |e| e.index)
}

fn term_at(state: &Recovered, index: u64) -> Option<u64> {
    let (snapshot_index, snapshot_term) = snapshot_index_term(state);
    if index == snapshot_index {
        return Some(snapshot_term);
    }
    state.entries.iter().find(|e| e.index == index).map(|e| e.term)
}

fn settled(hard_state: &HardState, state: &Recovered) -> HardState {
    let (index, term) = snapshot_index_term(state);
    let mut settled = hard_state.clone();
    settled.commit = settled.commit.max(index);
    settled.term = settled.term.max(term);
    settled
}

/// The state after saving a snapshot at (`index`, `term`).
fn with_snapshot(state: &Recovered, index: u64, term: u64) -> Recovered {
    let agrees = term_at(state, index) == Some(term);
    let entries = if agrees {
        state.entries.iter().filter(|e| e.index > index).cloned().collect()
    } else {
        Vec::new()
    };
    let mut snapshot = Snapshot { data: vec![term as u8; index as usize % 5].into(), ..Snapshot::default() };
    snapshot.mut_metadata().index = index;
    snapshot.mut_metadata().term = term;
    let mut next = Recovered { hard_state: state.hard_state.clone(), entries, snapshot: Some(snapshot) };
    next.hard_state = settled(&state.hard_state, &next);
    next
}

struct Harness {
    disk: SimDisk,
    /// How far segments grow ahead of their records (none, less than a batch, several).
    preallocate_bytes: u64,
    wal: Option<Wal>,
    appended: Recovered,
    synced: Recovered,
}

impl Harness {
    fn new(preallocate_bytes: u64) -> Harness {
        let disk = SimDisk::new();
        let mut harness = Harness { disk, preallocate_bytes, wal: None, appended: Recovered::default(), synced: Recovered::default() };
        harness.reopen(&[]);
        harness
    }

    fn wal(&mut self) -> &mut Wal {
        self.wal.as_mut().expect("the harness reopens after every failure")
    }

    /// Reopens and checks the recovered state is the synced one or one of `candidates`.
    fn reopen(&mut self, candidates: &[Recovered]) {
        self.wal = None;
        let disk: Arc<dyn Disk> = Arc::new(self.disk.clone());
        let options = WalOptions { segment_bytes_max: 96, preallocate_bytes: self.preallocate_bytes };
        let (wal, recovered) = Wal::open(disk, DIR, options).unwrap_or_else(|e| panic!("reopen failed: {e}"));
        let known = recovered == self.synced || candidates.contains(&recovered);
        assert!(known, "recovered {recovered:?}\nsynced {:?}\ncandidates {candidates:?}", self.synced);
        assert_eq!(wal.entries(), &recovered.entries[..]);
        assert_eq!(wal.hard_state(), &recovered.hard_state);
        self.wal = Some(wal);
        self.synced = recovered.clone();
        self.appended = recovered;
    }

    fn append(&mut self, back: u64, count: u64, term: u64) {
        let first_index = snapshot_index_term(&self.appended).0 + 1;
        let start = (last_index(&self.appended) + 1).saturating_sub(back).max(first_index);
        let entries: Vec<Entry> = (start..start + count).map(|index| entry(index, term)).collect();
        self.wal().append(&entries).expect("append");
        self.appended.entries.retain(|e| e.index < start);
        self.appended.entries.extend(entries);
    }

    fn set_hard_state(&mut self, term: u64, vote: u64, commit: u64) {
        let mut hard_state = HardState::default();
        (hard_state.term, hard_state.vote, hard_state.commit) = (term, vote, commit);
        self.wal().set_hard_state(&hard_state);
        self.appended.hard_state = settled(&hard_state, &self.appended);
    }

    /// Where a snapshot goes: never before the current one, and when disagreeing, after it.
    fn snapshot_point(&self, back: u64, ahead: u64, agree: bool) -> (u64, u64) {
        let (snapshot_index, _) = snapshot_index_term(&self.appended);
        let last = last_index(&self.appended);
        if agree {
            let index = last.saturating_sub(back).max(snapshot_index);
            (index, term_at(&self.appended, index).unwrap_or(0))
        } else {
            let index = (last.saturating_sub(back) + ahead).max(snapshot_index + 1);
            (index, term_at(&self.appended, index).map_or(7, |term| term + 1))
        }
    }

    /// Runs a call that makes things durable; on success the model's synced state follows,
    /// on failure the states it may have left durable are returned.
    fn durable_call(&mut self, op: &Op) -> Result<(), Vec<Recovered>> {
        match op {
            Op::Sync => {
                let result = self.wal().sync();
                let candidates = vec![self.appended.clone()];
                self.settle(result.is_ok(), candidates)
            }
            Op::SaveSnapshot { back, ahead, agree } => {
                let (index, term) = self.snapshot_point(*back, *ahead, *agree);
                let next = with_snapshot(&self.appended, index, term);
                let snapshot = next.snapshot.clone().expect("with_snapshot sets one");
                let result = self.wal().save_snapshot(&snapshot);
                let candidates = vec![self.appended.clone(), next.clone()];
                self.appended = next;
                self.settle(result.is_ok(), candidates)
            }
            _ => unreachable!("only syncs and snapshots make things durable"),
        }
    }

    fn settle(&mut self, succeeded: bool, candidates: Vec<Recovered>) -> Result<(), Vec<Recovered>> {
        if succeeded {
            self.synced = self.appended.clone();
            return Ok(());
        }
        Err(candidates)
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Append { back, count, term } => self.append(*back, *count, *term),
            Op::SetHardState { term, vote, commit } => self.set_hard_state(*term, *vote, *commit),
            Op::Sync | Op::SaveSnapshot { .. } => {
                if let Err(candidates) = self.durable_call(op) {
                    panic!("a healthy disk failed; durable state is one of {candidates:?}");
                }
            }
            Op::Faulty { calls, then, tear } => {
                self.disk.fail_after(Some(*calls));
                let result = self.durable_call(then);
                self.disk.fail_after(None);
                if let Err(candidates) = result {
                    if tear.is_some() {
                        self.disk.crash(*tear);
                    }
                    self.reopen(&candidates);
                }
            }
            Op::Crash { tear } => {
                self.disk.crash(*tear);
                self.reopen(&[]);
            }
            Op::Reopen => self.reopen(&[]),
        }
        let wal = self.wal.as_ref().expect("the harness reopens after every failure");
        assert_eq!(wal.entries(), &self.appended.entries[..]);
        assert_eq!(wal.hard_state(), &self.appended.hard_state);
    }
}

/// The case count: PROPTEST_CASES if set, else a count that keeps the suite fast in debug.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CASES);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    // Whatever the sequence of calls, faults and crashes, every reopen recovers exactly what
    // the last acknowledged call made durable (or, after a failed call, one of the states it
    // may have left), and the directory never holds more than one snapshot.
    #[test]
    fn reopen_recovers_the_synced_state(
        ops in proptest::collection::vec(op(), 1..OPS_MAX),
        preallocate_bytes in prop_oneof![Just(0u64), Just(20), Just(300)],
    ) {
        let mut harness = Harness::new(preallocate_bytes);
        for op in &ops {
            harness.run(op);
        }
        harness.disk.crash(None);
        harness.reopen(&[]);
        let names = harness.disk.list(Path::new(DIR)).expect("list");
        prop_assert!(names.iter().filter(|n| n.ends_with(".snap")).count() <= 1, "{names:?}");
    }
}
