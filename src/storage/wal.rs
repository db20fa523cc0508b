//! The write-ahead log: raft entries and hard states, appended in batches to segment files,
//! one fsync per batch, with snapshots that let old segments go.
//!
//! The Raft driver appends a Ready's entries and hard state, then calls [`Wal::sync`] once
//! (group commit) before it sends anything that depends on them. A batch is durable when
//! `sync` returns and not before; recovery applies whole batches only (see `recovery.rs`).
//!
//! Segments grow ahead of their records by zeros, a chunk at a time, and batches overwrite
//! those zeros: an fdatasync of a write that does not change the file's size or allocation
//! flushes the data alone, not the inode and allocation metadata with it (on ext4 here, one
//! device round trip instead of three, and a third less CPU per fsync).
//!
//! [`Wal::save_snapshot`] writes the snapshot file, then starts a fresh segment holding the
//! hard state and the entries the snapshot does not cover, then removes the older segments.
//! A crash between any two of those steps recovers to the state before or after the save.

use std::mem;
use std::path::PathBuf;
use std::sync::Arc;

use raft::eraftpb::{Entry, HardState, Snapshot, SnapshotMetadata};

use super::compaction::{dropped_count, settle_hard_state};
use super::data_dir::DataDir;
use super::disk::Disk;
use super::error::StorageError;
use super::names::{segment_name, snapshot_name, temp_name};
use super::record::{self, RecordKind};
use super::recovery;
use super::replace::replace_log;
use super::snapshot_file::{self, StagedSnapshot};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

/// How the log lays out its files.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// A batch goes to a new segment once the current one has reached this size, so no
    /// single file grows without bound between snapshots.
    pub segment_bytes_max: u64,
    /// How far a segment's file grows past its records when a batch reaches its end: one
    /// slower write per this many bytes of log, and plain overwrites in between. Zero grows
    /// files by each batch alone.
    pub preallocate_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions { segment_bytes_max: 64 * 1024 * 1024, preallocate_bytes: 1024 * 1024 }
    }
}

/// What a data directory held when it was opened.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recovered {
    /// The last synced hard state, its commit and term raised to the snapshot's if lower.
    pub hard_state: HardState,
    /// The entries after the snapshot: contiguous, ascending, the first at the snapshot's
    /// index plus one.
    pub entries: Vec<Entry>,
    /// The newest snapshot, if one was ever saved.
    pub snapshot: Option<Snapshot>,
}

/// The segment batches are appended to.
struct Segment {
    /// Its number: segments replay in this order.
    sequence: u64,
    /// The size of its records: past `segment_bytes_max`, the next batch starts a new
    /// segment; the next batch is written at this offset.
    size_bytes: u64,
    /// The size of its file: zeros after the records, up to here, were written (preallocated).
    file_bytes: u64,
    /// Whether its name is not yet durable: the first batch in it also syncs the directory.
    is_new: bool,
}

