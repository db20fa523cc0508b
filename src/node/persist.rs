//! Persistence apart from the driver: the log's batches are written and fsynced by a writer of
//! their own while the driver goes on (raft-rs's asynchronous Ready). The driver hands over
//! each Ready's number with the messages that must wait until it is durable (a follower's
//! append and vote answers), and passes the log's batch to the writer at once. The writer
//! takes every batch waiting when it becomes free and makes them durable together, so one
//! fsync covers all that waited and the disk never waits on the driver's turn. Readies become
//! durable in the order they were handled.

use std::collections::VecDeque;
use std::sync::Arc;

use raft::eraftpb::Message;
use tokio::sync::mpsc;

use super::log_store::LogStore;
use super::metrics::NodeMetrics;
use crate::storage::{WalBatch, WalWriter};

/// Readies become durable: everything up to `number`, and the messages that waited on them.
#[derive(Default)]
pub(crate) struct Durable {
    pub number: u64,
    pub messages: Vec<Message>,
}

impl Durable {
    fn join(&mut self, later: Durable) {
        self.number = self.number.max(later.number);
        self.messages.extend(later.messages);
    }
}

/// What the writer says after a write: how many batches it made durable, or why it failed.
type Written = Result<usize, String>;

pub(crate) struct Persistence {
    /// The writer's ends; `None` for a log in memory, whose Readies are durable at once.
    writer: Option<WriterLink>,
    /// Readies handled but not yet durable, oldest first, with the messages waiting on them.
    waiting: VecDeque<(u64, Vec<Message>)>,
    /// For each batch with the writer, oldest first: the highest Ready number durable once
    /// it is (a Ready with nothing to write rides with the batch before it).
    out: VecDeque<u64>,
}

struct WriterLink {
    batches: mpsc::UnboundedSender<WalBatch>,
    written: mpsc::UnboundedReceiver<Written>,
}

impl Persistence {
    /// Starts the log's writer, if it has one (it is on disk), recording its writes into
    /// `metrics` if given.
    pub fn new(store: &LogStore, metrics: Option<Arc<NodeMetrics>>) -> Self {
        let writer = store.writer().map(|writer| spawn_writer(writer, metrics));
        Persistence { writer, waiting: VecDeque::new(), out: VecDeque::new() }
    }

    /// Ready `number` was handled: its entries and hard state are in the log's next batch,
    /// and `messages` may go once it is durable.
    pub fn handled(&mut self, number: u64, messages: Vec<Message>) {
        debug_assert!(self.waiting.back().is_none_or(|(last, _)| *last < number), "Readies are handled in order");
        self.waiting.push_back((number, messages));
    }

    /// Hands what the log has pending to the writer. Answers the Readies that are durable at
    /// once: all that wait, when there was nothing to write and no batch is out (or the log is
    /// in memory).
    pub fn start(&mut self, store: &mut LogStore) -> Result<Option<Durable>, String> {
        let Some(&(newest, _)) = self.waiting.back() else { return Ok(None) };
        if self.out.back() == Some(&newest) {
            return Ok(None);
        }
        let Some(batch) = store.take_batch().map_err(|e| e.to_string())? else {
            return Ok(match self.out.back_mut() {
                Some(last) => {
                    *last = newest;
                    None
                }
                None => Some(self.durable_up_to(u64::MAX)),
            });
        };
        let Some(writer) = self.writer.as_ref() else {
            return Err("the log has a batch to write but no writer".into());
        };
        if writer.batches.send(batch).is_err() {
            return Err("the log writer stopped".into());
        }
        self.out.push_back(newest);
        Ok(None)
    }

    /// Every Ready that waits is durable now, without writing (a planted bug acknowledges
    /// before the fsync this way).
    pub fn assume_durable(&mut self) -> Option<Durable> {
        (!self.waiting.is_empty()).then(|| self.durable_up_to(u64::MAX))
    }

    /// Completes when the writer reports a write; never, while no batch is out.
    pub async fn completion(&mut self) -> Option<Written> {
        match self.writer.as_mut() {
            Some(writer) if !self.out.is_empty() => writer.written.recv().await,
            _ => std::future::pending().await,
        }
    }

