//! Snapshot files: one record holding a raft `Snapshot`, put in place atomically (written
//! under a temporary name, synced, renamed, the directory synced), so a crash leaves either
//! the old snapshot or the new one, never half of one.

use raft::eraftpb::Snapshot;

use super::data_dir::DataDir;
use super::error::{Corruption, StorageError};
use super::names::{classify, snapshot_name, temp_name, FileName};
use super::record::{self, RecordKind};

/// Writes `snapshot` as the file for its index and makes it durable.
pub(crate) fn save(dir: &mut DataDir, snapshot: &Snapshot) -> Result<(), StorageError> {
    let temp = temp_name(&snapshot_name(snapshot.get_metadata().index));
    let staged = stage(dir, snapshot, temp)?;
    place(dir, &staged)
}

/// A snapshot file written and synced under a temporary name: recovery removes it, so it
/// counts for nothing until `place` gives it its index's name.
#[derive(Debug)]
pub struct StagedSnapshot {
    index: u64,
    temp: String,
}

impl StagedSnapshot {
    pub fn index(&self) -> u64 {
        self.index
    }

    pub(crate) fn temp(&self) -> &str {
        &self.temp
    }
}

/// Writes `snapshot` under the temporary name `temp` and makes its bytes durable.
pub(crate) fn stage(dir: &mut DataDir, snapshot: &Snapshot, temp: String) -> Result<StagedSnapshot, StorageError> {
    debug_assert_eq!(classify(&temp), FileName::Temp);
    let mut bytes = Vec::new();
    record::encode(RecordKind::Snapshot, snapshot, &mut bytes)?;
    dir.write_new(&temp, &bytes)?;
    dir.sync(&temp)?;
    Ok(StagedSnapshot { index: snapshot.get_metadata().index, temp })
}

/// Gives a staged file its index's name, durably.
pub(crate) fn place(dir: &mut DataDir, staged: &StagedSnapshot) -> Result<(), StorageError> {
    dir.rename(&staged.temp, &snapshot_name(staged.index))?;
    dir.sync_dir()
}

/// Reads the snapshot file `name`, which its name says covers up to `name_index`. Any damage
/// is corruption: the file was synced before it got its name, so no crash can tear it.
pub(crate) fn load(dir: &DataDir, name: &str, name_index: u64) -> Result<Snapshot, StorageError> {
    let bytes = dir.read(name)?;
    let path = dir.path(name);
    let record = record::decode(&bytes).map_err(|(error, _)| StorageError::corrupt(&path, 0, error.corruption()))?;
    if record.kind != RecordKind::Snapshot {
        return Err(StorageError::corrupt(&path, 0, Corruption::MisplacedRecord { kind: record.kind.name() }));
    }
    if record.record_bytes != bytes.len() {
        return Err(StorageError::corrupt(&path, record.record_bytes as u64, Corruption::TrailingBytes));
    }
    let snapshot: Snapshot = record::parse(&record).map_err(|reason| StorageError::corrupt(&path, 0, reason))?;
    let snapshot_index = snapshot.get_metadata().index;
    if snapshot_index != name_index {
        return Err(StorageError::corrupt(&path, 0, Corruption::NameMismatch { name_index, snapshot_index }));
    }
    // Recovery and the log count on the index after it: adding one overflowed.
    if snapshot_index == u64::MAX {
        return Err(StorageError::corrupt(&path, 0, Corruption::SnapshotIndexImpossible));
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::SimDisk;

    // A snapshot at the last index a u64 holds is refused as corrupt, not taken for one a log
    // can follow: shown by saving one and loading it, beside one just below it.
    #[test]
    fn snapshot_at_the_last_index_is_refused() {
        let mut dir = DataDir::open(Arc::new(SimDisk::new()), "data".into()).expect("open");
        for index in [u64::MAX - 1, u64::MAX] {
            let mut snapshot = Snapshot::default();
            snapshot.mut_metadata().index = index;
            save(&mut dir, &snapshot).expect("save");
            let loaded = load(&dir, &snapshot_name(index), index);
            match (index, loaded) {
                (u64::MAX, Err(StorageError::Corrupt { reason: Corruption::SnapshotIndexImpossible, .. })) => {}
                (u64::MAX, other) => panic!("a snapshot at u64::MAX: {other:?}"),
                (_, loaded) => assert_eq!(loaded.expect("loads").get_metadata().index, index),
            }
        }
    }
}
