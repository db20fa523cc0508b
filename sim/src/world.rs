//! The world the simulator runs and its nemesis acts on: the cluster, the proxies, and
//! what the run has done to them so far (who left, who is paused, when proxies were at
//! risk, which node claimed each term).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use madsim::rand::{thread_rng, Rng};

use crate::cluster::Cluster;
use crate::config::SeedConfig;
use crate::proxies::Proxies;

/// A time window during which a proxy's sessions may have lost their lease.
#[derive(Clone, Debug)]
pub struct ProxyRisk {
    pub proxy: u32,
    pub from: Duration,
    pub until: Duration,
}

/// The world the nemesis acts on.
pub struct World {
    pub config: SeedConfig,
    pub cluster: Cluster,
    pub proxies: Proxies,
    /// Node ids that left the cluster (their hosts are stopped for good).
    pub left: Vec<u64>,
    /// Spare node ids not started yet.
    pub spares: Vec<u64>,
    pub paused: Vec<u64>,
    pub proxy_risks: Vec<ProxyRisk>,
    /// Which node believed it led each term.
    pub leaders_by_term: BTreeMap<u64, BTreeSet<u64>>,
}

impl World {
    /// Kills node `id`, and the proxy inside it if one runs there.
    pub fn kill_node(&mut self, id: u64) {
        self.cluster.kill(id);
        self.proxies.node_killed(id);
    }
}

impl World {
    /// The voters the current leader reports, else every started node that has not left.
    pub fn members(&self) -> Vec<u64> {
        let from_leader = self.cluster.leader().and_then(|l| self.cluster.status(l)).map(|s| s.voters);
        let mut members = from_leader.unwrap_or_else(|| self.cluster.nodes.keys().copied().filter(|id| !self.left.contains(id)).collect());
        members.sort_unstable();
        members
    }

    pub fn random_member(&self) -> Option<u64> {
        let members = self.members();
        (!members.is_empty()).then(|| members[thread_rng().gen_range(0..members.len())])
    }

    /// Notes which node claims to lead its term.
    pub fn sample_leaders(&mut self) {
        for id in self.cluster.nodes.keys() {
            if let Some(s) = self.cluster.status(*id).filter(|s| s.is_leader()) {
                self.leaders_by_term.entry(s.term).or_default().insert(s.node_id);
            }
        }
    }

    /// Nodes that should converge: started, not left.
    pub fn live_members(&self) -> Vec<u64> {
        self.cluster.nodes.keys().copied().filter(|id| !self.left.contains(id)).collect()
    }
}
