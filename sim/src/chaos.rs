//! One seed's run: nodes, proxies and beanstalkd clients under the seed's fault mix (the
//! safety phase), then healing and a liveness phase, then every checker.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coolbeans::client::retry::WRITE_IN_FLIGHT_MAX;
use coolbeans::storage::format::JobStateProto;
use madsim::runtime::Handle;
use tokio::sync::watch;

use crate::client::Connection;
use crate::cluster::{Cluster, NodeSetup};
use crate::config::SeedConfig;
use crate::history::{Answer, Call, ClientId, FinalJob, FinalState, History, HoldRisk, JobId, Record};
use crate::nemesis::Nemesis;
use crate::proxies::Proxies;
use crate::raft_watch::{one_leader_per_term, snapshot_restores, RaftWatch};
use crate::trace::Trace;
use crate::workload::{body_of, now, run_client, ClientSetup, Shared};
use crate::world::World;

/// Spare nodes a seed may join.
const SPARE_NODES: u64 = 2;
/// After healing, clients keep working this long before they are asked to stop.
const AFTER_HEALING: Duration = Duration::from_secs(5);
/// Liveness: once asked to stop, every client's call (waiting reserves included) is answered
/// and every client has quit within this.
const CLIENTS_DONE_LIMIT: Duration = Duration::from_secs(40);
/// Liveness: every member applies everything within this after the clients are done.
const CONVERGE_LIMIT: Duration = Duration::from_secs(30);
/// Liveness: every job left can be drained within this.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// Beyond a forwarded write's longest flight, before the final state is read.
const WRITE_SETTLE_MARGIN: Duration = Duration::from_secs(5);

/// What a passing run reports.
#[derive(Debug, Default)]
pub struct RunStats {
    pub calls: u64,
    pub unknown: u64,
    pub entries: u64,
    pub sim_time: Duration,
    /// Snapshots followers received in chunks, and how many of them resumed a cut-off call.
    pub snapshots: u64,
    pub snapshots_resumed: u64,
}

fn host_ip(net: u8, index: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, net, index as u8 + 1))
}

