//! Raft messages from peers, checked before raft-rs steps them. raft-rs treats what it cannot
//! make sense of as a broken invariant of its own and panics (a heartbeat committing past the
//! log's end, an append rewriting committed entries); from the network such a message is only
//! wrong (a peer that lost its data, another cluster, a forgery), so it is refused here and
//! the node lives on.

use std::time::Duration;

use raft::eraftpb::{Message, MessageType};
use raft::{RaftLog, Storage};
use tokio::time::Instant;

/// Refused messages are logged at most this often: a peer that lost its data sends one with
/// every heartbeat.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The log of refused messages: the first at once, then at most one line per interval, with
/// how many went unlogged since the last.
#[derive(Default)]
pub(crate) struct Refusals {
    logged_at: Option<Instant>,
    unlogged: u64,
}

impl Refusals {
    pub(crate) fn note(&mut self, node: u64, from: u64, kind: MessageType, why: String) {
        let now = Instant::now();
        if self.logged_at.is_some_and(|at| now.duration_since(at) < REFUSAL_LOG_INTERVAL) {
            self.unlogged += 1;
            return;
        }
        let unlogged = std::mem::take(&mut self.unlogged);
        tracing::warn!(node, from, ?kind, why, unlogged, "refused a raft message that cannot be valid");
        self.logged_at = Some(now);
    }
}

/// Why `m`, addressed to node `id` whose log is `log`, must not be stepped; `None` if it may.
pub(crate) fn refusal<T: Storage>(id: u64, log: &RaftLog<T>, m: &Message) -> Option<String> {
    if m.to != id {
        return Some(format!("addressed to node {}", m.to));
    }
    let last_index = log.last_index();
    match m.get_msg_type() {
        MessageType::MsgHeartbeat if m.commit > last_index => Some(format!("commits index {} past this log's last index {last_index}", m.commit)),
        MessageType::MsgAppend => append_refusal(log, m),
        MessageType::MsgAppendResponse if !m.reject && m.index > last_index => {
            Some(format!("acknowledges index {} past this log's last index {last_index}", m.index))
        }
        MessageType::MsgPropose if m.entries.is_empty() => Some("proposes nothing".into()),
        MessageType::MsgSnapshot => {
            let metadata = m.get_snapshot().get_metadata();
            if metadata.index == 0 {
                Some("carries an empty snapshot".into())
            } else if metadata.get_conf_state().voters.is_empty() {
                Some("carries a snapshot of a membership without voters".into())
            } else {
                None
            }
        }
        _ => None,
    }
}

/// An append's entries must follow its index one by one, and must not disagree with an
/// entry this log already committed.
fn append_refusal<T: Storage>(log: &RaftLog<T>, m: &Message) -> Option<String> {
    let misplaced = m.entries.iter().zip(m.index + 1..).find(|(entry, expected)| entry.index != *expected);
    if let Some((entry, expected)) = misplaced {
        return Some(format!("carries entry {} where entry {expected} belongs", entry.index));
    }
    let committed = log.committed;
    let rewrites = m.entries.iter().take_while(|entry| entry.index <= committed).find(|entry| {
        let term = log.term(entry.index).unwrap_or(0);
        term != 0 && term != entry.term
    });
    rewrites.map(|entry| {
        format!("rewrites committed entry {} (term {} here, {} in the message)", entry.index, log.term(entry.index).unwrap_or(0), entry.term)
    })
}

#[cfg(test)]
mod tests {
    use raft::eraftpb::{Entry, HardState, Snapshot};
    use raft::storage::MemStorage;

    use super::*;

    /// A log of entries 1..=5 in term 2, committed up to 3.
    fn log() -> RaftLog<MemStorage> {
        let storage = MemStorage::new();
        let entries: Vec<Entry> = (1..=5).map(|index| Entry { index, term: 2, ..Entry::default() }).collect();
        storage.wl().append(&entries).expect("append");
        storage.wl().set_hardstate(HardState { term: 2, commit: 3, ..HardState::default() });
        let logger = raft::default_logger();
        let mut log = RaftLog::new(storage, logger);
        log.committed = 3;
        log
    }

    fn message(kind: MessageType) -> Message {
        let mut m = Message::default();
        m.set_msg_type(kind);
        (m.to, m.from, m.term) = (1, 2, 2);
        m
    }

    fn entries(indexes: impl IntoIterator<Item = u64>, term: u64) -> Vec<Entry> {
        indexes.into_iter().map(|index| Entry { index, term, ..Entry::default() }).collect()
    }

    // What raft-rs sends in a healthy cluster passes.
    #[test]
    fn sound_messages_pass() {
        let log = log();
        let mut heartbeat = message(MessageType::MsgHeartbeat);
        heartbeat.commit = 5;
        let mut append = message(MessageType::MsgAppend);
        (append.index, append.log_term, append.commit) = (3, 2, 4);
        append.entries = entries(4..=6, 3).into();
        let mut overlapping = append.clone();
        overlapping.index = 1;
        overlapping.entries = entries(2..=3, 2).into();
        let mut ack = message(MessageType::MsgAppendResponse);
        ack.index = 5;
        for m in [heartbeat, append, overlapping, ack, message(MessageType::MsgRequestVote)] {
            assert_eq!(refusal(1, &log, &m), None, "{m:?}");
        }
    }

    // Each kind of message raft-rs would panic on is refused, with why.
    #[test]
    fn impossible_messages_are_refused() {
        let log = log();
        let mut heartbeat = message(MessageType::MsgHeartbeat);
        heartbeat.commit = 1_000_000_000;
        let mut gap = message(MessageType::MsgAppend);
        gap.index = 5;
        gap.entries = entries([6, 8], 2).into();
        let mut rewrite = message(MessageType::MsgAppend);
        rewrite.index = 1;
        rewrite.entries = entries(2..=4, 3).into();
        let mut ack = message(MessageType::MsgAppendResponse);
        ack.index = 9;
        let mut elsewhere = message(MessageType::MsgHeartbeat);
        elsewhere.to = 7;
        let mut snapshot = message(MessageType::MsgSnapshot);
        snapshot.set_snapshot(Snapshot::default());
        let cases = [
            (heartbeat, "commits index 1000000000 past this log's last index 5"),
            (gap, "carries entry 8 where entry 7 belongs"),
            (rewrite, "rewrites committed entry 2 (term 2 here, 3 in the message)"),
            (ack, "acknowledges index 9 past this log's last index 5"),
            (elsewhere, "addressed to node 7"),
            (message(MessageType::MsgPropose), "proposes nothing"),
            (snapshot, "carries an empty snapshot"),
        ];
        for (m, why) in cases {
            assert_eq!(refusal(1, &log, &m).as_deref(), Some(why), "{m:?}");
        }
    }
}
