//! The driver: one task owns the raft-rs `RawNode` and reads one bounded channel of inputs.
//! Each turn it takes every input waiting and proposes the writes among them as one entry,
//! ticks raft when due, proposes a Tick when the state machine's next deadline has come, then
//! handles Ready in raft-rs's asynchronous order: send (a leader sends its appends before its
//! own fsync, as Raft allows), install snapshot, apply, hand the entries and hard state to the
//! log, advance. The log's batches are written and fsynced apart (`persist.rs`); when one is
//! durable, raft learns it and the messages that waited on it (a follower's acknowledgements)
//! go. The writer takes everything that waited while it wrote, so one fsync covers it all.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType, Snapshot};
use raft::{RawNode, StateRole};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::entry::decode_conf_change;
use super::entry_format::{EntryFormat, LocalEntry, Ops};
use super::handle::{lock, AppliedEvents, Input, MemberChange, NodeError, NodeStop, Shared, Status};
use super::inbound::{self, Refusals};
use super::log_store::LogStore;
use super::metrics::SnapshotKind;
use super::owed::{Owed, Pending, WriteReply};
use super::persist::{Durable, Persistence};
use super::reads::Reads;
use super::received_snapshot::{Install, Received};
use super::replicated::{EntryError, Replicated};
use super::snapshots::{SnapshotReply, Snapshots};
use super::transport::Transport;
use super::version::Versions;
use crate::api::metadata::CallerSeq;
use crate::chaos::mutant::{self, Mutant};
use crate::chaos::observe;
use crate::clock;
use crate::fsm::{FsmError, Op};
use crate::storage::StagedSnapshot;

/// Timing and thresholds of a node.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    pub id: u64,
    /// One raft tick.
    pub tick: Duration,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    /// Take a snapshot once this many entries follow the last one...
    pub snapshot_entries: u64,
    /// ...or once the entries after it hold this many bytes. A snapshot costs time in
    /// proportion to the whole state, so it is taken only once the log has grown enough to be
    /// worth replacing.
    pub snapshot_log_bytes: u64,
    /// Proposals and reads in flight at most.
    pub pending_max: usize,
    /// The largest job body a put may carry (`-z`): a larger one is refused before it is
    /// proposed, whichever way it came.
    pub job_body_bytes_max: usize,
    /// What the jobs held may count for (`limits::job_bytes`) before a put is refused with
    /// `OUT_OF_MEMORY` (`--max-jobs-bytes`). The leader decides, before the log: the limit is
    /// the node's, and replicas never refuse an entry they are given.
    pub jobs_bytes_max: u64,
    /// Tubes at most (`--max-tubes`): a put, use or watch that would make one more is refused
    /// with `OUT_OF_MEMORY`, decided by the leader as `jobs_bytes_max` is. Writes on their way
    /// to the log are not counted, so a burst of new tubes may pass it by what is in flight.
    pub tubes_max: usize,
    /// The size snapshots sent to followers are cut into (at most
    /// `limits::SNAPSHOT_CHUNK_BYTES_MAX`; the simulator cuts them small).
    pub snapshot_chunk_bytes: usize,
    /// The state machine version this node runs and which version introduced each operation:
    /// this build's, but in the simulator, which rehearses upgrades with nodes of two versions.
    pub versions: Versions,
    /// The wall clock proposals are stamped with (the system's but in unit tests).
    pub clock: clock::Clock,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            id: 0,
            tick: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 2,
            snapshot_entries: 1_000_000,
            snapshot_log_bytes: 64 * 1024 * 1024,
            pending_max: 65_536,
            jobs_bytes_max: crate::limits::JOBS_BYTES_MAX_DEFAULT,
            tubes_max: crate::limits::TUBES_MAX_DEFAULT,
            job_body_bytes_max: crate::limits::JOB_BODY_BYTES_MAX_DEFAULT,
            snapshot_chunk_bytes: crate::limits::SNAPSHOT_CHUNK_BYTES_MAX,
            versions: Versions::default(),
            clock: clock::Clock::system(),
        }
    }
}

/// The writes of this turn, waiting to be proposed as one entry.
struct Batch {
    ops: Ops,
    replies: Vec<WriteReply>,
    /// What its puts count for against `jobs_bytes_max`.
    put_bytes: u64,
}

