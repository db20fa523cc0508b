//! Replies the driver owes for entries it proposed, by log index: one per operation of an
//! entry of writes, or one for a membership change. It keeps the counts the driver admits
//! new writes against (replies owed, and what the puts among them add to the jobs' bytes)
//! equal to what it holds (checked cheaply: they return to zero when nothing is owed).

use std::collections::BTreeMap;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::handle::NodeError;
use crate::fsm::Reply;

pub(super) type WriteReply = oneshot::Sender<Result<Reply, NodeError>>;
pub(super) type MemberReply = oneshot::Sender<Result<(), NodeError>>;

/// Replies owed once the entry at some index applies.
pub(super) enum Pending {
    /// One reply for each operation of the entry, in its order; when it was proposed, if
    /// metrics time entries; what its puts count for against `jobs_bytes_max`.
    Writes {
        term: u64,
        replies: Vec<WriteReply>,
        proposed: Option<Instant>,
        put_bytes: u64,
    },
    Member {
        term: u64,
        reply: MemberReply,
    },
}

#[derive(Default)]
pub(super) struct Owed {
    by_index: BTreeMap<u64, Pending>,
    /// Write replies in `by_index`.
    writes: usize,
    /// What the puts in `by_index` count for against `jobs_bytes_max`.
    put_bytes: u64,
}

impl Owed {
    /// Write replies owed.
    pub fn writes(&self) -> usize {
        self.writes
    }

    /// What the puts proposed and not yet applied add to the jobs' bytes.
    pub fn put_bytes(&self) -> u64 {
        self.put_bytes
    }

    /// Owes `replies` for the entry of writes proposed at `index` in `term`.
    pub fn owe_writes(&mut self, index: u64, term: u64, replies: Vec<WriteReply>, proposed: Option<Instant>, put_bytes: u64) {
        assert!(!replies.is_empty(), "an entry of writes owes a reply per write");
        self.writes += replies.len();
        self.put_bytes += put_bytes;
        self.insert(index, Pending::Writes { term, replies, proposed, put_bytes });
    }

    /// Owes `reply` for the membership change proposed at `index` in `term`.
    pub fn owe_member(&mut self, index: u64, term: u64, reply: MemberReply) {
        self.insert(index, Pending::Member { term, reply });
    }

    fn insert(&mut self, index: u64, pending: Pending) {
        // One leader proposes at rising indexes; a new role fails everything owed first.
        assert!(self.by_index.last_key_value().is_none_or(|(last, _)| *last < index), "entry {index} proposed below one owed");
        self.by_index.insert(index, pending);
        self.check();
    }

    /// What is owed for the entry at `index`, no longer counted.
    pub fn take(&mut self, index: u64) -> Option<Pending> {
        let pending = self.by_index.remove(&index)?;
        if let Pending::Writes { replies, put_bytes, .. } = &pending {
            self.writes -= replies.len();
            self.put_bytes -= put_bytes;
        }
        self.check();
        Some(pending)
    }

    /// Fails every reply owed.
    pub fn fail_all(&mut self, error: impl Fn() -> NodeError) {
        for (_, pending) in std::mem::take(&mut self.by_index) {
            match pending {
                Pending::Writes { replies, .. } => {
                    for reply in replies {
                        let _ = reply.send(Err(error()));
                    }
                }
                Pending::Member { reply, .. } => {
                    let _ = reply.send(Err(error()));
                }
            }
        }
        (self.writes, self.put_bytes) = (0, 0);
    }

    /// Checks in constant time, as this runs on every entry: a count that drifted from what
    /// is held shows when nothing is owed (a count below zero panics on its own in debug).
    fn check(&self) {
        debug_assert!(!self.by_index.is_empty() || (self.writes, self.put_bytes) == (0, 0), "the counts are of what is owed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replies(n: usize) -> (Vec<WriteReply>, Vec<oneshot::Receiver<Result<Reply, NodeError>>>) {
        (0..n).map(|_| oneshot::channel()).unzip()
    }

    /// The counts follow what is owed as entries are owed and taken; failing everything
    /// answers every reply and clears the counts.
    #[test]
    fn counts_follow_what_is_owed() {
        let mut owed = Owed::default();
        let (first, _first_answers) = replies(3);
        owed.owe_writes(5, 1, first, None, 300);
        let (member, mut member_answer) = oneshot::channel();
        owed.owe_member(6, 1, member);
        let (second, mut second_answers) = replies(2);
        owed.owe_writes(7, 1, second, None, 0);
        assert_eq!((owed.writes(), owed.put_bytes()), (5, 300));
        assert!(matches!(owed.take(5), Some(Pending::Writes { .. })));
        assert_eq!((owed.writes(), owed.put_bytes()), (2, 0));
        assert!(owed.take(5).is_none(), "owed once");
        owed.fail_all(|| NodeError::Stopped);
        assert_eq!((owed.writes(), owed.put_bytes()), (0, 0));
        assert!(matches!(member_answer.try_recv(), Ok(Err(NodeError::Stopped))));
        assert!(second_answers.iter_mut().all(|a| matches!(a.try_recv(), Ok(Err(NodeError::Stopped)))));
    }

    /// An entry proposed below one already owed breaks the driver's order: a panic, not a
    /// reply given to the wrong caller.
    #[test]
    #[should_panic(expected = "proposed below one owed")]
    fn indexes_rise() {
        let mut owed = Owed::default();
        owed.owe_writes(9, 1, replies(1).0, None, 0);
        owed.owe_writes(8, 1, replies(1).0, None, 0);
    }
}
