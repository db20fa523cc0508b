//! The Raft log as raft-rs reads it (`raft::Storage`), kept in memory after the last snapshot
//! and made durable through the write-ahead log. Nothing here is acknowledged before `sync`.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};

use crate::storage::{Recovered, SnapshotWriter, StagedSnapshot, StorageError as WalError, Wal, WalBatch, WalWriter};

/// The log: the write-ahead log (which keeps the entries after the snapshot in memory too),
/// the conf state, and the latest snapshot with its data.
pub struct LogStore {
    conf_state: ConfState,
    /// The latest snapshot, data included: what a lagging follower is sent.
    snapshot: Snapshot,
    wal: Wal,
    /// Set when a peer needed a snapshot that the latest one cannot be (it predates the peer's
    /// joining, so the peer would refuse it): the driver then takes a fresh one.
    fresh_snapshot_wanted: std::cell::Cell<bool>,
}

impl LogStore {
    /// The log as the write-ahead log recovered it.
    pub fn new(wal: Wal, recovered: Recovered) -> Self {
        let snapshot = recovered.snapshot.unwrap_or_default();
        let conf_state = snapshot.get_metadata().get_conf_state().clone();
        LogStore { conf_state, snapshot, wal, fresh_snapshot_wanted: std::cell::Cell::new(false) }
    }

    /// Whether a peer asked for a snapshot newer than the latest (the flag clears).
    pub fn take_fresh_snapshot_wanted(&self) -> bool {
        self.fresh_snapshot_wanted.replace(false)
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    /// Appends entries, replacing any suffix they conflict with (buffered until `sync`).
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), WalError> {
        self.wal.append(entries)
    }

