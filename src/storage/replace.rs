//! Replacing the log after a snapshot: a fresh segment holding only what the snapshot leaves,
//! made durable before the files it replaces are removed, so a crash at any point leaves
//! either the old files (recovery then finishes the job) or the new ones.

use raft::eraftpb::{Entry, HardState, SnapshotMetadata};

use super::data_dir::DataDir;
use super::error::StorageError;
use super::names::{classify, segment_name, snapshot_name, FileName};
use super::record::{self, RecordKind};

/// Writes segment `sequence` holding, as one batch, the start of the log after `snapshot`,
/// `hard_state` and `entries`, and makes it durable; then removes every older segment and
/// every snapshot file but `snapshot_name`, and makes the removals durable. Returns the fresh
/// segment's size in bytes.
pub(crate) fn replace_log(
    dir: &mut DataDir,
    sequence: u64,
    snapshot: &SnapshotMetadata,
    hard_state: &HardState,
    entries: &[Entry],
) -> Result<u64, StorageError> {
    let snapshot_name = snapshot_name(snapshot.index);
    let log_start = SnapshotMetadata { index: snapshot.index, term: snapshot.term, ..SnapshotMetadata::default() };
    let mut fresh = Vec::new();
    record::encode(RecordKind::LogStart, &log_start, &mut fresh)?;
    record::encode(RecordKind::HardState, hard_state, &mut fresh)?;
    for entry in entries {
        record::encode(RecordKind::Entry, entry, &mut fresh)?;
    }
    record::encode_empty(RecordKind::BatchEnd, &mut fresh)?;
    let fresh_name = segment_name(sequence);
    dir.write_new(&fresh_name, &fresh)?;
    dir.sync(&fresh_name)?;
    dir.sync_dir()?;
    for name in dir.list()? {
        let replaced = match classify(&name) {
            FileName::Segment(older) => older < sequence,
            FileName::Snapshot(_) => name != snapshot_name,
            FileName::Temp | FileName::Other => false,
        };
        if replaced {
            dir.remove(&name)?;
        }
    }
    dir.sync_dir()?;
    Ok(fresh.len() as u64)
}
