//! Opening a data directory: find the newest snapshot, replay the log segments after it, and
//! cut away a torn tail, refusing anything else that is damaged.
//!
//! The rule that keeps acknowledged data safe: only the end of the last segment can have been
//! cut short by a crash (every earlier segment was complete and synced before the next one
//! began), so damage there that reaches the end of the file is a torn write and is cut away,
//! and damage anywhere else is corruption and stops the open. Records apply in whole batches
//! (one per `Wal::sync`, closed by a batch-end record), so a crash in the middle of writing a
//! batch loses the whole unacknowledged batch rather than leaving half of it.
//!
//! Under `-f MS` or `-F` several batches at the end of the last segment may be unsynced at a
//! power loss, and the file system may have kept some of their blocks and not others: while
//! the data dir holds the mark of such a process, damage in the last segment is taken for that
//! and cut away with everything after it, even when whole records follow.
//!
//! Segments are preallocated with zeros (see `Wal::take_batch`), so a segment's records may
//! end before its file does: zeros from the end of a whole batch to the end of the file are
//! space never used, in any segment.

use raft::eraftpb::{Entry, HardState, Snapshot, SnapshotMetadata};

use super::compaction::{dropped_count, settle_hard_state};
use super::data_dir::DataDir;
use super::error::{Corruption, StorageError};
use super::names::{classify, segment_name, FileName, UNSYNCED_BATCHES_MARK};
use super::record::{self, RecordKind};
use super::replace::replace_log;
use super::snapshot_file;

/// The durable state found in a data directory.
pub(crate) struct Found {
    pub(crate) hard_state: HardState,
    /// Contiguous and ascending, starting right after the snapshot.
    pub(crate) entries: Vec<Entry>,
    pub(crate) snapshot: Option<Snapshot>,
    /// The last segment (sequence number, valid size in bytes), where batches go next.
    pub(crate) last_segment: Option<(u64, u64)>,
}

/// Where an entry's record is, for error messages: segment position and byte offset.
#[derive(Clone, Copy)]
struct Position {
    segment: usize,
    offset: u64,
}

/// A record of a batch not yet closed.
enum Item {
    Entry(Entry, Position),
    HardState(HardState),
    LogStart(SnapshotMetadata, Position),
}

/// The log as replayed so far.
#[derive(Default)]
struct Replay {
    hard_state: HardState,
    /// Each entry with where its record is; contiguous and ascending.
    entries: Vec<(Entry, Position)>,
    /// The snapshot index of the newest log start replayed, and where it is.
    log_start: Option<(u64, Position)>,
}

/// Reads the whole durable state of `dir`, removing leftovers of interrupted writes and
/// cutting a torn tail, and makes what it found durable before returning it.
pub(crate) fn recover(dir: &mut DataDir) -> Result<Found, StorageError> {
    let names = dir.list()?;
    let mut segments = Vec::new();
    let mut snapshots = Vec::new();
    let mut temps = Vec::new();
    for name in names {
        match classify(&name) {
            FileName::Segment(sequence) => segments.push((sequence, name)),
            FileName::Snapshot(index) => snapshots.push((index, name)),
            FileName::Temp => temps.push(name),
            FileName::Other => {}
        }
    }
    segments.sort();
    snapshots.sort();
    let snapshot = load_newest_snapshot(dir, &snapshots)?;
    for temp in &temps {
        dir.remove(temp)?;
    }
    let metadata = snapshot.as_ref().map(|s| s.get_metadata().clone()).unwrap_or_default();
    let unsynced_batches = dir.exists(UNSYNCED_BATCHES_MARK)?;
    let (replay, mut last_segment) = replay_segments(dir, &segments, unsynced_batches)?;
    check_log_start(dir, &segments, &replay, &metadata)?;
    let (entries, dropped) = entries_after_snapshot(dir, &segments, replay.entries, &metadata)?;
    let hard_state = settle_hard_state(&replay.hard_state, &metadata);
    if let Some((sequence, _)) = last_segment {
        dir.sync(&segment_name(sequence))?;
    }
    dir.sync_dir()?;
    if dropped > 0 {
        // A crash cut short a snapshot save after the snapshot was in place: finish it, or
        // the entries it dropped would still decide what later appends mean on disk.
        let sequence = last_segment.map_or(1, |(sequence, _)| sequence + 1);
        let size_bytes = replace_log(dir, sequence, &metadata, &hard_state, &entries)?;
        last_segment = Some((sequence, size_bytes));
    }
    mark_unsynced_batches(dir, unsynced_batches)?;
    Ok(Found { hard_state, entries, snapshot, last_segment })
}

