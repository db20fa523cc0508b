//! The names of the files in a data directory. Numbers are zero-padded to 20 digits (all of
//! `u64`), so sorting names sorts segments by sequence and snapshots by index.

pub(crate) const SEGMENT_PREFIX: &str = "wal-";
pub(crate) const SEGMENT_SUFFIX: &str = ".log";
pub(crate) const SNAPSHOT_PREFIX: &str = "snap-";
pub(crate) const SNAPSHOT_SUFFIX: &str = ".snap";
/// Present while the log's last segment may hold batches never synced (a process ran with
/// `-f MS` or `-F` since the log was last made wholly durable): a power loss may then have
/// left holes anywhere after its last synced batch, not just a torn end.
pub(crate) const UNSYNCED_BATCHES_MARK: &str = "unsynced-batches";
/// The file a running process holds locked (`flock`), with its process id in it.
pub(crate) const LOCK_FILE: &str = "lock";
/// A file being written that is not yet in place: a crash may leave one, open removes it.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// The digits of every number in a name.
const NUMBER_DIGITS: usize = 20;
const _: () = assert!(u64::MAX.ilog10() as usize + 1 == NUMBER_DIGITS);

/// What a name in the data directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileName {
    /// A log segment, with its sequence number.
    Segment(u64),
    /// A snapshot, with the index it covers up to.
    Snapshot(u64),
    /// Leftover of a write a crash interrupted.
    Temp,
    /// Anything else: left alone.
    Other,
}

pub(crate) fn segment_name(sequence: u64) -> String {
    format!("{SEGMENT_PREFIX}{sequence:020}{SEGMENT_SUFFIX}")
}

pub(crate) fn snapshot_name(index: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{index:020}{SNAPSHOT_SUFFIX}")
}

pub(crate) fn temp_name(name: &str) -> String {
    format!("{name}{TEMP_SUFFIX}")
}

pub(crate) fn classify(name: &str) -> FileName {
    if name.ends_with(TEMP_SUFFIX) {
        return FileName::Temp;
    }
    if let Some(sequence) = number_between(name, SEGMENT_PREFIX, SEGMENT_SUFFIX) {
        return FileName::Segment(sequence);
    }
    if let Some(index) = number_between(name, SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX) {
        return FileName::Snapshot(index);
    }
    FileName::Other
}

fn number_between(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != NUMBER_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Names round-trip through classify and sort in numeric order, shown on neighbours of 9/10.
    #[test]
    fn names_round_trip_and_sort_numerically() {
        assert_eq!(classify(&segment_name(7)), FileName::Segment(7));
        assert_eq!(classify(&snapshot_name(u64::MAX)), FileName::Snapshot(u64::MAX));
        assert_eq!(classify(&temp_name(&snapshot_name(3))), FileName::Temp);
        assert_eq!(classify("wal-7.log"), FileName::Other);
        assert!(segment_name(9) < segment_name(10));
    }
}
