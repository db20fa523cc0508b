//! `Fsm::apply`: the operations, the timers they fire, and the matching of ready jobs to
//! waiting reserves.

use std::sync::Arc;

use bytes::Bytes;

use super::index::{
    Answered, AnsweredOutcome, Job, Lease, Pause, Session, State, Timer, TimerKind, TubeId, Wait, DEADLINE_SOON_MARGIN_MS, URGENT_PRI_MAX_EXCLUSIVE,
};
use super::tube_name::validate_tube_name;
use super::types::*;
use crate::chaos::mutant::{self, Mutant};

/// The name of the tube every session starts with, which always exists.
pub const DEFAULT_TUBE: &str = "default";

/// The job state machine. See the module documentation for its rules.
#[derive(Clone, Debug)]
pub struct Fsm {
    pub(crate) s: State,
    /// Reservations answered during the current apply.
    events: Vec<ReservationEvent>,
}

impl Default for Fsm {
    fn default() -> Self {
        Fsm::new()
    }
}

/// The smallest (priority, id) ready in the unpaused tubes among `ids`.
fn best_ready(tubes: &std::collections::BTreeMap<TubeId, super::index::Tube>, ids: &[TubeId]) -> Option<(u32, JobId)> {
    ids.iter().map(|t| &tubes[t]).filter(|t| t.pause.is_none()).filter_map(|t| t.ready.first().copied()).min()
}

fn secs_to_ms(secs: u32) -> Millis {
    Millis::from(secs) * 1000
}

impl Fsm {
    /// An empty machine at time 0 with the `default` tube.
    pub fn new() -> Self {
        let mut fsm = Fsm::from_state(State { next_job_id: 1, next_bury_seq: 1, next_wait_seq: 1, next_lease_id: 1, ..State::default() });
        fsm.tube_or_create(DEFAULT_TUBE);
        fsm
    }

    pub(crate) fn from_state(s: State) -> Self {
        Fsm { s, events: Vec::new() }
    }

    /// The machine's clock: the largest time it has been given.
    pub fn now_ms(&self) -> Millis {
        self.s.clock
    }

