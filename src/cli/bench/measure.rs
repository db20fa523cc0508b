//! What a phase measures: latencies and their percentiles, and the unexpected answers.

use std::fmt;
use std::time::{Duration, Instant};

use super::answer::Answer;

/// Every latency one phase saw, in nanoseconds. Each connection keeps its own and the phase
/// merges them at the end, so the hot loop only pushes onto a vector.
#[derive(Debug, Default)]
pub struct Latencies {
    nanos: Vec<u64>,
}

impl Latencies {
    pub fn with_capacity(count: usize) -> Self {
        Latencies { nanos: Vec::with_capacity(count) }
    }

    pub fn record(&mut self, latency: Duration) {
        self.nanos.push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn count(&self) -> usize {
        self.nanos.len()
    }

    pub fn merge(&mut self, other: Latencies) {
        self.nanos.extend(other.nanos);
    }

    /// The percentiles, sorting the samples once.
    pub fn summary(mut self) -> Summary {
        self.nanos.sort_unstable();
        let at = |p| nearest_rank(&self.nanos, p);
        Summary { p50: at(0.50), p90: at(0.90), p99: at(0.99), max: self.nanos.last().copied().unwrap_or(0) }
    }
}

/// The sample at or below which a fraction `p` of the sorted samples lie (nearest rank);
/// 0 when there are none.
fn nearest_rank(sorted: &[u64], p: f64) -> u64 {
    assert!((0.0..=1.0).contains(&p));
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Latency percentiles in nanoseconds; shown in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |nanos: u64| nanos as f64 / 1e6;
        write!(f, "p50={:.3}ms p90={:.3}ms p99={:.3}ms max={:.3}ms", ms(self.p50), ms(self.p90), ms(self.p99), ms(self.max))
    }
}

/// Answers that were not what the command asks for: how many, and the earliest one seen.
#[derive(Debug, Default)]
pub struct Errors {
    count: u64,
    first: Option<(Instant, String)>,
}

impl Errors {
    /// Counts `answer` as an unexpected answer to `command`.
    pub fn note(&mut self, command: &str, answer: &Answer<'_>) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some((Instant::now(), format!("{command}:{}", answer.describe())));
        }
    }

    pub fn merge(&mut self, other: Errors) {
        self.count += other.count;
        self.first = match (self.first.take(), other.first) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
    }
}

impl fmt::Display for Errors {
    /// `errors=N`, then the first one when there is one: `first_error=put:"OUT_OF_MEMORY"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "errors={}", self.count)?;
        match &self.first {
            Some((_, first)) => write!(f, " first_error={first}"),
            None => Ok(()),
        }
    }
}

/// Events per second over `elapsed`, rounded.
pub fn rate_per_sec(count: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0;
    }
    (count as f64 / secs).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nearest-rank percentiles of 1..=100 ms are the rank's own sample; none gives zeros.
    #[test]
    fn percentiles_by_nearest_rank() {
        let mut l = Latencies::default();
        for ms in (1..=100).rev() {
            l.record(Duration::from_millis(ms));
        }
        let s = l.summary();
        assert_eq!((s.p50, s.p90, s.p99, s.max), (50_000_000, 90_000_000, 99_000_000, 100_000_000));
        assert_eq!(s.to_string(), "p50=50.000ms p90=90.000ms p99=99.000ms max=100.000ms");
        assert_eq!(Latencies::default().summary(), Summary { p50: 0, p90: 0, p99: 0, max: 0 });
    }

    /// Merged error tallies add their counts and keep the earliest first error.
    #[test]
    fn errors_merge_keeps_the_earliest() {
        let mut early = Errors::default();
        early.note("put", &Answer::Other { line: b"OUT_OF_MEMORY" });
        let mut late = Errors::default();
        late.note("delete", &Answer::Other { line: b"NOT_FOUND" });
        late.note("delete", &Answer::Other { line: b"NOT_FOUND" });
        late.merge(early);
        assert_eq!(late.to_string(), "errors=3 first_error=put:\"OUT_OF_MEMORY\"");
        assert_eq!(Errors::default().to_string(), "errors=0");
    }
}
