//! What the rest of the process holds of a node: a handle that sends inputs to the driver task
//! and reads the state the driver publishes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use raft::eraftpb::Message;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::metrics::NodeMetrics;
use super::received_snapshot::{self, Prepared};
use super::replicated::{EntryError, Replicated};
use super::version::{self, Versions};
use crate::api::metadata::{not_leader_words, CallerSeq};
use crate::chaos::buggify;
use crate::codec::log::encode_op_type;
use crate::fsm::{FsmError, Op, Reply, ReservationEvent};
use crate::storage::format::OpType;
use crate::storage::SnapshotWriter;

/// Why a node did not carry out a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeError {
    /// This node is not the leader; the leader, if known.
    NotLeader { leader_id: Option<u64>, leader_addr: Option<String> },
    /// Leadership changed before the write committed: it may or may not apply. Retrying with
    /// the same caller sequence number is safe.
    Dropped(String),
    /// The state machine refused the operation.
    Fsm(FsmError),
    /// The entry could not be applied (see `EntryError`).
    Entry(EntryError),
    /// Too many requests in flight; retry later.
    Overloaded,
    /// The node is shutting down or its driver has stopped.
    Stopped,
    /// A request that makes no sense (e.g. leave of a node that is not a member).
    Invalid(String),
    /// The operation is of a state machine version that not every voter runs yet (a rolling
    /// upgrade is under way): `needs` is its version, `behind` each voter that does not run
    /// it, with the version it last reported (None: not heard from since this node started).
    /// Nothing was proposed; the operation is accepted once every voter is upgraded.
    NotEveryVoterUpgraded { op: OpType, needs: u32, behind: Vec<(u64, Option<u32>)> },
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeError::NotLeader { leader_id, leader_addr } => f.write_str(&not_leader_words(*leader_id, leader_addr.as_deref())),
            NodeError::Dropped(why) => write!(f, "write dropped before commit ({why}); retry"),
            NodeError::Fsm(e) => write!(f, "{e}"),
            NodeError::Entry(e) => write!(f, "{e}"),
            NodeError::Overloaded => f.write_str("too many requests in flight"),
            NodeError::Stopped => f.write_str("node stopped"),
            NodeError::Invalid(why) => f.write_str(why),
            NodeError::NotEveryVoterUpgraded { op, needs, behind } => write!(
                f,
                "operation {} needs state machine version {needs}, which not every voter runs yet ({}): upgrade every voter first",
                op.as_str_name(),
                version::describe_behind(behind)
            ),
        }
    }
}

impl std::error::Error for NodeError {}

/// Why a linearizable read (`NodeHandle::read_within`) was not made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadRefused {
    /// The node could not confirm it (no leader, stopped, too many reads in flight).
    Node(NodeError),
    /// No leader confirmed it within the time given.
    TimedOut(std::time::Duration),
}

/// A membership change asked of the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberChange {
    /// Add as a learner, promoted to voter once caught up.
    Join {
        id: u64,
        addr: String,
    },
    Leave {
        id: u64,
    },
}

/// Inputs of the driver task, one bounded channel of them.
pub(crate) enum Input {
    Propose {
        op: Op,
        caller: Option<CallerSeq>,
        reply: oneshot::Sender<Result<Reply, NodeError>>,
    },
    /// Raft messages from peer `from`, reachable at `from_addr`; with a snapshot among them,
    /// what was prepared of it apart from the driver, if anything.
    Raft {
        from: u64,
        from_addr: String,
        messages: Vec<Message>,
        prepared: Option<Box<Prepared>>,
    },
    ReadIndex {
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    Member {
        change: MemberChange,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    Snapshot {
        reply: oneshot::Sender<Result<u64, NodeError>>,
    },
    TransferLeader {
        to: u64,
    },
    Unreachable {
        peer: u64,
    },
    SnapshotSent {
        peer: u64,
        ok: bool,
    },
    /// A snapshot of our own state was encoded and written apart from the driver.
    SnapshotSaved {
        saved: Result<raft::eraftpb::Snapshot, String>,
    },
    /// Stop once every log write out is durable (a graceful stop).
    Stop,
}

/// Reservation events of one applied entry, for the streams to proxies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedEvents {
    pub index: u64,
    pub events: Vec<ReservationEvent>,
}

/// A node's view of itself and the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub node_id: u64,
    pub leader_id: u64,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub addresses: BTreeMap<u64, String>,
    /// Index of the latest snapshot.
    pub snapshot_index: u64,
    /// On the leader: the highest index each member acknowledged holding (empty elsewhere).
    pub match_index: BTreeMap<u64, u64>,
    /// This node's part in raft.
    pub role: raft::StateRole,
    /// The last index of this node's log: on the leader, what a member's lag is counted from.
    pub last_index: u64,
    /// When this node's driver last took raft messages from each peer: the status's "last
    /// contact". Taken as the driver handles them, so a busy driver makes it a little late,
    /// never early.
    pub heard_at: BTreeMap<u64, tokio::time::Instant>,
}

