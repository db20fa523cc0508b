//! When a node snapshots its own state, and who waits for it: the log applied since the last
//! snapshot is counted, one snapshot at a time is written apart from the driver, and those
//! who asked for one while it was written are answered once it is adopted. The driver does
//! the work (picturing the state, compacting the log); this part decides and keeps count.

use tokio::sync::oneshot;

use super::handle::NodeError;

/// What a snapshot asked for answers: the log's snapshot index after it, or why not.
pub(crate) type SnapshotReply = oneshot::Sender<Result<u64, NodeError>>;

pub(crate) struct Snapshots {
    /// Take one once this many entries were applied past the last...
    entries_max: u64,
    /// ...or once those entries (data and records) hold this many bytes.
    log_bytes_max: u64,
    /// Bytes of log applied since the last snapshot.
    log_bytes: u64,
    /// One is being encoded and written apart from the driver.
    in_flight: bool,
    /// Asked for one while one was in flight: answered when it is adopted.
    waiters: Vec<SnapshotReply>,
}

impl Snapshots {
    pub fn new(entries_max: u64, log_bytes_max: u64) -> Self {
        Snapshots { entries_max, log_bytes_max, log_bytes: 0, in_flight: false, waiters: Vec::new() }
    }

    /// An entry of `bytes` (its data and record) was applied.
    pub fn applied(&mut self, bytes: u64) {
        self.log_bytes = self.log_bytes.saturating_add(bytes);
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Whether to start one now, with `behind` entries applied past the last snapshot and a
    /// fresh one `wanted` by a peer: never while one is in flight, nor with nothing new.
    pub fn due(&self, behind: u64, wanted: bool) -> bool {
        !self.in_flight && behind > 0 && (wanted || behind >= self.entries_max || self.log_bytes >= self.log_bytes_max)
    }

    /// One is being written apart; the log counts from here.
    pub fn started(&mut self) {
        assert!(!self.in_flight, "one snapshot is written at a time");
        assert!(self.waiters.is_empty(), "waiters wait only on a snapshot in flight");
        self.in_flight = true;
        self.log_bytes = 0;
    }

    /// The log was compacted at once (a log in memory), or a snapshot from the leader
    /// replaced it: the log counts from here.
    pub fn compacted(&mut self) {
        self.log_bytes = 0;
    }

    /// Waits on the snapshot in flight; with none, `reply` comes back, to answer at once.
    pub fn wait(&mut self, reply: SnapshotReply) -> Result<(), SnapshotReply> {
        if !self.in_flight {
            return Err(reply);
        }
        self.waiters.push(reply);
        Ok(())
    }

    /// The snapshot in flight is done (adopted, overtaken, or failed): every waiter hears
    /// `answer`.
    pub fn finished(&mut self, answer: Result<u64, NodeError>) {
        assert!(self.in_flight, "a snapshot finished that was never started");
        self.in_flight = false;
        for reply in self.waiters.drain(..) {
            let _ = reply.send(answer.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Due after enough entries, enough bytes, or a peer's want; never with nothing new.
    #[test]
    fn due_after_entries_bytes_or_a_want_and_never_with_nothing_new() {
        let mut snapshots = Snapshots::new(10, 1_000);
        assert!(!snapshots.due(9, false));
        assert!(snapshots.due(10, false), "entries");
        assert!(snapshots.due(1, true), "wanted");
        assert!(!snapshots.due(0, true), "nothing new to snapshot");
        snapshots.applied(999);
        assert!(!snapshots.due(1, false));
        snapshots.applied(1);
        assert!(snapshots.due(1, false), "bytes");
        snapshots.compacted();
        assert!(!snapshots.due(1, false), "counted from the compaction");
    }

    // While one is in flight none is due, and those who ask wait; its end answers them all,
    // and the log counts from its start.
    #[test]
    fn one_in_flight_at_a_time_and_its_waiters_hear_its_end() {
        let mut snapshots = Snapshots::new(10, 1_000);
        let (reply, answered) = oneshot::channel();
        assert!(snapshots.wait(reply).is_err(), "none in flight: answer at once");
        drop(answered);
        snapshots.applied(2_000);
        snapshots.started();
        assert!(!snapshots.due(100, true), "one at a time");
        let (first, first_answer) = oneshot::channel();
        let (second, second_answer) = oneshot::channel();
        snapshots.wait(first).expect("waits");
        snapshots.wait(second).expect("waits");
        snapshots.finished(Ok(42));
        assert_eq!(first_answer.blocking_recv().expect("answered"), Ok(42));
        assert_eq!(second_answer.blocking_recv().expect("answered"), Ok(42));
        assert!(!snapshots.in_flight());
        assert!(!snapshots.due(1, false), "the bytes before its start count for it");
    }

    #[test]
    #[should_panic(expected = "one snapshot is written at a time")]
    fn a_second_start_in_flight_is_a_bug() {
        let mut snapshots = Snapshots::new(10, 1_000);
        snapshots.started();
        snapshots.started();
    }

    #[test]
    #[should_panic(expected = "never started")]
    fn an_end_without_a_start_is_a_bug() {
        Snapshots::new(10, 1_000).finished(Ok(1));
    }
}
