//! The relationships between the indexes, checked in full. Tests run it after every operation;
//! restore runs it on every snapshot it loads, so a corrupt snapshot is refused, not obeyed.

use std::collections::{BTreeMap, BTreeSet};

use super::index::{Timer, TimerKind, DEADLINE_SOON_MARGIN_MS, URGENT_PRI_MAX_EXCLUSIVE};
use super::machine::{Fsm, DEFAULT_TUBE};
use super::types::JobState;

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

impl Fsm {
    /// Checks every invariant; the error names the first one broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_jobs()?;
        self.check_tubes()?;
        self.check_sessions()?;
        self.check_timers()
    }

    /// Each job sits in exactly the index its state names, in its own tube.
    fn check_jobs(&self) -> Result<(), String> {
        let s = &self.s;
        ensure(s.jobs.keys().all(|&id| id < s.next_job_id), || "a job id is not below next_job_id".into())?;
        for (&id, job) in &s.jobs {
            ensure(job.id == id, || format!("job {id} is filed under another id"))?;
            let tube = s.tubes.get(&job.tube).ok_or_else(|| format!("job {id} names a missing tube"))?;
            let indexed = match &job.state {
                JobState::Ready => tube.ready.contains(&(job.pri, id)),
                JobState::Delayed { until } => tube.delayed.contains(&(*until, id)),
                JobState::Buried { seq } => tube.buried.contains(&(*seq, id)),
                JobState::Reserved { by, deadline } => s.sessions.get(by).is_some_and(|session| session.reserved.contains(&(*deadline, id))),
            };
            ensure(indexed, || format!("job {id} is missing from the index of its state"))?;
            ensure(job.ttr_secs >= 1, || format!("job {id} has ttr 0"))?;
        }
        let counted: u64 = s.jobs.values().map(|job| crate::limits::job_bytes(job.body.len(), s.tubes[&job.tube].name.len())).sum();
        ensure(counted == s.jobs_bytes, || format!("jobs count for {counted} bytes, not the {} kept", s.jobs_bytes))?;
        Ok(())
    }

    /// Each tube's indexes hold only its own jobs in the matching state; counts agree.
    fn check_tubes(&self) -> Result<(), String> {
        let s = &self.s;
        let mut reserved: BTreeMap<u64, u64> = BTreeMap::new();
        for job in s.jobs.values() {
            if matches!(job.state, JobState::Reserved { .. }) {
                *reserved.entry(job.tube).or_default() += 1;
            }
        }
        ensure(s.tube_ids.len() == s.tubes.len(), || "tube name map and tubes differ in size".into())?;
        ensure(s.tube_ids.contains_key(DEFAULT_TUBE), || "the default tube is missing".into())?;
        for (&tid, tube) in &s.tubes {
            let name = &tube.name;
            ensure(s.tube_ids.get(name) == Some(&tid), || format!("tube {name} is not filed under its name"))?;
            ensure(tid < s.next_tube_id, || format!("tube {name} has an id not below next_tube_id"))?;
            let job_is = |id: u64, want: fn(&JobState) -> bool| s.jobs.get(&id).is_some_and(|j| j.tube == tid && want(&j.state));
            ensure(tube.ready.iter().all(|&(pri, id)| job_is(id, |st| *st == JobState::Ready) && s.jobs[&id].pri == pri), || {
                format!("tube {name}'s ready index holds a job that is not ready there")
            })?;
            ensure(
                tube.delayed.iter().all(|&(until, id)| s.jobs.get(&id).is_some_and(|j| j.tube == tid && j.state == JobState::Delayed { until })),
                || format!("tube {name}'s delayed index holds a job that is not delayed there"),
            )?;
            ensure(
                tube.buried.iter().all(|&(seq, id)| s.jobs.get(&id).is_some_and(|j| j.tube == tid && j.state == JobState::Buried { seq })),
                || format!("tube {name}'s buried index holds a job that is not buried there"),
            )?;
            let _ = job_is;
            let urgent = tube.ready.iter().filter(|&&(pri, _)| pri < URGENT_PRI_MAX_EXCLUSIVE).count() as u64;
            ensure(tube.urgent_count == urgent, || format!("tube {name}'s urgent count is off"))?;
            let held = reserved.get(&tid).copied().unwrap_or(0);
            ensure(tube.reserved_count == held, || format!("tube {name}'s reserved count is off"))?;
            ensure(&**name == DEFAULT_TUBE || !tube.is_unused(), || format!("tube {name} is unused but kept"))?;
            ensure(tube.pause.is_some() || tube.waiters.is_empty() || tube.ready.is_empty(), || {
                format!("unpaused tube {name} has both ready jobs and waiters")
            })?;
            for seq in &tube.waiters {
                let waits_here = s.waits.get(seq).and_then(|c| s.sessions.get(c)).and_then(|x| x.wait.as_ref());
                ensure(waits_here.is_some_and(|w| w.seq == *seq && w.tubes.contains(&tid)), || {
                    format!("tube {name} lists wait {seq}, which does not wait there")
                })?;
            }
        }
        Ok(())
    }

    /// Sessions' uses, watches and waits agree with the tubes' counts and the wait map.
    fn check_sessions(&self) -> Result<(), String> {
        let s = &self.s;
        let mut using: BTreeMap<u64, u64> = BTreeMap::new();
        let mut watching: BTreeMap<u64, u64> = BTreeMap::new();
        let mut waits = 0;
        for (client, session) in &s.sessions {
            *using.entry(session.used).or_default() += 1;
            ensure(!session.watched.is_empty(), || format!("client {client} watches nothing"))?;
            let distinct: BTreeSet<_> = session.watched.iter().collect();
            ensure(distinct.len() == session.watched.len(), || format!("client {client} watches a tube twice"))?;
            for tube in &session.watched {
                *watching.entry(*tube).or_default() += 1;
            }
            for &(deadline, id) in &session.reserved {
                let held = s.jobs.get(&id).is_some_and(|j| j.state == JobState::Reserved { by: client.clone(), deadline });
                ensure(held, || format!("client {client} lists job {id}, which it does not hold"))?;
            }
            if let Some(wait) = &session.wait {
                waits += 1;
                ensure(s.waits.get(&wait.seq) == Some(client), || format!("client {client}'s wait is not in the wait map"))?;
                ensure(wait.seq < s.next_wait_seq, || format!("client {client}'s wait seq is not below next_wait_seq"))?;
                for tube in &wait.tubes {
                    let listed = s.tubes.get(tube).is_some_and(|t| t.waiters.contains(&wait.seq));
                    ensure(listed, || format!("client {client} waits on a tube that does not list it"))?;
                }
            }
        }
        ensure(waits == s.waits.len(), || "the wait map holds waits no session has".into())?;
        for (&tid, tube) in &s.tubes {
            ensure(tube.using_count == using.get(&tid).copied().unwrap_or(0), || format!("tube {}'s using count is off", tube.name))?;
            ensure(tube.watching_count == watching.get(&tid).copied().unwrap_or(0), || format!("tube {}'s watching count is off", tube.name))?;
        }
        ensure(using.keys().chain(watching.keys()).all(|t| s.tubes.contains_key(t)), || "a session names a missing tube".into())
    }

    /// The timer queue holds exactly the timers the jobs, pauses and waits call for, none due.
    fn check_timers(&self) -> Result<(), String> {
        let s = &self.s;
        let mut expected = BTreeSet::new();
        for job in s.jobs.values() {
            let due = match &job.state {
                JobState::Delayed { until } => Some(Timer { at: *until, kind: TimerKind::DelayEnd, key: job.id }),
                JobState::Reserved { deadline, .. } if deadline.saturating_sub(DEADLINE_SOON_MARGIN_MS) > s.clock => {
                    Some(Timer { at: deadline - DEADLINE_SOON_MARGIN_MS, kind: TimerKind::DeadlineSoon, key: job.id })
                }
                JobState::Reserved { deadline, .. } => Some(Timer { at: *deadline, kind: TimerKind::TtrEnd, key: job.id }),
                _ => None,
            };
            ensure(job.timer == due, || format!("job {} has timer {:?}, expected {:?}", job.id, job.timer, due))?;
            expected.extend(due);
        }
        for (&tid, tube) in &s.tubes {
            if let Some(pause) = tube.pause {
                expected.insert(Timer { at: pause.until, kind: TimerKind::PauseEnd, key: tid });
            }
        }
        ensure(s.leases.len() == s.lease_proxies.len(), || "lease maps differ in size".into())?;
        for (proxy, lease) in &s.leases {
            ensure(s.lease_proxies.get(&lease.id) == Some(proxy), || format!("lease of {proxy} is not filed by id"))?;
            ensure(lease.id < s.next_lease_id, || format!("lease of {proxy} has an id not below next_lease_id"))?;
            expected.insert(Timer { at: lease.until, kind: TimerKind::LeaseEnd, key: lease.id });
        }
        for session in s.sessions.values() {
            if let Some(at) = session.wait.as_ref().and_then(|w| w.deadline) {
                expected.insert(Timer { at, kind: TimerKind::WaitTimeout, key: session.wait.as_ref().unwrap().seq });
            }
        }
        ensure(s.timers == expected, || "the timer queue differs from the timers the state calls for".into())?;
        ensure(s.timers.first().is_none_or(|t| t.at > s.clock), || "a timer is due but has not fired".into())
    }
}