pub(crate) struct Driver {
    raw: RawNode<LogStore>,
    config: DriverConfig,
    shared: Arc<Shared>,
    inputs: mpsc::Receiver<Input>,
    transport: Transport,
    /// Replies owed, by the log index of their entry (their writes counted against
    /// `pending_max`, their puts against `jobs_bytes_max`).
    owed: Owed,
    /// Writes received this turn, proposed together at its end (or before any other input,
    /// so that inputs keep their order).
    batch: Batch,
    /// Linearizable reads owed (ReadIndex).
    reads: Reads,
    /// The index of the Tick proposal in flight, so only one is.
    tick_in_flight: Option<u64>,
    /// The last time stamped into a proposal: stamps never go backwards on one leader.
    last_stamp_ms: u64,
    applied: u64,
    leader: u64,
    term: u64,
    /// This node applied a membership without itself: it has left the cluster.
    removed: bool,
    /// Peer messages refused before raft-rs saw them.
    refused: Refusals,
    /// When raft messages from each member last reached the driver (published in the status).
    heard_at: BTreeMap<u64, Instant>,
    /// How entries carry their operations: encoded, or (a lone node whose log is in memory)
    /// kept here by index until applied.
    format: EntryFormat,
    /// Snapshots of this node's own state: when one is due, the one in flight, who waits.
    snapshots: Snapshots,
    /// A snapshot a peer sent, prepared apart from the driver, until raft installs it.
    received: Received,
    /// Where a snapshot written apart reports back (weak: it must not keep the node alive).
    inputs_back: mpsc::WeakSender<Input>,
    /// Storage failed outside Ready handling (adopting a snapshot): the node must stop.
    failed: Option<String>,
    /// The term of this node's last proposal of operations: a leader's first in a term
    /// proposes `Op::NewLeader` before it.
    proposed_in_term: u64,
    /// The log's writes, apart from the driver.
    persist: Persistence,
    /// A graceful stop was asked: the driver ends after this turn, its writes durable.
    stop_asked: bool,
    /// A committed entry this node cannot apply (written by a newer version): it stops.
    cannot_apply: Option<String>,
}

impl Driver {
    pub fn new(
        raw: RawNode<LogStore>,
        config: DriverConfig,
        shared: Arc<Shared>,
        inputs: mpsc::Receiver<Input>,
        transport: Transport,
        applied: u64,
        local_entries: bool,
    ) -> Self {
        let inputs_back = transport.reports();
        let persist = Persistence::new(raw.store(), shared.metrics.clone());
        let reads = Reads::new(config.pending_max);
        let format = EntryFormat::new(local_entries);
        let snapshots = Snapshots::new(config.snapshot_entries, config.snapshot_log_bytes);
        let batch = Batch { ops: format.no_ops(), replies: Vec::new(), put_bytes: 0 };
        Driver {
            raw,
            config,
            shared,
            inputs,
            transport,
            owed: Owed::default(),
            batch,
            reads,
            tick_in_flight: None,
            last_stamp_ms: 0,
            applied,
            leader: 0,
            term: 0,
            removed: false,
            format,
            snapshots,
            received: Received::default(),
            inputs_back,
            failed: None,
            proposed_in_term: 0,
            persist,
            refused: Refusals::default(),
            stop_asked: false,
            cannot_apply: None,
            heard_at: BTreeMap::new(),
        }
    }

    /// Runs until every handle is dropped (then answers `None`), storage fails (the node must
    /// stop: going on could acknowledge what is not durable), or the node is removed.
    pub async fn run(mut self) -> Option<NodeStop> {
        let mut next_tick = Instant::now() + self.config.tick;
        observe::report(observe::Event::Started { node: self.config.id, applied: self.applied });
        self.publish_status();
        let stop = loop {
            let wake = self.next_wake(next_tick);
            let turn = tokio::select! {
                // In order: tokio picks branches at random from a process-wide seed, which would make
                // a simulated run depend on how many ran before it in the same process.
                biased;
                done = self.persist.completion() => {
                    self.persist.finish(done, self.raw.mut_store()).map(|durable| self.on_durable(durable))
                }
                input = self.inputs.recv() => {
                    let Some(input) = input else { break None };
                    self.take_inputs(input).await
                }
                _ = tokio::time::sleep_until(wake) => Ok(()),
            };
            if Instant::now() >= next_tick {
                self.raw.tick();
                next_tick = Instant::now() + self.config.tick;
                self.promote_caught_up_learners();
                self.ask_reads_again();
            }
            self.propose_tick_if_due();
            let turn = turn.and_then(|()| self.persist_next()).and_then(|()| self.failed.take().map_or(Ok(()), Err));
            if let Err(e) = match turn {
                Ok(()) => self.on_ready().await,
                Err(e) => Err(e),
            } {
                tracing::error!(node = self.config.id, error = %e, "storage failed; stopping the node");
                break Some(NodeStop::Failed(format!("storage failed: {e}")));
            }
            if let Some(why) = self.cannot_apply.take() {
                tracing::error!(node = self.config.id, term = self.raw.raft.term, error = %why, "cannot apply the log; stopping the node");
                break Some(NodeStop::Failed(why));
            }
            if self.stop_asked {
                if let Err(e) = self.settle_writes().await {
                    tracing::error!(node = self.config.id, error = %e, "storage failed while stopping");
                    break Some(NodeStop::Failed(format!("storage failed: {e}")));
                }
                break Some(NodeStop::Stopped);
            }
            // raft-rs must not step a node that applied its own removal (a leader would panic
            // looking for its own progress); the committed entry reaches the others anyway.
            if self.removed {
                tracing::info!(node = self.config.id, term = self.raw.raft.term, "removed from the cluster; stopping the node");
                break Some(NodeStop::Removed);
            }
        };
        self.fail_all(|| NodeError::Stopped);
        stop
    }

