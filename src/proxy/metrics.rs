//! The proxy's metrics: each command's latency by name, and the calls it forwards to the
//! cluster with their retries, recorded as they happen; its connections and waiting reserves,
//! read when scraped. The series keep the prefix they were published with, `coolbeans_front_`:
//! dashboards and alerts name them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::shared::Proxy;
use crate::client::ClientMetrics;
use crate::metrics::{as_gauge, counter, family, gauge, Counter, Latencies, Registry, Timing, Watched};
use crate::protocol::{CommandKind, Response};

/// The metrics of one proxy.
#[derive(Debug)]
pub struct ProxyMetrics {
    /// Each command's time from decoded to answered, by `CommandKind::index` (a reserve's
    /// includes its wait).
    commands: Latencies<{ CommandKind::COUNT }>,
    bad_commands: Counter,
    internal_errors: Counter,
    /// The calls it forwards to the cluster, their retries and its write streams.
    client: Arc<ClientMetrics>,
    /// The proxy whose connections are read when scraped (set when it starts).
    proxy: Watched<Proxy>,
}

impl ProxyMetrics {
    /// Registers a proxy's metrics.
    pub fn register(registry: &mut Registry) -> Arc<ProxyMetrics> {
        let commands = Latencies::register(
            registry,
            "coolbeans_front_command_seconds",
            "Time from a beanstalkd command decoded to its answer (a reserve's wait included), by command",
            "command",
            CommandKind::NAMES,
        );
        let [write, read] = family(
            registry,
            "coolbeans_front_forwarded",
            "Calls forwarded to the cluster over gRPC, by kind (each once, however often retried)",
            "call",
            ["write", "read"],
        );
        let metrics = Arc::new(ProxyMetrics {
            commands,
            bad_commands: Counter::default(),
            internal_errors: Counter::default(),
            client: Arc::new(ClientMetrics { forwarded: [write, read], retries: Counter::default(), streams_opened: Counter::default() }),
            proxy: Watched::default(),
        });
        let counters = [
            ("coolbeans_front_bad_commands", "Command lines refused as malformed, unknown or too large", &metrics.bad_commands),
            ("coolbeans_front_internal_errors", "Commands answered INTERNAL_ERROR (the cluster was unavailable)", &metrics.internal_errors),
            ("coolbeans_front_forward_retries", "Forwarded calls tried again (another node, or after a leader change)", &metrics.client.retries),
            ("coolbeans_front_forward_streams_opened", "Write streams opened to nodes (again after each break)", &metrics.client.streams_opened),
        ];
        for (name, help, metric) in counters {
            registry.register(name, help, metric.clone());
        }
        registry.register_collector(Box::new(metrics.clone()));
        metrics
    }

    /// Reads `proxy`'s connections when scraped.
    pub(crate) fn watch(&self, proxy: &Arc<Proxy>) {
        self.proxy.set(proxy);
    }

    pub(crate) fn time(&self, command: CommandKind) -> Timing {
        self.commands.start(command.index())
    }

    /// The command timed was answered `response` (`None`: the client left meanwhile).
    pub(crate) fn answered(&self, timing: Timing, response: &Response) {
        self.commands.finish(timing);
        if matches!(response, Response::InternalError) {
            self.internal_errors.inc();
        }
    }

    pub(crate) fn bad_command(&self) {
        self.bad_commands.inc();
    }

    /// The counts of the calls forwarded to the cluster, for its `RemoteUpstream`.
    pub fn client(&self) -> Arc<ClientMetrics> {
        self.client.clone()
    }
}

impl Collector for ProxyMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let Some(proxy) = self.proxy.get() else { return Ok(()) };
        let c = &proxy.counters;
        let current = c.current_connections.load(Ordering::Relaxed);
        gauge(&mut encoder, "coolbeans_front_connections", "Client connections open", as_gauge(current))?;
        let total = c.total_connections.load(Ordering::Relaxed);
        counter(&mut encoder, "coolbeans_front_connections_accepted", "Client connections accepted", total)?;
        let waiting = as_gauge(proxy.waiters.waiting_count());
        gauge(&mut encoder, "coolbeans_front_waiting_reserves", "Reserves waiting for a job", waiting)?;
        let draining = i64::from(proxy.draining.load(Ordering::Relaxed));
        gauge(&mut encoder, "coolbeans_front_draining", "1 while puts are refused with DRAINING", draining)
    }
}
