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
    /// Starts sampling the leader `reads` knows, for as long as the timeline is kept: the
    /// sampler holds it weakly, so that once the console is dropped the sampler ends and lets
    /// go of `reads` (which may hold the node: held for ever, it kept the node running).
    pub fn follow(reads: std::sync::Arc<dyn Reads>) -> Self {
        let timeline = Timeline::default();
        let changes = Arc::downgrade(&timeline.0);
        tokio::spawn(async move {
            while changes.strong_count() > 0 {
                let seen = reads.leader().await;
                let (Some((leader_id, term)), Some(changes)) = (seen, changes.upgrade()) else {
                    tokio::time::sleep(SAMPLE_EVERY).await;
                    continue;
                };
                Timeline(changes).saw(crate::clock::now_ms(), leader_id, term);
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
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::cli::status::ClusterView;
    use crate::console::backend::{Refusal, Totals};
    use crate::fsm::{BrowseCursor, BrowseState, JobId, JobPage, JobView, TubePage, TubeSummary};

    struct Counting(Arc<AtomicU64>);

    #[tonic::async_trait]
    impl Reads for Counting {
        async fn cluster(&self) -> Result<ClusterView, Refusal> {
            unreachable!()
        }
        async fn tubes(&self, _: Option<u64>, _: usize) -> Result<TubePage, Refusal> {
            unreachable!()
        }
        async fn tube(&self, _: String) -> Result<TubeSummary, Refusal> {
            unreachable!()
        }
        async fn totals(&self) -> Result<Totals, Refusal> {
            unreachable!()
        }
        async fn jobs(&self, _: String, _: BrowseState, _: BrowseCursor, _: usize) -> Result<JobPage, Refusal> {
            unreachable!()
        }
        async fn job(&self, _: JobId) -> Result<JobView, Refusal> {
            unreachable!()
        }
        async fn leader(&self) -> Option<(u64, u64)> {
            let n = self.0.fetch_add(1, Ordering::Relaxed);
            Some((1 + n / 3, 1 + n / 3))
        }
        fn node_id(&self) -> Option<u64> {
            None
        }
    }

    /// The sampler records leader changes while the timeline is kept, and once it is dropped
    /// it stops asking and lets go of its reads (which may hold a node).
    #[cfg(not(madsim))]
    #[test]
    fn sampling_stops_once_the_timeline_is_dropped() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("a runtime");
        runtime.block_on(async {
            let asked = Arc::new(AtomicU64::new(0));
            let reads: Arc<dyn Reads> = Arc::new(Counting(asked.clone()));
            let held = Arc::downgrade(&reads);
            let timeline = Timeline::follow(reads);
            tokio::time::sleep(SAMPLE_EVERY * 7).await;
            assert!(timeline.changes().len() >= 2, "{:?}", timeline.changes());
            drop(timeline);
            tokio::time::sleep(SAMPLE_EVERY * 3).await;
            let after_drop = asked.load(Ordering::Relaxed);
            tokio::time::sleep(SAMPLE_EVERY * 10).await;
            assert_eq!(asked.load(Ordering::Relaxed), after_drop, "still asking");
            assert!(held.upgrade().is_none(), "the reads are let go");
        });
    }

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