impl Status {
    pub fn is_leader(&self) -> bool {
        self.leader_id != 0 && self.leader_id == self.node_id
    }
}

/// Why a node's driver stopped while handles on it remained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeStop {
    /// The node applied its own removal from the cluster: its work is done.
    Removed,
    /// Storage failed, or the driver panicked: the node cannot go on, and its process should
    /// end so that a supervisor notices (answering from the state it had would be a lie).
    Failed(String),
    /// Stopped when asked (`NodeHandle::stop`), everything it wrote durable. It stays a member.
    Stopped,
}

impl std::fmt::Display for NodeStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeStop::Removed => write!(f, "removed from the cluster"),
            NodeStop::Failed(why) => write!(f, "{why}"),
            NodeStop::Stopped => write!(f, "stopped"),
        }
    }
}

/// State the driver publishes and request handlers read.
pub(crate) struct Shared {
    pub state: Mutex<Replicated>,
    pub status: Mutex<Status>,
    /// Whether the node leads, as of its driver's last turn: read on every write by a proxy
    /// in the same process, so kept apart from `status` (whose copy costs more).
    pub leading: AtomicBool,
    pub events: broadcast::Sender<Arc<AppliedEvents>>,
    /// Set once, when the driver stops.
    pub stopped: watch::Sender<Option<NodeStop>>,
    /// The cluster's id as the replicated state holds it (0: not known yet): stamped on raft
    /// traffic, and traffic of another cluster is refused.
    pub cluster_id: Arc<std::sync::atomic::AtomicU64>,
    /// The largest job body a put may carry (`DriverConfig::job_body_bytes_max`).
    pub job_body_bytes_max: usize,
    /// Where proposals, reads, log writes and snapshots are recorded, when metrics are on.
    pub metrics: Option<Arc<NodeMetrics>>,
    /// The state machine version this node runs, and which version introduced each
    /// operation (`DriverConfig::versions`).
    pub versions: Versions,
    /// The state machine version each peer stamped on the raft traffic it last sent here.
    /// Every follower answers each heartbeat of the leader, so a leader knows every voter
    /// that is up, with no call of its own; a voter missing here has not been heard from
    /// since this node started, and counts as behind.
    pub heard_versions: Mutex<BTreeMap<u64, u32>>,
    /// Where snapshots that peers send are staged apart from the driver (none for a log in
    /// memory), and how many were, which keeps their temporary names apart.
    pub snapshot_writer: Option<SnapshotWriter>,
    pub snapshots_staged: std::sync::atomic::AtomicU64,
}

/// Locks a mutex even if a panicking holder poisoned it. Every mutex of the crate guards data
/// replaced whole or checked whole afterwards, never left half-updated, so reading on is safe.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A cloneable handle on a running node.
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) inputs: mpsc::Sender<Input>,
    pub(crate) shared: Arc<Shared>,
}

