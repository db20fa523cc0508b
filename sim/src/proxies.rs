//! Simulated proxies: each one a `coolbeans beanstalkd` on its own host, before every node
//! (the spare nodes that may join included), or, in some seeds, one inside each of the first
//! nodes, as `cluster-node --beanstalkd-listen` runs it (in-process while its node leads). A
//! crashed proxy comes back as a new incarnation with a new proxy id, as a restarted
//! process would; one inside a node crashes and comes back with it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coolbeans::client::RemoteUpstream;
use coolbeans::node::NodeHandle;
use coolbeans::proxy::server::Listen;
use coolbeans::proxy::{serve, CoLocatedUpstream, Identity, Limits, ListenAddr, Listener, Proxy, ProxyMetrics, Upstream};
use madsim::runtime::Handle;
use madsim::task::NodeId;
use tokio::sync::watch;

use crate::cluster::node_addr;
use crate::trace::Trace;

/// The port proxies listen on.
pub const PROXY_PORT: u16 = 11300;

pub fn proxy_ip(index: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 2, index as u8 + 1))
}

pub fn proxy_addr(index: u32) -> SocketAddr {
    SocketAddr::new(proxy_ip(index), PROXY_PORT)
}

/// One proxy's host and how many times it has started.
pub struct SimProxy {
    pub host: NodeId,
    /// Where its clients connect.
    pub addr: SocketAddr,
    /// The node it runs inside, if it does.
    pub node: Option<u64>,
    pub alive: bool,
    /// Bumped at every crash: clients watching it drop their connection, as a TCP reset would
    /// tell them.
    pub generation: watch::Sender<u64>,
}

/// All proxies of a world.
pub struct Proxies {
    pub list: Vec<SimProxy>,
    trace: Trace,
}

impl Proxies {
    /// Starts `count` proxies before nodes `1..=node_ids_max`.
    pub fn start(count: u32, node_ids_max: u64, lease: Duration, trace: Trace) -> Proxies {
        let upstreams: Vec<String> = (1..=node_ids_max).map(|id| node_addr(id).to_string()).collect();
        let list = (0..count).map(|i| spawn(i, upstreams.clone(), lease)).collect();
        trace.event(format!("{count} proxies started"));
        Proxies { list, trace }
    }

    /// The proxies that run inside nodes 1 to `count` (started with their nodes).
    pub fn in_nodes(count: u32, hosts: &[NodeId], trace: Trace) -> Proxies {
        let list = (0..count)
            .map(|i| {
                let node = u64::from(i) + 1;
                let addr = SocketAddr::new(crate::cluster::node_ip(node), PROXY_PORT);
                SimProxy { host: hosts[i as usize], addr, node: Some(node), alive: true, generation: watch::channel(0).0 }
            })
            .collect();
        trace.event(format!("{count} proxies run inside nodes"));
        Proxies { list, trace }
    }

    /// Where proxy `index` listens.
    pub fn addr(&self, index: u32) -> SocketAddr {
        self.list[index as usize].addr
    }

    /// The proxy inside node `id`, if one runs there.
    pub fn in_node(&self, id: u64) -> Option<u32> {
        self.list.iter().position(|f| f.node == Some(id)).map(|i| i as u32)
    }

    /// The proxy inside node `id` went down with it: its clients' connections break.
    pub fn node_killed(&mut self, id: u64) {
        if let Some(i) = self.in_node(id) {
            self.list[i as usize].generation.send_modify(|g| *g += 1);
            self.trace.event(format!("proxy {i} went down with node {id}"));
        }
    }

    /// Kills proxy `index`: its connections break and its sessions live on until the
    /// cluster's lease on them runs out.
    pub fn crash(&mut self, index: u32) {
        let fe = &mut self.list[index as usize];
        Handle::current().kill(fe.host);
        fe.alive = false;
        fe.generation.send_modify(|g| *g += 1);
        self.trace.event(format!("proxy {index} crashed"));
    }

    /// Starts proxy `index` again, as a new process.
    pub fn restart(&mut self, index: u32) {
        let fe = &mut self.list[index as usize];
        Handle::current().restart(fe.host);
        fe.alive = true;
        self.trace.event(format!("proxy {index} restarted"));
    }

    pub fn generation(&self, index: u32) -> watch::Receiver<u64> {
        self.list[index as usize].generation.subscribe()
    }
}

/// A proxy's metrics, recorded but never read: the recording runs as in a real process.
fn recorded_metrics() -> Option<Arc<ProxyMetrics>> {
    Some(ProxyMetrics::register(&mut coolbeans::metrics::Registry::default()))
}

fn spawn(index: u32, upstreams: Vec<String>, lease: Duration) -> SimProxy {
    let incarnation = Arc::new(Mutex::new(0u64));
    let counter = incarnation.clone();
    let host = Handle::current()
        .create_node()
        .name(format!("proxy-{index}"))
        .ip(proxy_ip(index))
        .init(move || {
            let upstreams = upstreams.clone();
            let proxy_id = {
                let mut n = counter.lock().expect("incarnation lock");
                *n += 1;
                format!("fe{index}.{n}")
            };
            async move {
                let metrics = recorded_metrics();
                let upstream = RemoteUpstream::with_metrics(upstreams, proxy_id.clone(), metrics.as_ref().map(|m| m.client()))
                    .expect("node addresses are valid");
                let identity = Identity { version: "sim".into(), id: proxy_id, hostname: format!("proxy-{index}"), binlog_max_size: 0 };
                let proxy = Proxy::start(upstream, Limits::default(), identity, metrics);
                proxy.keep_lease(lease);
                let listen = Listen { addr: ListenAddr::Tcp(proxy_addr(index).to_string()), tls: None };
                let listener = Listener::bind(listen).await.expect("proxy binds its port");
                serve(listener, proxy).await;
            }
        })
        .build();
    let (generation, _) = watch::channel(0);
    SimProxy { host: host.id(), addr: proxy_addr(index), node: None, alive: true, generation }
}

/// Runs a proxy inside node `id`, before the cluster of nodes `1..=node_ids_max` (its own
/// first), until the node's host is killed. Each start is a new incarnation with its own
/// proxy id, as a restarted process would be.
pub async fn serve_in_node(id: u64, node: NodeHandle, node_ids_max: u64, lease: Duration) {
    let mut upstreams = vec![node_addr(id).to_string()];
    upstreams.extend((1..=node_ids_max).filter(|n| *n != id).map(|n| node_addr(n).to_string()));
    let proxy_id = format!("n{id}.{}", coolbeans::clock::now_ms());
    let metrics = recorded_metrics();
    let remote = RemoteUpstream::with_metrics(upstreams, proxy_id.clone(), metrics.as_ref().map(|m| m.client())).expect("node addresses are valid");
    let upstream: std::sync::Arc<dyn Upstream> = CoLocatedUpstream::new(node, remote);
    let identity = Identity { version: "sim".into(), id: proxy_id, hostname: format!("node-{id}"), binlog_max_size: 0 };
    let proxy = Proxy::start(upstream, Limits::default(), identity, metrics);
    proxy.keep_lease(lease);
    let addr = ListenAddr::Tcp(SocketAddr::new(crate::cluster::node_ip(id), PROXY_PORT).to_string());
    let listener = Listener::bind(Listen { addr, tls: None }).await.expect("the proxy binds its port");
    serve(listener, proxy).await;
}
