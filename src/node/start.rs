//! Starting a node: check the data dir belongs to it, recover the log, bootstrap a new cluster
//! from `--peers` (or wait to be joined), and spawn the driver.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use prost::Message as _;
use raft::eraftpb::{HardState, Snapshot};
use raft::RawNode;
use tokio::sync::{broadcast, mpsc, watch};

use super::driver::{Driver, DriverConfig};
use super::handle::{lock, Input, NodeHandle, NodeStop, Shared, Status};
use super::log_store::LogStore;
use super::metrics::NodeMetrics;
use super::raft_logger;
use super::replicated::Replicated;
use super::transport::Transport;
use crate::limits::{APPLIED_EVENTS_BUFFERED_MAX, DRIVER_INPUTS_MAX};
use crate::storage::{Disk, Recovered, Wal, WalOptions};

/// Where a node keeps its log and snapshots.
pub enum LogStorage {
    /// In the data dir on this disk: durable, and recovered at the next start.
    Disk(Arc<dyn Disk>),
    /// In memory only, as `serve` without `-b` promises: nothing is written, entries keep
    /// their operations decoded (`LocalOp`), and compaction encodes no snapshot. Only for a
    /// node that is its cluster's only member, so no follower ever needs a snapshot from it.
    Memory,
}

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub driver: DriverConfig,
    /// The address peers reach this node at.
    pub advertise: String,
    /// The initial members (id → address) of a new cluster; empty for a node that will be
    /// joined to a running one.
    pub peers: BTreeMap<u64, String>,
    /// The data directory, relative to the disk's root (unused in memory).
    pub data_dir: PathBuf,
    pub wal: WalOptions,
    /// Where the node records its metrics, when they are on.
    pub metrics: Option<Arc<NodeMetrics>>,
    /// How this node dials its peers (its certificate or token).
    pub dialer: crate::security::Dialer,
}

