//! The Raft checkers: watches every node's applies through the observer hook and checks that
//! every node applied the same entry at each index, that no node's applied index goes
//! backwards or skips, that at most one node led each term, and at the end that all members'
//! digests agree, that a snapshot restores to the same state, and that replaying the whole
//! committed log from empty gives the same state machine.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use coolbeans::chaos::observe::{self, EntryKind, Event};
use coolbeans::node::replicated::Replicated;

/// What one index holds, as the first node to apply it saw it.
struct Applied {
    term: u64,
    kind: EntryKind,
    data: bytes::Bytes,
    first_by: u64,
}

#[derive(Default)]
struct Inner {
    entries: BTreeMap<u64, Applied>,
    /// Each node's last applied index since it started.
    last: BTreeMap<u64, u64>,
    violations: Vec<String>,
    /// Snapshots received in chunks, and how many of them resumed data an earlier call left.
    snapshots: u64,
    snapshots_resumed: u64,
}

/// The observer's findings, shared with the hook.
#[derive(Clone, Default)]
pub struct RaftWatch {
    inner: Rc<RefCell<Inner>>,
}

impl RaftWatch {
    /// Installs the hook for this world's thread.
    pub fn install() -> RaftWatch {
        let watch = RaftWatch::default();
        let inner = watch.inner.clone();
        observe::install(move |event| inner.borrow_mut().see(event));
        watch
    }

    /// The first violation seen, if any.
    pub fn violation(&self) -> Option<String> {
        self.inner.borrow().violations.first().cloned()
    }

    /// The fsm digest of replaying every committed normal entry up to `index` from empty.
    pub fn replay_digest(&self, index: u64) -> Result<u64, String> {
        let inner = self.inner.borrow();
        let mut state = Replicated::new(BTreeMap::new()).understanding(READS_EVERY_VERSION);
        for i in 2..=index {
            let entry = inner.entries.get(&i).ok_or(format!("no node was seen applying index {i}"))?;
            if entry.kind == EntryKind::Normal && !entry.data.is_empty() {
                let _ = state.apply_entry(i, &entry.data);
            }
        }
        Ok(state.fsm.digest())
    }

    pub fn entries_seen(&self) -> u64 {
        self.inner.borrow().entries.len() as u64
    }

    /// Snapshots received in chunks, and how many of them resumed a cut-off call.
    pub fn snapshots_received(&self) -> (u64, u64) {
        let inner = self.inner.borrow();
        (inner.snapshots, inner.snapshots_resumed)
    }
}

impl Inner {
    fn see(&mut self, event: Event<'_>) {
        match event {
            Event::Started { node, applied } => {
                self.last.insert(node, applied);
            }
            Event::Installed { node, index } => {
                let last = self.last.get(&node).copied().unwrap_or(0);
                if index < last {
                    self.violate(format!("node {node} installed a snapshot at {index}, behind its applied index {last}"));
                }
                self.last.insert(node, index);
            }
            Event::Applied { node, index, term, kind, data } => self.applied(node, index, term, kind, data),
            Event::SnapshotProgress { .. } => {}
            Event::SnapshotReceived { resumed_from, .. } => {
                self.snapshots += 1;
                self.snapshots_resumed += u64::from(resumed_from > 0);
            }
        }
    }

    fn applied(&mut self, node: u64, index: u64, term: u64, kind: EntryKind, data: &[u8]) {
        let last = self.last.get(&node).copied().unwrap_or(0);
        if index != last + 1 {
            self.violate(format!("node {node} applied index {index} right after {last}"));
        }
        self.last.insert(node, index);
        match self.entries.get(&index) {
            None => {
                self.entries.insert(index, Applied { term, kind, data: bytes::Bytes::copy_from_slice(data), first_by: node });
            }
            Some(seen) if seen.term != term || seen.kind != kind || seen.data[..] != *data => {
                let first = seen.first_by;
                let was = seen.term;
                self.violate(format!("node {node} applied a different entry at index {index} (term {term}) than node {first} (term {was})"));
            }
            Some(_) => {}
        }
    }

    fn violate(&mut self, what: String) {
        tracing::error!(target: "sim::raft", "{what}");
        self.violations.push(what);
    }
}

/// At most one node claimed to lead each term.
pub fn one_leader_per_term(leaders: &BTreeMap<u64, BTreeSet<u64>>) -> Result<(), String> {
    match leaders.iter().find(|(_, ids)| ids.len() > 1) {
        Some((term, ids)) => Err(format!("term {term} had two leaders: {ids:?}")),
        None => Ok(()),
    }
}

/// The checkers replay and restore whatever the nodes applied, of any state machine version:
/// a node refusing what it cannot apply is the nodes' concern, not the checkers'.
const READS_EVERY_VERSION: u32 = u32::MAX;

/// A snapshot of `state` restores to the same digest.
pub fn snapshot_restores(node: u64, state: &Replicated) -> Result<(), String> {
    let restored = Replicated::restore(&state.snapshot(), READS_EVERY_VERSION).map_err(|e| format!("node {node}: snapshot does not restore: {e}"))?;
    if restored.digest() != state.digest() {
        return Err(format!("node {node}: the state restored from its snapshot differs from the live state"));
    }
    Ok(())
}
