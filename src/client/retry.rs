//! How long a call to the cluster is retried through leader changes, and how far apart: the
//! same for a proxy's node in its own process as for the cluster over gRPC.

use std::time::Duration;

/// How long a command may wait out a leader change before its client sees an error.
pub const PATIENCE: Duration = Duration::from_secs(15);
/// Backoff between attempts while the cluster has no leader.
pub const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Doubles a backoff up to the maximum.
pub fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX)
}
