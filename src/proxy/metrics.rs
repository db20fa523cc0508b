//! The front end's metrics: each command's latency by name, and the calls it forwards to the
//! cluster with their retries, recorded as they happen; its connections and waiting reserves,
//! read when scraped.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::front_end::FrontEnd;
use crate::metrics::{as_gauge, counter, family, gauge, Counter, Latencies, Registry, Timing, Watched};
use crate::protocol::{Command, Response};

/// The `command` label of each command, indexed by `command_index`.
const COMMAND_NAMES: [&str; 24] = [
    "put",
    "use",
    "reserve",
    "reserve-with-timeout",
    "reserve-job",
    "delete",
    "release",
    "bury",
    "touch",
    "watch",
    "ignore",
    "peek",
    "peek-ready",
    "peek-delayed",
    "peek-buried",
    "kick",
    "kick-job",
    "stats-job",
    "stats-tube",
    "stats",
    "list-tubes",
    "list-tube-used",
    "list-tubes-watched",
    "pause-tube",
];

/// A command's place in `COMMAND_NAMES`; `quit` is never timed and shares `put`'s place
/// only to keep this total.
fn command_index(command: &Command) -> usize {
    match command {
        Command::Put { .. } | Command::Quit => 0,
        Command::Use { .. } => 1,
        Command::Reserve => 2,
        Command::ReserveWithTimeout { .. } => 3,
        Command::ReserveJob { .. } => 4,
        Command::Delete { .. } => 5,
        Command::Release { .. } => 6,
        Command::Bury { .. } => 7,
        Command::Touch { .. } => 8,
        Command::Watch { .. } => 9,
        Command::Ignore { .. } => 10,
        Command::Peek { .. } => 11,
        Command::PeekReady => 12,
        Command::PeekDelayed => 13,
        Command::PeekBuried => 14,
        Command::Kick { .. } => 15,
        Command::KickJob { .. } => 16,
        Command::StatsJob { .. } => 17,
        Command::StatsTube { .. } => 18,
        Command::Stats => 19,
        Command::ListTubes => 20,
        Command::ListTubeUsed => 21,
        Command::ListTubesWatched => 22,
        Command::PauseTube { .. } => 23,
    }
}

/// What a front end forwards to the cluster over gRPC.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Call {
    Write = 0,
    Read = 1,
}

/// The metrics of one front end.
#[derive(Debug)]
pub struct ProxyMetrics {
    /// Each command's time from decoded to answered, by `command_index` (a reserve's includes
    /// its wait).
    commands: Latencies<{ COMMAND_NAMES.len() }>,
    bad_commands: Counter,
    internal_errors: Counter,
    /// Writes and reads forwarded to the cluster, by `Call`.
    forwarded: [Counter; 2],
    forward_retries: Counter,
    forward_streams_opened: Counter,
    /// The front end whose connections are read when scraped (set when it starts).
    front: Watched<FrontEnd>,
}

impl ProxyMetrics {
    /// Registers a front end's metrics.
    pub fn register(registry: &mut Registry) -> Arc<ProxyMetrics> {
        let commands = Latencies::register(
            registry,
            "coolbeans_front_command_seconds",
            "Time from a beanstalkd command decoded to its answer (a reserve's wait included), by command",
            "command",
            COMMAND_NAMES,
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
            forwarded: [write, read],
            forward_retries: Counter::default(),
            forward_streams_opened: Counter::default(),
            front: Watched::default(),
        });
        let counters = [
            ("coolbeans_front_bad_commands", "Command lines refused as malformed, unknown or too large", &metrics.bad_commands),
            ("coolbeans_front_internal_errors", "Commands answered INTERNAL_ERROR (the cluster was unavailable)", &metrics.internal_errors),
            ("coolbeans_front_forward_retries", "Forwarded calls tried again (another node, or after a leader change)", &metrics.forward_retries),
            ("coolbeans_front_forward_streams_opened", "Write streams opened to nodes (again after each break)", &metrics.forward_streams_opened),
        ];
        for (name, help, metric) in counters {
            registry.register(name, help, metric.clone());
        }
        registry.register_collector(Box::new(metrics.clone()));
        metrics
    }

    /// Reads `front`'s connections when scraped.
    pub(crate) fn watch(&self, front: &Arc<FrontEnd>) {
        self.front.set(front);
    }

    pub(crate) fn time(&self, command: &Command) -> Timing {
        self.commands.start(command_index(command))
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

    pub(crate) fn forwarded(&self, call: Call) {
        self.forwarded[call as usize].inc();
    }

    pub(crate) fn retried(&self) {
        self.forward_retries.inc();
    }

    /// The counter of write streams opened, for each node's forwarder.
    pub(crate) fn streams_opened(&self) -> Counter {
        self.forward_streams_opened.clone()
    }
}

impl Collector for ProxyMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let Some(front) = self.front.get() else { return Ok(()) };
        let c = &front.counters;
        let current = c.current_connections.load(Ordering::Relaxed);
        gauge(&mut encoder, "coolbeans_front_connections", "Client connections open", as_gauge(current))?;
        let total = c.total_connections.load(Ordering::Relaxed);
        counter(&mut encoder, "coolbeans_front_connections_accepted", "Client connections accepted", total)?;
        let waiting = as_gauge(front.waiters.waiting_count());
        gauge(&mut encoder, "coolbeans_front_waiting_reserves", "Reserves waiting for a job", waiting)?;
        let draining = i64::from(front.draining.load(Ordering::Relaxed));
        gauge(&mut encoder, "coolbeans_front_draining", "1 while puts are refused with DRAINING", draining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Decoded, Decoder};

    /// Each command, decoded from its own line, is timed under its own name.
    #[test]
    fn every_command_has_its_name() {
        let lines = [
            "put 0 0 1 1\r\nx\r\n",
            "use t\r\n",
            "reserve\r\n",
            "reserve-with-timeout 1\r\n",
            "reserve-job 1\r\n",
            "delete 1\r\n",
            "release 1 0 0\r\n",
            "bury 1 0\r\n",
            "touch 1\r\n",
            "watch t\r\n",
            "ignore t\r\n",
            "peek 1\r\n",
            "peek-ready\r\n",
            "peek-delayed\r\n",
            "peek-buried\r\n",
            "kick 1\r\n",
            "kick-job 1\r\n",
            "stats-job 1\r\n",
            "stats-tube t\r\n",
            "stats\r\n",
            "list-tubes\r\n",
            "list-tube-used\r\n",
            "list-tubes-watched\r\n",
            "pause-tube t 1\r\n",
        ];
        assert_eq!(lines.len(), COMMAND_NAMES.len());
        for line in lines {
            let mut input = bytes::BytesMut::from(line);
            let Some(Decoded::Command(command)) = Decoder::new(1024).decode(&mut input) else { panic!("{line:?} decodes") };
            let name = COMMAND_NAMES[command_index(&command)];
            assert!(line.starts_with(&format!("{name} ")) || line.starts_with(&format!("{name}\r")), "{line:?} is timed as {name}");
        }
    }
}
