//! The nemesis: injects the seed's fault mix for the fault phase, each fault undone after a
//! while by a scheduled action, then heals everything at once.

use std::collections::BTreeMap;
use std::time::Duration;

use coolbeans::node::MemberChange;
use madsim::net::NetSim;
use madsim::rand::{thread_rng, Rng};
use madsim::runtime::Handle;

use crate::cluster::{node_addr, NodeSetup};
use crate::config::{Fault, SeedConfig};
use crate::workload::now;
use crate::world::{ProxyRisk, World};

/// Something the nemesis does at a set time: most undo an earlier fault.
#[derive(Clone, Debug)]
enum Action {
    RestartNode(u64),
    UnclogNode(u64),
    ClogNode(u64),
    UnclogLink(u64, u64),
    ResumeNode(u64),
    ResetLatency,
    RestartProxy(u32),
    UnclogProxy(u32),
}

#[derive(Default)]
pub struct Nemesis {
    scheduled: BTreeMap<(Duration, u64), Action>,
    next_seq: u64,
}

impl Nemesis {
    pub fn new() -> Self {
        Nemesis::default()
    }

    fn schedule(&mut self, after: Duration, action: Action) {
        self.next_seq += 1;
        self.scheduled.insert((now() + after, self.next_seq), action);
    }