/// Leaves the mark of unsynced batches exactly while the disk may put batch syncs off: made
/// durable before the first batch this process writes, and removed only once the log found
/// is durable (by then it is).
fn mark_unsynced_batches(dir: &mut DataDir, marked: bool) -> Result<(), StorageError> {
    let wanted = dir.puts_batch_syncs_off();
    if wanted == marked {
        return Ok(());
    }
    if wanted {
        dir.write_new(UNSYNCED_BATCHES_MARK, b"")?;
        dir.sync(UNSYNCED_BATCHES_MARK)?;
    } else {
        dir.remove(UNSYNCED_BATCHES_MARK)?;
    }
    dir.sync_dir()
}

/// Loads the newest snapshot and removes the older ones (a crash may leave them between
/// putting the new one in place and removing them). A damaged newest snapshot is an error,
/// not a reason to fall back: the log it replaced may already be gone.
fn load_newest_snapshot(dir: &mut DataDir, snapshots: &[(u64, String)]) -> Result<Option<Snapshot>, StorageError> {
    let Some((index, name)) = snapshots.last() else { return Ok(None) };
    let snapshot = snapshot_file::load(dir, name, *index)?;
    for (_, older) in &snapshots[..snapshots.len() - 1] {
        dir.remove(older)?;
    }
    Ok(Some(snapshot))
}

/// Replays every segment in order. Returns the log and the last segment with its valid size.
/// With `unsynced_batches`, any damage in the last segment ends the log there.
fn replay_segments(dir: &mut DataDir, segments: &[(u64, String)], unsynced_batches: bool) -> Result<(Replay, Option<(u64, u64)>), StorageError> {
    let mut replay = Replay::default();
    let mut last_segment = None;
    for (position, (sequence, name)) in segments.iter().enumerate() {
        let is_last = position + 1 == segments.len();
        let bytes = dir.read(name)?;
        let tail = match (is_last, unsynced_batches) {
            (false, _) => Tail::Whole,
            (true, false) => Tail::MayBeTorn,
            (true, true) => Tail::MayHaveHoles,
        };
        let valid_bytes = replay.segment(dir, segments, position, &bytes, tail)?;
        // Cut the last segment back to its records, so appends resume on a clean end (a
        // torn record longer than the next batch would otherwise linger past it).
        if is_last && valid_bytes < bytes.len() {
            let tail = &bytes[valid_bytes..];
            // Zeros alone are space preallocated and never written, not a torn write.
            if !record::is_zeros(tail) {
                let torn_bytes = tail.len() - tail.iter().rev().take_while(|&&b| b == 0).count();
                let file = dir.path(name);
                let why = "cut a write torn by a crash from the end of the log (a batch never made durable)";
                let why_unsynced = "cut what a power loss left of batches never synced (-f, -F) from the end of the log";
                let why = if unsynced_batches { why_unsynced } else { why };
                tracing::warn!(file = %file.display(), offset = valid_bytes, torn_bytes, "{why}");
            }
            dir.truncate(name, valid_bytes as u64)?;
        }
        last_segment = Some((*sequence, valid_bytes as u64));
    }
    Ok((replay, last_segment))
}

/// What a crash may have done to a segment's end.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// Nothing: a segment before the last was synced whole before the next began.
    Whole,
    /// Cut its last batch short (every batch before it was synced).
    MayBeTorn,
    /// Kept any part of the batches after the last synced one (see the module's doc).
    MayHaveHoles,
}