    /// Takes the writer's report: the Readies it made durable, or why it failed (the log is
    /// then poisoned and the node must stop).
    pub fn finish(&mut self, written: Option<Written>, store: &mut LogStore) -> Result<Durable, String> {
        let count = match written.unwrap_or_else(|| Err("the log writer stopped".into())) {
            Ok(count) => count,
            Err(e) => {
                store.poison();
                return Err(e);
            }
        };
        assert!(count > 0 && count <= self.out.len(), "the writer reports {count} of the {} batches out", self.out.len());
        let number = self.out.drain(..count).next_back().expect("at least one batch");
        Ok(self.durable_up_to(number))
    }

    /// Waits until every batch out is durable: before anything else writes the log (a
    /// snapshot installed or adopted).
    pub async fn settle(&mut self, store: &mut LogStore) -> Result<Option<Durable>, String> {
        let mut settled: Option<Durable> = None;
        while !self.out.is_empty() {
            let written = self.completion().await;
            let durable = self.finish(written, store)?;
            settled.get_or_insert_with(Durable::default).join(durable);
        }
        Ok(settled)
    }

    /// Whether a batch is with the writer.
    pub fn writing(&self) -> bool {
        !self.out.is_empty()
    }

    fn durable_up_to(&mut self, number: u64) -> Durable {
        let mut durable = Durable::default();
        while self.waiting.front().is_some_and(|(n, _)| *n <= number) {
            let (n, messages) = self.waiting.pop_front().expect("front exists");
            durable.join(Durable { number: n, messages });
        }
        assert!(self.writer.is_some() || self.waiting.is_empty(), "a log in memory leaves nothing waiting");
        durable
    }
}

/// The log's writer: the disk's, and where its writes are counted.
struct Writer {
    wal: WalWriter,
    metrics: Option<Arc<NodeMetrics>>,
}

impl Writer {
    /// Writes every batch waiting behind `first`, as one write per segment; answers how many.
    fn write_waiting(&mut self, first: WalBatch, batches: &mut mpsc::UnboundedReceiver<WalBatch>) -> Written {
        let mut taken = vec![first];
        while let Ok(batch) = batches.try_recv() {
            taken.push(batch);
        }
        let (count, bytes) = (taken.len(), taken.iter().map(WalBatch::len_bytes).sum());
        self.wal.write_all(taken).map_err(|e| e.to_string())?;
        if let Some(metrics) = &self.metrics {
            metrics.written(count, bytes);
        }
        Ok(count)
    }
}

/// The writer's queue and report channels: the driver's ends, and the writer's.
fn channels() -> (WriterLink, mpsc::UnboundedReceiver<WalBatch>, mpsc::UnboundedSender<Written>) {
    let (batches, batches_out) = mpsc::unbounded_channel();
    let (written_in, written) = mpsc::unbounded_channel();
    (WriterLink { batches, written }, batches_out, written_in)
}

/// Reports a write to the driver; false when the writer must stop (the driver is gone, or
/// the write failed and the log is poisoned).
fn report(written: &mpsc::UnboundedSender<Written>, result: Written) -> bool {
    let failed = result.is_err();
    written.send(result).is_ok() && !failed
}

/// The writer runs on a thread of its own that blocks on the disk and on its queue, so the
/// next write starts the moment one ends, whatever the runtime is busy with. It ends when the
/// driver drops its end, or after a failed write.
#[cfg(not(madsim))]
fn spawn_writer(wal: WalWriter, metrics: Option<Arc<NodeMetrics>>) -> WriterLink {
    let (link, mut batches, written) = channels();
    let mut writer = Writer { wal, metrics };
    tokio::task::spawn_blocking(move || {
        while let Some(first) = batches.blocking_recv() {
            if !report(&written, writer.write_waiting(first, &mut batches)) {
                break;
            }
        }
    });
    link
}

/// In the simulator the writer is a task of its node (killed with it), and each write takes
/// as long as a disk might, so completions come late and batches pile up behind them.
#[cfg(madsim)]
fn spawn_writer(wal: WalWriter, metrics: Option<Arc<NodeMetrics>>) -> WriterLink {
    let (link, mut batches, written) = channels();
    let mut writer = Writer { wal, metrics };
    tokio::spawn(async move {
        while let Some(first) = batches.recv().await {
            let result = writer.write_waiting(first, &mut batches);
            if let Some(pause) = crate::chaos::buggify::fsync_latency() {
                tokio::time::sleep(pause).await;
            }
            if !report(&written, result) {
                break;
            }
        }
    });
    link
}
