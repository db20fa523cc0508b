//! Browsing, for the console: tubes and the jobs of one tube in one state, a page at a time.
//! Each page costs the log of the index it walks plus its length, never a walk of every job
//! (reserved jobs excepted: they are walked through the sessions that hold them, so their
//! cost is the number of jobs reserved). Pages follow each state's own order (the order in
//! which reserves, kicks and peeks take them) and resume after a cursor, so a page stays
//! right while jobs come and go between pages.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use super::index::Tube;
use super::machine::Fsm;
use super::stats::{secs_until, JobCounts};
use super::types::{JobId, JobView, Millis};
use crate::limits::BROWSE_PAGE_MAX;

/// The jobs a page lists: those of one state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrowseState {
    /// By (priority, id): the order reserves take them.
    Ready,
    /// By (time they become ready, id).
    Delayed,
    /// By id.
    Reserved,
    /// By (bury order, id): the order kicks take them.
    Buried,
}

impl BrowseState {
    pub fn name(self) -> &'static str {
        match self {
            BrowseState::Ready => "ready",
            BrowseState::Delayed => "delayed",
            BrowseState::Reserved => "reserved",
            BrowseState::Buried => "buried",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "ready" => BrowseState::Ready,
            "delayed" => BrowseState::Delayed,
            "reserved" => BrowseState::Reserved,
            "buried" => BrowseState::Buried,
            _ => return None,
        })
    }
}

/// Where a page of jobs resumes: after this place in its state's order (`key` is the
/// priority, ready time or bury order; 0 for reserved jobs, ordered by id alone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct BrowseCursor {
    pub key: u64,
    pub id: JobId,
}

/// One page of a tube's jobs, and where the next starts (none after the last).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobPage {
    pub jobs: Vec<JobView>,
    pub next: Option<BrowseCursor>,
}

/// One tube as the console lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TubeSummary {
    /// Its place in creation order: the cursor of the page after it.
    pub seq: u64,
    pub name: Arc<str>,
    pub counts: JobCounts,
    pub waiting: u64,
    pub using: u64,
    pub watching: u64,
    pub total_jobs: u64,
    pub cmd_delete: u64,
    /// The pause given and the seconds left of it; 0 and 0 when not paused.
    pub pause_secs: u32,
    pub pause_left_secs: i64,
}

/// A page of tubes, in creation order, and the cursor of the next (none after the last).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TubePage {
    pub tubes: Vec<TubeSummary>,
    pub next: Option<u64>,
}

impl TubeSummary {
    fn of(seq: u64, tube: &Tube, now: Millis) -> Self {
        let (pause_secs, pause_left_secs) = tube.pause.map_or((0, 0), |p| (p.secs, secs_until(p.until, now).max(0)));
        TubeSummary {
            seq,
            name: tube.name.clone(),
            counts: JobCounts::of(tube),
            waiting: tube.waiters.len() as u64,
            using: tube.using_count,
            watching: tube.watching_count,
            total_jobs: tube.total_jobs,
            cmd_delete: tube.cmd_delete,
            pause_secs,
            pause_left_secs,
        }
    }
}

/// Up to `limit` items of `set` after `after`, each turned into a cursor, and whether more
/// follow.
fn page_of<K: Ord + Copy>(set: &BTreeSet<(K, JobId)>, after: (K, JobId), limit: usize, key: impl Fn(K) -> u64) -> (Vec<BrowseCursor>, bool) {
    let mut items = set.range((Bound::Excluded(after), Bound::Unbounded)).map(|&(k, id)| BrowseCursor { key: key(k), id });
    let page: Vec<BrowseCursor> = items.by_ref().take(limit).collect();
    (page, items.next().is_some())
}

impl Fsm {
    /// Tubes after creation place `after` (none: from the first), at most `limit` of them.
    pub fn tube_page(&self, after: Option<u64>, limit: usize, now: Millis) -> TubePage {
        let limit = limit.clamp(1, BROWSE_PAGE_MAX);
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut tubes = self.s.tubes.range((start, Bound::Unbounded));
        let page: Vec<TubeSummary> = tubes.by_ref().take(limit).map(|(&seq, tube)| TubeSummary::of(seq, tube, now)).collect();
        let next = if tubes.next().is_some() { page.last().map(|t| t.seq) } else { None };
        TubePage { tubes: page, next }
    }

    /// One tube's summary, if it exists.
    pub fn tube_summary(&self, name: &str, now: Millis) -> Option<TubeSummary> {
        let seq = *self.s.tube_ids.get(name)?;
        Some(TubeSummary::of(seq, &self.s.tubes[&seq], now))
    }

    /// Jobs of `tube` in `state` after `after` (the default cursor: from the first), at most
    /// `limit`; `None` if the tube does not exist.
    pub fn job_page(&self, tube: &str, state: BrowseState, after: BrowseCursor, limit: usize) -> Option<JobPage> {
        let limit = limit.clamp(1, BROWSE_PAGE_MAX);
        let seq = *self.s.tube_ids.get(tube)?;
        let t = &self.s.tubes[&seq];
        let (cursors, more) = match state {
            BrowseState::Ready => {
                let key = u32::try_from(after.key).unwrap_or(u32::MAX);
                page_of(&t.ready, (key, after.id), limit, u64::from)
            }
            BrowseState::Delayed => page_of(&t.delayed, (after.key, after.id), limit, |k| k),
            BrowseState::Buried => page_of(&t.buried, (after.key, after.id), limit, |k| k),
            BrowseState::Reserved => self.reserved_page(seq, after.id, limit),
        };
        let jobs: Vec<JobView> = cursors.iter().filter_map(|c| self.job(c.id)).collect();
        debug_assert_eq!(jobs.len(), cursors.len(), "every indexed job exists");
        let next = if more { cursors.last().copied() } else { None };
        Some(JobPage { jobs, next })
    }