    /// Injects faults until `phase` has passed, sampling leaders as it goes.
    pub async fn run(&mut self, world: &mut World, phase: Duration) {
        let end = now() + phase;
        let mut next_fault = now() + self.gap(&world.config);
        while now() < end {
            world.sample_leaders();
            let due: Vec<_> = self.scheduled.range(..=(now(), u64::MAX)).map(|(k, _)| *k).collect();
            for key in due {
                let action = self.scheduled.remove(&key).expect("due action");
                self.act(world, action);
            }
            if now() >= next_fault {
                self.inject(world).await;
                next_fault = now() + self.gap(&world.config);
            }
            madsim::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Injects nothing for `phase`, only sampling leaders.
    pub async fn run_quiet(&mut self, world: &mut World, phase: Duration) {
        let end = now() + phase;
        while now() < end {
            world.sample_leaders();
            madsim::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn gap(&self, config: &SeedConfig) -> Duration {
        thread_rng().gen_range(Duration::ZERO..config.fault_interval_mean * 2)
    }

    fn duration(&self, config: &SeedConfig) -> Duration {
        thread_rng().gen_range(Duration::from_millis(300)..config.fault_duration_max)
    }

    /// Undoes every fault at once: the safety phase is over.
    pub fn heal(&mut self, world: &mut World) {
        for (_, action) in std::mem::take(&mut self.scheduled) {
            if !matches!(action, Action::ClogNode(_)) {
                self.act(world, action);
            }
        }
        let net = NetSim::current();
        let hosts: Vec<_> = world.cluster.nodes.values().map(|n| n.host).chain(world.proxies.list.iter().map(|f| f.host)).collect();
        for &a in &hosts {
            net.unclog_node(a);
            for &b in &hosts {
                net.unclog_link(a, b);
            }
        }
        world.cluster.trace.event("healed: every fault undone");
    }

    fn act(&mut self, world: &mut World, action: Action) {
        let net = NetSim::current();
        let host = |id: u64| world.cluster.nodes[&id].host;
        match action {
            Action::RestartNode(id) => {
                if !world.cluster.nodes[&id].alive && !world.left.contains(&id) {
                    world.cluster.restart(id);
                }
            }
            Action::UnclogNode(id) => net.unclog_node(host(id)),
            Action::ClogNode(id) => net.clog_node(host(id)),
            Action::UnclogLink(a, b) => net.unclog_link(host(a), host(b)),
            Action::ResumeNode(id) => {
                if let Some(i) = world.paused.iter().position(|p| *p == id) {
                    world.paused.remove(i);
                    Handle::current().resume(host(id));
                }
            }
            Action::ResetLatency => net.update_config(|c| c.send_latency = Duration::from_millis(1)..Duration::from_millis(10)),
            Action::RestartProxy(i) => {
                if !world.proxies.list[i as usize].alive {
                    world.proxies.restart(i);
                }
            }
            Action::UnclogProxy(i) => net.unclog_node(world.proxies.list[i as usize].host),
        }
    }

    /// Injects one fault drawn from the seed's mix.
    async fn inject(&mut self, world: &mut World) {
        let total: u32 = world.config.faults.iter().map(|(_, w)| w).sum();
        let mut pick = thread_rng().gen_range(0..total);
        let fault = world
            .config
            .faults
            .iter()
            .find(|(_, w)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .map(|(f, _)| *f);
        let Some(fault) = fault else { return };
        let d = self.duration(&world.config);
        let trace = world.cluster.trace.clone();
        match fault {
            Fault::Kill => self.kill_minority(world, d),
            Fault::PowerLoss => self.power_loss(world, d),
            Fault::PartitionNode => {
                if let Some(id) = world.random_member() {
                    NetSim::current().clog_node(world.cluster.nodes[&id].host);
                    trace.event(format!("partition node {id} for {d:?}"));
                    self.schedule(d, Action::UnclogNode(id));
                }
            }
            Fault::PartitionLink | Fault::PartitionOneWay => self.cut_link(world, fault == Fault::PartitionLink, d),
            Fault::Swizzle => self.swizzle(world, d),
            Fault::LatencySpike => {
                let high = Duration::from_millis(thread_rng().gen_range(50..400));
                NetSim::current().update_config(|c| c.send_latency = high / 4..high);
                trace.event(format!("latency spike up to {high:?} for {d:?}"));
                self.schedule(d, Action::ResetLatency);
            }
            Fault::Pause => {
                if let Some(id) = world.random_member().filter(|id| !world.paused.contains(id)) {
                    Handle::current().pause(world.cluster.nodes[&id].host);
                    world.paused.push(id);
                    trace.event(format!("pause node {id} for {d:?}"));
                    self.schedule(d, Action::ResumeNode(id));
                }
            }
            Fault::TransferLeader => transfer_leader(world).await,
            Fault::Membership => change_membership(world).await,
            Fault::ProxyCrash => {
                let i = thread_rng().gen_range(0..world.config.proxies);
                // A proxy inside a node is that node's process: it crashes with it.
                if let Some(id) = world.proxies.list[i as usize].node {
                    if world.cluster.nodes[&id].alive && !world.left.contains(&id) {
                        trace.event(format!("proxy {i} crashes with node {id}"));
                        world.kill_node(id);
                        self.schedule(d, Action::RestartNode(id));
                    }
                } else if world.proxies.list[i as usize].alive {
                    world.proxies.crash(i);
                    self.schedule(d, Action::RestartProxy(i));
                }
            }
            Fault::ProxyPartition => {
                let i = thread_rng().gen_range(0..world.config.proxies);
                NetSim::current().clog_node(world.proxies.list[i as usize].host);
                trace.event(format!("partition proxy {i} for {d:?}"));
                // Its sessions may lose their lease from now until a renewal after healing.
                let until = now() + d + world.config.lease + Duration::from_secs(20);
                world.proxy_risks.push(ProxyRisk { proxy: i, from: now(), until });
                match world.proxies.list[i as usize].node {
                    Some(id) => self.schedule(d, Action::UnclogNode(id)),
                    None => self.schedule(d, Action::UnclogProxy(i)),
                }
            }
        }
    }

    /// Kills one member if a majority of members stays up.
    fn kill_minority(&mut self, world: &mut World, d: Duration) {
        let members = world.members();
        let up: Vec<u64> = members.iter().copied().filter(|id| world.cluster.nodes[id].alive).collect();
        if up.len() <= members.len() / 2 + 1 {
            return;
        }
        let id = up[thread_rng().gen_range(0..up.len())];
        world.kill_node(id);
        self.schedule(d, Action::RestartNode(id));
    }

    /// Kills a majority (sometimes every member) at once, then brings them back.
    fn power_loss(&mut self, world: &mut World, d: Duration) {
        let mut up: Vec<u64> = world.members().into_iter().filter(|id| world.cluster.nodes[id].alive).collect();
        let count = if thread_rng().gen_bool(0.5) {
            up.len()
        } else {
            (world.members().len() / 2 + 1).min(up.len())
        };
        world.cluster.trace.event(format!("power loss: {count} nodes"));
        for _ in 0..count {
            let id = up.remove(thread_rng().gen_range(0..up.len()));
            world.kill_node(id);
            self.schedule(d, Action::RestartNode(id));
        }
    }

    fn cut_link(&mut self, world: &mut World, both_ways: bool, d: Duration) {
        let members = world.members();
        if members.len() < 2 {
            return;
        }
        let a = members[thread_rng().gen_range(0..members.len())];
        let others: Vec<u64> = members.iter().copied().filter(|m| *m != a).collect();
        let b = others[thread_rng().gen_range(0..others.len())];
        let net = NetSim::current();
        let host = |id: u64| world.cluster.nodes[&id].host;
        net.clog_link(host(a), host(b));
        self.schedule(d, Action::UnclogLink(a, b));
        if both_ways {
            net.clog_link(host(b), host(a));
            self.schedule(d, Action::UnclogLink(b, a));
        }
        world.cluster.trace.event(format!("cut link {a}{}{b} for {d:?}", if both_ways { "<->" } else { "->" }));
    }

    /// Clogs members one after another, then unclogs them in a shuffled order.
    fn swizzle(&mut self, world: &mut World, d: Duration) {
        let mut members = world.members();
        let step = d / (members.len() as u32 * 2).max(1);
        let mut rng = thread_rng();
        for i in (1..members.len()).rev() {
            members.swap(i, rng.gen_range(0..=i));
        }
        let clogged: Vec<u64> = members.iter().copied().take(members.len() / 2 + 1).collect();
        for (i, id) in clogged.iter().enumerate() {
            self.schedule(step * i as u32, Action::ClogNode(*id));
        }
        let mut order = clogged.clone();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.gen_range(0..=i));
        }
        for (i, id) in order.iter().enumerate() {
            self.schedule(step * (clogged.len() + i) as u32 + step, Action::UnclogNode(*id));
        }
        world.cluster.trace.event(format!("swizzle {clogged:?} then unclog {order:?}"));
    }
}

async fn transfer_leader(world: &mut World) {
    let Some(leader) = world.cluster.leader() else { return };
    let targets: Vec<u64> = world.members().into_iter().filter(|id| *id != leader).collect();
    if targets.is_empty() {
        return;
    }
    let to = targets[thread_rng().gen_range(0..targets.len())];
    world.cluster.trace.event(format!("transfer leadership {leader} -> {to}"));
    if let Some(h) = world.cluster.handle(leader) {
        let _ = tokio::time::timeout(Duration::from_secs(1), h.transfer_leader(to)).await;
    }
}

/// Joins a spare node, or has a non-leader member leave if enough voters remain.
async fn change_membership(world: &mut World) {
    let Some(leader) = world.cluster.leader() else { return };
    let Some(h) = world.cluster.handle(leader) else { return };
    let members = world.members();
    let join = members.len() <= world.config.nodes as usize && !world.spares.is_empty();
    if join {
        let id = world.spares.remove(0);
        let setup = NodeSetup { snapshot_entries: world.config.snapshot_entries, ..NodeSetup::default() };
        world.cluster.add_node(id, setup);
        let change = MemberChange::Join { id, addr: node_addr(id).to_string() };
        let outcome = tokio::time::timeout(Duration::from_secs(5), h.change_member(change)).await;
        world.cluster.trace.event(format!("join node {id}: {:?}", outcome.map(|r| r.is_ok())));
    } else if members.len() > 3 {
        // A node with a proxy inside stays: its clients would have nowhere to go back to.
        let leaving: Vec<u64> = members.into_iter().filter(|id| *id != leader && world.proxies.in_node(*id).is_none()).collect();
        if leaving.is_empty() {
            return;
        }
        let id = leaving[thread_rng().gen_range(0..leaving.len())];
        let outcome = tokio::time::timeout(Duration::from_secs(5), h.change_member(MemberChange::Leave { id })).await;
        let done = matches!(outcome, Ok(Ok(())));
        world.cluster.trace.event(format!("leave node {id}: {done}"));
        if done {
            world.left.push(id);
            if world.cluster.nodes[&id].alive {
                world.kill_node(id);
            }
        }
    }
}
