//! The one place that reads wall-clock time. Under madsim, `SystemTime::now()` is the
//! simulation's clock (madsim intercepts `clock_gettime`), so the same code serves both builds.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The wall clock a driver stamps its proposals with and checks the state machine's deadlines
/// against: the system's in a node, and in a unit test one that moves with the runtime's
/// paused time, so that the test steps the node's time with the runtime's.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(now_ms))
    }

    /// Starts at `start_ms` and moves as the runtime's clock does (`tokio::time::advance`, or
    /// a paused runtime's own advances while it idles).
    #[cfg(test)]
    pub fn following_runtime(start_ms: u64) -> Clock {
        let start = tokio::time::Instant::now();
        Clock(Arc::new(move || start_ms + start.elapsed().as_millis() as u64))
    }

    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock(now_ms={})", self.now_ms())
    }
}
