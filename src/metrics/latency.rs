//! A latency histogram that records with two relaxed atomic adds. The client's own histogram
//! takes a mutex on every observation; this one is recorded on every command, so it keeps
//! one atomic count per bucket instead, and hands them to the client's encoder when scraped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds of the buckets, in nanoseconds: from a command answered in memory (tens of
/// microseconds) to a reserve that waited or a large snapshot (seconds). Longer ones count in
/// the `+Inf` bucket only.
const BOUNDS_NS: [u64; 17] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

const _: () = assert!(BOUNDS_NS[0] > 0);

/// A histogram of durations, in seconds. Clones share their counts.
#[derive(Clone, Debug, Default)]
pub struct Latency {
    inner: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Observations per bucket (not cumulative); the last is past every bound.
    buckets: [AtomicU64; BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

impl Latency {
    pub fn observe(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NS.partition_point(|&bound| bound < ns);
        self.inner.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.inner.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Records the time since `start` on tokio's clock (the simulator's, under madsim).
    pub fn since(&self, start: tokio::time::Instant) {
        self.observe(start.elapsed());
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.inner.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        let counts: Vec<u64> = self.inner.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        // The count is the buckets' sum, so a scrape racing an observation stays consistent.
        let count = counts.iter().sum();
        let buckets: Vec<(f64, u64)> = BOUNDS_NS.iter().map(|&ns| ns as f64 / 1e9).zip(counts).collect();
        let sum_secs = self.inner.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum_secs, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    /// Observations land in the first bucket whose bound is at least their value, and the
    /// encoded histogram is cumulative with a `+Inf` bucket equal to the count.
    #[test]
    fn buckets_are_inclusive_and_cumulative() {
        let latency = Latency::default();
        latency.observe(Duration::from_micros(50));
        latency.observe(Duration::from_micros(51));
        latency.observe(Duration::from_secs(60));
        let mut registry = Registry::default();
        registry.register("t_seconds", "test", latency.clone());
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).expect("encodes");
        assert!(text.contains("t_seconds_bucket{le=\"5e-05\"} 1\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"0.0001\"} 2\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"10\"} 2\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("t_seconds_count 3\n"), "{text}");
        assert_eq!(latency.count(), 3);
    }
}
