//! The one place that reads wall-clock time. Under madsim, `SystemTime::now()` is the
//! simulation's clock (madsim intercepts `clock_gettime`), so the same code serves both builds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
