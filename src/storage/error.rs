//! What can go wrong in durable storage, typed so the driver can tell a failing disk (stop,
//! the page cache can no longer be trusted) from corrupt data (refuse to start, a person must
//! look) from a caller's mistake.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::names::SNAPSHOT_SUFFIX;

/// A storage failure.
#[derive(Debug)]
pub enum StorageError {
    /// A disk call failed. After a failed write or fsync the log refuses further work
    /// ([`StorageError::Poisoned`]): what reached the disk is unknown until it is reopened.
    Io { file: PathBuf, source: io::Error },
    /// Stored bytes are not what was written, somewhere a torn write cannot explain.
    Corrupt { file: PathBuf, offset: u64, reason: Corruption },
    /// An earlier write or fsync failed; reopen the log to learn what is durable.
    Poisoned,
    /// An appended entry would leave a gap after the last index, or overwrite entries the
    /// snapshot already covers. Raft never asks for either, so this is a driver bug.
    NotContiguous { index: u64, first_index: u64, last_index: u64 },
    /// A snapshot older than the one already saved.
    SnapshotOutOfDate { index: u64, saved_index: u64 },
    /// A record whose payload is larger than a record can frame.
    RecordTooLarge { payload_bytes: usize },
    /// A message protobuf could not encode.
    Encode(protobuf::ProtobufError),
}

/// Why stored bytes were judged corrupt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corruption {
    /// The record's checksum does not match its kind and payload.
    ChecksumMismatch,
    /// The record's length is larger than any record can be.
    LengthImpossible { payload_bytes: u64 },
    /// The record runs past the end of a file that is not the log's tail.
    Truncated,
    /// A record kind this version never writes.
    UnknownKind(u8),
    /// The payload passed its checksum but does not decode as its kind.
    Undecodable { kind: &'static str, error: String },
    /// A record of a kind that does not belong in this file.
    MisplacedRecord { kind: &'static str },
    /// A segment that is not the last ends inside a batch (batches never span segments).
    UnfinishedBatch,
    /// An entry whose index leaves a gap after the entries before it.
    NotContiguous { expected: u64, found: u64 },
    /// Bytes after the one record a snapshot file holds.
    TrailingBytes,
    /// The snapshot's index is not the one its file name promises.
    NameMismatch { name_index: u64, snapshot_index: u64 },
    /// The log starts after a snapshot newer than the newest snapshot file.
    SnapshotMissing { log_start_index: u64, snapshot_index: u64 },
    /// A snapshot at the last index a log can hold: no entry could follow it, and the log's
    /// first index after it (its index plus one) does not exist.
    SnapshotIndexImpossible,
}

impl StorageError {
    pub(crate) fn io(file: &Path, source: io::Error) -> StorageError {
        StorageError::Io { file: file.to_path_buf(), source }
    }

    pub(crate) fn corrupt(file: &Path, offset: u64, reason: Corruption) -> StorageError {
        StorageError::Corrupt { file: file.to_path_buf(), offset, reason }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Io { file, source } => write!(f, "I/O error on {}: {source}", file.display()),
            StorageError::Corrupt { file, offset, reason } => {
                write!(f, "corrupt {} {} at byte {offset}: {reason}", file_label(file), file.display())
            }
            StorageError::Poisoned => f.write_str("an earlier write or fsync failed; reopen the log"),
            StorageError::NotContiguous { index, first_index, last_index } => {
                write!(f, "entry {index} does not follow the log (first index {first_index}, last index {last_index})")
            }
            StorageError::SnapshotOutOfDate { index, saved_index } => {
                write!(f, "snapshot at index {index} is older than the saved one at {saved_index}")
            }
            StorageError::RecordTooLarge { payload_bytes } => {
                write!(f, "record of {payload_bytes} bytes is larger than a record can be")
            }
            StorageError::Encode(error) => write!(f, "cannot encode a raft message: {error}"),
        }
    }
}

/// What a file is, for messages: the snapshot or the write-ahead log.
fn file_label(file: &Path) -> &'static str {
    let is_snapshot = file.file_name().is_some_and(|name| name.to_string_lossy().ends_with(SNAPSHOT_SUFFIX));
    if is_snapshot {
        "snapshot"
    } else {
        "write-ahead log"
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            StorageError::Encode(error) => Some(error),
            _ => None,
        }
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::ChecksumMismatch => f.write_str("checksum mismatch"),
            Corruption::LengthImpossible { payload_bytes } => write!(f, "impossible record length {payload_bytes}"),
            Corruption::Truncated => f.write_str("record cut short"),
            Corruption::UnknownKind(kind) => write!(f, "unknown record kind {kind}"),
            Corruption::Undecodable { kind, error } => write!(f, "undecodable {kind} record: {error}"),
            Corruption::MisplacedRecord { kind } => write!(f, "{kind} record does not belong here"),
            Corruption::UnfinishedBatch => f.write_str("segment ends inside a batch"),
            Corruption::NotContiguous { expected, found } => {
                write!(f, "entry {found} where entry {expected} was expected")
            }
            Corruption::TrailingBytes => f.write_str("bytes after the snapshot record"),
            Corruption::NameMismatch { name_index, snapshot_index } => {
                write!(f, "snapshot index {snapshot_index} in a file named for index {name_index}")
            }
            Corruption::SnapshotMissing { log_start_index, snapshot_index } => {
                write!(f, "log starts after a snapshot at index {log_start_index}, newest snapshot file is at {snapshot_index}")
            }
            Corruption::SnapshotIndexImpossible => write!(f, "snapshot at index {}, which no log entry can follow", u64::MAX),
        }
    }
}