    /// When the next timer falls due: the time of the next Tick worth proposing.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.s.timers.first().map(|t| t.at)
    }

    /// Applies one operation stamped with `now_ms`.
    pub fn apply(&mut self, op: Op, now_ms: Millis) -> Applied {
        debug_assert!(self.events.is_empty());
        if matches!(op, Op::NewLeader) {
            self.renew_leases(self.s.clock.max(now_ms));
        }
        self.s.clock = self.s.clock.max(now_ms);
        self.fire_due_timers();
        let reserve_request = match &op {
            Op::Reserve { client, request_id, .. } => Some((client.clone(), request_id.clone())),
            _ => None,
        };
        let mut reply = self.execute(op);
        self.fire_due_timers();
        if let (Ok(Reply::Reserve(outcome)), Some((client, request_id))) = (&mut reply, reserve_request) {
            *outcome = self.events.iter().find(|e| e.client == client && e.request_id == request_id).map(|e| e.outcome.clone());
        }
        debug_assert!(self.next_deadline().is_none_or(|at| at > self.s.clock));
        Applied { reply, events: std::mem::take(&mut self.events) }
    }

    fn execute(&mut self, op: Op) -> Result<Reply, FsmError> {
        match op {
            Op::Put { client, tube, pri, delay_secs, ttr_secs, body } => self.put(client, &tube, pri, delay_secs, ttr_secs, body),
            Op::Reserve { client, request_id, timeout_secs, tubes } => self.reserve(client, request_id, timeout_secs, &tubes),
            Op::ReserveJob { client, id } => self.reserve_by_id(client, id),
            Op::Delete { client, id } => self.delete(client.as_ref(), id),
            Op::Release { client, id, pri, delay_secs } => self.release(&client, id, pri, delay_secs),
            Op::Bury { client, id, pri } => self.bury(&client, id, pri),
            Op::Touch { client, id } => self.touch(&client, id),
            Op::Kick { tube, bound } => self.kick(&tube, bound),
            Op::KickJob { id } => self.kick_job(id),
            Op::MoveJob { id, tube } => self.move_job(id, &tube),
            Op::PauseTube { tube, delay_secs } => self.pause_tube(&tube, delay_secs),
            Op::Use { client, tube } => self.use_tube(client, &tube),
            Op::Watch { client, tube } => self.watch(client, &tube),
            Op::Ignore { client, tube } => self.ignore(client, &tube),
            Op::ClientHello { client } => {
                self.session(client);
                Ok(Reply::Done)
            }
            Op::DiscardPut { client } => {
                self.s.counters.cmd_put += 1;
                self.session(client).producer = true;
                self.s.next_job_id += 1;
                Ok(Reply::Done)
            }
            Op::ClientGone { client } => {
                self.end_session(&client);
                Ok(Reply::Done)
            }
            Op::ProxyGone { proxy } => {
                self.end_proxy(&proxy);
                Ok(Reply::Done)
            }
            Op::ProxyLease { proxy, lease_secs } => {
                let was_live = self.s.leases.contains_key(&proxy);
                self.lease(proxy, lease_secs);
                Ok(Reply::Lease { was_live })
            }
            Op::Tick | Op::NewLeader => Ok(Reply::Done),
        }
    }

    // ---- operations ----

    fn put(&mut self, client: Option<ClientKey>, tube: &str, pri: u32, delay_secs: u32, ttr_secs: u32, body: Bytes) -> Result<Reply, FsmError> {
        self.s.counters.cmd_put += 1;
        validate_tube_name(tube)?;
        if let Some(client) = client {
            self.session(client).producer = true;
        }
        let tube_name_bytes = tube.len();
        let tube = self.tube_or_create(tube);
        self.s.jobs_bytes += crate::limits::job_bytes(body.len(), tube_name_bytes);
        let id = self.s.next_job_id;
        self.s.next_job_id += 1;
        self.s.counters.total_jobs += 1;
        self.s.tubes.get_mut(&tube).expect("tube exists").total_jobs += 1;
        let job = Job {
            id,
            tube,
            pri,
            delay_secs,
            ttr_secs: ttr_secs.max(1),
            created: self.s.clock,
            // A copy of its own: the body given may be a slice of a larger buffer (a socket
            // read, a log entry of many writes), which a long-lived job would keep alive.
            body: Bytes::copy_from_slice(&body),
            state: JobState::Ready,
            timer: None,
            reserves: 0,
            timeouts: 0,
            releases: 0,
            buries: 0,
            kicks: 0,
        };
        self.s.jobs.insert(id, Box::new(job));
        self.enqueue(id, delay_secs);
        Ok(Reply::Put { id })
    }

    fn reserve(&mut self, client: ClientKey, request_id: String, timeout_secs: Option<u32>, tube_names: &[String]) -> Result<Reply, FsmError> {
        if let Some(reply) = self.ask_again(&client, &request_id) {
            return Ok(reply);
        }
        match timeout_secs {
            None => self.s.counters.cmd_reserve += 1,
            Some(_) => self.s.counters.cmd_reserve_with_timeout += 1,
        }
        for name in tube_names {
            validate_tube_name(name)?;
        }
        self.end_wait(&client);
        let session = self.session(client.clone());
        session.worker = true;
        let soonest_deadline = session.reserved.first().map(|&(deadline, _)| deadline);
        let named = if tube_names.is_empty() {
            None
        } else {
            Some(self.tubes_or_create(tube_names))
        };
        let watched = &self.s.sessions[&client].watched;
        let best = best_ready(&self.s.tubes, named.as_deref().unwrap_or(watched));
        let deadline_soon = soonest_deadline.is_some_and(|d| self.s.clock + DEADLINE_SOON_MARGIN_MS >= d);
        if let Some((_, id)) = best {
            self.give_job(&client, request_id, id);
        } else if deadline_soon {
            // beanstalkd answers at once when no watched tube has a ready job, and on its next
            // tick when the only ready jobs sit in paused tubes: here both are at once.
            self.answer(client, request_id, ReserveOutcome::DeadlineSoon);
        } else {
            let tubes = named.unwrap_or_else(|| watched.clone());
            self.start_wait(client, request_id, tubes, timeout_secs);
            return Ok(Reply::Reserve(None));
        }
        // Named tubes this reserve created but did not wait on are let go again.
        for tube in named.unwrap_or_default() {
            self.drop_tube_if_unused(tube);
        }
        Ok(Reply::Reserve(None))
    }

    fn reserve_by_id(&mut self, client: ClientKey, id: JobId) -> Result<Reply, FsmError> {
        self.s.counters.cmd_reserve_job += 1;
        let job = self.s.jobs.get(&id).ok_or(FsmError::NotFound)?;
        if matches!(job.state, JobState::Reserved { .. }) {
            return Err(FsmError::WrongState);
        }
        self.session(client.clone()).worker = true;
        self.unindex(id);
        let body = self.reserve_for(&client, id);
        Ok(Reply::ReservedJob { id, body })
    }

    fn delete(&mut self, client: Option<&ClientKey>, id: JobId) -> Result<Reply, FsmError> {
        self.s.counters.cmd_delete += 1;
        let job = self.s.jobs.get(&id).ok_or(FsmError::NotFound)?;
        if let JobState::Reserved { by, .. } = &job.state {
            if client != Some(by) {
                return Err(FsmError::NotYours);
            }
        }
        let buried = matches!(job.state, JobState::Buried { .. });
        if !(buried && mutant::planted(Mutant::DeleteBuriedKeepsIndex)) {
            self.unindex(id);
        }
        let job = self.s.jobs.remove(&id).expect("job exists");
        let tube = self.tube_mut(job.tube);
        tube.cmd_delete += 1;
        let counted = crate::limits::job_bytes(job.body.len(), tube.name.len());
        self.s.jobs_bytes -= counted;
        self.drop_tube_if_unused(job.tube);
        Ok(Reply::Done)
    }

    fn release(&mut self, client: &ClientKey, id: JobId, pri: u32, delay_secs: u32) -> Result<Reply, FsmError> {
        self.s.counters.cmd_release += 1;
        self.check_holder(client, id)?;
        self.unindex(id);
        let job = self.job_mut(id);
        job.pri = pri;
        job.delay_secs = delay_secs;
        job.releases += 1;
        self.enqueue(id, delay_secs);
        Ok(Reply::Done)
    }

    fn bury(&mut self, client: &ClientKey, id: JobId, pri: u32) -> Result<Reply, FsmError> {
        self.s.counters.cmd_bury += 1;
        self.check_holder(client, id)?;
        self.unindex(id);
        self.job_mut(id).pri = pri;
        self.bury_unindexed(id);
        Ok(Reply::Done)
    }

    fn touch(&mut self, client: &ClientKey, id: JobId) -> Result<Reply, FsmError> {
        self.s.counters.cmd_touch += 1;
        self.check_holder(client, id)?;
        self.unindex(id);
        self.reserve_for(client, id);
        Ok(Reply::Done)
    }

    fn kick(&mut self, tube: &str, bound: u32) -> Result<Reply, FsmError> {
        self.s.counters.cmd_kick += 1;
        validate_tube_name(tube)?;
        let Some(&tube) = self.s.tube_ids.get(tube) else {
            return Ok(Reply::Kicked { count: 0 });
        };
        let from_buried = !self.s.tubes[&tube].buried.is_empty();
        let mut count = 0;
        while count < bound {
            let t = &self.s.tubes[&tube];
            let next = if from_buried {
                t.buried.first().map(|&(_, id)| id)
            } else {
                t.delayed.first().map(|&(_, id)| id)
            };
            let Some(id) = next else { break };
            self.kick_unchecked(id);
            count += 1;
        }
        Ok(Reply::Kicked { count })
    }

    fn kick_job(&mut self, id: JobId) -> Result<Reply, FsmError> {
        let job = self.s.jobs.get(&id).ok_or(FsmError::NotFound)?;
        if !matches!(job.state, JobState::Buried { .. } | JobState::Delayed { .. }) {
            return Err(FsmError::WrongState);
        }
        self.kick_unchecked(id);
        Ok(Reply::Done)
    }

    fn move_job(&mut self, id: JobId, name: &str) -> Result<Reply, FsmError> {
        validate_tube_name(name)?;
        let job = self.s.jobs.get(&id).ok_or(FsmError::NotFound)?;
        let (from, state) = (job.tube, job.state.clone());
        if matches!(state, JobState::Reserved { .. }) {
            return Err(FsmError::WrongState);
        }
        let to = self.tube_or_create(name);
        if to == from {
            return Ok(Reply::Done);
        }
        self.unindex(id);
        let body_bytes = self.s.jobs[&id].body.len();
        let (from_name_bytes, to_name_bytes) = (self.s.tubes[&from].name.len(), name.len());
        self.s.jobs_bytes -= crate::limits::job_bytes(body_bytes, from_name_bytes);
        self.s.jobs_bytes += crate::limits::job_bytes(body_bytes, to_name_bytes);
        self.job_mut(id).tube = to;
        match state {
            JobState::Ready => self.enqueue(id, 0),
            JobState::Delayed { until } => self.delay_until(id, until),
            JobState::Buried { seq } => {
                self.job_mut(id).state = JobState::Buried { seq };
                self.tube_mut(to).buried.insert((seq, id));
            }
            JobState::Reserved { .. } => unreachable!("a reserved job was refused above"),
        }
        // A waiter that took the job ended its wait, which may have dropped `from` already
        // (a wait on named tubes holds them only while it lasts).
        if self.s.tubes.contains_key(&from) {
            self.drop_tube_if_unused(from);
        }
        Ok(Reply::Done)
    }

    fn pause_tube(&mut self, tube: &str, delay_secs: u32) -> Result<Reply, FsmError> {
        self.s.counters.cmd_pause_tube += 1;
        validate_tube_name(tube)?;
        let tube = *self.s.tube_ids.get(tube).ok_or(FsmError::NotFound)?;
        self.tube_mut(tube).cmd_pause_tube += 1;
        self.unpause(tube);
        if delay_secs > 0 {
            let until = self.s.clock + secs_to_ms(delay_secs);
            self.tube_mut(tube).pause = Some(Pause { secs: delay_secs, until });
            self.s.timers.insert(Timer { at: until, kind: TimerKind::PauseEnd, key: tube });
        } else {
            self.match_waiters(tube);
        }
        Ok(Reply::Done)
    }

    fn use_tube(&mut self, client: ClientKey, name: &str) -> Result<Reply, FsmError> {
        self.s.counters.cmd_use += 1;
        validate_tube_name(name)?;
        let tube = self.tube_or_create(name);
        let session = self.session(client);
        let old = std::mem::replace(&mut session.used, tube);
        self.tube_mut(tube).using_count += 1;
        self.tube_mut(old).using_count -= 1;
        self.drop_tube_if_unused(old);
        Ok(Reply::Done)
    }

    fn watch(&mut self, client: ClientKey, name: &str) -> Result<Reply, FsmError> {
        self.s.counters.cmd_watch += 1;
        validate_tube_name(name)?;
        let tube = self.tube_or_create(name);
        let session = self.session(client);
        let newly = !session.watched.contains(&tube);
        if newly {
            session.watched.push(tube);
        }
        let count = session.watched.len() as u32;
        if newly {
            self.tube_mut(tube).watching_count += 1;
        }
        Ok(Reply::Watching { count })
    }

    fn ignore(&mut self, client: ClientKey, name: &str) -> Result<Reply, FsmError> {
        self.s.counters.cmd_ignore += 1;
        validate_tube_name(name)?;
        let tube = self.s.tube_ids.get(name).copied();
        let session = self.session(client);
        let Some(position) = tube.and_then(|t| session.watched.iter().position(|&w| w == t)) else {
            return Ok(Reply::Watching { count: session.watched.len() as u32 });
        };
        if session.watched.len() == 1 {
            return Err(FsmError::LastWatchedTube);
        }
        let tube = session.watched.remove(position);
        let count = session.watched.len() as u32;
        self.tube_mut(tube).watching_count -= 1;
        self.drop_tube_if_unused(tube);
        Ok(Reply::Watching { count })
    }

    /// Ends a client's session: its wait is dropped, its jobs go back to ready (in id order),
    /// and its tubes are let go.
    fn end_session(&mut self, client: &ClientKey) {
        if !self.s.sessions.contains_key(client) {
            return;
        }
        self.end_wait(client);
        let mut held: Vec<JobId> = self.s.sessions[client].reserved.iter().map(|&(_, id)| id).collect();
        held.sort_unstable();
        for id in held {
            self.unindex(id);
            self.enqueue(id, 0);
        }
        let session = self.s.sessions.remove(client).expect("session exists");
        debug_assert!(session.reserved.is_empty());
        self.tube_mut(session.used).using_count -= 1;
        self.drop_tube_if_unused(session.used);
        for tube in session.watched {
            self.tube_mut(tube).watching_count -= 1;
            self.drop_tube_if_unused(tube);
        }
    }

    fn end_proxy(&mut self, proxy: &str) {
        let clients: Vec<ClientKey> = self.s.client_keys().into_iter().filter(|k| &*k.proxy == proxy).cloned().collect();
        // Every wait ends first, so no job released below goes to a client that is leaving.
        for client in &clients {
            self.end_wait(client);
        }
        for client in clients {
            self.end_session(&client);
        }
    }

    /// Starts, extends or (0 s) cancels a proxy's lease.
    fn lease(&mut self, proxy: String, lease_secs: u32) {
        if let Some(old) = self.s.leases.remove(&proxy) {
            self.s.timers.remove(&Timer { at: old.until, kind: TimerKind::LeaseEnd, key: old.id });
            self.s.lease_proxies.remove(&old.id);
        }
        if lease_secs == 0 {
            return;
        }
        let id = self.s.next_lease_id;
        self.s.next_lease_id += 1;
        let until = self.s.clock + secs_to_ms(lease_secs);
        self.s.timers.insert(Timer { at: until, kind: TimerKind::LeaseEnd, key: id });
        self.s.lease_proxies.insert(id, proxy.clone());
        self.s.leases.insert(proxy, Lease { id, until, secs: lease_secs });
    }

    /// Every lease runs at least its own length from `now` (`Op::NewLeader`).
    fn renew_leases(&mut self, now: Millis) {
        for lease in self.s.leases.values_mut() {
            let until = now + secs_to_ms(lease.secs);
            if until > lease.until {
                self.s.timers.remove(&Timer { at: lease.until, kind: TimerKind::LeaseEnd, key: lease.id });
                self.s.timers.insert(Timer { at: until, kind: TimerKind::LeaseEnd, key: lease.id });
                lease.until = until;
            }
        }
    }

    // ---- timers ----

    fn fire_due_timers(&mut self) {
        while let Some(&timer) = self.s.timers.first() {
            if timer.at > self.s.clock {
                break;
            }
            self.s.timers.pop_first();
            self.fire(timer);
        }
    }

    fn fire(&mut self, timer: Timer) {
        match timer.kind {
            TimerKind::DelayEnd => {
                self.job_mut(timer.key).timer = None;
                self.unindex(timer.key);
                self.enqueue(timer.key, 0);
            }
            TimerKind::PauseEnd => {
                self.tube_mut(timer.key).pause = None;
                self.match_waiters(timer.key);
            }
            TimerKind::TtrEnd => {
                self.job_mut(timer.key).timer = None;
                self.unindex(timer.key);
                self.job_mut(timer.key).timeouts += 1;
                self.s.counters.job_timeouts += 1;
                self.enqueue(timer.key, 0);
            }
            TimerKind::DeadlineSoon => self.deadline_soon(timer.key),
            TimerKind::WaitTimeout => {
                let client = self.s.waits[&timer.key].clone();
                let wait = self.end_wait(&client).expect("timed-out wait exists");
                self.answer(client, wait.request_id, ReserveOutcome::TimedOut);
            }
            TimerKind::LeaseEnd => {
                let proxy = self.s.lease_proxies.remove(&timer.key).expect("lease of a timer exists");
                self.s.leases.remove(&proxy);
                self.end_proxy(&proxy);
            }
        }
    }

    /// A reserved job entered its last second: a waiting holder is answered DEADLINE_SOON, and
    /// the job's next timer is its TTR end.
    fn deadline_soon(&mut self, id: JobId) {
        let job = self.job_mut(id);
        let JobState::Reserved { by, deadline } = job.state.clone() else { unreachable!("deadline-soon timer on a job that is not reserved") };
        let ttr_end = Timer { at: deadline, kind: TimerKind::TtrEnd, key: id };
        job.timer = Some(ttr_end);
        self.s.timers.insert(ttr_end);
        if let Some(wait) = self.end_wait(&by) {
            self.answer(by, wait.request_id, ReserveOutcome::DeadlineSoon);
        }
    }

    // ---- job movement ----

    /// Takes a job out of whatever index its state puts it in, and cancels its timer. The job
    /// keeps its state field until the caller gives it a new one.
    fn unindex(&mut self, id: JobId) {
        let job = self.s.jobs.get_mut(&id).expect("job exists");
        if let Some(timer) = job.timer.take() {
            self.s.timers.remove(&timer);
        }
        let tube = self.s.tubes.get_mut(&job.tube).expect("job's tube exists");
        match &job.state {
            JobState::Ready => {
                tube.ready.remove(&(job.pri, id));
                if job.pri < URGENT_PRI_MAX_EXCLUSIVE {
                    tube.urgent_count -= 1;
                }
            }
            JobState::Delayed { until } => {
                tube.delayed.remove(&(*until, id));
            }
            JobState::Buried { seq } => {
                tube.buried.remove(&(*seq, id));
            }
            JobState::Reserved { by, deadline } => {
                tube.reserved_count -= 1;
                let session = self.s.sessions.get_mut(by).expect("holder has a session");
                session.reserved.remove(&(*deadline, id));
            }
        }
    }

    /// Puts an unindexed job in its tube as delayed (delay > 0) or ready; a ready job goes to
    /// the tube's first waiter, if any.
    fn enqueue(&mut self, id: JobId, delay_secs: u32) {
        let clock = self.s.clock;
        let job = self.s.jobs.get_mut(&id).expect("job exists");
        let tube_id = job.tube;
        let tube = self.s.tubes.get_mut(&tube_id).expect("job's tube exists");
        if delay_secs > 0 {
            self.delay_until(id, clock + secs_to_ms(delay_secs));
            return;
        }
        job.state = JobState::Ready;
        tube.ready.insert((job.pri, id));
        if job.pri < URGENT_PRI_MAX_EXCLUSIVE {
            tube.urgent_count += 1;
        }
        self.match_waiters(tube_id);
    }

    /// Puts an unindexed job in its tube as delayed until `until`, with its timer.
    fn delay_until(&mut self, id: JobId, until: Millis) {
        let job = self.s.jobs.get_mut(&id).expect("job exists");
        job.state = JobState::Delayed { until };
        let timer = Timer { at: until, kind: TimerKind::DelayEnd, key: id };
        job.timer = Some(timer);
        self.s.timers.insert(timer);
        let tube = job.tube;
        self.tube_mut(tube).delayed.insert((until, id));
    }

    fn bury_unindexed(&mut self, id: JobId) {
        let seq = self.s.next_bury_seq;
        self.s.next_bury_seq += 1;
        let job = self.s.jobs.get_mut(&id).expect("job exists");
        job.state = JobState::Buried { seq };
        job.buries += 1;
        let tube = job.tube;
        self.tube_mut(tube).buried.insert((seq, id));
    }

    fn kick_unchecked(&mut self, id: JobId) {
        self.unindex(id);
        self.job_mut(id).kicks += 1;
        self.enqueue(id, 0);
    }

    /// Reserves an unindexed job for `client` with a fresh TTR, and answers its body.
    fn reserve_for(&mut self, client: &ClientKey, id: JobId) -> Bytes {
        let clock = self.s.clock;
        let job = self.s.jobs.get_mut(&id).expect("job exists");
        let deadline = clock + job.ttr_ms();
        if !matches!(job.state, JobState::Reserved { .. }) {
            job.reserves += 1;
        }
        job.state = JobState::Reserved { by: client.clone(), deadline };
        let timer = Timer { at: deadline - DEADLINE_SOON_MARGIN_MS, kind: TimerKind::DeadlineSoon, key: id };
        job.timer = Some(timer);
        self.s.timers.insert(timer);
        let body = job.body.clone();
        let tube = job.tube;
        self.tube_mut(tube).reserved_count += 1;
        let session = self.s.sessions.get_mut(client).expect("holder has a session");
        session.reserved.insert((deadline, id));
        body
    }

    /// Reserves a ready job for a client's reserve and answers it.
    fn give_job(&mut self, client: &ClientKey, request_id: String, id: JobId) {
        self.unindex(id);
        let body = self.reserve_for(client, id);
        self.answer(client.clone(), request_id, ReserveOutcome::Reserved { id, body });
    }

    /// While the tube is unpaused and has both, hands its best ready job to its first waiter.
    fn match_waiters(&mut self, tube: TubeId) {
        loop {
            let t = &self.s.tubes[&tube];
            if t.pause.is_some() {
                return;
            }
            let (Some(&seq), Some(&(_, id))) = (t.waiters.first(), t.ready.first()) else {
                return;
            };
            let client = self.s.waits[&seq].clone();
            let wait = self.end_wait(&client).expect("first waiter waits");
            self.give_job(&client, wait.request_id, id);
            if mutant::planted(Mutant::JobToTwoWaiters) {
                self.give_to_second_waiter(tube, id);
            }
        }
    }

    /// The planted bug: the next waiter is told it has the job too.
    fn give_to_second_waiter(&mut self, tube: TubeId, id: JobId) {
        let Some(&seq) = self.s.tubes[&tube].waiters.first() else { return };
        let client = self.s.waits[&seq].clone();
        let wait = self.end_wait(&client).expect("waiter waits");
        let body = self.s.jobs[&id].body.clone();
        self.answer(client, wait.request_id, ReserveOutcome::Reserved { id, body });
    }

    // ---- waits ----

    fn start_wait(&mut self, client: ClientKey, request_id: String, tubes: Vec<TubeId>, timeout_secs: Option<u32>) {
        let seq = self.s.next_wait_seq;
        self.s.next_wait_seq += 1;
        let deadline = timeout_secs.map(|secs| self.s.clock + secs_to_ms(secs));
        for tube in &tubes {
            self.tube_mut(*tube).waiters.insert(seq);
        }
        if let Some(at) = deadline {
            self.s.timers.insert(Timer { at, kind: TimerKind::WaitTimeout, key: seq });
        }
        self.s.waits.insert(seq, client.clone());
        let session = self.s.sessions.get_mut(&client).expect("waiter has a session");
        session.wait = Some(Wait { seq, request_id, tubes, deadline });
    }

    /// Drops a client's wait, if it has one, from its tubes and the timers.
    fn end_wait(&mut self, client: &ClientKey) -> Option<Wait> {
        let wait = self.s.sessions.get_mut(client)?.wait.take()?;
        self.s.waits.remove(&wait.seq);
        if let Some(at) = wait.deadline {
            self.s.timers.remove(&Timer { at, kind: TimerKind::WaitTimeout, key: wait.seq });
        }
        for &tube in &wait.tubes {
            self.tube_mut(tube).waiters.remove(&wait.seq);
            self.drop_tube_if_unused(tube);
        }
        Some(wait)
    }

    fn answer(&mut self, client: ClientKey, request_id: String, outcome: ReserveOutcome) {
        if let Some(session) = self.s.sessions.get_mut(&client) {
            let outcome = match &outcome {
                ReserveOutcome::Reserved { id, .. } => AnsweredOutcome::Reserved(*id),
                ReserveOutcome::TimedOut => AnsweredOutcome::TimedOut,
                ReserveOutcome::DeadlineSoon => AnsweredOutcome::DeadlineSoon,
            };
            session.answered = Some(Answered { request_id: request_id.clone(), outcome });
        }
        self.events.push(ReservationEvent { client, request_id, outcome });
    }

    /// A reserve asked again with the request id of the client's wait or of its last answer
    /// (its proxy lost the answer): it keeps waiting, or gets the same answer once more,
    /// even if the job has since left the client (its TTR ran out while the answer was lost):
    /// the reservation took place when first answered. `None` when it is a new request, or
    /// when the job it was given is gone (then it is served afresh).
    fn ask_again(&mut self, client: &ClientKey, request_id: &str) -> Option<Reply> {
        let session = self.s.sessions.get(client)?;
        if session.wait.as_ref().is_some_and(|w| w.request_id == request_id) {
            return Some(Reply::Reserve(None));
        }
        let answered = session.answered.as_ref().filter(|a| a.request_id == request_id)?;
        let outcome = match answered.outcome {
            AnsweredOutcome::Reserved(id) => {
                let job = self.s.jobs.get(&id)?;
                ReserveOutcome::Reserved { id, body: job.body.clone() }
            }
            AnsweredOutcome::TimedOut => ReserveOutcome::TimedOut,
            AnsweredOutcome::DeadlineSoon => ReserveOutcome::DeadlineSoon,
        };
        self.answer(client.clone(), request_id.to_string(), outcome);
        Some(Reply::Reserve(None))
    }

    // ---- lookups ----

    fn job_mut(&mut self, id: JobId) -> &mut Job {
        self.s.jobs.get_mut(&id).expect("job exists")
    }

    fn tube_mut(&mut self, tube: TubeId) -> &mut super::index::Tube {
        self.s.tubes.get_mut(&tube).expect("tube exists")
    }

    /// The job must be reserved by `client`.
    fn check_holder(&self, client: &ClientKey, id: JobId) -> Result<(), FsmError> {
        let job = self.s.jobs.get(&id).ok_or(FsmError::NotFound)?;
        match &job.state {
            JobState::Reserved { by, .. } if by == client => Ok(()),
            JobState::Reserved { .. } => Err(FsmError::NotYours),
            _ => Err(FsmError::WrongState),
        }
    }

    /// The client's session, started (using and watching `default`) if it has none.
    fn session(&mut self, client: ClientKey) -> &mut Session {
        if !self.s.sessions.contains_key(&client) {
            let default = self.tube_or_create(DEFAULT_TUBE);
            let tube = self.tube_mut(default);
            tube.using_count += 1;
            tube.watching_count += 1;
            let session = Session {
                used: default,
                watched: vec![default],
                reserved: Default::default(),
                wait: None,
                producer: false,
                worker: false,
                answered: None,
            };
            self.s.sessions.insert(client.clone(), session);
        }
        self.s.sessions.get_mut(&client).expect("session exists")
    }

    pub(crate) fn tube_or_create(&mut self, name: &str) -> TubeId {
        if let Some(&id) = self.s.tube_ids.get(name) {
            return id;
        }
        let id = self.s.next_tube_id;
        self.s.next_tube_id += 1;
        let name: Arc<str> = name.into();
        self.s.tube_ids.insert(name.clone(), id);
        self.s.tubes.insert(id, super::index::Tube::new(name));
        id
    }

    /// Tube ids for names, created as needed, duplicates dropped, order kept.
    fn tubes_or_create(&mut self, names: &[String]) -> Vec<TubeId> {
        let mut ids = Vec::with_capacity(names.len());
        for name in names {
            let id = self.tube_or_create(name);
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    fn unpause(&mut self, tube: TubeId) {
        if let Some(pause) = self.tube_mut(tube).pause.take() {
            self.s.timers.remove(&Timer { at: pause.until, kind: TimerKind::PauseEnd, key: tube });
        }
    }

    fn drop_tube_if_unused(&mut self, tube: TubeId) {
        let t = &self.s.tubes[&tube];
        if !t.is_unused() || &*t.name == DEFAULT_TUBE {
            return;
        }
        self.unpause(tube);
        let t = self.s.tubes.remove(&tube).expect("tube exists");
        self.s.tube_ids.remove(&t.name);
    }
}
