//! The simulated cluster: Raft nodes on their own simulated hosts, each with a simulated disk
//! that outlives the node, so a killed node restarts from what it had synced.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coolbeans::metrics::Registry;
use coolbeans::node::version::Versions;
use coolbeans::node::{start_node, DriverConfig, LogStorage, NodeHandle, NodeMetrics, NodeOptions, Status};
use coolbeans::storage::{spawn_overdue_timer, Disk, PolicyDisk, SimDisk, SyncPolicy, WalOptions};
use madsim::runtime::Handle;
use madsim::task::NodeId;
use rand::Rng;

use crate::trace::Trace;

/// The gRPC port every node listens on.
pub const NODE_PORT: u16 = 7000;

/// How a simulated node is set up.
#[derive(Clone, Debug)]
pub struct NodeSetup {
    pub tick: Duration,
    pub snapshot_entries: u64,
    /// Nodes 1 to this many run a proxy of their own, as `cluster-node
    /// --beanstalkd-listen` does.
    pub proxy_nodes: u64,
    /// Those proxies' lease, and the node ids they know of (the spares that may join
    /// included).
    pub proxy_lease: Duration,
    pub node_ids_max: u64,
    /// The size snapshots are cut into on their way to a follower.
    pub snapshot_chunk_bytes: usize,
    /// When the log's batches are synced (`serve -f`, `-F`): anything but `Always` only for a
    /// lone node, since raft counts a member's votes and appends as durable.
    pub sync_policy: SyncPolicy,
    /// The state machine versions nodes run: this build's unless an upgrade is rehearsed.
    pub versions: RunVersions,
}

/// Which state machine version each node runs, read each time a node starts: a restart after
/// a change is an upgrade (or a downgrade) of that node.
#[derive(Clone, Debug, Default)]
pub struct RunVersions {
    /// The versions of nodes not named in `by_node`, and which version introduced each
    /// operation (a rehearsal declares one of this build's operations newer).
    pub default: Versions,
    /// Nodes that run another version.
    pub by_node: Arc<Mutex<BTreeMap<u64, u32>>>,
}

impl RunVersions {
    /// The versions node `id` starts with.
    pub fn of(&self, id: u64) -> Versions {
        let understood = self.by_node.lock().expect("versions lock").get(&id).copied();
        Versions { understood: understood.unwrap_or(self.default.understood), ..self.default }
    }

    /// Node `id` runs `version` from its next start on.
    pub fn set(&self, id: u64, version: u32) {
        self.by_node.lock().expect("versions lock").insert(id, version);
    }
}

impl Default for NodeSetup {
    fn default() -> Self {
        NodeSetup {
            tick: Duration::from_millis(100),
            snapshot_entries: 10_000,
            proxy_nodes: 0,
            proxy_lease: Duration::from_secs(30),
            node_ids_max: 0,
            snapshot_chunk_bytes: coolbeans::limits::SNAPSHOT_CHUNK_BYTES_MAX,
            sync_policy: SyncPolicy::Always,
            versions: RunVersions::default(),
        }
    }
}

/// One simulated Raft node: its host, its disk, and its handle while it runs.
pub struct SimNode {
    pub id: u64,
    pub addr: SocketAddr,
    pub host: NodeId,
    pub disk: SimDisk,
    /// Set by the node's init each time it starts; cleared when it is killed.
    pub handle: Arc<Mutex<Option<NodeHandle>>>,
    pub alive: bool,
}

/// A cluster of simulated nodes.
pub struct Cluster {
    pub nodes: BTreeMap<u64, SimNode>,
    pub trace: Trace,
}

pub fn node_ip(id: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8))
}

pub fn node_addr(id: u64) -> SocketAddr {
    SocketAddr::new(node_ip(id), NODE_PORT)
}

impl Cluster {
    /// Starts `count` nodes (ids 1..=count) that form one cluster.
    pub fn start(count: u64, setup: NodeSetup, trace: Trace) -> Cluster {
        let peers: BTreeMap<u64, String> = (1..=count).map(|id| (id, node_addr(id).to_string())).collect();
        let mut nodes = BTreeMap::new();
        for id in 1..=count {
            nodes.insert(id, spawn_node(id, peers.clone(), setup.clone()));
        }
        trace.event(format!("cluster of {count} started"));
        Cluster { nodes, trace }
    }

    /// Starts a new node that is not a member yet (it waits to be joined).
    pub fn add_node(&mut self, id: u64, setup: NodeSetup) {
        self.nodes.insert(id, spawn_node(id, BTreeMap::new(), setup));
        self.trace.event(format!("node {id} started, not yet a member"));
    }

    /// A running node's handle.
    pub fn handle(&self, id: u64) -> Option<NodeHandle> {
        self.nodes.get(&id).and_then(|n| n.handle.lock().expect("handle lock").clone())
    }

    pub fn status(&self, id: u64) -> Option<Status> {
        self.handle(id).map(|h| h.status())
    }

