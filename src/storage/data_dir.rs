//! One data directory on a [`Disk`]: file calls by name, each error naming the file, and
//! every fsync counted (tests prove group commit with the count).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::disk::Disk;
use super::error::StorageError;

/// The directory the log and snapshot files live in.
pub(crate) struct DataDir {
    disk: Arc<dyn Disk>,
    /// The directory, relative to the disk's root.
    dir: PathBuf,
    /// File and directory fsyncs done through this handle.
    fsync_count: u64,
}

impl DataDir {
    /// Creates the directory if missing and makes its whole path durable: syncing every
    /// ancestor even when the directory already exists, because a process that died right
    /// after creating it may have left a name that a power loss would still take away.
    pub(crate) fn open(disk: Arc<dyn Disk>, dir: PathBuf) -> Result<DataDir, StorageError> {
        disk.create_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
        let mut data_dir = DataDir { disk, dir, fsync_count: 0 };
        let ancestors: Vec<PathBuf> = data_dir.dir.ancestors().skip(1).map(Path::to_path_buf).collect();
        for ancestor in ancestors.iter().rev() {
            data_dir.disk.sync_dir(ancestor).map_err(|e| StorageError::io(ancestor, e))?;
            data_dir.fsync_count += 1;
        }
        Ok(data_dir)
    }

    /// Another handle on the same directory, with its own fsync count: for writing a file
    /// away from the handle's owner.
    pub(crate) fn another_handle(&self) -> DataDir {
        DataDir { disk: self.disk.clone(), dir: self.dir.clone(), fsync_count: 0 }
    }

    /// The path of `name` in this directory, relative to the disk's root.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn fsync_count(&self) -> u64 {
        self.fsync_count
    }

    /// Whether the disk may put batch syncs off (see [`Disk::puts_batch_syncs_off`]).
    pub(crate) fn puts_batch_syncs_off(&self) -> bool {
        self.disk.puts_batch_syncs_off()
    }

    pub(crate) fn exists(&self, name: &str) -> Result<bool, StorageError> {
        let path = self.path(name);
        self.disk.exists(&path).map_err(|e| StorageError::io(&path, e))
    }

    pub(crate) fn list(&self) -> Result<Vec<String>, StorageError> {
        self.disk.list(&self.dir).map_err(|e| StorageError::io(&self.dir, e))
    }

    pub(crate) fn read(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        let path = self.path(name);
        self.disk.read(&path).map_err(|e| StorageError::io(&path, e))
    }

    pub(crate) fn write_at(&self, name: &str, offset: u64, bytes: &[u8]) -> Result<(), StorageError> {
        let path = self.path(name);
        self.disk.write_at(&path, offset, bytes).map_err(|e| StorageError::io(&path, e))
    }

    pub(crate) fn write_new(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let path = self.path(name);
        self.disk.write_new(&path, bytes).map_err(|e| StorageError::io(&path, e))
    }

    pub(crate) fn truncate(&self, name: &str, len_bytes: u64) -> Result<(), StorageError> {
        let path = self.path(name);
        self.disk.truncate(&path, len_bytes).map_err(|e| StorageError::io(&path, e))
    }

    pub(crate) fn rename(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let (from, to) = (self.path(from), self.path(to));
        self.disk.rename(&from, &to).map_err(|e| StorageError::io(&from, e))
    }

    pub(crate) fn remove(&self, name: &str) -> Result<(), StorageError> {
        let path = self.path(name);
        self.disk.remove(&path).map_err(|e| StorageError::io(&path, e))
    }

    /// Makes the file's data durable.
    pub(crate) fn sync(&mut self, name: &str) -> Result<(), StorageError> {
        let path = self.path(name);
        self.disk.sync(&path).map_err(|e| StorageError::io(&path, e))?;
        self.fsync_count += 1;
        Ok(())
    }

    /// Makes a batch just written to the file durable, as the disk's policy allows.
    pub(crate) fn sync_batch(&mut self, name: &str) -> Result<(), StorageError> {
        let path = self.path(name);
        self.disk.sync_batch(&path).map_err(|e| StorageError::io(&path, e))?;
        self.fsync_count += 1;
        Ok(())
    }

    /// Makes every creation, rename and removal in the directory durable.
    pub(crate) fn sync_dir(&mut self) -> Result<(), StorageError> {
        self.disk.sync_dir(&self.dir).map_err(|e| StorageError::io(&self.dir, e))?;
        self.fsync_count += 1;
        Ok(())
    }
}
