//! What a snapshot leaves of the log and of the hard state. Saving a snapshot and recovering
//! after a crash in the middle of saving one must agree, so both use these two rules.

use std::cmp;

use raft::eraftpb::{Entry, HardState, SnapshotMetadata};

/// How many of `entries` (contiguous, ascending, the first at most `index + 1`) a snapshot at
/// (`index`, `term`) drops from the front: those it covers, and all of them when the log
/// disagrees with the snapshot at its index.
///
/// Agreement is raft's log matching: if our entry at `index` has the snapshot's term, the
/// entries after it belong to the same history and stay (a local compaction). Otherwise the
/// snapshot came from a leader whose history replaced ours, and raft-rs itself throws the
/// whole log away when it installs one, so nothing after it may come back at recovery.
pub(crate) fn dropped_count(entries: &[Entry], index: u64, term: u64) -> usize {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else { return 0 };
    debug_assert!(first.index <= index + 1, "entries start after the snapshot");
    if first.index == index + 1 {
        return 0;
    }
    if last.index <= index {
        return entries.len();
    }
    let at = (index - first.index) as usize;
    if entries[at].term == term {
        at + 1
    } else {
        entries.len()
    }
}

/// The hard state as raft-rs must find it beside a snapshot: a snapshot holds only committed
/// entries, so the commit index is at least its index (raft-rs refuses to start otherwise),
/// and the term at least its term.
pub(crate) fn settle_hard_state(hard_state: &HardState, snapshot: &SnapshotMetadata) -> HardState {
    let mut settled = hard_state.clone();
    settled.commit = cmp::max(settled.commit, snapshot.index);
    settled.term = cmp::max(settled.term, snapshot.term);
    settled
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(first_index: u64, terms: &[u64]) -> Vec<Entry> {
        let mut entries = Vec::new();
        for (offset, term) in terms.iter().enumerate() {
            entries.push(Entry { index: first_index + offset as u64, term: *term, ..Entry::default() });
        }
        entries
    }

    // A snapshot drops what it covers when the log agrees at its index, and everything when
    // not: shown on a five-entry log against snapshots at each interesting index.
    #[test]
    fn snapshot_drops_covered_or_disagreeing_entries() {
        let entries = log(3, &[1, 1, 2, 2, 3]);
        assert_eq!(dropped_count(&entries, 2, 1), 0);
        assert_eq!(dropped_count(&entries, 4, 1), 2);
        assert_eq!(dropped_count(&entries, 4, 2), 5);
        assert_eq!(dropped_count(&entries, 7, 3), 5);
        assert_eq!(dropped_count(&entries, 9, 3), 5);
        assert_eq!(dropped_count(&[], 9, 3), 0);
    }
}
