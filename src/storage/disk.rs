//! The file abstraction under the write-ahead log: just the calls the log needs, over paths
//! relative to one root directory.
//!
//! The log never touches `std::fs` itself, so the simulator can run it on [`SimDisk`], which
//! keeps files in memory and can lose everything not yet synced, as a power loss does.
//! [`RealDisk`] is the same calls on the real file system.
//!
//! The trait is synchronous on purpose: the log's writer runs apart from the Raft driver, on
//! a thread of its own that blocks on each fsync, and nothing that depends on a write is sent
//! until it returns.

use std::io;
use std::path::Path;

mod real;
mod sim;

pub use real::{RealDisk, SyncObserver};
pub use sim::SimDisk;

/// The file operations the write-ahead log needs. Paths are relative to the disk's root; the
/// empty path is the root itself.
///
/// Nothing is durable until it is synced: a file's data by [`Disk::sync`], the creation,
/// renaming or removal of a name by [`Disk::sync_dir`] of the directory that holds the name.
/// Reads see every write, synced or not, as the page cache does.
pub trait Disk: Send + Sync + 'static {
    /// Creates `dir` and any missing parents; an existing directory is fine.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// The names of the entries in `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// The whole content of the file at `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// Writes `bytes` at `offset` in the file at `path`, creating it if missing and extending
    /// it (with zeros between its end and `offset`, if any) when the write ends past its end.
    fn write_at(&self, path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()>;

    /// Makes the file at `path` hold exactly `bytes`, creating it or truncating it.
    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;

    /// Makes the data (and length) of the file at `path` durable.
    fn sync(&self, path: &Path) -> io::Result<()>;

    /// As `sync`, for a batch of log records just written: the one sync a durability policy
    /// (`-f MS`, `-F`) may put off. Every other sync (snapshots, compaction, recovery) is made.
    fn sync_batch(&self, path: &Path) -> io::Result<()> {
        self.sync(path)
    }

    /// Whether `sync_batch` may put syncs off (`-f MS`, `-F`): several batches may then be
    /// unsynced at a power loss, which can leave holes before the last of them, not just a
    /// torn end.
    fn puts_batch_syncs_off(&self) -> bool {
        false
    }

    /// Makes every creation, rename and removal of a name in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Cuts the file at `path` to `len_bytes` bytes.
    fn truncate(&self, path: &Path, len_bytes: u64) -> io::Result<()>;

    /// Renames `from` to `to`, replacing `to` if it exists, atomically.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes the file at `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;

    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;
}