impl NodeHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T, NodeError>>) -> Input) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.inputs.send(make(tx)).await.map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// Proposes a write on the leader and waits until it is applied. A put whose body is
    /// above this node's job size max is refused here, whichever way it came.
    pub async fn propose(&self, op: Op, caller: Option<CallerSeq>) -> Result<Reply, NodeError> {
        if let Op::Put { body, .. } = &op {
            let max = self.shared.job_body_bytes_max;
            if body.len() > max {
                return Err(NodeError::Invalid(format!("a job body of {} bytes is above this node's job size max of {max} bytes (-z)", body.len())));
            }
        }
        let deduplicated = caller.is_some();
        if let Some(metrics) = &self.shared.metrics {
            metrics.proposing(&op);
        }
        let result = match self.every_voter_understands(&op) {
            Ok(()) => self.ask(|reply| Input::Propose { op, caller, reply }).await,
            Err(e) => Err(e),
        };
        if let (Some(metrics), Err(e)) = (&self.shared.metrics, &result) {
            metrics.failed(e);
        }
        // Buggify: the write applied but its answer is lost, so the caller retries it with the
        // same sequence number and the response cache must answer the retry.
        if result.is_ok() && deduplicated && crate::chaos::buggify::fires(0.01) {
            return Err(NodeError::Dropped("buggify: answer lost".into()));
        }
        result
    }

    /// Refuses, on the leader, an operation of a newer state machine version than some voter
    /// runs: that voter could not apply it and would stop. Operations of the base version,
    /// which every node understands, are not checked. A follower lets the driver answer
    /// NotLeader, so the caller goes to the leader, which decides.
    fn every_voter_understands(&self, op: &Op) -> Result<(), NodeError> {
        let versions = &self.shared.versions;
        let op = encode_op_type(op);
        let needs = (versions.introduced_in)(op);
        if needs <= version::BASE_VERSION {
            return Ok(());
        }
        let (me, voters) = {
            let status = lock(&self.shared.status);
            if !status.is_leader() {
                return Ok(());
            }
            (status.node_id, status.voters.clone())
        };
        let behind = versions.behind(needs, me, &voters, &lock(&self.shared.heard_versions));
        if behind.is_empty() {
            return Ok(());
        }
        Err(NodeError::NotEveryVoterUpgraded { op, needs, behind })
    }

    /// Notes the state machine version peer `from` stamped on raft traffic it sent (0: a
    /// node from before versions, which runs version 1).
    pub fn heard_version(&self, from: u64, stamped: u32) {
        lock(&self.shared.heard_versions).insert(from, version::written_with(stamped));
    }

    /// The state machine version this node runs.
    pub fn version(&self) -> u32 {
        self.shared.versions.understood
    }

    /// The state machine version each peer last reported on its raft traffic to this node.
    pub fn heard_versions(&self) -> BTreeMap<u64, u32> {
        lock(&self.shared.heard_versions).clone()
    }

    /// The highest state machine version every voter runs, as far as this node knows (a voter
    /// not heard from counts as the base version): on the leader, the newest operations it
    /// proposes are of this version.
    pub fn voters_version(&self) -> u32 {
        let (me, voters) = {
            let status = lock(&self.shared.status);
            (status.node_id, status.voters.clone())
        };
        let heard = lock(&self.shared.heard_versions);
        let version_of = |voter: &u64| {
            if *voter == me {
                self.version()
            } else {
                heard.get(voter).copied().unwrap_or(version::BASE_VERSION)
            }
        };
        voters.iter().map(version_of).min().unwrap_or(self.version())
    }

    /// Waits until this node has applied everything committed when the call was made
    /// (ReadIndex): a read after it is linearizable.
    pub async fn read_barrier(&self) -> Result<(), NodeError> {
        let started = self.shared.metrics.as_ref().map(|_| tokio::time::Instant::now());
        let result = self.ask(|reply| Input::ReadIndex { reply }).await;
        if let (Some(metrics), Some(started)) = (&self.shared.metrics, started) {
            metrics.read(started);
        }
        result
    }

    /// Reads the replicated state linearizably: once this node has applied everything
    /// committed when asked (`read_barrier`), if that takes no longer than `within`.
    pub async fn read_within<R>(&self, within: std::time::Duration, f: impl FnOnce(&Replicated) -> R) -> Result<R, ReadRefused> {
        match tokio::time::timeout(within, self.read_barrier()).await {
            Ok(Ok(())) => Ok(self.read(f)),
            Ok(Err(e)) => Err(ReadRefused::Node(e)),
            Err(_) => Err(ReadRefused::TimedOut(within)),
        }
    }

    /// Reads the replicated state (call `read_barrier` first for a linearizable read).
    pub fn read<R>(&self, f: impl FnOnce(&Replicated) -> R) -> R {
        f(&lock(&self.shared.state))
    }

    pub async fn change_member(&self, change: MemberChange) -> Result<(), NodeError> {
        self.ask(|reply| Input::Member { change, reply }).await
    }

    /// Takes a snapshot now and compacts the log behind it; answers its index.
    pub async fn snapshot(&self) -> Result<u64, NodeError> {
        self.ask(|reply| Input::Snapshot { reply }).await
    }

    pub async fn transfer_leader(&self, to: u64) -> Result<(), NodeError> {
        self.inputs.send(Input::TransferLeader { to }).await.map_err(|_| NodeError::Stopped)
    }

    /// Hands raft messages from peer `from` (reachable at `from_addr`) to the driver.
    pub async fn step(&self, from: u64, from_addr: String, messages: Vec<Message>) -> Result<(), NodeError> {
        self.inputs.send(Input::Raft { from, from_addr, messages, prepared: None }).await.map_err(|_| NodeError::Stopped)
    }

    /// Steps a snapshot a peer sent, once its state is decoded and its file staged on a
    /// blocking thread (see `received_snapshot`). A snapshot that could not be prepared goes
    /// to the driver as it came, which then installs it itself (or stops on the same error).
    #[cfg_attr(madsim, allow(deprecated))] // madsim runs a blocking task as an ordinary one.
    pub async fn step_snapshot(&self, from: u64, from_addr: String, message: Message) -> Result<(), NodeError> {
        let writer = self.shared.snapshot_writer.as_ref().map(SnapshotWriter::another);
        let tag = self.shared.snapshots_staged.fetch_add(1, Ordering::Relaxed);
        let understood = self.shared.versions.understood;
        let prepare = move || {
            let prepared = received_snapshot::prepare(message.get_snapshot(), understood, writer, tag);
            (message, prepared)
        };
        let (message, prepared) = tokio::task::spawn_blocking(prepare).await.map_err(|_| NodeError::Stopped)?;
        let prepared = match prepared {
            // Buggify: the driver installs a snapshot itself now and then, as it does one
            // that could not be prepared.
            Ok(_) if buggify::fires(0.2) => None,
            Ok(prepared) => Some(Box::new(prepared)),
            Err(why) => {
                tracing::warn!(from, why, "a received snapshot could not be prepared apart; the driver installs it itself");
                None
            }
        };
        self.inputs.send(Input::Raft { from, from_addr, messages: vec![message], prepared }).await.map_err(|_| NodeError::Stopped)
    }

    pub fn status(&self) -> Status {
        lock(&self.shared.status).clone()
    }

    /// Whether this node leads, as of its driver's last turn (a write proposed here may still
    /// find it no longer does).
    pub fn is_leader(&self) -> bool {
        self.shared.leading.load(Ordering::Relaxed)
    }

    /// The largest job body a put may carry here (`-z`).
    pub fn job_body_bytes_max(&self) -> usize {
        self.shared.job_body_bytes_max
    }

    /// Reservation events from now on, one batch per applied entry.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AppliedEvents>> {
        self.shared.events.subscribe()
    }

    /// The node's cluster, as far as it knows (0: not known yet).
    pub fn cluster_id(&self) -> u64 {
        self.shared.cluster_id.load(Ordering::Relaxed)
    }

    /// Stops the node once every log write out is durable, and waits until it has stopped:
    /// the end of a graceful stop. Answers why it stopped (another reason may come first).
    pub async fn stop(&self) -> NodeStop {
        let _ = self.inputs.send(Input::Stop).await;
        self.stopped().await
    }

    /// Completes when the node's driver stops, with why.
    pub async fn stopped(&self) -> NodeStop {
        let mut stopped = self.shared.stopped.subscribe();
        let stop = match stopped.wait_for(Option::is_some).await {
            Ok(stop) => stop.clone(),
            Err(_) => None,
        };
        stop.unwrap_or_else(|| NodeStop::Failed("the node's state was dropped".into()))
    }
}
