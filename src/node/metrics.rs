//! A node's metrics: proposals and reads with their latency, the log's batches, fsyncs and
//! snapshots, recorded as they happen; Raft's status and each tube's jobs, read when scraped
//! (the jobs under the state's lock, once per scrape, never per command).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use raft::StateRole;
use tokio::time::Instant;

use super::handle::{lock, NodeError, Shared};
use crate::fsm::Op;
use crate::metrics::{as_gauge, family, gauge, gauges, Counter, Gauge, Latencies, Latency, Registry, Watched};
use crate::storage::SyncObserver;

/// The `op` label of each operation, indexed by `op_index`.
const OP_NAMES: [&str; 21] = [
    "put",
    "reserve",
    "reserve-job",
    "delete",
    "release",
    "bury",
    "touch",
    "kick",
    "kick-job",
    "pause-tube",
    "use",
    "watch",
    "ignore",
    "client-hello",
    "client-gone",
    "proxy-gone",
    "proxy-lease",
    "discard-put",
    "new-leader",
    "tick",
    "move-job",
];

fn op_index(op: &Op) -> usize {
    match op {
        Op::Put { .. } => 0,
        Op::Reserve { .. } => 1,
        Op::ReserveJob { .. } => 2,
        Op::Delete { .. } => 3,
        Op::Release { .. } => 4,
        Op::Bury { .. } => 5,
        Op::Touch { .. } => 6,
        Op::Kick { .. } => 7,
        Op::KickJob { .. } => 8,
        Op::PauseTube { .. } => 9,
        Op::Use { .. } => 10,
        Op::Watch { .. } => 11,
        Op::Ignore { .. } => 12,
        Op::ClientHello { .. } => 13,
        Op::ClientGone { .. } => 14,
        Op::ProxyGone { .. } => 15,
        Op::ProxyLease { .. } => 16,
        Op::DiscardPut { .. } => 17,
        Op::NewLeader => 18,
        Op::Tick => 19,
        Op::MoveJob { .. } => 20,
    }
}

/// The `reason` label of a proposal the node did not carry out (the state machine's refusals
/// are answers, not failures).
fn failure_index(e: &NodeError) -> Option<usize> {
    match e {
        NodeError::Fsm(_) => None,
        NodeError::NotLeader { .. } => Some(0),
        NodeError::Dropped(_) => Some(1),
        NodeError::Overloaded => Some(2),
        NodeError::Stopped => Some(3),
        NodeError::Entry(_) | NodeError::Invalid(_) => Some(4),
        NodeError::NotEveryVoterUpgraded { .. } => Some(5),
    }
}

/// How a snapshot came: taken of this node's state, or installed from the leader's.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SnapshotKind {
    Taken = 0,
    Installed = 1,
}

/// The metrics of one node.
#[derive(Debug)]
pub struct NodeMetrics {
    /// Writes proposed to this node, by `op_index`.
    proposals: [Counter; OP_NAMES.len()],
    /// On the leader, each entry of writes from proposed to applied: timed once per entry,
    /// not per write, since a busy leader carries hundreds in one.
    entries: Latency,
    /// Proposals not carried out, by `failure_index`.
    proposal_failures: [Counter; 6],
    reads: Latency,
    wal_batches: Counter,
    wal_bytes: Counter,
    fsyncs: Latency,
    /// By `SnapshotKind`.
    snapshots: Latencies<2>,
    snapshot_bytes: [Gauge; 2],
    /// The node whose status and jobs are read when scraped (set when it starts).
    node: Watched<Shared>,
}

impl NodeMetrics {
    /// Registers a node's metrics; the node fills in the rest when it starts with them.
    pub fn register(registry: &mut Registry) -> Arc<NodeMetrics> {
        let proposals = family(registry, "coolbeans_node_proposals", "Writes proposed to this node, by operation", "op", OP_NAMES);
        let proposal_failures = family(
            registry,
            "coolbeans_node_proposal_failures",
            "Proposals this node did not carry out, by reason",
            "reason",
            ["not-leader", "dropped", "overloaded", "stopped", "invalid", "not-upgraded"],
        );
        let snapshots = Latencies::register(
            registry,
            "coolbeans_snapshot_seconds",
            "Time to take a snapshot (picture, encode, write) or install one from the leader",
            "kind",
            ["taken", "installed"],
        );
        let snapshot_bytes =
            family(registry, "coolbeans_snapshot_bytes", "Size of the latest snapshot taken or installed", "kind", ["taken", "installed"]);
        let metrics = NodeMetrics {
            proposals,
            entries: Latency::default(),
            proposal_failures,
            reads: Latency::default(),
            wal_batches: Counter::default(),
            wal_bytes: Counter::default(),
            fsyncs: Latency::default(),
            snapshots,
            snapshot_bytes,
            node: Watched::default(),
        };
        let help = "On the leader: time from an entry of writes proposed until applied (replicated, durable, committed)";
        registry.register("coolbeans_raft_entry_seconds", help, metrics.entries.clone());
        registry.register("coolbeans_node_read_seconds", "Time for a linearizable read's barrier (ReadIndex)", metrics.reads.clone());
        registry.register("coolbeans_wal_batches", "Batches written to the log (a batch per Raft Ready)", metrics.wal_batches.clone());
        registry.register("coolbeans_wal_bytes", "Bytes of records written to the log", metrics.wal_bytes.clone());
        registry.register("coolbeans_fsync_seconds", "Time of each fsync of the data dir (log, snapshots, directory)", metrics.fsyncs.clone());
        let metrics = Arc::new(metrics);
        registry.register_collector(Box::new(metrics.clone()));
        metrics
    }

