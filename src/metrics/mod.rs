//! Prometheus metrics, through the official client (`prometheus-client`): its registry and its
//! text encoder. What changes per command is recorded into handles made once at start (atomic
//! counters, `Latency`), so recording is a few relaxed atomic adds and no lookup; what already
//! exists elsewhere (Raft status, jobs per tube, connections) is read only when scraped. Nothing
//! recorded is ever read back by the process: metrics cannot change what it does.

pub mod http;
mod latency;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};

pub use latency::Latency;
pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::registry::Registry;

/// A family of series under one label whose values are all known at start: one handle per
/// value, made now, so that each series shows from the first scrape (at zero) and recording
/// needs no lookup. Unlike the client's `Family` (a map behind a lock, for labels found as
/// they come) it encodes its series in the order given, and creates no hasher, whose random
/// keys would shift those of every map made after it (and so a simulated run).
#[derive(Clone, Debug)]
struct Labeled<M, const N: usize> {
    key: &'static str,
    values: [&'static str; N],
    handles: [M; N],
}

impl<M: EncodeMetric + TypedMetric, const N: usize> TypedMetric for Labeled<M, N> {
    const TYPE: MetricType = M::TYPE;
}

impl<M: EncodeMetric + TypedMetric, const N: usize> EncodeMetric for Labeled<M, N> {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        for (value, handle) in self.values.iter().zip(&self.handles) {
            handle.encode(encoder.encode_family(&[(self.key, *value)])?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

/// Registers a family of one series per label value; answers their handles, in that order.
pub fn family<M, const N: usize>(registry: &mut Registry, name: &str, help: &str, key: &'static str, values: [&'static str; N]) -> [M; N]
where
    M: EncodeMetric + TypedMetric + Clone + Default + std::fmt::Debug + Send + Sync + 'static,
{
    let handles: [M; N] = std::array::from_fn(|_| M::default());
    registry.register(name, help, Labeled { key, values, handles: handles.clone() });
    handles
}

/// Writes one gauge read at scrape time.
pub fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> std::fmt::Result {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// Writes one counter read at scrape time (`_total` is added to `name`).
pub fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    ConstCounter::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

/// Writes a gauge with one series per label set, read at scrape time.
pub fn gauges<S: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (S, i64)>,
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A gauge value from a count or index (which never come near `i64::MAX`).
pub fn as_gauge(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// One latency histogram per kind of event (a label value each), all made at start.
#[derive(Clone, Debug)]
pub struct Latencies<const N: usize> {
    by_kind: [Latency; N],
}

/// An event being timed: its kind's index and when it started.
pub struct Timing {
    index: usize,
    started: tokio::time::Instant,
}

impl<const N: usize> Latencies<N> {
    pub fn register(registry: &mut Registry, name: &str, help: &str, key: &'static str, kinds: [&'static str; N]) -> Self {
        Latencies { by_kind: family(registry, name, help, key, kinds) }
    }

    /// Starts timing an event of the kind at `index` in the names registered.
    pub fn start(&self, index: usize) -> Timing {
        debug_assert!(index < N);
        Timing { index, started: tokio::time::Instant::now() }
    }

    pub fn finish(&self, timing: Timing) {
        self.by_kind[timing.index].since(timing.started);
    }

    pub fn observe(&self, index: usize, started: tokio::time::Instant) {
        self.by_kind[index].since(started);
    }
}

/// What a collector reads when scraped: set once its owner starts, and held weakly so that
/// the metrics never keep it alive.
pub struct Watched<T>(std::sync::OnceLock<std::sync::Weak<T>>);

impl<T> Default for Watched<T> {
    fn default() -> Self {
        Watched(std::sync::OnceLock::new())
    }
}

impl<T> std::fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.get().is_some() { "Watched(live)" } else { "Watched(none)" })
    }
}

impl<T> Watched<T> {
    pub fn set(&self, owner: &std::sync::Arc<T>) {
        let _ = self.0.set(std::sync::Arc::downgrade(owner));
    }

    pub fn get(&self) -> Option<std::sync::Arc<T>> {
        self.0.get().and_then(std::sync::Weak::upgrade)
    }
}
