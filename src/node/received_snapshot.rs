//! A snapshot a peer sent, made ready apart from the driver: its state decoded and its file
//! staged on disk, so that installing it costs the driver a rename and a swap rather than the
//! seconds a large state takes to decode and write (the driver answers nothing meanwhile, not
//! even the leader's heartbeats). Raft may still refuse the snapshot, or install another: a
//! prepared one is used only for the snapshot it was made from.

use raft::eraftpb::Snapshot;

use super::replicated::Replicated;
use crate::storage::{SnapshotWriter, StagedSnapshot};

/// A received snapshot's state, decoded, and its file, staged (none for a log in memory).
pub(crate) struct Prepared {
    index: u64,
    term: u64,
    state: Replicated,
    staged: Option<StagedSnapshot>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("index", &self.index).field("term", &self.term).field("staged", &self.staged).finish()
    }
}

/// Decodes `snapshot`'s state and stages its file: blocking work, for a blocking thread.
pub(crate) fn prepare(snapshot: &Snapshot, understood: u32, writer: Option<SnapshotWriter>, tag: u64) -> Result<Prepared, String> {
    let (index, term) = (snapshot.get_metadata().index, snapshot.get_metadata().term);
    let state = Replicated::restore_encoded(&snapshot.data, understood).map_err(|e| format!("snapshot {index}: {e}"))?;
    let staged = match writer {
        Some(mut writer) => Some(writer.stage(snapshot, tag).map_err(|e| format!("staging snapshot {index}: {e}"))?),
        None => None,
    };
    Ok(Prepared { index, term, state, staged })
}

/// What installing a snapshot takes: its state, and its file if it is staged.
pub(crate) struct Install {
    pub state: Replicated,
    pub staged: Option<StagedSnapshot>,
}

/// The driver's one prepared snapshot, the latest received.
#[derive(Default)]
pub(crate) struct Received {
    prepared: Option<Prepared>,
}

impl Received {
    /// Keeps `prepared`; returns the staged file of the one it replaces, to remove.
    pub fn offer(&mut self, prepared: Prepared) -> Option<StagedSnapshot> {
        self.prepared.replace(prepared).and_then(|old| old.staged)
    }

    /// What was prepared for the snapshot at `index` of `term`, if that is the one kept. A
    /// different one kept stays: it may be newer.
    pub fn take_for(&mut self, index: u64, term: u64) -> Option<Install> {
        let kept = self.prepared.as_ref()?;
        if (kept.index, kept.term) != (index, term) {
            return None;
        }
        let Prepared { state, staged, .. } = self.prepared.take()?;
        Some(Install { state, staged })
    }

    /// Drops a prepared snapshot that can no longer be installed (the state is applied to
    /// its index or past it); returns its staged file, to remove.
    pub fn drop_if_behind(&mut self, applied: u64) -> Option<StagedSnapshot> {
        if self.prepared.as_ref().is_some_and(|p| p.index <= applied) {
            return self.prepared.take().and_then(|p| p.staged);
        }
        None
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.prepared.is_none()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use prost::Message as _;

    use super::*;
    use crate::node::version::STATE_MACHINE_VERSION;

    fn snapshot(index: u64, term: u64) -> Snapshot {
        let mut snapshot = Snapshot::default();
        let bytes: Bytes = Replicated::default().snapshot().encode_to_vec().into();
        snapshot.set_data(bytes);
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().term = term;
        snapshot
    }

    fn prepared(index: u64, term: u64) -> Prepared {
        prepare(&snapshot(index, term), STATE_MACHINE_VERSION, None, 0).expect("prepares")
    }

    // A prepared snapshot serves only the snapshot it was made from: same index and term.
    #[test]
    fn prepared_snapshot_serves_only_its_own_index_and_term() {
        let mut received = Received::default();
        assert!(received.offer(prepared(10, 2)).is_none());
        assert!(received.take_for(10, 3).is_none(), "another term");
        assert!(received.take_for(11, 2).is_none(), "another index");
        assert!(!received.is_empty(), "a mismatch keeps it");
        assert!(received.take_for(10, 2).is_some());
        assert!(received.is_empty());
        assert!(received.take_for(10, 2).is_none(), "taken once");
    }

    // Once the state is applied to its index, a prepared snapshot is dropped; before, kept.
    #[test]
    fn prepared_snapshot_is_dropped_once_applied_past() {
        let mut received = Received::default();
        received.offer(prepared(10, 2));
        assert!(received.drop_if_behind(9).is_none());
        assert!(!received.is_empty());
        received.drop_if_behind(10);
        assert!(received.is_empty());
    }

    // A snapshot that does not decode is refused at preparing, naming its index.
    #[test]
    fn undecodable_snapshot_is_refused_when_prepared() {
        let mut bad = snapshot(7, 1);
        bad.set_data(Bytes::from_static(&[0xff, 0xff, 0xff]));
        let why = prepare(&bad, STATE_MACHINE_VERSION, None, 0).expect_err("refused");
        assert!(why.contains("snapshot 7"), "{why}");
    }
}