/// Why a node did not start.
#[derive(Debug)]
pub enum StartError {
    /// The data dir was written by another node.
    WrongNode {
        dir: PathBuf,
        stored: u64,
        given: u64,
    },
    /// `--peers` does not include this node.
    NotAPeer {
        id: u64,
    },
    Storage(String),
    Raft(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::WrongNode { dir, stored, given } => write!(
                f,
                "data dir {} belongs to node {stored}, but this is node {given}: give --node-id {stored} or another --data-dir",
                dir.display()
            ),
            StartError::NotAPeer { id } => write!(f, "--peers does not list this node ({id})"),
            StartError::Storage(e) => write!(f, "{e}"),
            StartError::Raft(e) => write!(f, "raft: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

const NODE_ID_FILE: &str = "node-id";

/// Checks (or, in a new data dir, records) which node the data dir belongs to.
fn claim_data_dir(disk: &dyn Disk, dir: &Path, id: u64) -> Result<(), StartError> {
    let storage = |e: std::io::Error| StartError::Storage(format!("{}: {e}", dir.join(NODE_ID_FILE).display()));
    disk.create_dir_all(dir).map_err(storage)?;
    let path = dir.join(NODE_ID_FILE);
    if disk.exists(&path).map_err(storage)? {
        let text = disk.read(&path).map_err(storage)?;
        let stored = String::from_utf8_lossy(&text)
            .trim()
            .parse::<u64>()
            .map_err(|_| StartError::Storage(format!("{} does not hold a node id; the data dir is damaged", path.display())))?;
        if stored != id {
            return Err(StartError::WrongNode { dir: dir.to_path_buf(), stored, given: id });
        }
        return Ok(());
    }
    // A log without its owner's id: the id file was deleted, and writing ours could hand
    // another node's log and votes to this one.
    let names = disk.list(dir).map_err(storage)?;
    if let Some(found) = names.iter().find(|name| *name != crate::storage::names::LOCK_FILE) {
        return Err(StartError::Storage(format!(
            "{} holds {found} but no {NODE_ID_FILE} file: write the id of the node whose data this is into {} to start it",
            dir.display(),
            path.display()
        )));
    }
    disk.write_new(&path, format!("{id}\n").as_bytes()).map_err(storage)?;
    disk.sync(&path).map_err(storage)?;
    disk.sync_dir(dir).map_err(storage)
}

/// The state every member of a new cluster starts from: the same snapshot at index 1 on each,
/// holding the members and their addresses.
fn bootstrap_snapshot(peers: &BTreeMap<u64, String>) -> Snapshot {
    let mut state = Replicated::new(peers.clone());
    state.cluster_id = super::replicated::cluster_id_for(peers);
    let mut snapshot = Snapshot::default();
    snapshot.set_data(state.snapshot().encode_to_vec().into());
    let meta = snapshot.mut_metadata();
    meta.index = 1;
    meta.term = 1;
    meta.mut_conf_state().voters = peers.keys().copied().collect();
    snapshot
}

/// Opens the log where `storage` says: a data dir's recovered content, or an empty log.
fn open_log(options: &NodeOptions, storage: LogStorage) -> Result<(Wal, Recovered), StartError> {
    let disk = match storage {
        LogStorage::Disk(disk) => disk,
        LogStorage::Memory => return Ok((Wal::in_memory(), Recovered::default())),
    };
    claim_data_dir(disk.as_ref(), &options.data_dir, options.driver.id)?;
    let (wal, recovered) = Wal::open(disk, &options.data_dir, options.wal.clone()).map_err(|e| StartError::Storage(e.to_string()))?;
    check_commit(&recovered).map_err(|why| StartError::Storage(format!("corrupt write-ahead log in {}: {why}", options.data_dir.display())))?;
    Ok((wal, recovered))
}

/// A log whose hard state commits past its last entry (or its snapshot) is damaged: raft
/// never records one, and raft-rs would stop the process on it without saying what is wrong.
fn check_commit(recovered: &Recovered) -> Result<(), String> {
    let snapshot_index = recovered.snapshot.as_ref().map_or(0, |s| s.get_metadata().index);
    let last_index = recovered.entries.last().map_or(snapshot_index, |e| e.index);
    match recovered.hard_state.commit {
        commit if commit > last_index => Err(format!("the hard state commits index {commit}, past the log's last index {last_index}")),
        _ => Ok(()),
    }
}

/// Starts a node with its log in `storage` and returns its handle. The driver runs as a
/// spawned task.
pub fn start_node(options: NodeOptions, storage: LogStorage) -> Result<NodeHandle, StartError> {
    let id = options.driver.id;
    let local_entries = matches!(storage, LogStorage::Memory);
    let opening = tokio::time::Instant::now();
    let (mut wal, mut recovered) = open_log(&options, storage)?;
    let recovery = opening.elapsed();
    let fresh = recovered.snapshot.is_none() && recovered.entries.is_empty() && recovered.hard_state == HardState::default();
    if fresh && !options.peers.is_empty() {
        if !options.peers.contains_key(&id) {
            return Err(StartError::NotAPeer { id });
        }
        let snapshot = bootstrap_snapshot(&options.peers);
        wal.save_snapshot(&snapshot).map_err(|e| StartError::Storage(e.to_string()))?;
        let hs = HardState { term: 1, commit: 1, ..HardState::default() };
        wal.set_hard_state(&hs);
        wal.sync().map_err(|e| StartError::Storage(e.to_string()))?;
        recovered.snapshot = Some(snapshot);
        recovered.hard_state = hs;
    }
    let understood = options.driver.versions.understood;
    let state = match &recovered.snapshot {
        Some(s) => Replicated::restore_encoded(&s.data, understood)
            .map_err(|e| StartError::Storage(format!("snapshot in {}: {e}", options.data_dir.display())))?,
        None => Replicated::default().understanding(understood),
    };
    if !fresh && !options.peers.is_empty() && state.addresses != options.peers {
        tracing::warn!(
            node = id,
            stored = ?state.addresses,
            flags = ?options.peers,
            "--peers differs from the membership stored in the data dir; the stored membership wins"
        );
    }
    let applied = recovered.snapshot.as_ref().map_or(0, |s| s.get_metadata().index);
    tracing::info!(
        node = id,
        term = recovered.hard_state.term,
        snapshot_index = applied,
        entries = recovered.entries.len(),
        ms = recovery.as_millis() as u64,
        "log recovered"
    );
    let store = LogStore::new(wal, recovered);
    let config = raft::Config {
        id,
        election_tick: options.driver.election_ticks,
        heartbeat_tick: options.driver.heartbeat_ticks,
        applied,
        check_quorum: true,
        pre_vote: true,
        max_size_per_msg: crate::limits::ENTRY_OPS_BYTES_MAX as u64,
        max_inflight_msgs: 256,
        ..Default::default()
    };
    let mut raw = RawNode::new(&config, store, &raft_logger::logger(id)).map_err(|e| StartError::Raft(e.to_string()))?;
    // The only voter need not wait out an election timeout: it leads at once.
    if raw.raft.prs().conf().to_conf_state().voters == [id] {
        raw.campaign().map_err(|e| StartError::Raft(e.to_string()))?;
    }
    let cluster_id = state.cluster_id;
    let (events, _) = broadcast::channel(APPLIED_EVENTS_BUFFERED_MAX);
    let shared = Arc::new(Shared {
        state: Mutex::new(state),
        status: Mutex::new(Status { node_id: id, ..Status::default() }),
        leading: std::sync::atomic::AtomicBool::new(false),
        events,
        stopped: watch::Sender::new(None),
        job_body_bytes_max: options.driver.job_body_bytes_max,
        cluster_id: Arc::new(std::sync::atomic::AtomicU64::new(cluster_id)),
        metrics: options.metrics.clone(),
        versions: options.driver.versions,
        heard_versions: Mutex::default(),
        snapshot_writer: raw.store().snapshot_writer(),
        snapshots_staged: std::sync::atomic::AtomicU64::new(0),
    });
    if let Some(metrics) = &shared.metrics {
        metrics.watch(&shared);
    }
    let (tx, rx) = mpsc::channel::<Input>(DRIVER_INPUTS_MAX);
    let stamps = (shared.cluster_id.clone(), understood);
    let transport =
        Transport::new(id, options.advertise.clone(), tx.downgrade(), options.driver.snapshot_chunk_bytes, stamps, options.dialer.clone());
    let driver = Driver::new(raw, options.driver, shared.clone(), rx, transport, applied, local_entries);
    watch_driver(tokio::spawn(driver.run()), shared.clone());
    Ok(NodeHandle { inputs: tx, shared })
}

/// Publishes why the driver stopped, a panic included (raft-rs panics on what it takes for
/// a broken invariant), so the process can end rather than answer from a dead node's state.
fn watch_driver(driver: tokio::task::JoinHandle<Option<NodeStop>>, shared: Arc<Shared>) {
    tokio::spawn(async move {
        let stop = match driver.await {
            Ok(Some(stop)) => stop,
            Ok(None) => return,
            Err(e) => NodeStop::Failed(format!("the raft driver panicked: {e}")),
        };
        shared.leading.store(false, std::sync::atomic::Ordering::Relaxed);
        lock(&shared.status).leader_id = 0;
        shared.stopped.send_replace(Some(stop));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimDisk;

    /// A data dir remembers its node: the same id opens it again, another id is refused with
    /// a message that names both ids and the dir.
    #[test]
    fn data_dir_belongs_to_one_node() {
        let disk = SimDisk::new();
        let dir = Path::new("data");
        claim_data_dir(&disk, dir, 3).expect("a new dir is claimed");
        claim_data_dir(&disk, dir, 3).expect("the same node opens it again");
        let err = claim_data_dir(&disk, dir, 4).expect_err("another node is refused");
        let message = err.to_string();
        assert!(message.contains("belongs to node 3") && message.contains("node 4") && message.contains("data"), "{message}");
    }

    /// A data dir with files but no node-id file is not claimed: its log is some node's.
    #[test]
    fn data_dir_without_its_id_is_refused() {
        let disk = SimDisk::new();
        let dir = Path::new("data");
        disk.create_dir_all(dir).expect("mkdir");
        disk.write_at(&dir.join("wal-00000000000000000001.log"), 0, b"records").expect("write");
        let err = claim_data_dir(&disk, dir, 3).expect_err("refused");
        let message = err.to_string();
        assert!(message.contains("wal-00000000000000000001.log") && message.contains("node-id"), "{message}");
        assert!(!disk.exists(&dir.join(NODE_ID_FILE)).expect("exists"), "no id was written");
    }

    /// A node that is its cluster's only voter, with `driver`'s settings.
    #[cfg(not(madsim))]
    fn lone_node(driver: DriverConfig) -> NodeOptions {
        NodeOptions {
            driver,
            advertise: "127.0.0.1:0".into(),
            peers: [(1, "127.0.0.1:0".to_string())].into(),
            data_dir: PathBuf::new(),
            wal: WalOptions::default(),
            metrics: None,
            dialer: crate::security::Dialer::default(),
        }
    }

    /// Once every handle is dropped the node stops and lets go of everything it shared: its
    /// driver's input channel has no sender left (nothing of its own holds a strong one).
    #[cfg(not(madsim))]
    #[test]
    fn dropping_every_handle_stops_the_node() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async {
            let node = start_node(lone_node(DriverConfig { id: 1, ..DriverConfig::default() }), LogStorage::Memory).expect("the node starts");
            let put =
                crate::fsm::Op::Put { client: None, tube: "t".into(), pri: 0, delay_secs: 0, ttr_secs: 1, body: bytes::Bytes::from_static(b"x") };
            node.propose(put, None).await.expect("the node works");
            let shared = Arc::downgrade(&node.shared);
            drop(node);
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            while shared.upgrade().is_some() {
                assert!(tokio::time::Instant::now() < deadline, "the node still runs 5 s after its last handle was dropped");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        });
    }

    /// The driver runs on the wall clock it is given: on a paused runtime, with a clock that
    /// follows the runtime's, a delayed job stays delayed until the runtime's time passes its
    /// delay, then the leader's tick makes it ready, within a tick of its time (milliseconds
    /// of real time: the system's clock would not have moved far enough).
    #[cfg(not(madsim))]
    #[test]
    fn the_driver_keeps_the_time_it_is_given() {
        use crate::fsm::{JobState, Op, Reply};
        use std::time::Duration;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("a runtime");
        runtime.block_on(async {
            let start_ms = 1_000_000;
            let clock = crate::clock::Clock::following_runtime(start_ms);
            let node = start_node(lone_node(DriverConfig { id: 1, clock, ..DriverConfig::default() }), LogStorage::Memory).expect("the node starts");
            let put = Op::Put { client: None, tube: "t".into(), pri: 0, delay_secs: 60, ttr_secs: 1, body: bytes::Bytes::from_static(b"x") };
            let Ok(Reply::Put { id }) = node.propose(put, None).await else { panic!("the put is applied") };
            let state = || lock(&node.shared.state).fsm.job(id).expect("the job").state;
            let JobState::Delayed { until } = state() else { panic!("delayed: {:?}", state()) };
            assert!((start_ms + 60_000..start_ms + 61_000).contains(&until), "stamped with the given clock: {until}");
            tokio::time::sleep(Duration::from_secs(59)).await;
            assert!(matches!(state(), JobState::Delayed { .. }), "59 s in: {:?}", state());
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(state(), JobState::Ready, "61 s in");
        });
    }

    /// A log whose hard state commits past its last entry is refused at start with a message
    /// that names the data dir and both indexes (raft-rs would panic on it).
    #[test]
    fn commit_past_the_log_is_refused() {
        let disk = Arc::new(SimDisk::new());
        let options = NodeOptions {
            driver: DriverConfig { id: 1, ..DriverConfig::default() },
            advertise: "a:1".into(),
            peers: [(1, "a:1".to_string())].into(),
            data_dir: PathBuf::from("data"),
            wal: WalOptions::default(),
            metrics: None,
            dialer: crate::security::Dialer::default(),
        };
        claim_data_dir(disk.as_ref(), &options.data_dir, 1).expect("claimed");
        let (mut wal, _) = Wal::open(disk.clone(), &options.data_dir, WalOptions::default()).expect("opens");
        wal.append(&[raft::eraftpb::Entry { index: 1, term: 1, ..Default::default() }]).expect("append");
        wal.set_hard_state(&HardState { term: 1, commit: 4, ..HardState::default() });
        wal.sync().expect("sync");
        drop(wal);
        let error = open_log(&options, LogStorage::Disk(disk)).map(drop).expect_err("refused").to_string();
        assert!(error.contains("data") && error.contains("commits index 4, past the log's last index 1"), "{error}");
    }

    /// The bootstrap snapshot is the same bytes on every member, whatever the order of start.
    #[test]
    fn bootstrap_is_identical_on_every_member() {
        let peers: BTreeMap<u64, String> = [(2, "b:2".to_string()), (1, "a:1".to_string()), (3, "c:3".to_string())].into();
        let a = bootstrap_snapshot(&peers);
        let b = bootstrap_snapshot(&peers.clone().into_iter().rev().collect());
        assert_eq!(a, b);
        assert_eq!(a.get_metadata().get_conf_state().voters, vec![1, 2, 3]);
    }
}
