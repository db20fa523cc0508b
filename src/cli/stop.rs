//! A graceful stop, on SIGTERM or SIGINT: a proxy stops accepting and gives its clients a
//! bounded time to finish; a leader hands leadership to its most caught-up peer and waits,
//! bounded, until another leads; then the node makes its writes durable and the process ends
//! with 0. The node stays a member: only Leave removes it.

use std::time::Duration;

use tokio::time::Instant;

use crate::node::{NodeHandle, Status};

/// How long a leader waits for a peer to take over before it stops anyway (raft-rs gives up a
/// transfer after an election timeout; a second try goes to the next best peer).
pub const STEP_DOWN_LIMIT: Duration = Duration::from_secs(5);

/// How long a stopping proxy waits for its clients to finish and hang up.
pub const CONNECTIONS_LIMIT: Duration = Duration::from_secs(5);

/// How often a transfer is asked again while the node still leads.
const TRANSFER_RETRY: Duration = Duration::from_millis(500);

/// Completes on SIGTERM or SIGINT, naming it.
pub async fn signalled() -> &'static str {
    #[cfg(not(madsim))]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot catch SIGTERM; only SIGINT stops gracefully");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(madsim)]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

/// If the node leads, hands leadership to the voter that holds the most of the log and waits
/// until the node follows another leader, at most `limit`.
pub async fn step_down(node: &NodeHandle, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut asked: Option<(u64, Instant)> = None;
    loop {
        let status = node.status();
        let follows_another = status.leader_id != 0 && status.leader_id != status.node_id;
        if follows_another || (asked.is_none() && !status.is_leader()) {
            if asked.is_some() {
                tracing::info!(node = status.node_id, leader = status.leader_id, term = status.term, "leadership handed over");
            }
            return;
        }
        let now = Instant::now();
        if now >= deadline {
            tracing::warn!(node = status.node_id, term = status.term, "no other leader in time; stopping");
            return;
        }
        // Between the hand-over and the new leader's first message, no leader is known.
        let Some(to) = successor(&status).filter(|_| status.is_leader()) else {
            if asked.is_none() {
                tracing::info!(node = status.node_id, "no other voter to hand leadership to");
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if asked.is_none_or(|(_, at)| now >= at + TRANSFER_RETRY) {
            tracing::info!(node = status.node_id, to, term = status.term, "handing leadership over before stopping");
            if node.transfer_leader(to).await.is_err() {
                return;
            }
            asked = Some((to, now));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The voter other than the leader that acknowledged the most of the log (the lowest id among
/// equals), or none in a cluster of one.
fn successor(status: &Status) -> Option<u64> {
    let matched = |id: &u64| status.match_index.get(id).copied().unwrap_or(0);
    status.voters.iter().filter(|id| **id != status.node_id).max_by(|a, b| matched(a).cmp(&matched(b)).then(b.cmp(a))).copied()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn status(voters: &[u64], match_index: &[(u64, u64)]) -> Status {
        Status {
            node_id: 1,
            leader_id: 1,
            voters: voters.to_vec(),
            match_index: match_index.iter().copied().collect::<BTreeMap<_, _>>(),
            ..Status::default()
        }
    }

    /// The most caught-up voter takes over; learners and the leader itself never do.
    #[test]
    fn successor_is_the_most_caught_up_voter() {
        assert_eq!(successor(&status(&[1, 2, 3], &[(1, 50), (2, 40), (3, 49)])), Some(3));
        assert_eq!(successor(&status(&[1, 2, 3], &[(1, 50), (2, 50), (3, 50)])), Some(2), "the lowest id among equals");
        assert_eq!(successor(&status(&[1, 3], &[(1, 50), (2, 50), (3, 10)])), Some(3), "2 is a learner");
        assert_eq!(successor(&status(&[1], &[(1, 50)])), None);
    }
}
