//! Durable storage for a Raft node: a write-ahead log of entries and hard states, and
//! snapshot files, over a small file abstraction ([`Disk`]) so the simulator can crash it.
//!
//! Layout of a data directory:
//! - `wal-<sequence>.log`: log segments, replayed in sequence order. Each holds whole
//!   batches of records (entries, hard states, a batch end), one batch per [`Wal::sync`].
//! - `snap-<index>.snap`: the newest snapshot, one checksummed record.
//! - `*.tmp`: a snapshot being written; a crash may leave one, and open removes it.
//! - `lock`: locked by the process using the dir ([`DirLock`]), which wrote its id in it.
//!
//! Records hold raft-rs's own messages; the data of its entries and snapshots is in the disk
//! format of [`format`] (package coolbeans.storage.v1), apart from the published API.
//!
//! Durability contract: what [`Wal::sync`] or [`Wal::save_snapshot`] acknowledged survives any
//! crash; a torn write at the end of the log is cut away on open; damage anywhere else is
//! reported as [`StorageError::Corrupt`], naming the file and byte offset, never skipped.

mod compaction;
mod data_dir;
mod dir_lock;
pub mod disk;
mod error;
pub mod format;
pub(crate) mod names;
pub(crate) mod record;
mod recovery;
mod replace;
mod snapshot_file;
mod sync_policy;
mod wal;

pub use dir_lock::DirLock;
pub use disk::{Disk, RealDisk, SimDisk, SyncObserver};
pub use error::{Corruption, StorageError};
pub(crate) use record::parse_message;
pub use snapshot_file::StagedSnapshot;
pub use sync_policy::{spawn_overdue_timer, PolicyDisk, SyncPolicy};
pub use wal::{Recovered, SnapshotWriter, Wal, WalBatch, WalOptions, WalWriter};
