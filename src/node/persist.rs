//! Persistence apart from the driver: the log's batches are written and fsynced by a blocking
//! task while the driver goes on (raft-rs's asynchronous Ready). The driver hands over each
//! Ready's number with the messages that must wait until it is durable (a follower's append
//! and vote answers); a write covers every Ready handled before it started, so one fsync
//! covers all that waited, and the next write starts when it is done. Readies are durable in
//! the order they were handled: one write is out at a time.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use raft::eraftpb::Message;

use super::log_store::LogStore;
use crate::storage::{WalBatch, WalWriter};

/// The writer back from a finished write, and how the write went.
type WriteDone = (Option<WalWriter>, Result<(), String>);

/// A write on its way to the disk: the highest Ready number it makes durable.
struct InFlight {
    number: u64,
    done: Pin<Box<dyn Future<Output = WriteDone> + Send>>,
}

/// Readies become durable: everything up to `number`, and the messages that waited on them.
pub(crate) struct Durable {
    pub number: u64,
    pub messages: Vec<Message>,
}

pub(crate) struct Persistence {
    /// Writes batches apart; `None` while a write has it, and always for a log in memory,
    /// whose Readies are durable at once.
    writer: Option<WalWriter>,
    /// Whether the log has a writer at all (it is on disk).
    on_disk: bool,
    in_flight: Option<InFlight>,
    /// Readies handled but not yet durable, oldest first, with the messages waiting on them.
    waiting: VecDeque<(u64, Vec<Message>)>,
}

impl Persistence {
    pub fn new(store: &LogStore) -> Self {
        let writer = store.writer();
        Persistence { on_disk: writer.is_some(), writer, in_flight: None, waiting: VecDeque::new() }
    }

    /// Ready `number` was handled: its entries and hard state are in the log's next batch,
    /// and `messages` may go once it is durable.
    pub fn handled(&mut self, number: u64, messages: Vec<Message>) {
        debug_assert!(self.waiting.back().is_none_or(|(last, _)| *last < number), "Readies are handled in order");
        self.waiting.push_back((number, messages));
    }

    /// Starts writing what waits, unless a write is out. Answers the Readies that are durable
    /// at once: all that wait, when there was nothing to write (or the log is in memory).
    pub fn start(&mut self, store: &mut LogStore) -> Result<Option<Durable>, String> {
        if self.in_flight.is_some() || self.waiting.is_empty() {
            return Ok(None);
        }
        let Some(batch) = store.take_batch().map_err(|e| e.to_string())? else {
            return Ok(Some(self.durable_up_to(u64::MAX)));
        };
        let Some(writer) = self.writer.take() else {
            return Err("the log has a batch to write but no writer".into());
        };
        let number = self.waiting.back().map_or(0, |(n, _)| *n);
        self.in_flight = Some(InFlight { number, done: Box::pin(write(writer, batch)) });
        Ok(None)
    }

    /// Every Ready that waits is durable now, without writing (a planted bug acknowledges
    /// before the fsync this way).
    pub fn assume_durable(&mut self) -> Option<Durable> {
        (!self.waiting.is_empty()).then(|| self.durable_up_to(u64::MAX))
    }

    /// Completes when the write out finishes; never, when none is.
    pub async fn completion(&mut self) -> WriteDone {
        match self.in_flight.as_mut() {
            Some(in_flight) => in_flight.done.as_mut().await,
            None => std::future::pending().await,
        }
    }

    /// Takes a finished write's result: the Readies it made durable, or why it failed (the
    /// log is then poisoned and the node must stop).
    pub fn finish(&mut self, (writer, result): WriteDone, store: &mut LogStore) -> Result<Durable, String> {
        let Some(in_flight) = self.in_flight.take() else {
            return Err("a write finished that was never started".into());
        };
        self.writer = writer;
        if let Err(e) = result {
            store.poison();
            return Err(e);
        }
        Ok(self.durable_up_to(in_flight.number))
    }

    /// Waits for the write out, if any, to finish: before anything else writes the log (a
    /// snapshot installed or adopted).
    pub async fn settle(&mut self, store: &mut LogStore) -> Result<Option<Durable>, String> {
        if self.in_flight.is_none() {
            return Ok(None);
        }
        let done = self.completion().await;
        self.finish(done, store).map(Some)
    }

    /// Whether a write is out.
    pub fn writing(&self) -> bool {
        self.in_flight.is_some()
    }

    fn durable_up_to(&mut self, number: u64) -> Durable {
        let mut durable = Durable { number: 0, messages: Vec::new() };
        while let Some((n, _)) = self.waiting.front() {
            if *n > number {
                break;
            }
            let (n, messages) = self.waiting.pop_front().expect("front exists");
            durable.number = n;
            if durable.messages.is_empty() {
                durable.messages = messages;
            } else {
                durable.messages.extend(messages);
            }
        }
        assert!(self.on_disk || self.waiting.is_empty(), "a log in memory leaves nothing waiting");
        durable
    }
}

/// Writes and fsyncs one batch on a blocking thread (the disk must never hold a runtime
/// worker), then, in the simulator, takes as long as a disk might.
#[cfg_attr(madsim, allow(deprecated))] // madsim runs a blocking task as an ordinary one.
async fn write(mut writer: WalWriter, batch: WalBatch) -> WriteDone {
    let written = tokio::task::spawn_blocking(move || {
        let result = writer.write(batch).map_err(|e| e.to_string());
        (Some(writer), result)
    })
    .await
    .unwrap_or_else(|e| (None, Err(format!("the log writer failed: {e}"))));
    if let Some(pause) = crate::chaos::buggify::fsync_latency() {
        tokio::time::sleep(pause).await;
    }
    written
}