/// Runs one seed; an error names the first check that failed.
pub async fn run(config: SeedConfig, trace: Trace) -> Result<RunStats, String> {
    let raft = RaftWatch::install();
    coolbeans::chaos::buggify::enable(config.buggify);
    let node_ids_max = config.nodes + SPARE_NODES;
    let setup = NodeSetup {
        snapshot_entries: config.snapshot_entries,
        proxy_nodes: if config.proxies_in_nodes { u64::from(config.proxies) } else { 0 },
        proxy_lease: config.lease,
        node_ids_max,
        snapshot_chunk_bytes: config.snapshot_chunk_bytes,
        ..NodeSetup::default()
    };
    let cluster = Cluster::start(config.nodes, setup, trace.clone());
    cluster.await_leader(Duration::from_secs(20), None).await.ok_or("no leader elected in 20 s")?;
    let proxies = if config.proxies_in_nodes {
        let hosts: Vec<_> = cluster.nodes.values().map(|n| n.host).collect();
        Proxies::in_nodes(config.proxies, &hosts, trace.clone())
    } else {
        Proxies::start(config.proxies, node_ids_max, config.lease, trace.clone())
    };

    let (stop_tx, stop) = watch::channel(false);
    let history: Arc<Mutex<History>> = Arc::default();
    let shared = Shared {
        history: history.clone(),
        known: Arc::default(),
        blocked: Arc::default(),
        stop,
        generations: (0..config.proxies).map(|i| proxies.generation(i)).collect(),
        addrs: (0..config.proxies).map(|i| proxies.addr(i)).collect(),
        attachments: Arc::default(),
    };
    let running: Arc<Mutex<BTreeSet<ClientId>>> = Arc::new(Mutex::new((0..config.clients).collect()));
    for id in 0..config.clients {
        let host = Handle::current().create_node().name(format!("client-{id}")).ip(host_ip(3, id)).build();
        let tube = format!("tube{}", id % config.tubes);
        let setup = ClientSetup { id, tube, proxies: config.proxies, think_time_mean: config.think_time_mean };
        let (shared, running) = (shared.clone(), running.clone());
        host.spawn(async move {
            run_client(setup, shared).await;
            running.lock().expect("running lock").remove(&id);
        });
    }

    let mut world = World {
        config: config.clone(),
        cluster,
        proxies,
        left: Vec::new(),
        spares: (config.nodes + 1..=node_ids_max).collect(),
        paused: Vec::new(),
        proxy_risks: Vec::new(),
        leaders_by_term: BTreeMap::new(),
    };
    let mut nemesis = Nemesis::new();
    nemesis.run(&mut world, config.fault_phase).await;
    nemesis.heal(&mut world);
    Nemesis::new().run_quiet(&mut world, AFTER_HEALING).await;

    let _ = stop_tx.send(true);
    let feeder_id = config.clients;
    let checker = Handle::current().create_node().name("checker").ip(host_ip(4, 0)).build();
    let (feed_shared, feed_running) = (shared.clone(), running.clone());
    let fed = checker.spawn(async move { feed_until_done(feeder_id, feed_shared, feed_running).await }).await;
    if let Err(why) = fed.map_err(|e| format!("feeder task: {e}")).and_then(|r| r) {
        return Err(format!("{why}; the leader's waiting sessions: {}", waiting_sessions(&world.cluster)));
    }
    trace.event("every client answered and quit");
    // A proxy may still be retrying a write whose client stopped waiting for it (its
    // connection broke): the final state is read once none can land. The margin covers a
    // co-located proxy's first attempt on its own node, which ends with that node's leadership.
    madsim::time::sleep(WRITE_IN_FLIGHT_MAX + WRITE_SETTLE_MARGIN).await;

    let members = converge(&world).await?;
    let leader = world.cluster.leader().ok_or("no leader after healing")?;
    let final_jobs = final_jobs(&world.cluster, leader);
    let mut history = history.lock().expect("history lock").clone();
    history.final_jobs = final_jobs;
    history.risks.extend(proxy_risks(&world, &shared));
    record_trace(&trace, &history);

    crate::check::check_all(&history).map_err(|v| v.to_string())?;
    one_leader_per_term(&world.leaders_by_term)?;
    if let Some(v) = raft.violation() {
        return Err(v);
    }
    check_replicas(&world, &raft, &members)?;
    let expected = history.final_jobs.len();
    let addr = shared.addrs[0];
    checker.spawn(async move { drain(addr, expected).await }).await.map_err(|e| format!("drain task: {e}"))??;
    trace.event(format!("drained {expected} jobs"));

    let unknown = history.records.iter().filter(|r| r.answer.is_none()).count() as u64;
    let (snapshots, snapshots_resumed) = raft.snapshots_received();
    let entries = raft.entries_seen();
    Ok(RunStats { calls: history.records.len() as u64, unknown, entries, sim_time: now(), snapshots, snapshots_resumed })
}

