//! Linearizable reads the driver owes (raft's ReadIndex): each read is asked of raft with a
//! context of its own, confirmed by raft with the commit index it must wait for, and answered
//! once the node has applied that far. The time is given by the caller, so the rules can be
//! stepped in a test without a node.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::handle::NodeError;

/// How long a read waits for raft to confirm it before it is asked again: far above a round
/// trip, far below a caller's patience. raft-rs drops a ReadIndex without a word when its
/// leader has not yet committed in its term (just after an election), whether the read is the
/// leader's own or a follower's, and a follower's request to the leader may be lost; the read
/// would then wait until leadership changed again, which may be never. Asking again is
/// harmless: a read is answered once.
pub(super) const READ_ASK_AGAIN: Duration = Duration::from_millis(500);

pub(super) type ReadReply = oneshot::Sender<Result<(), NodeError>>;

pub(super) struct Reads {
    /// Asked of raft, not yet confirmed, by context id.
    asked: BTreeMap<u64, ReadReply>,
    /// When each read of `asked` was last asked of raft, oldest first (a read answered or
    /// failed meanwhile leaves its entry, skipped when reached).
    asked_at: VecDeque<(u64, Instant)>,
    /// Confirmed, waiting for the node to apply up to their index.
    ready: Vec<(u64, ReadReply)>,
    next_id: u64,
    /// Reads asked and not confirmed at most; more are refused as overload.
    asked_max: usize,
}

/// A read's context as raft carries it, and back.
fn context(id: u64) -> Vec<u8> {
    id.to_le_bytes().to_vec()
}

fn id_of(ctx: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(ctx).ok().map(u64::from_le_bytes)
}

impl Reads {
    pub fn new(asked_max: usize) -> Self {
        assert!(asked_max > 0);
        Reads { asked: BTreeMap::new(), asked_at: VecDeque::new(), ready: Vec::new(), next_id: 1, asked_max }
    }

    /// Takes a read at `now`: the context to ask raft with, or the reply back when too many
    /// reads are already asked.
    pub fn ask(&mut self, reply: ReadReply, now: Instant) -> Result<Vec<u8>, ReadReply> {
        if self.asked.len() >= self.asked_max {
            return Err(reply);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.asked.insert(id, reply);
        self.timed(id, now);
        self.check();
        Ok(context(id))
    }

    /// The contexts of the reads asked at least `READ_ASK_AGAIN` before `now` and still not
    /// confirmed, to ask raft again; they count as asked at `now`.
    pub fn due_again(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut due = Vec::new();
        while let Some(&(id, asked)) = self.asked_at.front() {
            if !self.asked.contains_key(&id) {
                self.asked_at.pop_front();
                continue;
            }
            if now < asked + READ_ASK_AGAIN {
                break;
            }
            self.asked_at.pop_front();
            self.timed(id, now);
            due.push(context(id));
        }
        self.check();
        due
    }

    /// Raft confirmed the read of `ctx`: it may be answered once `index` is applied. A
    /// context not asked here (another node's, or one confirmed already) is ignored.
    pub fn confirmed(&mut self, ctx: &[u8], index: u64) {
        if let Some(reply) = id_of(ctx).and_then(|id| self.asked.remove(&id)) {
            self.ready.push((index, reply));
        }
        self.check();
    }

    /// Answers the confirmed reads whose index is `applied` or below.
    pub fn serve(&mut self, applied: u64) {
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.ready).into_iter().partition(|(i, _)| *i <= applied);
        self.ready = waiting;
        for (_, reply) in due {
            let _ = reply.send(Ok(()));
        }
        assert!(self.ready.iter().all(|(i, _)| *i > applied), "no read left that could be answered");
    }

    /// Fails every read owed, asked or confirmed.
    pub fn fail_all(&mut self, error: impl Fn() -> NodeError) {
        for (_, reply) in std::mem::take(&mut self.asked) {
            let _ = reply.send(Err(error()));
        }
        for (_, reply) in std::mem::take(&mut self.ready) {
            let _ = reply.send(Err(error()));
        }
        self.asked_at.clear();
    }

    /// Checks in constant time, as this runs on every read: each read asked has at least one
    /// timing (stale ones stay until reached), and the newest id is one given out.
    fn check(&self) {
        debug_assert!(self.asked.len() <= self.asked_max, "reads asked stay within their bound");
        debug_assert!(self.asked.len() <= self.asked_at.len(), "every read asked is timed");
        debug_assert!(self.asked.last_key_value().is_none_or(|(id, _)| *id < self.next_id), "every read asked has an id given out");
    }

    /// Times a read as asked at `now`: asks stay oldest first.
    fn timed(&mut self, id: u64, now: Instant) {
        debug_assert!(self.asked_at.back().is_none_or(|(_, last)| *last <= now), "asks are timed oldest first");
        self.asked_at.push_back((id, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read() -> (ReadReply, oneshot::Receiver<Result<(), NodeError>>) {
        oneshot::channel()
    }

    /// A read is answered once confirmed and applied that far, not before either.
    #[test]
    fn answered_once_confirmed_and_applied() {
        let now = Instant::now();
        let mut reads = Reads::new(4);
        let (reply, mut answer) = read();
        let ctx = reads.ask(reply, now).map_err(drop).expect("room");
        reads.serve(100);
        assert!(answer.try_recv().is_err(), "not confirmed yet");
        reads.confirmed(&ctx, 7);
        reads.serve(6);
        assert!(answer.try_recv().is_err(), "not applied that far");
        reads.serve(7);
        assert!(matches!(answer.try_recv(), Ok(Ok(()))));
        reads.confirmed(&ctx, 9);
        reads.confirmed(b"junk", 9);
        reads.serve(9);
    }

    /// Reads not confirmed within READ_ASK_AGAIN are due again, oldest first, then wait
    /// another while; confirmed ones are not.
    #[test]
    fn unconfirmed_reads_are_asked_again() {
        let start = Instant::now();
        let mut reads = Reads::new(4);
        let first = reads.ask(read().0, start).map_err(drop).expect("room");
        let second = reads.ask(read().0, start + Duration::from_millis(100)).map_err(drop).expect("room");
        assert!(reads.due_again(start + READ_ASK_AGAIN - Duration::from_millis(1)).is_empty());
        assert_eq!(reads.due_again(start + READ_ASK_AGAIN), vec![first.clone()]);
        reads.confirmed(&second, 3);
        let later = start + READ_ASK_AGAIN * 2;
        assert_eq!(reads.due_again(later), vec![first], "the confirmed read is not asked again");
        assert!(reads.due_again(later).is_empty(), "asked again just now");
    }

    /// Past the bound a read is given back; failing every read answers each with the error.
    #[test]
    fn bounded_and_failed_whole() {
        let now = Instant::now();
        let mut reads = Reads::new(1);
        let (reply, mut kept) = read();
        let ctx = reads.ask(reply, now).map_err(drop).expect("room");
        assert!(reads.ask(read().0, now).is_err(), "the second is over the bound");
        reads.confirmed(&ctx, 5);
        let (reply, mut asked) = read();
        reads.ask(reply, now).map_err(drop).expect("room again once the first was confirmed");
        reads.fail_all(|| NodeError::Stopped);
        assert!(matches!(kept.try_recv(), Ok(Err(NodeError::Stopped))));
        assert!(matches!(asked.try_recv(), Ok(Err(NodeError::Stopped))));
    }
}
