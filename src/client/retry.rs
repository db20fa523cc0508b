//! How long a call to the cluster is retried through leader changes, and how far apart: the
//! same for a proxy's node in its own process as for the cluster over gRPC.

use std::time::Duration;

/// How long a command may wait out a leader change before its client sees an error.
pub const PATIENCE: Duration = Duration::from_secs(15);
/// How long after a forwarded write began it may still reach a node: its retries go on for
/// the patience, and the last attempt waits for its answer up to the forward timeout. A write
/// whose caller stopped waiting (its client went away) may still apply until then.
pub const WRITE_IN_FLIGHT_MAX: Duration = Duration::from_secs(PATIENCE.as_secs() + super::forward::ANSWER_TIMEOUT.as_secs());
/// Backoff between attempts while the cluster has no leader.
pub const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Doubles a backoff up to the maximum.
pub fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX)
}
