//! The trace of a run: every event the harness observes, in order, with its simulated time.
//! Its hash is the run's fingerprint: the same seed must give the same hash.

use std::sync::{Arc, Mutex};

/// An ordered log of events, hashed as it grows (FNV-1a 64, fixed across processes).
#[derive(Clone, Default)]
pub struct Trace {
    inner: Arc<Mutex<TraceInner>>,
}

#[derive(Default)]
struct TraceInner {
    hash: u64,
    events: u64,
}

impl Trace {
    pub fn new() -> Self {
        Trace { inner: Arc::new(Mutex::new(TraceInner { hash: 0xCBF2_9CE4_8422_2325, events: 0 })) }
    }

    /// Records one event at the current simulated time.
    pub fn event(&self, what: impl AsRef<str>) {
        let at = madsim::time::TimeHandle::current().elapsed();
        let line = format!("{:>10.3}s {}", at.as_secs_f64(), what.as_ref());
        tracing::debug!(target: "sim::trace", "{line}");
        let mut inner = self.inner.lock().expect("trace lock");
        for b in line.bytes().chain(std::iter::once(b'\n')) {
            inner.hash = (inner.hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
        }
        inner.events += 1;
    }

    pub fn hash(&self) -> u64 {
        self.inner.lock().expect("trace lock").hash
    }

    /// How many events were recorded.
    pub fn events(&self) -> u64 {
        self.inner.lock().expect("trace lock").events
    }
}