/// Asks every client to stop and feeds a job to each client still waiting in a blocking
/// reserve, until all have quit; fails if that takes longer than the liveness bound.
async fn feed_until_done(id: ClientId, shared: Shared, running: Arc<Mutex<BTreeSet<ClientId>>>) -> Result<(), String> {
    let deadline = now() + CLIENTS_DONE_LIMIT;
    let mut conn: Option<Connection> = None;
    let mut puts = 0u64;
    loop {
        let left: BTreeSet<ClientId> = running.lock().expect("running lock").clone();
        if left.is_empty() {
            return Ok(());
        }
        if now() >= deadline {
            let blocked = shared.blocked.lock().expect("blocked lock").clone();
            return Err(format!("liveness: clients {left:?} still busy {CLIENTS_DONE_LIMIT:?} after the stop (in blocking reserve: {blocked:?})"));
        }
        let tubes: BTreeSet<String> = shared.blocked.lock().expect("blocked lock").values().cloned().collect();
        for tube in tubes {
            if conn.is_none() {
                conn = Connection::open(shared.addrs[0]).await.ok();
            }
            let Some(c) = conn.as_mut() else { break };
            if c.use_tube(&tube, Duration::from_secs(20)).await.is_err() {
                conn = None;
                continue;
            }
            puts += 1;
            let call = Call::Put { tube, pri: 0, delay_secs: 0, ttr_secs: 2, body: body_of(id, puts, 2) };
            let start = now();
            let answer = c.call(&call, Duration::from_secs(20)).await.ok();
            if answer.is_none() {
                conn = None;
            }
            shared.record(Record { client: id, call, start, end: now(), answer });
        }
        madsim::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The leader's sessions that wait, for a liveness failure's report.
fn waiting_sessions(cluster: &Cluster) -> String {
    let Some(handle) = cluster.leader().and_then(|l| cluster.handle(l)) else { return "no leader".into() };
    let snapshot = handle.read(|s| s.snapshot());
    let sessions = snapshot.fsm.map(|f| f.reservations).unwrap_or_default();
    let busy: Vec<String> =
        sessions.iter().filter(|c| c.is_waiting_for_resv).map(|c| format!("{}/{} request {}", c.proxy_id, c.client_id, c.req_id)).collect();
    busy.join(", ")
}

/// Waits until every member has applied the leader's commit index; answers the members.
async fn converge(world: &World) -> Result<Vec<u64>, String> {
    let deadline = now() + CONVERGE_LIMIT;
    loop {
        let leader = world.cluster.leader();
        let status = leader.and_then(|l| world.cluster.status(l));
        if let Some(s) = status {
            let members: Vec<u64> = s.voters.iter().chain(s.learners.iter()).copied().collect();
            let caught_up = members.iter().all(|id| world.cluster.status(*id).is_some_and(|m| m.applied_index >= s.commit_index));
            if caught_up {
                world.cluster.trace.event(format!("members {members:?} applied {}", s.commit_index));
                return Ok(members);
            }
        }
        if now() >= deadline {
            let seen: Vec<String> = world
                .cluster
                .nodes
                .keys()
                .map(|id| match world.cluster.status(*id) {
                    Some(s) => format!(
                        "{id}: term {} leader {} commit {} applied {} voters {:?}",
                        s.term, s.leader_id, s.commit_index, s.applied_index, s.voters
                    ),
                    None => format!("{id}: down"),
                })
                .collect();
            return Err(format!("liveness: members did not converge within {CONVERGE_LIMIT:?} of the clients quitting; {}", seen.join("; ")));
        }
        madsim::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Digests agree at the same applied index, each snapshot restores to its state, and the
/// replayed log gives the same state machine.
fn check_replicas(world: &World, raft: &RaftWatch, members: &[u64]) -> Result<(), String> {
    let mut by_index: BTreeMap<u64, BTreeMap<u64, u64>> = BTreeMap::new();
    for id in members {
        let handle = world.cluster.handle(*id).ok_or(format!("member {id} is not running"))?;
        let index = handle.status().applied_index;
        let (digest, fsm_digest) = handle.read(|s| (s.digest(), s.fsm.digest()));
        handle.read(|s| snapshot_restores(*id, s))?;
        by_index.entry(index).or_default().insert(*id, digest);
        let replayed = raft.replay_digest(index)?;
        if replayed != fsm_digest {
            return Err(format!("node {id}: replaying the log to {index} gives another state than the node holds"));
        }
    }
    for (index, digests) in by_index {
        if digests.values().collect::<BTreeSet<_>>().len() > 1 {
            return Err(format!("digests differ at applied index {index}: {digests:?}"));
        }
    }
    Ok(())
}

/// Every job the leader holds, with its state and body.
fn final_jobs(cluster: &Cluster, leader: u64) -> BTreeMap<JobId, FinalJob> {
    let Some(handle) = cluster.handle(leader) else { return BTreeMap::new() };
    let snapshot = handle.read(|s| s.snapshot());
    let jobs = snapshot.fsm.map(|f| f.jobs).unwrap_or_default();
    jobs.into_iter()
        .map(|j| {
            let state = match j.state() {
                JobStateProto::Ready => FinalState::Ready,
                JobStateProto::Delayed => FinalState::Delayed,
                JobStateProto::Reserved => FinalState::Reserved,
                _ => FinalState::Buried,
            };
            (j.id as u64, FinalJob { tube: j.tube_name, state, body: j.body.to_vec() })
        })
        .collect()
}

/// Turns each proxy's lease-risk window into risks for the clients attached to it then.
fn proxy_risks(world: &World, shared: &Shared) -> Vec<HoldRisk> {
    let attachments = shared.attachments.lock().expect("attachments lock");
    let mut out = Vec::new();
    for risk in &world.proxy_risks {
        for a in attachments.iter().filter(|a| a.proxy == risk.proxy) {
            let until = a.until.unwrap_or(Duration::MAX).min(risk.until);
            if a.from < until {
                out.push(HoldRisk { client: a.client, from: risk.from.max(a.from), until: Some(until) });
            }
        }
    }
    out
}

/// Adds every call and the final state to the trace, so a change in any answer changes it.
fn record_trace(trace: &Trace, history: &History) {
    for r in &history.records {
        trace.event(format!("c{} {:?}@{:?}..{:?} -> {:?}", r.client, r.call, r.start, r.end, r.answer));
    }
    for (id, job) in &history.final_jobs {
        trace.event(format!("final job {id}: {job:?}"));
    }
}

/// Connections the drain uses at once.
const DRAINERS: usize = 8;

/// Liveness: fresh clients empty every tube (kicking buried and delayed jobs, waiting out
/// pauses and TTRs) within the bound, and find exactly the jobs the cluster held.
async fn drain(addr: SocketAddr, expected: usize) -> Result<(), String> {
    let deadline = now() + DRAIN_LIMIT;
    let drained = Arc::new(Mutex::new(0usize));
    let workers: Vec<_> = (0..DRAINERS)
        .map(|i| {
            let drained = drained.clone();
            madsim::task::spawn(async move { drain_worker(addr, i, expected, drained, deadline).await })
        })
        .collect();
    for worker in workers {
        worker.await.map_err(|e| format!("drain worker: {e}"))??;
    }
    let drained = *drained.lock().expect("drained lock");
    if drained < expected {
        return Err(format!("liveness: drained {drained} of {expected} jobs within {DRAIN_LIMIT:?}"));
    }
    let mut conn = drain_connection(addr).await?;
    let reserve = Call::Reserve { tube: "tube0".into(), timeout_secs: Some(0) };
    match conn.call(&reserve, Duration::from_secs(20)).await {
        Ok(Answer::TimedOut) if drained == expected => Ok(()),
        other => Err(format!("drain: after {drained} of {expected} jobs a reserve answered {other:?}")),
    }
}

/// A connection that watches every tube the clients use.
async fn drain_connection(addr: SocketAddr) -> Result<Connection, String> {
    let failed = |e| format!("drain: {e:?}");
    let mut conn = Connection::open(addr).await.map_err(failed)?;
    for t in 0..3 {
        conn.watch(&format!("tube{t}"), Duration::from_secs(20)).await.map_err(failed)?;
    }
    Ok(conn)
}

/// One drainer: kicks (the first one only), then reserves and deletes until all are gone.
async fn drain_worker(addr: SocketAddr, index: usize, expected: usize, drained: Arc<Mutex<usize>>, deadline: Duration) -> Result<(), String> {
    let mut conn = drain_connection(addr).await?;
    let patience = Duration::from_secs(20);
    let reserve = Call::Reserve { tube: "tube0".into(), timeout_secs: Some(0) };
    while *drained.lock().expect("drained lock") < expected && now() < deadline {
        if index == 0 {
            for t in 0..3 {
                let tube = format!("tube{t}");
                conn.use_tube(&tube, patience).await.map_err(|e| format!("drain: {e:?}"))?;
                while let Ok(Answer::Kicked(n)) = conn.call(&Call::Kick { tube: tube.clone(), bound: 1000 }, patience).await {
                    if n == 0 {
                        break;
                    }
                }
            }
        }
        while let Ok(Answer::Reserved { id, .. }) = conn.call(&reserve, patience).await {
            match conn.call(&Call::Delete(id), patience).await {
                Ok(Answer::Deleted) => *drained.lock().expect("drained lock") += 1,
                other => return Err(format!("drain: delete {id} answered {other:?}")),
            }
        }
        madsim::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}
