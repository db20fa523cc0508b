//! Snapshot files: one record holding a raft `Snapshot`, put in place atomically (written
//! under a temporary name, synced, renamed, the directory synced), so a crash leaves either
//! the old snapshot or the new one, never half of one.

use raft::eraftpb::Snapshot;

use super::data_dir::DataDir;
use super::error::{Corruption, StorageError};
use super::names::{snapshot_name, temp_name};
use super::record::{self, RecordKind};

/// Writes `snapshot` as the file for its index and makes it durable.
pub(crate) fn save(dir: &mut DataDir, snapshot: &Snapshot) -> Result<(), StorageError> {
    let name = snapshot_name(snapshot.get_metadata().index);
    let temp = temp_name(&name);
    let mut bytes = Vec::new();
    record::encode(RecordKind::Snapshot, snapshot, &mut bytes)?;
    dir.write_new(&temp, &bytes)?;
    dir.sync(&temp)?;
    dir.rename(&temp, &name)?;
    dir.sync_dir()?;
    Ok(())
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
    Ok(snapshot)
}