    /// Records raft's hard state. A new term or vote must be durable before any message that
    /// depends on it goes; a higher commit index alone need not, and waits for the next batch
    /// of entries rather than costing an fsync of its own.
    pub fn set_hard_state(&mut self, hs: &HardState) {
        let current = self.wal.hard_state();
        if hs.term == current.term && hs.vote == current.vote {
            self.wal.set_hard_state_lazily(hs);
        } else {
            self.wal.set_hard_state(hs);
        }
    }

    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Makes everything appended durable: one fsync (none when nothing is pending).
    #[cfg(test)]
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.wal.sync()
    }

    /// Closes what was appended since the last batch, for a `WalWriter` to make durable
    /// apart from the driver (see `Wal::take_batch`).
    pub fn take_batch(&mut self) -> Result<Option<WalBatch>, WalError> {
        self.wal.take_batch()
    }

    /// A writer of this log's batches; `None` for a log in memory.
    pub fn writer(&self) -> Option<WalWriter> {
        self.wal.writer()
    }

    /// A batch written apart failed: the log writes nothing more.
    pub fn poison(&mut self) {
        self.wal.poison();
    }

    /// Installs a snapshot from the leader: durable first (its file staged apart, or written
    /// here), then it replaces the log.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot, staged: Option<&StagedSnapshot>) -> Result<(), WalError> {
        match staged {
            Some(staged) => self.wal.adopt_staged_snapshot(&snapshot, staged)?,
            None => self.wal.save_snapshot(&snapshot)?,
        }
        self.conf_state = snapshot.get_metadata().get_conf_state().clone();
        self.snapshot = snapshot;
        Ok(())
    }

    /// Removes a staged snapshot file that will not be applied.
    pub fn discard_staged(&mut self, staged: StagedSnapshot) -> Result<(), WalError> {
        self.wal.discard_staged_snapshot(staged)
    }

    /// A writer of snapshot files apart from the driver; `None` for a log in memory.
    pub fn snapshot_writer(&self) -> Option<SnapshotWriter> {
        self.wal.snapshot_writer()
    }

    /// What a snapshot of our own applied state at `index` needs besides the state: its
    /// metadata, and a writer that can write it apart from the driver. `None` when the log
    /// keeps no snapshot files (`compact_to` then costs nothing) or has nothing to compact.
    pub fn snapshot_plan(&self, index: u64) -> Option<(SnapshotMetadata, SnapshotWriter)> {
        if index <= self.snapshot_index() {
            return None;
        }
        let term = self.wal.term(index)?;
        let writer = self.wal.snapshot_writer()?;
        let mut meta = SnapshotMetadata { index, term, ..SnapshotMetadata::default() };
        meta.set_conf_state(self.conf_state.clone());
        Some((meta, writer))
    }

    /// Makes a snapshot of our own state, which a `SnapshotWriter` wrote, the start of the
    /// log. Answers false, changing nothing, if a newer snapshot took its place meanwhile.
    /// A fresh snapshot asked for while this one was written is no longer wanted: raft asks
    /// again, and should this one not do, the ask stands again. (Kept, it made a second
    /// snapshot at once, which compacted the log past the one a joining node was being
    /// sent, so that node needed a second one too.)
    pub fn adopt_snapshot(&mut self, snapshot: Snapshot) -> Result<bool, WalError> {
        if snapshot.get_metadata().index <= self.snapshot_index() {
            return Ok(false);
        }
        self.wal.adopt_snapshot(&snapshot)?;
        self.snapshot = snapshot;
        self.fresh_snapshot_wanted.set(false);
        Ok(true)
    }

    /// Takes a snapshot of our own applied state at `index` and drops the log up to it. The
    /// state is encoded (`data`) only if the log keeps snapshots: a log in memory only has
    /// no use for it, and encoding a large state stalls the driver.
    pub fn compact_to(&mut self, index: u64, data: impl FnOnce() -> Vec<u8>) -> Result<(), WalError> {
        if index <= self.snapshot_index() {
            return Ok(());
        }
        let Some(term) = self.wal.term(index) else {
            return Ok(());
        };
        let mut snapshot = Snapshot::default();
        if self.wal.keeps_snapshots() {
            snapshot.set_data(data().into());
        }
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.conf_state.clone());
        self.wal.save_snapshot(&snapshot)?;
        self.snapshot = snapshot;
        Ok(())
    }
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState { hard_state: self.wal.hard_state().clone(), conf_state: self.conf_state.clone() })
    }

    fn entries(&self, low: u64, high: u64, max_size: impl Into<Option<u64>>, _context: GetEntriesContext) -> raft::Result<Vec<Entry>> {
        let first = self.wal.first_index();
        if low < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.wal.last_index() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let mut out = self.wal.entries()[(low - first) as usize..(high - first) as usize].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx < self.snapshot_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.wal.term(idx).ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.wal.first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.wal.last_index())
    }

    /// The latest snapshot, unless it is older than `request_index` or its membership does
    /// not name `to` (a node that joined after it refuses it for ever): then a fresh one is
    /// asked for, and raft tries again later. A log in memory only keeps no snapshot data past
    /// the first compaction; it belongs to a node that is its cluster's only member (`serve`
    /// without `-b`), which has no follower to send one to; should one ever ask, raft is told
    /// to try later rather than be sent an empty state.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        if !self.wal.keeps_snapshots() && self.snapshot.get_data().is_empty() && self.snapshot_index() > 0 {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        let cs = self.snapshot.get_metadata().get_conf_state();
        let names_peer = [&cs.voters, &cs.learners, &cs.voters_outgoing, &cs.learners_next].iter().any(|ids| ids.contains(&to));
        if !names_peer || self.snapshot_index() < request_index {
            self.fresh_snapshot_wanted.set(true);
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use raft::Storage as _;

    use super::*;
    use crate::storage::{SimDisk, WalOptions};

    fn store_with_snapshot_of(voters: Vec<u64>) -> LogStore {
        let (wal, recovered) = Wal::open(Arc::new(SimDisk::new()), "wal", WalOptions::default()).expect("opens");
        let mut store = LogStore::new(wal, recovered);
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = 5;
        snapshot.mut_metadata().term = 1;
        snapshot.mut_metadata().mut_conf_state().voters = voters;
        store.apply_snapshot(snapshot, None).expect("installs");
        store
    }

    /// A peer that the latest snapshot's membership does not name would refuse it for ever:
    /// the store answers "temporarily unavailable" and asks the driver for a fresh snapshot.
    #[test]
    fn snapshot_for_a_peer_it_does_not_name_waits_for_a_fresh_one() {
        let store = store_with_snapshot_of(vec![1, 2, 3]);
        assert_eq!(store.snapshot(0, 4), Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable)));
        assert!(store.take_fresh_snapshot_wanted());
        assert!(!store.take_fresh_snapshot_wanted(), "the request clears once taken");
        assert_eq!(store.snapshot(0, 2).map(|s| s.get_metadata().index), Ok(5));
        assert!(!store.take_fresh_snapshot_wanted());
        assert!(store.snapshot(6, 2).is_err(), "older than the requested index");
    }

    /// A snapshot written apart from the driver becomes the log's start when adopted, and
    /// survives a restart; one that a newer snapshot overtook while it was written is not
    /// adopted and changes nothing.
    #[test]
    fn snapshot_written_apart_is_adopted_unless_overtaken() {
        let disk = Arc::new(SimDisk::new());
        let (wal, recovered) = Wal::open(disk.clone(), "wal", WalOptions::default()).expect("opens");
        let mut store = LogStore::new(wal, recovered);
        let entries: Vec<Entry> = (1..=6).map(|index| Entry { index, term: 1, ..Entry::default() }).collect();
        store.append(&entries).unwrap();
        store.sync().unwrap();
        let write = |index: u64, store: &LogStore| {
            let (meta, mut writer) = store.snapshot_plan(index).expect("a plan");
            let mut snapshot = Snapshot::default();
            snapshot.set_data(vec![index as u8; 3].into());
            snapshot.set_metadata(meta);
            writer.write(&snapshot).expect("written");
            snapshot
        };
        let older = write(3, &store);
        let newer = write(5, &store);
        assert_eq!(store.first_index().unwrap(), 1, "nothing changes before adoption");
        // A peer asked for a snapshot while these were written: adopting one answers it.
        assert!(store.snapshot(4, 2).is_err());
        assert!(store.adopt_snapshot(newer).expect("adopted"));
        assert!(!store.take_fresh_snapshot_wanted(), "answered by the adopted snapshot");
        assert!(!store.adopt_snapshot(older).expect("refused without error"));
        assert_eq!((store.snapshot_index(), store.first_index().unwrap(), store.last_index().unwrap()), (5, 6, 6));
        assert!(store.snapshot_plan(5).is_none(), "nothing left to compact at 5");
        let (_, recovered) = Wal::open(disk, "wal", WalOptions::default()).expect("reopens");
        assert_eq!(recovered.snapshot.map(|s| (s.get_metadata().index, s.get_data().to_vec())), Some((5, vec![5; 3])));
        assert_eq!(recovered.entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![6]);
    }

    /// A log in memory compacts without asking for the state's encoding, and tells raft a
    /// snapshot is unavailable (rather than handing it an empty state) should one be asked.
    #[test]
    fn in_memory_compaction_encodes_no_snapshot() {
        let mut store = LogStore::new(Wal::in_memory(), Recovered::default());
        let entries: Vec<Entry> = (1..=3).map(|index| Entry { index, term: 1, ..Entry::default() }).collect();
        store.append(&entries).unwrap();
        store.sync().unwrap();
        store.compact_to(2, || panic!("the state was encoded")).unwrap();
        assert_eq!(store.snapshot_index(), 2);
        assert_eq!(store.first_index().unwrap(), 3);
        let asked = store.snapshot(2, 9);
        assert!(matches!(asked, Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable))), "{asked:?}");
    }
}