/// A write-ahead log in one data directory, or only in memory.
pub struct Wal {
    /// Where batches and snapshots are written; `None` for a log kept only in memory
    /// ([`Wal::in_memory`]), which encodes and writes nothing.
    dir: Option<DataDir>,
    options: WalOptions,
    /// The entries after the snapshot, as appended (synced or not): contiguous, ascending,
    /// the first at `snapshot.index + 1`. Kept to answer raft's reads and to carry over into
    /// the fresh segment a snapshot starts.
    entries: Vec<Entry>,
    /// The newest hard state set, settled against the snapshot (as recovery would return it).
    hard_state: HardState,
    /// The newest snapshot saved (all zero before the first).
    snapshot: SnapshotMetadata,
    /// Records appended since the last sync, encoded, in order.
    pending: Vec<u8>,
    /// Whether `hard_state` changed since the last sync and must be in the next batch.
    pending_hard_state: bool,
    /// Whether `hard_state` changed in a way that may wait: it goes with the next batch
    /// written for another reason, but makes none of its own.
    lazy_hard_state: bool,
    /// Where the next batch goes; `None` until the first batch of a new directory.
    segment: Option<Segment>,
    /// Set when a write or fsync failed: what reached the disk is then unknown (a failed
    /// fsync may even have dropped dirty pages), so nothing more is written until reopened.
    poisoned: bool,
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`, relative to the disk's root, and returns
    /// what it holds. A torn tail left by a crash is cut away; any other damage is an error.
    pub fn open(disk: Arc<dyn Disk>, dir: impl Into<PathBuf>, options: WalOptions) -> Result<(Wal, Recovered), StorageError> {
        let mut dir = DataDir::open(disk, dir.into())?;
        let found = recovery::recover(&mut dir)?;
        let snapshot = found.snapshot.as_ref().map(|s| s.get_metadata().clone()).unwrap_or_default();
        let segment = found.last_segment.map(|(sequence, size_bytes)| Segment { sequence, size_bytes, file_bytes: size_bytes, is_new: false });
        let wal = Wal {
            dir: Some(dir),
            options,
            entries: found.entries.clone(),
            hard_state: found.hard_state.clone(),
            snapshot,
            pending: Vec::new(),
            pending_hard_state: false,
            lazy_hard_state: false,
            segment,
            poisoned: false,
        };
        let recovered = Recovered { hard_state: found.hard_state, entries: found.entries, snapshot: found.snapshot };
        Ok((wal, recovered))
    }

    /// A log that lives only in memory and starts empty: what it holds is lost with it, as
    /// `serve` without `-b` promises. `sync` and `save_snapshot` write nothing, so its
    /// entries are never encoded and a snapshot's data is not kept (see
    /// [`Wal::keeps_snapshots`]).
    pub fn in_memory() -> Wal {
        Wal {
            dir: None,
            options: WalOptions::default(),
            entries: Vec::new(),
            hard_state: HardState::default(),
            snapshot: SnapshotMetadata::default(),
            pending: Vec::new(),
            pending_hard_state: false,
            lazy_hard_state: false,
            segment: None,
            poisoned: false,
        }
    }

    /// Whether snapshots are written to disk, so their data is worth encoding.
    pub fn keeps_snapshots(&self) -> bool {
        self.dir.is_some()
    }

    /// Appends `entries` (consecutive indexes) to the next batch. The first may be at any
    /// index from the first index to one past the last: raft's conflict resolution, which
    /// replaces the log from there on. Nothing is durable until [`Wal::sync`].
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.check_not_poisoned()?;
        let Some(first) = entries.first() else { return Ok(()) };
        let (first_index, last_index) = (self.first_index(), self.last_index());
        let starts_in_range = first.index >= first_index && first.index <= last_index + 1;
        let misplaced = if starts_in_range {
            entries.iter().zip(first.index..).find(|(entry, expected)| entry.index != *expected).map(|(e, _)| e.index)
        } else {
            Some(first.index)
        };
        if let Some(index) = misplaced {
            return Err(StorageError::NotContiguous { index, first_index, last_index });
        }
        // A log in memory only writes nothing, so it encodes no records either.
        let to_write = if self.dir.is_some() { entries } else { &[] };
        let pending_bytes = self.pending.len();
        for entry in to_write {
            if let Err(error) = record::encode(RecordKind::Entry, entry, &mut self.pending) {
                self.pending.truncate(pending_bytes);
                return Err(error);
            }
        }
        self.entries.truncate((first.index - self.first_index()) as usize);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    /// Sets the hard state the next batch records. Its commit and term are raised to the
    /// snapshot's if lower (a no-op for raft, which never lowers them), so that what this
    /// log holds in memory is what a reopen would return.
    pub fn set_hard_state(&mut self, hard_state: &HardState) {
        self.hard_state = settle_hard_state(hard_state, &self.snapshot);
        self.pending_hard_state = true;
    }

    /// As `set_hard_state`, for a change that need not be durable before anything depends on
    /// it (a higher commit index, which a restarted node learns again from the leader): it is
    /// recorded with the next batch that is written anyway, and causes none by itself.
    pub fn set_hard_state_lazily(&mut self, hard_state: &HardState) {
        self.hard_state = settle_hard_state(hard_state, &self.snapshot);
        self.lazy_hard_state = true;
    }

    /// Writes everything appended since the last sync as one batch and fsyncs it once.
    /// Returns only when the batch is durable; with nothing pending, does nothing.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        let Some(batch) = self.take_batch()? else { return Ok(()) };
        let Some(dir) = self.dir.as_mut() else { return Ok(()) };
        let written = batch.write_to(dir);
        self.poisoned = written.is_err();
        written
    }

    /// Closes everything appended since the last sync into one batch for a [`WalWriter`] to
    /// write apart from the log, so its owner goes on while the disk works. Batches must be
    /// written in the order taken, each after the previous one is durable, and nothing else
    /// may write the log (no `sync`, no snapshot) while one is out. `None` when nothing is
    /// pending, and always for a log in memory (whose batches need no writing).
    pub fn take_batch(&mut self) -> Result<Option<WalBatch>, StorageError> {
        self.check_not_poisoned()?;
        if self.pending.is_empty() && !self.pending_hard_state {
            return Ok(None);
        }
        if self.dir.is_none() {
            self.pending_hard_state = false;
            return Ok(None);
        }
        let mut bytes = mem::take(&mut self.pending);
        if self.pending_hard_state || self.lazy_hard_state {
            record::encode(RecordKind::HardState, &self.hard_state, &mut bytes)?;
        }
        record::encode_empty(RecordKind::BatchEnd, &mut bytes)?;
        let records_bytes = bytes.len();
        let segment = segment_for_batch(&mut self.segment, self.options.segment_bytes_max);
        let new_segment = segment.is_new;
        let offset = segment.size_bytes;
        segment.size_bytes += records_bytes as u64;
        if segment.size_bytes > segment.file_bytes {
            segment.file_bytes = segment.size_bytes + self.options.preallocate_bytes;
            bytes.resize((segment.file_bytes - offset) as usize, 0);
        }
        segment.is_new = false;
        let segment = segment_name(segment.sequence);
        self.pending_hard_state = false;
        self.lazy_hard_state = false;
        Ok(Some(WalBatch { segment, offset, bytes, records_bytes, new_segment }))
    }

    /// A writer of this log's batches that works apart from it; `None` for a log in memory.
    pub fn writer(&self) -> Option<WalWriter> {
        self.dir.as_ref().map(|dir| WalWriter { dir: dir.another_handle() })
    }

    /// Marks the log failed after a batch written apart failed: what reached the disk is
    /// then unknown, so nothing more is written until reopened.
    pub fn poison(&mut self) {
        self.poisoned = true;
    }

    /// Saves `snapshot` and compacts the log: the entries it covers go, and so do all the
    /// others if the log disagrees with it at its index (a snapshot from a leader whose
    /// history replaced ours). Syncs any pending batch (and the hard state) first. Durable
    /// when it returns.
    pub fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.put_snapshot(snapshot, SnapshotFile::ToWrite)
    }

    /// A writer of snapshot files that works apart from the log (a large state takes long to
    /// encode and write); `None` for a log in memory. The log then adopts what it wrote.
    pub fn snapshot_writer(&self) -> Option<SnapshotWriter> {
        self.dir.as_ref().map(|dir| SnapshotWriter { dir: dir.another_handle() })
    }

    /// As `save_snapshot`, for a snapshot whose file a `SnapshotWriter` already put in place.
    pub fn adopt_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.put_snapshot(snapshot, SnapshotFile::Written)
    }

    /// As `save_snapshot`, for a snapshot whose file a `SnapshotWriter` staged: only its
    /// renaming is left to do.
    pub fn adopt_staged_snapshot(&mut self, snapshot: &Snapshot, staged: &StagedSnapshot) -> Result<(), StorageError> {
        assert_eq!(staged.index(), snapshot.get_metadata().index, "a staged file is adopted for its own snapshot");
        self.put_snapshot(snapshot, SnapshotFile::Staged(staged))
    }

    /// Removes a staged snapshot file that will not be adopted.
    pub fn discard_staged_snapshot(&mut self, staged: StagedSnapshot) -> Result<(), StorageError> {
        match self.dir.as_mut() {
            Some(dir) => dir.remove(staged.temp()),
            None => Ok(()),
        }
    }

    fn put_snapshot(&mut self, snapshot: &Snapshot, file: SnapshotFile<'_>) -> Result<(), StorageError> {
        self.check_not_poisoned()?;
        let index = snapshot.get_metadata().index;
        if index < self.snapshot.index {
            return Err(StorageError::SnapshotOutOfDate { index, saved_index: self.snapshot.index });
        }
        // The hard state goes into this batch even if unchanged: it may so far be durable
        // only as derived from the snapshot being replaced (its term raised to that one's),
        // and must not depend on that snapshot once the new one is in place.
        self.pending_hard_state = true;
        self.sync()?;
        let saved = self.install_snapshot(snapshot, file);
        self.poisoned = saved.is_err();
        saved
    }

    /// The index of the first entry the log holds (or would hold): the snapshot's plus one.
    pub fn first_index(&self) -> u64 {
        self.snapshot.index + 1
    }

    /// The index of the last entry appended, or the snapshot's if there is none.
    pub fn last_index(&self) -> u64 {
        self.entries.last().map_or(self.snapshot.index, |entry| entry.index)
    }

    /// The term of the entry at `index`, if the log or the snapshot knows it.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        let offset = index.checked_sub(self.first_index())?;
        self.entries.get(offset as usize).map(|entry| entry.term)
    }

    /// The entries after the snapshot, as appended (synced or not).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The newest hard state set.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The newest snapshot's metadata (all zero before the first snapshot).
    pub fn snapshot_metadata(&self) -> &SnapshotMetadata {
        &self.snapshot
    }

    /// File and directory fsyncs done since the log was opened, recovery's included.
    pub fn fsync_count(&self) -> u64 {
        self.dir.as_ref().map_or(0, DataDir::fsync_count)
    }

    fn check_not_poisoned(&self) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        Ok(())
    }

    /// Puts the snapshot file in place, then replaces the log with what the snapshot leaves
    /// of it; each step durable before the next, so recovery finds either the old state or
    /// the new one (and finishes replacing the log if the crash came before).
    fn install_snapshot(&mut self, snapshot: &Snapshot, file: SnapshotFile<'_>) -> Result<(), StorageError> {
        let metadata = snapshot.get_metadata();
        let dropped = dropped_count(&self.entries, metadata.index, metadata.term);
        let hard_state = settle_hard_state(&self.hard_state, metadata);
        if let Some(dir) = self.dir.as_mut() {
            match file {
                SnapshotFile::ToWrite => snapshot_file::save(dir, snapshot)?,
                SnapshotFile::Staged(staged) => snapshot_file::place(dir, staged)?,
                SnapshotFile::Written => {}
            }
            let sequence = self.segment.as_ref().map_or(1, |segment| segment.sequence + 1);
            let size_bytes = replace_log(dir, sequence, metadata, &hard_state, &self.entries[dropped..])?;
            self.segment = Some(Segment { sequence, size_bytes, file_bytes: size_bytes, is_new: false });
        }
        self.entries.drain(..dropped);
        self.hard_state = hard_state;
        self.snapshot = metadata.clone();
        Ok(())
    }
}

/// One batch of records closed by [`Wal::take_batch`]: durable once written.
pub struct WalBatch {
    /// The segment it goes to.
    segment: String,
    /// Where in the segment: the end of its records so far.
    offset: u64,
    /// Its records, the batch end last, then any zeros that grow the file ahead of them.
    bytes: Vec<u8>,
    /// The size of its records, zeros not counted.
    records_bytes: usize,
    /// Whether the segment's name is not yet durable: the directory is synced too.
    new_segment: bool,
}

impl WalBatch {
    /// The size of its records in bytes.
    pub fn len_bytes(&self) -> usize {
        self.records_bytes
    }

    /// Whether `next` goes right after this batch's records, in the same segment: the two
    /// can then be written as one.
    fn continued_by(&self, next: &WalBatch) -> bool {
        !next.new_segment && next.segment == self.segment && next.offset == self.offset + self.records_bytes as u64
    }

    /// Takes `next` (which continues this batch) into this one: its bytes over this one's
    /// zeros, the file grown as far as either grows it.
    fn absorb(&mut self, next: WalBatch) {
        let at = self.records_bytes;
        let end = at + next.bytes.len();
        if end > self.bytes.len() {
            self.bytes.resize(end, 0);
        }
        self.bytes[at..end].copy_from_slice(&next.bytes);
        self.records_bytes = at + next.records_bytes;
    }

    /// Writes the batch into its segment and fsyncs it (and the directory for a new segment).
    fn write_to(self, dir: &mut DataDir) -> Result<(), StorageError> {
        dir.write_at(&self.segment, self.offset, &self.bytes)?;
        dir.sync_batch(&self.segment)?;
        if self.new_segment {
            dir.sync_dir()?;
        }
        Ok(())
    }
}

/// Writes a log's batches from another task than the log's owner (see [`Wal::take_batch`]).
pub struct WalWriter {
    dir: DataDir,
}

impl WalWriter {
    /// Writes `batches`, taken in this order, and makes them durable: those that follow each
    /// other in a segment as one write and one fsync. A segment is durable before the next
    /// one is written, so recovery never finds a torn segment before a whole one.
    pub fn write_all(&mut self, batches: impl IntoIterator<Item = WalBatch>) -> Result<(), StorageError> {
        let mut run: Option<WalBatch> = None;
        for batch in batches {
            match run.as_mut() {
                Some(current) if current.continued_by(&batch) => current.absorb(batch),
                _ => {
                    if let Some(done) = run.replace(batch) {
                        done.write_to(&mut self.dir)?;
                    }
                }
            }
        }
        run.map_or(Ok(()), |last| last.write_to(&mut self.dir))
    }

    /// File and directory fsyncs done through this writer.
    pub fn fsync_count(&self) -> u64 {
        self.dir.fsync_count()
    }
}

/// Whether a snapshot's file is still to be written, or a `SnapshotWriter` staged or wrote it.
#[derive(Clone, Copy)]
enum SnapshotFile<'a> {
    ToWrite,
    Staged(&'a StagedSnapshot),
    Written,
}

/// Writes snapshot files of a log's directory from another task than the log's owner. Each
/// file goes in place atomically under its index's own name, so a crash leaves it whole or
/// absent. Recovery adopts the newest snapshot file (finishing an adoption a crash cut
/// short); a file superseded before the log adopted it is removed by the next compaction.
pub struct SnapshotWriter {
    dir: DataDir,
}

impl SnapshotWriter {
    /// Writes `snapshot` as the file for its index and makes it durable.
    pub fn write(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        snapshot_file::save(&mut self.dir, snapshot)
    }

    /// Writes `snapshot` durably under a temporary name of its own (`tag` keeps two stagings
    /// of one index apart), for the log to adopt later, or not: a snapshot a peer sent is
    /// staged before raft has taken it, and a file under its index's name would be taken by
    /// recovery for an adoption a crash cut short.
    pub fn stage(&mut self, snapshot: &Snapshot, tag: u64) -> Result<StagedSnapshot, StorageError> {
        let temp = temp_name(&format!("{}.{tag}", snapshot_name(snapshot.get_metadata().index)));
        snapshot_file::stage(&mut self.dir, snapshot, temp)
    }

    /// Another writer of the same directory.
    pub fn another(&self) -> SnapshotWriter {
        SnapshotWriter { dir: self.dir.another_handle() }
    }
}

/// The segment the next batch goes to: a new one if there is none yet or the current one is
/// full. A full segment keeps the zeros after its records (recovery reads them as unused).
fn segment_for_batch(segment: &mut Option<Segment>, segment_bytes_max: u64) -> &mut Segment {
    // Buggify: a segment ends early now and then, so recovery reads many of them.
    let full = |current: &Segment| current.size_bytes >= segment_bytes_max || crate::chaos::buggify::fires(0.02);
    let next = segment.as_ref().map_or(Some(1), |current| full(current).then_some(current.sequence + 1));
    match next {
        Some(sequence) => segment.insert(Segment { sequence, size_bytes: 0, file_bytes: 0, is_new: true }),
        None => segment.get_or_insert(Segment { sequence: 1, size_bytes: 0, file_bytes: 0, is_new: true }),
    }
}
