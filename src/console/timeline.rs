//! Leader changes since the process started, as the console's timeline shows them: the
//! leader as known, sampled twice a second (a change shorter than that may be missed; the
//! term still shows that one happened).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::backend::Reads;

/// How often the leader is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// Changes kept: the oldest go first, so a flapping cluster cannot grow the list for ever.
const CHANGES_MAX: usize = 500;

/// One change: from this time (Unix ms), this leader (0: none known) in this term.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LeaderChange {
    pub at_ms: u64,
    pub leader_id: u64,
    pub term: u64,
}

#[derive(Clone, Default)]
pub struct Timeline(Arc<Mutex<VecDeque<LeaderChange>>>);

impl Timeline {
    /// Starts sampling the leader `reads` knows, for as long as the process runs.
    pub fn follow(reads: std::sync::Arc<dyn Reads>) -> Self {
        let timeline = Timeline::default();
        let changes = timeline.clone();
        tokio::spawn(async move {
            loop {
                if let Some((leader_id, term)) = reads.leader().await {
                    changes.saw(crate::node::clock::now_ms(), leader_id, term);
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        });
        timeline
    }

    /// Records a sample; only a change of leader or term is kept.
    fn saw(&self, at_ms: u64, leader_id: u64, term: u64) {
        let mut changes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if changes.back().is_some_and(|c| c.leader_id == leader_id && c.term == term) {
            return;
        }
        if changes.len() == CHANGES_MAX {
            changes.pop_front();
        }
        changes.push_back(LeaderChange { at_ms, leader_id, term });
    }

    pub fn changes(&self) -> Vec<LeaderChange> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only changes of leader or term are kept, oldest first, and the list is bounded.
    #[test]
    fn keeps_changes_only() {
        let t = Timeline::default();
        t.saw(1, 0, 1);
        t.saw(2, 2, 1);
        t.saw(3, 2, 1);
        t.saw(4, 3, 2);
        let leaders: Vec<(u64, u64)> = t.changes().iter().map(|c| (c.at_ms, c.leader_id)).collect();
        assert_eq!(leaders, [(1, 0), (2, 2), (4, 3)]);
        for term in 10..10 + CHANGES_MAX as u64 {
            t.saw(term, 1, term);
        }
        assert_eq!(t.changes().len(), CHANGES_MAX);
        assert_eq!(t.changes()[0].term, 10);
    }
}