    /// The earlier of the next raft tick and, on the leader, the state machine's next deadline.
    fn next_wake(&self, next_tick: Instant) -> Instant {
        if self.raw.raft.state != StateRole::Leader || self.tick_in_flight.is_some() {
            return next_tick;
        }
        let Some(deadline_ms) = lock(&self.shared.state).fsm.next_deadline() else { return next_tick };
        let wait_ms = deadline_ms.saturating_sub(self.config.clock.now_ms());
        next_tick.min(Instant::now() + Duration::from_millis(wait_ms))
    }

    /// Handles `first` and every input waiting behind it, then proposes the writes among them
    /// as one entry. A snapshot written apart is adopted only once no log write is out: both
    /// write the log's files.
    async fn take_inputs(&mut self, first: Input) -> Result<(), String> {
        let mut next = Some(first);
        while let Some(input) = next.take() {
            if matches!(input, Input::SnapshotSaved { .. }) {
                self.settle_writes().await?;
            }
            self.handle(input);
            next = self.inputs.try_recv().ok();
        }
        self.propose_batch();
        Ok(())
    }

    fn handle(&mut self, input: Input) {
        if !matches!(input, Input::Propose { .. }) {
            self.propose_batch();
        }
        match input {
            Input::Propose { op, caller, reply } => self.queue_write(op, caller, reply),
            Input::Raft { from, from_addr, messages, prepared } => {
                if let Some(prepared) = prepared {
                    let replaced = self.received.offer(*prepared);
                    self.discard_staged(replaced);
                }
                self.transport.learn(from, from_addr);
                self.heard_at.insert(from, Instant::now());
                for m in messages {
                    if let Some(why) = inbound::refusal(self.config.id, &self.raw.raft.raft_log, &m) {
                        self.refused.note(self.config.id, m.from, m.get_msg_type(), why);
                        continue;
                    }
                    if let Err(e) = self.raw.step(m) {
                        tracing::debug!(error = %e, "raft refused a message");
                    }
                }
            }
            Input::ReadIndex { reply } => self.read_index(reply),
            Input::Member { change, reply } => self.propose_member_change(change, reply),
            Input::Snapshot { reply } => self.snapshot_asked(reply),
            Input::SnapshotSaved { saved } => self.adopt_snapshot(saved),
            Input::Stop => self.stop_asked = true,
            Input::TransferLeader { to } => self.raw.transfer_leader(to),
            Input::Unreachable { peer } => self.raw.report_unreachable(peer),
            Input::SnapshotSent { peer, ok } => {
                let status = if ok { raft::SnapshotStatus::Finish } else { raft::SnapshotStatus::Failure };
                self.raw.report_snapshot(peer, status);
            }
        }
    }

    fn not_leader(&self) -> NodeError {
        let leader = self.raw.raft.leader_id;
        let leader_id = (leader != 0).then_some(leader);
        let leader_addr = leader_id.and_then(|id| lock(&self.shared.state).addresses.get(&id).cloned());
        NodeError::NotLeader { leader_id, leader_addr }
    }

    /// A proposal's time: the leader's clock, never behind its own previous stamp.
    fn stamp(&mut self) -> u64 {
        self.last_stamp_ms = self.last_stamp_ms.max(self.config.clock.now_ms());
        self.last_stamp_ms
    }