impl Replay {
    /// Applies every whole batch of one segment; returns how many leading bytes are valid.
    fn segment(&mut self, dir: &DataDir, segments: &[(u64, String)], segment: usize, bytes: &[u8], tail: Tail) -> Result<usize, StorageError> {
        let path = dir.path(&segments[segment].1);
        let mut batch = Vec::new();
        let mut batch_end = 0;
        let mut offset = 0;
        while offset < bytes.len() {
            if offset == batch_end && record::is_zeros(&bytes[offset..]) {
                break;
            }
            let record = match record::decode(&bytes[offset..]) {
                Ok(record) => record,
                Err(_) if tail == Tail::MayHaveHoles => break,
                Err((error, claimed)) if tail == Tail::MayBeTorn && error.may_be_torn(&bytes[offset..], claimed) => break,
                Err((error, _)) => return Err(StorageError::corrupt(&path, offset as u64, error.corruption())),
            };
            let at = Position { segment, offset: offset as u64 };
            let corrupt = |reason| StorageError::corrupt(&path, offset as u64, reason);
            match record.kind {
                RecordKind::Entry => batch.push(Item::Entry(record::parse(&record).map_err(corrupt)?, at)),
                RecordKind::HardState => batch.push(Item::HardState(record::parse(&record).map_err(corrupt)?)),
                RecordKind::LogStart => batch.push(Item::LogStart(record::parse(&record).map_err(corrupt)?, at)),
                RecordKind::BatchEnd => {
                    let applied = self.apply(batch.drain(..));
                    applied.map_err(|(reason, at)| StorageError::corrupt(&path, at.offset, reason))?;
                    batch_end = offset + record.record_bytes;
                }
                RecordKind::Snapshot => return Err(corrupt(Corruption::MisplacedRecord { kind: record.kind.name() })),
            }
            offset += record.record_bytes;
        }
        if !batch.is_empty() && tail == Tail::Whole {
            return Err(StorageError::corrupt(&path, batch_end as u64, Corruption::UnfinishedBatch));
        }
        Ok(batch_end)
    }

    /// Applies one whole batch. A later entry at an index the log already has replaces the
    /// log from there on, as raft's conflict resolution did when it was appended.
    /// On error, also where the offending entry's record is.
    fn apply(&mut self, batch: impl Iterator<Item = Item>) -> Result<(), (Corruption, Position)> {
        for item in batch {
            match item {
                Item::HardState(hard_state) => self.hard_state = hard_state,
                Item::Entry(entry, at) => self.push(entry, at).map_err(|reason| (reason, at))?,
                Item::LogStart(snapshot, at) => {
                    self.entries.clear();
                    self.log_start = Some((snapshot.index, at));
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, entry: Entry, at: Position) -> Result<(), Corruption> {
        if let (Some((first, _)), Some((last, _))) = (self.entries.first(), self.entries.last()) {
            if entry.index <= last.index {
                let kept = entry.index.saturating_sub(first.index) as usize;
                self.entries.truncate(kept);
            } else if entry.index != last.index + 1 {
                return Err(Corruption::NotContiguous { expected: last.index + 1, found: entry.index });
            }
        }
        self.entries.push((entry, at));
        Ok(())
    }
}

/// Checks the log does not start after the newest snapshot: the snapshot it started after
/// would be missing.
fn check_log_start(dir: &DataDir, segments: &[(u64, String)], replay: &Replay, snapshot: &SnapshotMetadata) -> Result<(), StorageError> {
    match replay.log_start {
        Some((index, at)) if index > snapshot.index => {
            let path = dir.path(&segments[at.segment].1);
            let reason = Corruption::SnapshotMissing { log_start_index: index, snapshot_index: snapshot.index };
            Err(StorageError::corrupt(&path, at.offset, reason))
        }
        _ => Ok(()),
    }
}

/// The replayed entries that follow the snapshot, checked to start right after it, and how
/// many replayed entries the snapshot dropped.
fn entries_after_snapshot(
    dir: &DataDir,
    segments: &[(u64, String)],
    entries: Vec<(Entry, Position)>,
    snapshot: &SnapshotMetadata,
) -> Result<(Vec<Entry>, usize), StorageError> {
    if let Some((first, at)) = entries.first() {
        if first.index > snapshot.index + 1 {
            let path = dir.path(&segments[at.segment].1);
            let reason = Corruption::NotContiguous { expected: snapshot.index + 1, found: first.index };
            return Err(StorageError::corrupt(&path, at.offset, reason));
        }
    }
    let mut entries: Vec<Entry> = entries.into_iter().map(|(entry, _)| entry).collect();
    let dropped = dropped_count(&entries, snapshot.index, snapshot.term);
    entries.drain(..dropped);
    Ok((entries, dropped))
}