    /// Reads `node`'s status and jobs when scraped.
    pub(crate) fn watch(&self, node: &Arc<Shared>) {
        self.node.set(node);
    }

    pub(crate) fn proposing(&self, op: &Op) {
        self.proposals[op_index(op)].inc();
    }

    /// A proposal was not carried out (or the state machine refused it).
    pub(crate) fn failed(&self, e: &NodeError) {
        if let Some(reason) = failure_index(e) {
            self.proposal_failures[reason].inc();
        }
    }

    /// An entry of writes proposed at `proposed` was applied.
    pub(crate) fn applied(&self, proposed: Instant) {
        self.entries.since(proposed);
    }

    pub(crate) fn read(&self, started: Instant) {
        self.reads.since(started);
    }

    /// The log's writer made `batches` of `bytes` durable.
    pub(crate) fn written(&self, batches: usize, bytes: usize) {
        self.wal_batches.inc_by(batches as u64);
        self.wal_bytes.inc_by(bytes as u64);
    }

    pub(crate) fn snapshot(&self, kind: SnapshotKind, started: Instant, bytes: usize) {
        self.snapshots.observe(kind as usize, started);
        self.snapshot_bytes[kind as usize].set(as_gauge(bytes));
    }

    /// What a disk calls with each fsync's duration (`RealDisk::observing_syncs`).
    pub fn fsync_observer(&self) -> SyncObserver {
        let fsyncs = self.fsyncs.clone();
        Arc::new(move |took| fsyncs.observe(took))
    }
}

fn role_name(role: StateRole) -> &'static str {
    match role {
        StateRole::Leader => "leader",
        StateRole::Follower => "follower",
        StateRole::Candidate => "candidate",
        StateRole::PreCandidate => "pre-candidate",
    }
}

impl Collector for NodeMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let Some(node) = self.node.get() else { return Ok(()) };
        let status = lock(&node.status).clone();
        let tubes = lock(&node.state).fsm.tube_job_counts();
        drop(node);
        let e = &mut encoder;
        gauge(e, "coolbeans_raft_node_id", "This node's id", as_gauge(status.node_id))?;
        let roles = [StateRole::Leader, StateRole::Follower, StateRole::Candidate, StateRole::PreCandidate];
        let roles = roles.map(|role| ([("role", role_name(role))], i64::from(status.role == role)));
        gauges(e, "coolbeans_raft_role", "1 for this node's Raft role, 0 for the others", roles)?;
        gauge(e, "coolbeans_raft_term", "Raft term", as_gauge(status.term))?;
        gauge(e, "coolbeans_raft_leader_id", "The leader's node id (0: none known)", as_gauge(status.leader_id))?;
        gauge(e, "coolbeans_raft_commit_index", "Highest log index known committed", as_gauge(status.commit_index))?;
        gauge(e, "coolbeans_raft_applied_index", "Highest log index applied to the state machine", as_gauge(status.applied_index))?;
        gauge(e, "coolbeans_raft_snapshot_index", "Index of the latest snapshot", as_gauge(status.snapshot_index))?;
        gauge(e, "coolbeans_raft_voters", "Voting members", as_gauge(status.voters.len()))?;
        gauge(e, "coolbeans_raft_learners", "Learners (joining, not yet voting)", as_gauge(status.learners.len()))?;
        let peers: Vec<String> = status.match_index.keys().map(u64::to_string).collect();
        let matched = peers.iter().zip(status.match_index.values()).map(|(peer, index)| ([("peer", peer.as_str())], as_gauge(*index)));
        gauges(e, "coolbeans_raft_match_index", "On the leader: the highest log index each member holds", matched)?;
        let states = ["ready", "reserved", "delayed", "buried", "urgent"];
        let jobs = tubes.iter().flat_map(|(tube, c)| {
            let counts = [c.ready, c.reserved, c.delayed, c.buried, c.urgent];
            states.into_iter().zip(counts).map(move |(state, n)| ([("tube", &**tube), ("state", state)], as_gauge(n)))
        });
        gauges(e, "coolbeans_tube_jobs", "Jobs in each tube by state (urgent: ready with priority below 1024)", jobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation has a name of its own.
    #[test]
    fn op_names_are_distinct() {
        let mut names = OP_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OP_NAMES.len());
        assert_eq!(OP_NAMES[op_index(&Op::Tick)], "tick");
        assert_eq!(OP_NAMES[op_index(&Op::KickJob { id: 1 })], "kick-job");
    }
}