    /// The tube's reserved jobs with ids above `after`, by id: found through the sessions,
    /// which hold every reserved job (a tube keeps only their count).
    fn reserved_page(&self, tube: u64, after: JobId, limit: usize) -> (Vec<BrowseCursor>, bool) {
        let mut ids: Vec<JobId> = self
            .s
            .sessions
            .values()
            .flat_map(|s| s.reserved.iter().map(|&(_, id)| id))
            .filter(|&id| id > after && self.s.jobs.get(&id).is_some_and(|j| j.tube == tube))
            .collect();
        // The sessions are hashed: the sort, not their order, decides the page.
        ids.sort_unstable();
        let more = ids.len() > limit;
        ids.truncate(limit);
        (ids.into_iter().map(|id| BrowseCursor { key: 0, id }).collect(), more)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::fsm::{ClientKey, Op};

    fn put(fsm: &mut Fsm, tube: &str, pri: u32, delay_secs: u32) -> JobId {
        let op = Op::Put { client: None, tube: tube.into(), pri, delay_secs, ttr_secs: 60, body: Bytes::from_static(b"x") };
        match fsm.apply(op, 1_000).reply {
            Ok(crate::fsm::Reply::Put { id }) => id,
            other => panic!("put answered {other:?}"),
        }
    }

    fn ids(page: &JobPage) -> Vec<JobId> {
        page.jobs.iter().map(|j| j.id).collect()
    }

    /// Walking a tube's ready jobs page by page gives each once, in reserve order (priority,
    /// then id), and the last page says there is no next.
    #[test]
    fn ready_pages_follow_priority_order() {
        let mut fsm = Fsm::default();
        let mut expected: Vec<(u32, JobId)> = (0..7).map(|i| (i % 3, put(&mut fsm, "t", i % 3, 0))).collect();
        expected.sort();
        let mut seen = Vec::new();
        let mut after = BrowseCursor::default();
        loop {
            let page = fsm.job_page("t", BrowseState::Ready, after, 3).expect("tube exists");
            assert!(page.jobs.len() <= 3);
            seen.extend(ids(&page));
            match page.next {
                Some(next) => after = next,
                None => break,
            }
        }
        assert_eq!(seen, expected.iter().map(|&(_, id)| id).collect::<Vec<_>>());
    }

    /// Each state lists only its own jobs; an unknown tube has no page.
    #[test]
    fn states_list_their_own_jobs() {
        let mut fsm = Fsm::default();
        let ready = put(&mut fsm, "t", 5, 0);
        let delayed = put(&mut fsm, "t", 5, 100);
        let held = put(&mut fsm, "t", 1, 0);
        let client = ClientKey::new("p", "c");
        fsm.apply(Op::Reserve { client: client.clone(), request_id: "r".into(), timeout_secs: Some(0), tubes: vec!["t".into()] }, 1_000);
        let buried = put(&mut fsm, "t", 9, 0);
        fsm.apply(Op::ReserveJob { client: client.clone(), id: buried }, 1_000);
        fsm.apply(Op::Bury { client, id: buried, pri: 9 }, 1_000);
        let page = |state| ids(&fsm.job_page("t", state, BrowseCursor::default(), 10).expect("tube exists"));
        assert_eq!(page(BrowseState::Ready), vec![ready]);
        assert_eq!(page(BrowseState::Delayed), vec![delayed]);
        assert_eq!(page(BrowseState::Reserved), vec![held]);
        assert_eq!(page(BrowseState::Buried), vec![buried]);
        assert_eq!(fsm.job_page("nope", BrowseState::Ready, BrowseCursor::default(), 10), None);
    }

    /// Reserved jobs page by id, across the sessions that hold them, and only the tube's own.
    #[test]
    fn reserved_pages_by_id_across_sessions() {
        let mut fsm = Fsm::default();
        let mut held = Vec::new();
        for c in 0..4 {
            let id = put(&mut fsm, "t", 0, 0);
            put(&mut fsm, "other", 0, 0);
            let client = ClientKey::new("p", &c.to_string());
            fsm.apply(Op::ReserveJob { client, id }, 1_000);
            held.push(id);
        }
        let first = fsm.job_page("t", BrowseState::Reserved, BrowseCursor::default(), 3).expect("tube exists");
        assert_eq!(ids(&first), held[..3]);
        let second = fsm.job_page("t", BrowseState::Reserved, first.next.expect("a next page"), 3).expect("tube exists");
        assert_eq!((ids(&second), second.next), (held[3..].to_vec(), None));
    }

    /// Tubes page in creation order, and a page is never longer than the limit.
    #[test]
    fn tubes_page_in_creation_order() {
        let mut fsm = Fsm::default();
        for name in ["b", "a", "c"] {
            put(&mut fsm, name, 0, 0);
        }
        let first = fsm.tube_page(None, 2, 1_000);
        let names: Vec<&str> = first.tubes.iter().map(|t| &*t.name).collect();
        assert_eq!(names, ["default", "b"]);
        let rest = fsm.tube_page(first.next, 2, 1_000);
        let names: Vec<&str> = rest.tubes.iter().map(|t| &*t.name).collect();
        assert_eq!((names, rest.next), (vec!["a", "c"], None));
        assert_eq!(fsm.tube_summary("a", 1_000).map(|t| t.counts.ready), Some(1));
    }
}