    /// The leader that a majority of its own voters agree on, if any (the highest term's).
    pub fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for id in self.nodes.keys() {
            let Some(s) = self.status(*id).filter(|s| s.is_leader()) else { continue };
            let agree = s.voters.iter().filter(|v| self.status(**v).is_some_and(|o| o.term == s.term && o.leader_id == s.node_id)).count();
            if agree > s.voters.len() / 2 && best.is_none_or(|(term, _)| s.term > term) {
                best = Some((s.term, s.node_id));
            }
        }
        best.map(|(_, leader)| leader)
    }

    /// Waits up to `limit` for a leader; answers it and how long it took.
    pub async fn await_leader(&self, limit: Duration, not: Option<u64>) -> Option<(u64, Duration)> {
        let started = madsim::time::Instant::now();
        while started.elapsed() < limit {
            if let Some(leader) = self.leader().filter(|l| Some(*l) != not) {
                self.trace.event(format!("leader is node {leader}"));
                return Some((leader, started.elapsed()));
            }
            madsim::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// Kills a node: its tasks stop and its disk loses what it had not synced, tearing the
    /// last unsynced write half the time.
    pub fn kill(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("known node");
        Handle::current().kill(node.host);
        *node.handle.lock().expect("handle lock") = None;
        let mut rng = madsim::rand::thread_rng();
        let tear = rng.gen_bool(0.5).then(|| rng.gen::<u64>());
        node.disk.crash(tear);
        node.alive = false;
        self.trace.event(format!("node {id} killed (tear: {})", tear.is_some()));
    }

    /// Restarts a killed node from its disk.
    pub fn restart(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("known node");
        Handle::current().restart(node.host);
        node.alive = true;
        self.trace.event(format!("node {id} restarted"));
    }

    /// Waits until node `id` has applied at least `index`.
    pub async fn await_applied(&self, id: u64, index: u64, limit: Duration) -> bool {
        let started = madsim::time::Instant::now();
        while started.elapsed() < limit {
            if self.status(id).is_some_and(|s| s.applied_index >= index) {
                return true;
            }
            madsim::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Digests of the running nodes, with their applied index.
    pub fn digests(&self) -> BTreeMap<u64, (u64, u64)> {
        let mut out = BTreeMap::new();
        for id in self.nodes.keys() {
            if let Some(h) = self.handle(*id) {
                let applied = h.status().applied_index;
                out.insert(*id, (applied, h.read(|s| s.digest())));
            }
        }
        out
    }
}

fn spawn_node(id: u64, peers: BTreeMap<u64, String>, setup: NodeSetup) -> SimNode {
    let disk = SimDisk::new();
    let handle_slot: Arc<Mutex<Option<NodeHandle>>> = Arc::new(Mutex::new(None));
    let addr = node_addr(id);
    let (init_disk, slot) = (disk.clone(), handle_slot.clone());
    let host = Handle::current()
        .create_node()
        .name(format!("node-{id}"))
        .ip(node_ip(id))
        .init(move || {
            let (disk, slot, peers, setup) = (init_disk.clone(), slot.clone(), peers.clone(), setup.clone());
            let options = NodeOptions {
                driver: DriverConfig {
                    id,
                    tick: setup.tick,
                    snapshot_entries: setup.snapshot_entries,
                    snapshot_chunk_bytes: setup.snapshot_chunk_bytes,
                    versions: setup.versions.of(id),
                    ..DriverConfig::default()
                },
                advertise: addr.to_string(),
                peers,
                data_dir: PathBuf::from("data"),
                // Small chunks, so batches both overwrite preallocated zeros and grow files, and
                // crashes tear writes of either kind.
                wal: WalOptions { preallocate_bytes: 1024, ..WalOptions::default() },
                // Recorded but never read: the recording runs as it does in a real process.
                metrics: Some(NodeMetrics::register(&mut Registry::default())),
                dialer: Default::default(),
            };
            async move {
                // A fresh policy disk (and -f timer) each start, as a restarted process has.
                let disk = Arc::new(PolicyDisk::new(disk, setup.sync_policy));
                spawn_overdue_timer(&disk);
                let disk: Arc<dyn Disk> = disk;
                let node = match start_node(options, LogStorage::Disk(disk)) {
                    Ok(node) => node,
                    Err(e) => panic!("node {id} failed to start: {e}"),
                };
                *slot.lock().expect("handle lock") = Some(node.clone());
                if id <= setup.proxy_nodes {
                    tokio::spawn(crate::proxies::serve_in_node(id, node.clone(), setup.node_ids_max, setup.proxy_lease));
                }
                if let Err(e) = coolbeans::rpc::serve(addr, node, Default::default(), std::future::pending()).await {
                    panic!("node {id} gRPC server failed: {e}");
                }
            }
        })
        .build();
    SimNode { id, addr, host: host.id(), disk, handle: handle_slot, alive: true }
}