    /// Takes a write into this turn's batch, proposing the batch first if it is full.
    fn queue_write(&mut self, op: Op, caller: Option<CallerSeq>, reply: WriteReply) {
        if self.raw.raft.state != StateRole::Leader {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        if self.owed.writes() + self.batch.replies.len() >= self.config.pending_max {
            let _ = reply.send(Err(NodeError::Overloaded));
            return;
        }
        let put_bytes = match &op {
            Op::Put { tube, body, .. } => crate::limits::job_bytes(body.len(), tube.len()),
            _ => 0,
        };
        if self.over_limits(&op, put_bytes) {
            let _ = reply.send(Err(NodeError::Fsm(FsmError::OutOfMemory)));
            return;
        }
        let write = self.format.prepare(op, caller);
        if !self.batch.ops.fits(&write) {
            self.propose_batch();
        }
        self.batch.ops.push(write);
        self.batch.replies.push(reply);
        self.batch.put_bytes += put_bytes;
    }

    /// Whether `op` would take the jobs past `jobs_bytes_max` (counting the puts on their way
    /// to the log, or a burst would pass it), or make a tube past `tubes_max`.
    fn over_limits(&self, op: &Op, put_bytes: u64) -> bool {
        let new_tube = match op {
            Op::Put { tube, .. } | Op::Use { tube, .. } | Op::Watch { tube, .. } => Some(tube),
            _ => None,
        };
        if put_bytes == 0 && new_tube.is_none() {
            return false;
        }
        let state = lock(&self.shared.state);
        let held = state.fsm.jobs_bytes() + self.owed.put_bytes() + self.batch.put_bytes;
        let tubes_full = new_tube.is_some_and(|tube| state.fsm.tube_count() >= self.config.tubes_max && !state.fsm.has_tube(tube));
        held + put_bytes > self.config.jobs_bytes_max || tubes_full
    }

    /// Proposes this turn's writes as one entry; their replies are owed once it applies.
    fn propose_batch(&mut self) {
        if self.batch.replies.is_empty() {
            return;
        }
        let Batch { ops, replies, put_bytes } = self.take_batch();
        match self.propose_ops(ops) {
            Ok(index) => {
                let proposed = self.shared.metrics.as_ref().map(|_| Instant::now());
                self.owed.owe_writes(index, self.raw.raft.term, replies, proposed, put_bytes);
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// This turn's batch, leaving an empty one.
    fn take_batch(&mut self) -> Batch {
        let empty = Batch { ops: self.format.no_ops(), replies: Vec::new(), put_bytes: 0 };
        std::mem::replace(&mut self.batch, empty)
    }

    /// Appends one entry of `ops` to the leader's log, all stamped with the leader's time now;
    /// answers its index. A leader's first proposal of its term goes after an entry of its
    /// own: `Op::NewLeader`, which renews the proxies' leases before any operation of this
    /// leader's time can end them.
    fn propose_ops(&mut self, ops: Ops) -> Result<u64, NodeError> {
        assert!(!ops.is_empty(), "an entry of operations holds at least one");
        let term = self.raw.raft.term;
        if self.proposed_in_term != term {
            self.append_entry(self.format.one_op(Op::NewLeader))?;
            self.proposed_in_term = term;
        }
        self.append_entry(ops)
    }

    fn append_entry(&mut self, ops: Ops) -> Result<u64, NodeError> {
        let now_ms = self.stamp();
        let (data, local) = self.format.data(ops, now_ms, &self.config.versions);
        let before = self.raw.raft.raft_log.last_index();
        self.raw.propose(Vec::new(), data).map_err(|e| NodeError::Dropped(e.to_string()))?;
        let index = self.raw.raft.raft_log.last_index();
        if index == before {
            return Err(NodeError::Dropped("raft did not append the proposal".into()));
        }
        self.format.remember(index, local);
        Ok(index)
    }

    fn propose_tick_if_due(&mut self) {
        if self.raw.raft.state != StateRole::Leader || self.tick_in_flight.is_some() {
            return;
        }
        let due = lock(&self.shared.state).fsm.next_deadline().is_some_and(|at| at <= self.config.clock.now_ms());
        if due {
            match self.propose_ops(self.format.one_op(Op::Tick)) {
                Ok(index) => self.tick_in_flight = Some(index),
                Err(e) => tracing::debug!(error = %e, "tick proposal dropped"),
            }
        }
    }

    fn read_index(&mut self, reply: oneshot::Sender<Result<(), NodeError>>) {
        if self.raw.raft.leader_id == 0 {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        match self.reads.ask(reply, Instant::now()) {
            Ok(ctx) => self.raw.read_index(ctx),
            Err(reply) => {
                let _ = reply.send(Err(NodeError::Overloaded));
            }
        }
    }

    /// Asks raft again for the reads it has not confirmed in time (see `reads::READ_ASK_AGAIN`).
    fn ask_reads_again(&mut self) {
        for ctx in self.reads.due_again(Instant::now()) {
            self.raw.read_index(ctx);
        }
    }

    fn propose_member_change(&mut self, change: MemberChange, reply: oneshot::Sender<Result<(), NodeError>>) {
        if self.raw.raft.state != StateRole::Leader {
            let _ = reply.send(Err(self.not_leader()));
            return;
        }
        if self.format.in_memory() {
            let _ = reply.send(Err(NodeError::Invalid("a node whose log is in memory only takes no other members".into())));
            return;
        }
        let conf = self.raw.raft.prs().conf().to_conf_state();
        let mut cc = ConfChange::default();
        let context = match &change {
            MemberChange::Join { id, addr } => {
                if conf.voters.contains(id) || conf.learners.contains(id) {
                    let _ = reply.send(Ok(()));
                    return;
                }
                cc.set_change_type(ConfChangeType::AddLearnerNode);
                cc.node_id = *id;
                addr.clone().into_bytes()
            }
            MemberChange::Leave { id } => {
                if !conf.voters.contains(id) && !conf.learners.contains(id) {
                    let _ = reply.send(Err(NodeError::Invalid(format!("node {id} is not a member"))));
                    return;
                }
                cc.set_change_type(ConfChangeType::RemoveNode);
                cc.node_id = *id;
                Vec::new()
            }
        };
        cc.set_context(context.clone().into());
        let before = self.raw.raft.raft_log.last_index();
        match self.raw.propose_conf_change(context, cc) {
            Ok(()) if self.raw.raft.raft_log.last_index() > before => {
                let index = self.raw.raft.raft_log.last_index();
                self.owed.owe_member(index, self.raw.raft.term, reply);
            }
            Ok(()) => {
                let _ = reply.send(Err(NodeError::Dropped("a membership change is already in progress".into())));
            }
            Err(e) => {
                let _ = reply.send(Err(NodeError::Dropped(e.to_string())));
            }
        }
    }

    /// Promotes a learner to voter once its log has caught up with the leader's commit index.
    fn promote_caught_up_learners(&mut self) {
        if self.raw.raft.state != StateRole::Leader || self.raw.raft.has_pending_conf() {
            return;
        }
        let committed = self.raw.raft.raft_log.committed;
        let learners = self.raw.raft.prs().conf().to_conf_state().learners;
        for id in learners {
            let caught_up = self.raw.raft.prs().get(id).is_some_and(|p| p.matched >= committed);
            if caught_up {
                let mut cc = ConfChange::default();
                cc.set_change_type(ConfChangeType::AddNode);
                cc.node_id = id;
                if let Err(e) = self.raw.propose_conf_change(Vec::new(), cc) {
                    tracing::debug!(id, error = %e, "learner promotion not proposed");
                }
                return;
            }
        }
    }

    // ---- Ready ----

    /// Handles every Ready raft has: each one's entries and hard state join the log's next
    /// write, and what is durable at once (nothing to write, or a log in memory) is told to
    /// raft at once, which may make another Ready.
    async fn on_ready(&mut self) -> Result<(), String> {
        while self.raw.has_ready() {
            // A snapshot to install writes the log itself: the write out must finish first.
            if self.persist.writing() && self.raw.snap().is_some() {
                self.settle_writes().await?;
            }
            self.handle_ready()?;
            self.persist_next()?;
        }
        let behind = self.received.drop_if_behind(self.applied);
        self.discard_staged(behind);
        self.reads.serve(self.applied);
        self.snapshot_if_due()?;
        self.publish_status();
        Ok(())
    }

    fn handle_ready(&mut self) -> Result<(), String> {
        let mut rd = self.raw.ready();
        if let Some(ss) = rd.ss() {
            self.on_role(ss.leader_id, ss.raft_state);
        }
        self.send(rd.take_messages());
        if rd.snapshot().get_metadata().index > 0 {
            self.install_snapshot(rd.snapshot().clone())?;
        }
        self.apply(rd.take_committed_entries());
        let store = self.raw.mut_store();
        store.append(rd.entries()).map_err(|e| e.to_string())?;
        if let Some(hs) = rd.hs() {
            store.set_hard_state(hs);
        }
        if mutant::planted(Mutant::ApplyUncommitted) && self.raw.raft.state != StateRole::Leader {
            let early: Vec<Entry> = rd.entries().iter().filter(|e| e.index > self.applied).cloned().collect();
            self.apply(early);
        }
        for rs in rd.take_read_states() {
            self.reads.confirmed(&rs.request_ctx, rs.index);
        }
        self.persist.handled(rd.number(), rd.take_persisted_messages());
        self.raw.advance_append_async(rd);
        self.advance_applied();
        Ok(())
    }

    /// Tells raft what is applied, as far as raft allows: no further than is durable here (an
    /// installed snapshot counts as applied before its Ready is durable).
    fn advance_applied(&mut self) {
        let log = &self.raw.raft.raft_log;
        let to = self.applied.min(log.persisted).min(log.committed);
        if to > log.applied {
            self.raw.advance_apply_to(to);
        }
    }

    /// Starts the log's next write if none is out; Readies with nothing to write are durable
    /// at once.
    fn persist_next(&mut self) -> Result<(), String> {
        let durable = if mutant::planted(Mutant::AckBeforeFsync) {
            self.persist.assume_durable()
        } else {
            self.persist.start(self.raw.mut_store())?
        };
        if let Some(durable) = durable {
            self.on_durable(durable);
        }
        Ok(())
    }

    /// Waits for the log write out to finish (before a snapshot writes the log).
    async fn settle_writes(&mut self) -> Result<(), String> {
        if let Some(durable) = self.persist.settle(self.raw.mut_store()).await? {
            self.on_durable(durable);
        }
        Ok(())
    }

    /// Readies became durable: raft learns it (a leader may commit), and the messages that
    /// waited on them go.
    fn on_durable(&mut self, durable: Durable) {
        self.raw.on_persist_ready(durable.number);
        self.advance_applied();
        self.send(durable.messages);
    }

    fn send(&mut self, messages: Vec<raft::eraftpb::Message>) {
        if messages.is_empty() {
            return;
        }
        // Sending only queues (try_send), so the state lock is held briefly, and the address
        // map is read in place rather than copied on every batch.
        let state = lock(&self.shared.state);
        self.transport.send(messages, &state.addresses);
    }

    /// Leadership changed: replies owed by the old role can no longer be given.
    fn on_role(&mut self, leader: u64, role: StateRole) {
        let term = self.raw.raft.term;
        if leader != self.leader || term != self.term {
            tracing::info!(node = self.config.id, leader, term, ?role, "leadership changed");
        }
        self.leader = leader;
        self.term = term;
        if role != StateRole::Leader {
            self.tick_in_flight = None;
            self.fail_all(|| NodeError::Dropped("leadership changed".into()));
        }
    }

    fn fail_all(&mut self, error: impl Fn() -> NodeError) {
        self.format.forget_all();
        let queued = self.take_batch().replies;
        for reply in queued {
            let _ = reply.send(Err(error()));
        }
        self.owed.fail_all(&error);
        self.reads.fail_all(&error);
    }

    /// Installs a snapshot from the leader: as prepared apart from the driver if it was (a
    /// rename and a swap), else decoded and written here.
    fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<(), String> {
        let started = Instant::now();
        let (index, term, bytes) = (snapshot.get_metadata().index, snapshot.get_metadata().term, snapshot.get_data().len());
        let install = self.received.take_for(index, term);
        let prepared = install.is_some();
        let Install { state, staged } = match install {
            Some(install) => install,
            None => {
                let state =
                    Replicated::restore_encoded(&snapshot.data, self.config.versions.understood).map_err(|e| format!("snapshot {index}: {e}"))?;
                Install { state, staged: None }
            }
        };
        self.raw.mut_store().apply_snapshot(snapshot, staged.as_ref()).map_err(|e| e.to_string())?;
        // A node that joined learns its cluster's id here, and stamps its traffic with it.
        self.shared.cluster_id.store(state.cluster_id, std::sync::atomic::Ordering::Relaxed);
        *lock(&self.shared.state) = state;
        self.applied = index;
        self.snapshots.compacted();
        if let Some(metrics) = &self.shared.metrics {
            metrics.snapshot(SnapshotKind::Installed, started, bytes);
        }
        observe::report(observe::Event::Installed { node: self.config.id, index });
        let took_ms = started.elapsed().as_millis() as u64;
        tracing::info!(node = self.config.id, term = self.raw.raft.term, index, prepared, took_ms, "installed snapshot");
        Ok(())
    }

    /// Removes a staged snapshot file that will not be installed. Failing to is no reason
    /// to stop: recovery removes every temporary file.
    fn discard_staged(&mut self, staged: Option<StagedSnapshot>) {
        let Some(staged) = staged else { return };
        let index = staged.index();
        if let Err(e) = self.raw.mut_store().discard_staged(staged) {
            tracing::warn!(node = self.config.id, index, error = %e, "a staged snapshot file was not removed");
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            if mutant::planted(Mutant::ApplyUncommitted) && entry.index <= self.applied {
                continue;
            }
            self.applied = entry.index;
            // The entry's own record counts too: an entry kept in memory has one byte of data.
            self.snapshots.applied((entry.data.len() + std::mem::size_of::<Entry>()) as u64);
            if self.tick_in_flight == Some(entry.index) {
                self.tick_in_flight = None;
            }
            self.report_applied(&entry);
            match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => {}
                EntryType::EntryNormal => {
                    if let Err(why) = self.apply_normal(&entry) {
                        // Not applied: the node stops here, and stops here again after a
                        // restart, until it is upgraded.
                        self.applied = entry.index - 1;
                        self.cannot_apply = Some(why);
                        return;
                    }
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    let cc = decode_conf_change(entry.get_entry_type(), &entry.data);
                    self.apply_conf_change(&entry, cc);
                }
            }
        }
    }

    fn report_applied(&self, entry: &Entry) {
        let kind = match entry.get_entry_type() {
            EntryType::EntryNormal => observe::EntryKind::Normal,
            _ => observe::EntryKind::ConfChange,
        };
        let (node, index, term) = (self.config.id, entry.index, entry.term);
        observe::report(observe::Event::Applied { node, index, term, kind, data: &entry.data });
    }

    /// Applies a normal entry; refuses one written by a newer state machine, changing nothing.
    fn apply_normal(&mut self, entry: &Entry) -> Result<(), String> {
        let local = self.format.take(entry.index, &entry.data);
        let mut applied = match local {
            None => lock(&self.shared.state).apply_entry(entry.index, &entry.data),
            Some(Some(LocalEntry { now_ms, ops })) => Ok(lock(&self.shared.state).apply_local(entry.index, now_ms, ops)),
            Some(None) => Err(EntryError::Malformed(format!("the operations of entry {} are no longer in memory", entry.index))),
        };
        if let Err(EntryError::Unsupported(why)) = applied {
            return Err(why);
        }
        let events: Vec<_> = applied.iter_mut().flatten().flat_map(|outcome| std::mem::take(&mut outcome.events)).collect();
        if !events.is_empty() {
            let _ = self.shared.events.send(Arc::new(AppliedEvents { index: entry.index, events }));
        }
        let Some(pending) = self.owed.take(entry.index) else { return Ok(()) };
        let replies = match pending {
            Pending::Writes { term, replies, proposed, .. } if term == entry.term => {
                if let (Some(metrics), Some(proposed)) = (&self.shared.metrics, proposed) {
                    metrics.applied(proposed);
                }
                replies
            }
            Pending::Writes { replies, .. } => {
                for reply in replies {
                    let _ = reply.send(Err(NodeError::Dropped("overwritten by a new leader".into())));
                }
                return Ok(());
            }
            Pending::Member { reply, .. } => {
                let _ = reply.send(Err(NodeError::Dropped("overwritten by a new leader".into())));
                return Ok(());
            }
        };
        let outcomes = match applied {
            Ok(outcomes) => outcomes.into_iter().map(|o| o.result).collect(),
            Err(e) => vec![Err(e); replies.len()],
        };
        let missing = Err(EntryError::Malformed("the entry holds fewer operations than were proposed".into()));
        let outcomes = outcomes.into_iter().chain(std::iter::repeat(missing));
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let result = match outcome {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(e)) => Err(NodeError::Fsm(e)),
                Err(e) => Err(NodeError::Entry(e)),
            };
            let _ = reply.send(result);
        }
        Ok(())
    }

    fn apply_conf_change(&mut self, entry: &Entry, cc: Result<ConfChangeV2, String>) {
        let result = cc.and_then(|cc| {
            let cs = self.raw.apply_conf_change(&cc).map_err(|e| e.to_string())?;
            let mut state = lock(&self.shared.state);
            for change in cc.get_changes() {
                match change.get_change_type() {
                    ConfChangeType::RemoveNode => {
                        state.addresses.remove(&change.node_id);
                    }
                    _ if !cc.get_context().is_empty() => {
                        let addr = String::from_utf8_lossy(cc.get_context()).into_owned();
                        state.addresses.insert(change.node_id, addr);
                    }
                    _ => {}
                }
            }
            let addresses = state.addresses.clone();
            drop(state);
            self.transport.retain(&addresses);
            self.heard_at.retain(|id, _| addresses.contains_key(id));
            let id = self.config.id;
            tracing::info!(node = id, term = self.raw.raft.term, index = entry.index, voters = ?cs.voters, learners = ?cs.learners, "membership changed");
            self.removed = !cs.voters.contains(&id) && !cs.learners.contains(&id);
            self.raw.mut_store().set_conf_state(cs);
            Ok(())
        });
        if let Err(e) = &result {
            tracing::error!(index = entry.index, error = %e, "conf change not applied");
        }
        if let Some(Pending::Member { term, reply }) = self.owed.take(entry.index) {
            let outcome = if term == entry.term {
                result.map_err(NodeError::Invalid)
            } else {
                Err(NodeError::Dropped("overwritten".into()))
            };
            let _ = reply.send(outcome);
        }
    }

    // ---- reads ----

    // ---- snapshots ----

    fn snapshot_if_due(&mut self) -> Result<(), String> {
        // A peer's want is taken only when a snapshot can start: one in flight answers it.
        if self.snapshots.in_flight() {
            return Ok(());
        }
        let store = self.raw.store();
        let behind = self.applied.saturating_sub(store.snapshot_index());
        let due = self.snapshots.due(behind, store.take_fresh_snapshot_wanted());
        // Buggify: compaction at an arbitrary moment.
        if due || (behind > 0 && crate::chaos::buggify::fires(0.002)) {
            self.start_snapshot()?;
        }
        Ok(())
    }

    /// A snapshot asked for: the one in flight (or started now) answers once adopted; with
    /// none in flight after starting, the log needed no file and the answer is at once.
    fn snapshot_asked(&mut self, reply: SnapshotReply) {
        if !self.snapshots.in_flight() {
            if let Err(e) = self.start_snapshot() {
                self.failed = Some(e);
                let _ = reply.send(Err(NodeError::Stopped));
                return;
            }
        }
        if let Err(reply) = self.snapshots.wait(reply) {
            let _ = reply.send(Ok(self.raw.store().snapshot_index()));
        }
    }

    /// Snapshots the applied state. Only taking the state's picture holds the driver; the
    /// encoding and writing (most of the time for a large state: 1M jobs take about 200 ms to
    /// picture, 180 ms to encode and more to write) run apart, and the driver adopts the
    /// written snapshot when it reports back. A log in memory compacts at once.
    #[cfg_attr(madsim, allow(deprecated))] // madsim runs a blocking task as an ordinary one.
    fn start_snapshot(&mut self) -> Result<(), String> {
        let index = self.applied;
        let Some((metadata, mut writer)) = self.raw.store().snapshot_plan(index) else {
            return self.compact_in_memory();
        };
        let (started, metrics) = (Instant::now(), self.shared.metrics.clone());
        let state = lock(&self.shared.state).snapshot();
        self.snapshots.started();
        let back = self.inputs_back.clone();
        tokio::spawn(async move {
            let write = move || {
                let mut snapshot = Snapshot::default();
                snapshot.set_data(state.encode_to_vec().into());
                snapshot.set_metadata(metadata);
                writer.write(&snapshot).map(|()| snapshot).map_err(|e| e.to_string())
            };
            let saved = tokio::task::spawn_blocking(write).await.unwrap_or_else(|e| Err(format!("the snapshot writer failed: {e}")));
            if let (Some(metrics), Ok(snapshot)) = (&metrics, &saved) {
                metrics.snapshot(SnapshotKind::Taken, started, snapshot.get_data().len());
            }
            if let Some(inputs) = back.upgrade() {
                let _ = inputs.send(Input::SnapshotSaved { saved }).await;
            }
        });
        Ok(())
    }

    /// A snapshot written apart is back: it becomes the log's start unless a newer one took
    /// its place meanwhile. A failed write stops the node, as any storage failure does.
    fn adopt_snapshot(&mut self, saved: Result<Snapshot, String>) {
        let adopted = saved.and_then(|snapshot| {
            let index = snapshot.get_metadata().index;
            self.raw.mut_store().adopt_snapshot(snapshot).map(|fresh| (index, fresh)).map_err(|e| e.to_string())
        });
        let answer = match adopted {
            Ok((index, fresh)) => {
                if fresh {
                    tracing::info!(node = self.config.id, term = self.raw.raft.term, index, "snapshot taken; log compacted");
                }
                Ok(self.raw.store().snapshot_index().max(index))
            }
            Err(e) => {
                self.failed = Some(format!("writing a snapshot: {e}"));
                Err(NodeError::Stopped)
            }
        };
        self.snapshots.finished(answer);
    }

    /// Compacts a log that keeps no snapshot files up to the applied index: nothing to encode
    /// or write (or nothing to compact).
    fn compact_in_memory(&mut self) -> Result<(), String> {
        let index = self.applied;
        let shared = &self.shared;
        let data = || lock(&shared.state).snapshot().encode_to_vec();
        self.raw.mut_store().compact_to(index, data).map_err(|e| e.to_string())?;
        self.snapshots.compacted();
        tracing::debug!(node = self.config.id, index, "log compacted");
        Ok(())
    }

    /// On the leader, each member's acknowledged index; empty elsewhere.
    fn match_index(&self) -> BTreeMap<u64, u64> {
        if self.raw.raft.state != StateRole::Leader {
            return BTreeMap::new();
        }
        self.raw.raft.prs().iter().map(|(id, progress)| (*id, progress.matched)).collect()
    }

    fn publish_status(&self) {
        let conf = self.raw.raft.prs().conf().to_conf_state();
        let status = Status {
            node_id: self.config.id,
            leader_id: self.raw.raft.leader_id,
            term: self.raw.raft.term,
            commit_index: self.raw.raft.raft_log.committed,
            applied_index: self.applied,
            voters: conf.voters.clone(),
            learners: conf.learners.clone(),
            addresses: lock(&self.shared.state).addresses.clone(),
            snapshot_index: self.raw.store().snapshot_index(),
            match_index: self.match_index(),
            role: self.raw.raft.state,
            last_index: self.raw.raft.raft_log.last_index(),
            heard_at: self.heard_at.clone(),
        };
        *lock(&self.shared.status) = status;
        let leading = self.raw.raft.state == StateRole::Leader;
        self.shared.leading.store(leading, std::sync::atomic::Ordering::Relaxed);
    }
}
