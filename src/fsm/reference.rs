//! A naive reference model of the job state machine, for the property tests only.
//!
//! It restates the rules written in `mod.rs` as plainly as possible, and shares no code with
//! the real machine beyond the vocabulary in `types.rs` and the tube-name rule: jobs live in
//! one map, every question is a linear scan, there are no indexes, no counts kept in step and
//! no timer queue (the pending timers are recomputed from the state whenever they are needed).
//! It is slow on purpose: its one job is to be obviously right, so that the indexed machine
//! can be checked against it.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::types::{Applied, ClientKey, FsmError, JobId, JobState, JobView, Millis, Op, Reply, ReservationEvent, ReserveOutcome};
use super::validate_tube_name;

/// The tube every session starts with; it always exists.
const DEFAULT_TUBE: &str = "default";

/// A reserved job's DEADLINE_SOON window, before its TTR runs out.
const SOON_MARGIN_MS: Millis = 1000;

/// Ready jobs with a priority below this are "urgent" in the stats.
const URGENT_BELOW: u32 = 1024;

fn secs_to_ms(secs: u32) -> Millis {
    Millis::from(secs) * 1000
}

/// What a timer does. The variant order is the firing order among timers due at the same
/// millisecond, as the contract fixes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    /// Key: job id.
    DelayEnd,
    /// Key: the tube's creation sequence.
    PauseEnd,
    /// Key: job id.
    TtrEnd,
    /// Key: job id.
    DeadlineSoon,
    /// Key: the wait's sequence.
    WaitTimeout,
    /// Key: the lease's id.
    LeaseEnd,
}

/// A timer the state calls for. Field order gives the (at, kind, key) firing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PendingTimer {
    at: Millis,
    kind: TimerKind,
    key: u64,
}

/// One job, with the per-job flag the contract uses to pick its reserved-state timer.
#[derive(Clone, Debug)]
struct ModelJob {
    id: JobId,
    tube: String,
    pri: u32,
    state: JobState,
    /// Whether the deadline-soon timer of the current reservation has fired; reset whenever
    /// the job is reserved or touched.
    soon_fired: bool,
    delay_secs: u32,
    ttr_secs: u32,
    created_ms: Millis,
    body: Bytes,
    reserves: u32,
    timeouts: u32,
    releases: u32,
    buries: u32,
    kicks: u32,
}

impl ModelJob {
    fn is_ready(&self) -> bool {
        self.state == JobState::Ready
    }

    fn holder(&self) -> Option<&ClientKey> {
        match &self.state {
            JobState::Reserved { by, .. } => Some(by),
            _ => None,
        }
    }

    fn view(&self) -> JobView {
        JobView {
            id: self.id,
            tube: self.tube.clone(),
            pri: self.pri,
            state: self.state.clone(),
            delay_secs: self.delay_secs,
            ttr_secs: self.ttr_secs,
            created_ms: self.created_ms,
            body: self.body.clone(),
            reserves: self.reserves,
            timeouts: self.timeouts,
            releases: self.releases,
            buries: self.buries,
            kicks: self.kicks,
        }
    }
}

/// A pause in force: `secs` as given, ending at `until`.
#[derive(Clone, Copy, Debug)]
struct ModelPause {
    secs: u32,
    until: Millis,
}

/// A tube's own facts. Everything else about a tube (its jobs, users, watchers, waiters) is
/// found by scanning jobs and sessions.
#[derive(Clone, Debug)]
struct ModelTube {
    name: String,
    /// Creation sequence: `default` is 0, each new tube the next number, never reused.
    seq: u64,
    pause: Option<ModelPause>,
    total_jobs: u64,
    cmd_delete: u64,
    cmd_pause_tube: u64,
}

/// A waiting reserve.
#[derive(Clone, Debug)]
struct ModelWait {
    seq: u64,
    request_id: String,
    /// The tubes waited on, duplicates removed, in the order given.
    tubes: Vec<String>,
    deadline: Option<Millis>,
}

/// A client's session. The jobs it holds are found by scanning the jobs.
#[derive(Clone, Debug)]
struct ModelSession {
    used: String,
    watched: Vec<String>,
    wait: Option<ModelWait>,
    producer: bool,
    worker: bool,
    /// The last reservation answered: its request id and outcome (bodies left out).
    answered: Option<(String, ReserveOutcome)>,
}

impl ModelSession {
    fn new() -> Self {
        ModelSession {
            used: DEFAULT_TUBE.to_string(),
            watched: vec![DEFAULT_TUBE.to_string()],
            wait: None,
            producer: false,
            worker: false,
            answered: None,
        }
    }
}

/// The global command counters, named as `stats` names them.
#[derive(Clone, Debug, Default)]
struct ModelCounters {
    cmd_put: u64,
    cmd_reserve: u64,
    cmd_reserve_with_timeout: u64,
    cmd_reserve_job: u64,
    cmd_delete: u64,
    cmd_release: u64,
    cmd_use: u64,
    cmd_watch: u64,
    cmd_ignore: u64,
    cmd_bury: u64,
    cmd_kick: u64,
    cmd_touch: u64,
    cmd_pause_tube: u64,
    job_timeouts: u64,
    total_jobs: u64,
}

/// The reference model. See the module documentation.
#[derive(Clone, Debug)]
pub(crate) struct Model {
    clock: Millis,
    next_job_id: JobId,
    next_bury_seq: u64,
    next_wait_seq: u64,
    next_tube_seq: u64,
    jobs: BTreeMap<JobId, ModelJob>,
    /// Existing tubes, in creation order (new tubes are pushed, dead ones removed in place).
    tubes: Vec<ModelTube>,
    sessions: BTreeMap<ClientKey, ModelSession>,
    counters: ModelCounters,
    /// Proxy leases: proxy id → (lease id, end, length in s); ids count from 1, one per
    /// lease granted.
    leases: BTreeMap<String, (u64, Millis, u32)>,
    next_lease_id: u64,
    /// Reservations answered during the current apply, in order.
    events: Vec<ReservationEvent>,
}

impl Model {
    /// An empty model at time 0 holding only the `default` tube.
    pub(crate) fn new() -> Self {
        let mut model = Model {
            clock: 0,
            next_job_id: 1,
            next_bury_seq: 1,
            next_wait_seq: 1,
            next_tube_seq: 0,
            jobs: BTreeMap::new(),
            tubes: Vec::new(),
            sessions: BTreeMap::new(),
            counters: ModelCounters::default(),
            leases: BTreeMap::new(),
            next_lease_id: 1,
            events: Vec::new(),
        };
        model.ensure_tube(DEFAULT_TUBE);
        model
    }

    // ---- apply ----

    /// Applies one operation at `now_ms`: clock, due timers, the op, due timers again; a new
    /// leader renews the leases before anything else.
    pub(crate) fn apply(&mut self, op: Op, now_ms: Millis) -> Applied {
        self.events.clear();
        if op == Op::NewLeader {
            let now = self.clock.max(now_ms);
            for (_, until, secs) in self.leases.values_mut() {
                *until = (*until).max(now + secs_to_ms(*secs));
            }
        }
        self.clock = self.clock.max(now_ms);
        self.fire_due_timers();
        let request = match &op {
            Op::Reserve { client, request_id, .. } => Some((client.clone(), request_id.clone())),
            _ => None,
        };
        let mut reply = self.execute(op);
        self.fire_due_timers();
        if let (Ok(Reply::Reserve(outcome)), Some((client, request_id))) = (&mut reply, request) {
            // The contract: the reserve's reply carries the outcome of an event for this
            // (client, request id) emitted anywhere in this apply, the first if several.
            *outcome = self.events.iter().find(|e| e.client == client && e.request_id == request_id).map(|e| e.outcome.clone());
        }
        Applied { reply, events: std::mem::take(&mut self.events) }
    }

    fn execute(&mut self, op: Op) -> Result<Reply, FsmError> {
        match op {
            Op::Put { client, tube, pri, delay_secs, ttr_secs, body } => self.put(client, &tube, pri, delay_secs, ttr_secs, body),
            Op::Reserve { client, request_id, timeout_secs, tubes } => self.reserve(&client, request_id, timeout_secs, &tubes),
            Op::ReserveJob { client, id } => self.reserve_job(&client, id),
            Op::Delete { client, id } => self.delete(client.as_ref(), id),
            Op::Release { client, id, pri, delay_secs } => self.release(&client, id, pri, delay_secs),
            Op::Bury { client, id, pri } => self.bury(&client, id, pri),
            Op::Touch { client, id } => self.touch(&client, id),
            Op::Kick { tube, bound } => self.kick(&tube, bound),
            Op::KickJob { id } => self.kick_job(id),
            Op::MoveJob { id, tube } => self.move_job(id, &tube),
            Op::PauseTube { tube, delay_secs } => self.pause_tube(&tube, delay_secs),
            Op::Use { client, tube } => self.use_tube(&client, &tube),
            Op::Watch { client, tube } => self.watch(&client, &tube),
            Op::Ignore { client, tube } => self.ignore(&client, &tube),
            Op::ClientGone { client } => {
                self.client_gone(&client);
                Ok(Reply::Done)
            }
            Op::ProxyGone { proxy } => {
                self.proxy_gone(&proxy);
                Ok(Reply::Done)
            }
            Op::ClientHello { client } => {
                self.session(&client);
                Ok(Reply::Done)
            }
            Op::DiscardPut { client } => {
                self.counters.cmd_put += 1;
                self.session(&client).producer = true;
                self.next_job_id += 1;
                Ok(Reply::Done)
            }
            Op::ProxyLease { proxy, lease_secs } => {
                let was_live = self.leases.remove(&proxy).is_some();
                if lease_secs > 0 {
                    self.leases.insert(proxy, (self.next_lease_id, self.clock + secs_to_ms(lease_secs), lease_secs));
                    self.next_lease_id += 1;
                }
                Ok(Reply::Lease { was_live })
            }
            Op::Tick | Op::NewLeader => Ok(Reply::Done),
        }
    }

    // ---- operations ----

    fn put(&mut self, client: Option<ClientKey>, tube: &str, pri: u32, delay_secs: u32, ttr_secs: u32, body: Bytes) -> Result<Reply, FsmError> {
        self.counters.cmd_put += 1;
        validate_tube_name(tube)?;
        if let Some(client) = &client {
            self.session(client).producer = true;
        }
        self.ensure_tube(tube);
        let id = self.next_job_id;
        self.next_job_id += 1;
        self.tube_mut(tube).total_jobs += 1;
        self.counters.total_jobs += 1;
        let job = ModelJob {
            id,
            tube: tube.to_string(),
            pri,
            state: JobState::Ready,
            soon_fired: false,
            delay_secs,
            ttr_secs: ttr_secs.max(1),
            created_ms: self.clock,
            body,
            reserves: 0,
            timeouts: 0,
            releases: 0,
            buries: 0,
            kicks: 0,
        };
        self.jobs.insert(id, job);
        self.ready_or_delay(id, delay_secs);
        Ok(Reply::Put { id })
    }

    fn reserve(&mut self, client: &ClientKey, request_id: String, timeout_secs: Option<u32>, names: &[String]) -> Result<Reply, FsmError> {
        if let Some(reply) = self.ask_again(client, &request_id) {
            return Ok(reply);
        }
        match timeout_secs {
            None => self.counters.cmd_reserve += 1,
            Some(_) => self.counters.cmd_reserve_with_timeout += 1,
        }
        for name in names {
            validate_tube_name(name)?;
        }
        self.end_wait(client);
        self.session(client).worker = true;
        let tubes = if names.is_empty() {
            self.session(client).watched.clone()
        } else {
            self.create_tubes(names)
        };
        if let Some(id) = self.best_ready_in(&tubes) {
            self.give(client, request_id, id);
        } else if self.holds_job_due_soon(client) {
            self.answer(client, request_id, ReserveOutcome::DeadlineSoon);
        } else {
            self.start_wait(client, request_id, tubes, timeout_secs);
        }
        self.drop_dead_tubes();
        Ok(Reply::Reserve(None))
    }

    fn reserve_job(&mut self, client: &ClientKey, id: JobId) -> Result<Reply, FsmError> {
        self.counters.cmd_reserve_job += 1;
        let job = self.jobs.get(&id).ok_or(FsmError::NotFound)?;
        if job.holder().is_some() {
            return Err(FsmError::WrongState);
        }
        self.session(client).worker = true;
        let body = self.reserve_for(client, id);
        Ok(Reply::ReservedJob { id, body })
    }

    fn delete(&mut self, client: Option<&ClientKey>, id: JobId) -> Result<Reply, FsmError> {
        self.counters.cmd_delete += 1;
        let job = self.jobs.get(&id).ok_or(FsmError::NotFound)?;
        if let Some(holder) = job.holder() {
            if client != Some(holder) {
                return Err(FsmError::NotYours);
            }
        }
        let job = self.jobs.remove(&id).expect("the job was just found");
        self.tube_mut(&job.tube).cmd_delete += 1;
        self.drop_dead_tubes();
        Ok(Reply::Done)
    }

    fn move_job(&mut self, id: JobId, tube: &str) -> Result<Reply, FsmError> {
        validate_tube_name(tube)?;
        let job = self.jobs.get(&id).ok_or(FsmError::NotFound)?;
        if job.holder().is_some() {
            return Err(FsmError::WrongState);
        }
        self.ensure_tube(tube);
        self.job_mut(id).tube = tube.to_string();
        self.process_queue();
        self.drop_dead_tubes();
        Ok(Reply::Done)
    }

    fn release(&mut self, client: &ClientKey, id: JobId, pri: u32, delay_secs: u32) -> Result<Reply, FsmError> {
        self.counters.cmd_release += 1;
        self.check_holder(client, id)?;
        let job = self.job_mut(id);
        job.pri = pri;
        job.delay_secs = delay_secs;
        job.releases += 1;
        self.ready_or_delay(id, delay_secs);
        Ok(Reply::Done)
    }

    fn bury(&mut self, client: &ClientKey, id: JobId, pri: u32) -> Result<Reply, FsmError> {
        self.counters.cmd_bury += 1;
        self.check_holder(client, id)?;
        let seq = self.next_bury_seq;
        self.next_bury_seq += 1;
        let job = self.job_mut(id);
        job.pri = pri;
        job.buries += 1;
        job.state = JobState::Buried { seq };
        Ok(Reply::Done)
    }

    fn touch(&mut self, client: &ClientKey, id: JobId) -> Result<Reply, FsmError> {
        self.counters.cmd_touch += 1;
        self.check_holder(client, id)?;
        let deadline = self.clock + secs_to_ms(self.jobs[&id].ttr_secs);
        let job = self.job_mut(id);
        job.state = JobState::Reserved { by: client.clone(), deadline };
        job.soon_fired = false;
        Ok(Reply::Done)
    }

    fn kick(&mut self, tube: &str, bound: u32) -> Result<Reply, FsmError> {
        self.counters.cmd_kick += 1;
        validate_tube_name(tube)?;
        if self.tube(tube).is_none() {
            return Ok(Reply::Kicked { count: 0 });
        }
        let mut buried: Vec<(u64, JobId)> = Vec::new();
        let mut delayed: Vec<(Millis, JobId)> = Vec::new();
        for job in self.jobs.values().filter(|j| j.tube == tube) {
            match job.state {
                JobState::Buried { seq } => buried.push((seq, job.id)),
                JobState::Delayed { until } => delayed.push((until, job.id)),
                _ => {}
            }
        }
        buried.sort_unstable();
        delayed.sort_unstable();
        let chosen: Vec<JobId> = if buried.is_empty() {
            delayed.iter().map(|&(_, id)| id).collect()
        } else {
            buried.iter().map(|&(_, id)| id).collect()
        };
        let mut count = 0;
        for id in chosen.into_iter().take(bound as usize) {
            self.kick_one(id);
            count += 1;
        }
        Ok(Reply::Kicked { count })
    }

    fn kick_job(&mut self, id: JobId) -> Result<Reply, FsmError> {
        let job = self.jobs.get(&id).ok_or(FsmError::NotFound)?;
        if !matches!(job.state, JobState::Buried { .. } | JobState::Delayed { .. }) {
            return Err(FsmError::WrongState);
        }
        self.kick_one(id);
        Ok(Reply::Done)
    }

    fn pause_tube(&mut self, tube: &str, delay_secs: u32) -> Result<Reply, FsmError> {
        self.counters.cmd_pause_tube += 1;
        validate_tube_name(tube)?;
        if self.tube(tube).is_none() {
            return Err(FsmError::NotFound);
        }
        let clock = self.clock;
        let t = self.tube_mut(tube);
        t.cmd_pause_tube += 1;
        if delay_secs == 0 {
            t.pause = None;
            self.process_queue();
        } else {
            t.pause = Some(ModelPause { secs: delay_secs, until: clock + secs_to_ms(delay_secs) });
        }
        Ok(Reply::Done)
    }

    fn use_tube(&mut self, client: &ClientKey, tube: &str) -> Result<Reply, FsmError> {
        self.counters.cmd_use += 1;
        validate_tube_name(tube)?;
        self.session(client);
        self.ensure_tube(tube);
        self.session(client).used = tube.to_string();
        self.drop_dead_tubes();
        Ok(Reply::Done)
    }

    fn watch(&mut self, client: &ClientKey, tube: &str) -> Result<Reply, FsmError> {
        self.counters.cmd_watch += 1;
        validate_tube_name(tube)?;
        self.session(client);
        self.ensure_tube(tube);
        let session = self.session(client);
        if !session.watched.iter().any(|w| w == tube) {
            session.watched.push(tube.to_string());
        }
        Ok(Reply::Watching { count: session.watched.len() as u32 })
    }

    fn ignore(&mut self, client: &ClientKey, tube: &str) -> Result<Reply, FsmError> {
        self.counters.cmd_ignore += 1;
        validate_tube_name(tube)?;
        let session = self.session(client);
        if session.watched.iter().any(|w| w == tube) {
            if session.watched.len() == 1 {
                return Err(FsmError::LastWatchedTube);
            }
            session.watched.retain(|w| w != tube);
        }
        let count = session.watched.len() as u32;
        self.drop_dead_tubes();
        Ok(Reply::Watching { count })
    }

    /// Ends a session: the wait is dropped without an answer, held jobs go back to ready in
    /// id order (each offered to waiters at once), then the session and its tubes go.
    fn client_gone(&mut self, client: &ClientKey) {
        if !self.sessions.contains_key(client) {
            return;
        }
        self.end_wait(client);
        let held: Vec<JobId> = self.jobs.values().filter(|j| j.holder() == Some(client)).map(|j| j.id).collect();
        for id in held {
            self.make_ready(id);
        }
        self.sessions.remove(client);
        self.drop_dead_tubes();
    }

    /// Every wait of the proxy's clients ends, then each client is gone, in client order.
    fn proxy_gone(&mut self, proxy: &str) {
        let clients: Vec<ClientKey> = self.sessions.keys().filter(|k| *k.proxy == *proxy).cloned().collect();
        for client in &clients {
            self.end_wait(client);
        }
        for client in clients {
            self.client_gone(&client);
        }
    }

    // ---- timers ----

    /// Every timer the state calls for, recomputed from scratch.
    fn pending_timers(&self) -> Vec<PendingTimer> {
        let mut timers = Vec::new();
        for job in self.jobs.values() {
            match &job.state {
                JobState::Delayed { until } => timers.push(PendingTimer { at: *until, kind: TimerKind::DelayEnd, key: job.id }),
                JobState::Reserved { deadline, .. } if job.soon_fired => {
                    timers.push(PendingTimer { at: *deadline, kind: TimerKind::TtrEnd, key: job.id })
                }
                JobState::Reserved { deadline, .. } => {
                    timers.push(PendingTimer { at: deadline - SOON_MARGIN_MS, kind: TimerKind::DeadlineSoon, key: job.id })
                }
                JobState::Ready | JobState::Buried { .. } => {}
            }
        }
        for tube in &self.tubes {
            if let Some(pause) = tube.pause {
                timers.push(PendingTimer { at: pause.until, kind: TimerKind::PauseEnd, key: tube.seq });
            }
        }
        for wait in self.sessions.values().filter_map(|s| s.wait.as_ref()) {
            if let Some(at) = wait.deadline {
                timers.push(PendingTimer { at, kind: TimerKind::WaitTimeout, key: wait.seq });
            }
        }
        for &(id, at, _) in self.leases.values() {
            timers.push(PendingTimer { at, kind: TimerKind::LeaseEnd, key: id });
        }
        timers
    }

    /// Fires due timers one at a time, smallest first, until none is due: firing one may
    /// call for another (deadline-soon calls for TTR end).
    fn fire_due_timers(&mut self) {
        while let Some(timer) = self.pending_timers().into_iter().min() {
            if timer.at > self.clock {
                return;
            }
            self.fire(timer);
        }
    }

    fn fire(&mut self, timer: PendingTimer) {
        match timer.kind {
            TimerKind::DelayEnd => self.make_ready(timer.key),
            TimerKind::PauseEnd => {
                let tube = self.tubes.iter_mut().find(|t| t.seq == timer.key).expect("a paused tube exists");
                tube.pause = None;
                self.process_queue();
            }
            TimerKind::TtrEnd => {
                self.job_mut(timer.key).timeouts += 1;
                self.counters.job_timeouts += 1;
                self.make_ready(timer.key);
            }
            TimerKind::DeadlineSoon => {
                let job = self.job_mut(timer.key);
                job.soon_fired = true;
                let holder = job.holder().expect("a deadline-soon timer belongs to a reserved job").clone();
                if let Some(wait) = self.end_wait(&holder) {
                    self.answer(&holder, wait.request_id, ReserveOutcome::DeadlineSoon);
                }
            }
            TimerKind::WaitTimeout => {
                let client = self
                    .sessions
                    .iter()
                    .find(|(_, s)| s.wait.as_ref().is_some_and(|w| w.seq == timer.key))
                    .map(|(k, _)| k.clone())
                    .expect("a wait timer belongs to a waiting client");
                let wait = self.end_wait(&client).expect("the client waits");
                self.answer(&client, wait.request_id, ReserveOutcome::TimedOut);
            }
            TimerKind::LeaseEnd => {
                let proxy =
                    self.leases.iter().find(|(_, (id, _, _))| *id == timer.key).map(|(p, _)| p.clone()).expect("a lease timer belongs to a lease");
                self.leases.remove(&proxy);
                self.proxy_gone(&proxy);
            }
        }
    }

    // ---- matching ----

    /// beanstalkd's "process queue": while some unpaused tube has both a waiter and a ready
    /// job, the best ready job across all such tubes goes to its tube's earliest waiter.
    fn process_queue(&mut self) {
        loop {
            let best = self
                .jobs
                .values()
                .filter(|j| j.is_ready() && !self.is_paused(&j.tube) && self.first_waiter(&j.tube).is_some())
                .min_by_key(|j| (j.pri, j.id))
                .map(|j| (j.id, j.tube.clone()));
            let Some((id, tube)) = best else { return };
            let client = self.first_waiter(&tube).expect("the tube has a waiter");
            let wait = self.end_wait(&client).expect("the first waiter waits");
            self.give(&client, wait.request_id, id);
        }
    }

    /// The client of the wait with the smallest sequence among those that include `tube`.
    fn first_waiter(&self, tube: &str) -> Option<ClientKey> {
        self.sessions
            .iter()
            .filter_map(|(k, s)| s.wait.as_ref().map(|w| (w, k)))
            .filter(|(w, _)| w.tubes.iter().any(|t| t == tube))
            .min_by_key(|(w, _)| w.seq)
            .map(|(_, k)| k.clone())
    }

    /// The ready job with the smallest (priority, id) among the unpaused `tubes`.
    fn best_ready_in(&self, tubes: &[String]) -> Option<JobId> {
        self.jobs.values().filter(|j| j.is_ready() && tubes.contains(&j.tube) && !self.is_paused(&j.tube)).min_by_key(|j| (j.pri, j.id)).map(|j| j.id)
    }

    /// Whether `client` holds a job whose TTR runs out within the DEADLINE_SOON margin.
    fn holds_job_due_soon(&self, client: &ClientKey) -> bool {
        self.jobs.values().any(|j| match &j.state {
            JobState::Reserved { by, deadline } => by == client && self.clock + SOON_MARGIN_MS >= *deadline,
            _ => false,
        })
    }

    // ---- job movement ----

    /// A job goes to ready and is offered to waiters.
    fn make_ready(&mut self, id: JobId) {
        self.job_mut(id).state = JobState::Ready;
        self.process_queue();
    }

    fn ready_or_delay(&mut self, id: JobId, delay_secs: u32) {
        if delay_secs > 0 {
            let until = self.clock + secs_to_ms(delay_secs);
            self.job_mut(id).state = JobState::Delayed { until };
        } else {
            self.make_ready(id);
        }
    }

    fn kick_one(&mut self, id: JobId) {
        self.job_mut(id).kicks += 1;
        self.make_ready(id);
    }

    /// Reserves a job (not reserved now) for `client` with a fresh TTR; returns its body.
    fn reserve_for(&mut self, client: &ClientKey, id: JobId) -> Bytes {
        let clock = self.clock;
        let job = self.job_mut(id);
        job.state = JobState::Reserved { by: client.clone(), deadline: clock + secs_to_ms(job.ttr_secs) };
        job.reserves += 1;
        job.soon_fired = false;
        job.body.clone()
    }

    /// Hands a ready job to a reserve (whose wait, if any, has already ended) and answers it.
    fn give(&mut self, client: &ClientKey, request_id: String, id: JobId) {
        let body = self.reserve_for(client, id);
        self.session(client).worker = true;
        self.answer(client, request_id, ReserveOutcome::Reserved { id, body });
    }

    fn check_holder(&self, client: &ClientKey, id: JobId) -> Result<(), FsmError> {
        let job = self.jobs.get(&id).ok_or(FsmError::NotFound)?;
        match job.holder() {
            Some(by) if by == client => Ok(()),
            Some(_) => Err(FsmError::NotYours),
            None => Err(FsmError::WrongState),
        }
    }

    // ---- waits and sessions ----

    fn start_wait(&mut self, client: &ClientKey, request_id: String, tubes: Vec<String>, timeout_secs: Option<u32>) {
        let seq = self.next_wait_seq;
        self.next_wait_seq += 1;
        let deadline = timeout_secs.map(|secs| self.clock + secs_to_ms(secs));
        self.session(client).wait = Some(ModelWait { seq, request_id, tubes, deadline });
    }

    /// Ends a client's wait without answering it; tubes it alone kept go at once.
    fn end_wait(&mut self, client: &ClientKey) -> Option<ModelWait> {
        let wait = self.sessions.get_mut(client)?.wait.take()?;
        self.drop_dead_tubes();
        Some(wait)
    }

    fn answer(&mut self, client: &ClientKey, request_id: String, outcome: ReserveOutcome) {
        if let Some(session) = self.sessions.get_mut(client) {
            let kept = match &outcome {
                ReserveOutcome::Reserved { id, .. } => ReserveOutcome::Reserved { id: *id, body: Bytes::new() },
                other => other.clone(),
            };
            session.answered = Some((request_id.clone(), kept));
        }
        self.events.push(ReservationEvent { client: client.clone(), request_id, outcome });
    }

    /// The same request asked again: still waiting, or its answer once more (a job only
    /// while it exists, whoever holds it).
    fn ask_again(&mut self, client: &ClientKey, request_id: &str) -> Option<Reply> {
        let session = self.sessions.get(client)?;
        if session.wait.as_ref().is_some_and(|w| w.request_id == request_id) {
            return Some(Reply::Reserve(None));
        }
        let (answered_id, outcome) = session.answered.clone()?;
        if answered_id != request_id {
            return None;
        }
        let outcome = match outcome {
            ReserveOutcome::Reserved { id, .. } => {
                let job = self.jobs.get(&id)?;
                ReserveOutcome::Reserved { id, body: job.body.clone() }
            }
            other => other,
        };
        self.answer(client, request_id.to_string(), outcome);
        Some(Reply::Reserve(None))
    }

    /// The client's session, started (using and watching `default`) if it has none.
    fn session(&mut self, client: &ClientKey) -> &mut ModelSession {
        self.sessions.entry(client.clone()).or_insert_with(ModelSession::new)
    }

    // ---- tubes ----

    fn tube(&self, name: &str) -> Option<&ModelTube> {
        self.tubes.iter().find(|t| t.name == name)
    }

    fn tube_mut(&mut self, name: &str) -> &mut ModelTube {
        self.tubes.iter_mut().find(|t| t.name == name).expect("the tube exists")
    }

    fn is_paused(&self, name: &str) -> bool {
        self.tube(name).is_some_and(|t| t.pause.is_some())
    }

    /// Creates the tube with the next creation sequence, unless it exists.
    fn ensure_tube(&mut self, name: &str) {
        if self.tube(name).is_none() {
            let seq = self.next_tube_seq;
            self.next_tube_seq += 1;
            let tube = ModelTube { name: name.to_string(), seq, pause: None, total_jobs: 0, cmd_delete: 0, cmd_pause_tube: 0 };
            self.tubes.push(tube);
        }
    }

    /// Creates the named tubes in order; returns them with duplicates dropped, order kept.
    fn create_tubes(&mut self, names: &[String]) -> Vec<String> {
        let mut tubes: Vec<String> = Vec::new();
        for name in names {
            self.ensure_tube(name);
            if !tubes.contains(name) {
                tubes.push(name.clone());
            }
        }
        tubes
    }

    /// Whether anything keeps the tube alive: its name, a job, a user, a watcher, a waiter.
    fn keeps_tube(&self, name: &str) -> bool {
        name == DEFAULT_TUBE
            || self.jobs.values().any(|j| j.tube == name)
            || self
                .sessions
                .values()
                .any(|s| s.used == name || s.watched.iter().any(|w| w == name) || s.wait.as_ref().is_some_and(|w| w.tubes.iter().any(|t| t == name)))
    }

    /// Removes every tube nothing keeps alive (with its pause and counters).
    fn drop_dead_tubes(&mut self) {
        let dead: Vec<String> = self.tubes.iter().filter(|t| !self.keeps_tube(&t.name)).map(|t| t.name.clone()).collect();
        self.tubes.retain(|t| !dead.contains(&t.name));
    }

    fn job_mut(&mut self, id: JobId) -> &mut ModelJob {
        self.jobs.get_mut(&id).expect("the job exists")
    }

    // ---- reads, mirroring the real machine's ----

    pub(crate) fn now_ms(&self) -> Millis {
        self.clock
    }

    /// One past the largest job id handed out so far.
    pub(crate) fn next_job_id(&self) -> JobId {
        self.next_job_id
    }

    pub(crate) fn job(&self, id: JobId) -> Option<JobView> {
        self.jobs.get(&id).map(ModelJob::view)
    }

    pub(crate) fn list_tubes(&self) -> Vec<String> {
        self.tubes.iter().map(|t| t.name.clone()).collect()
    }

    /// The tube's ready job with the smallest (priority, id).
    pub(crate) fn peek_ready(&self, tube: &str) -> Option<JobView> {
        self.jobs.values().filter(|j| j.tube == tube && j.is_ready()).min_by_key(|j| (j.pri, j.id)).map(ModelJob::view)
    }

    /// The tube's delayed job with the smallest (until, id).
    pub(crate) fn peek_delayed(&self, tube: &str) -> Option<JobView> {
        self.jobs
            .values()
            .filter(|j| j.tube == tube)
            .filter_map(|j| match j.state {
                JobState::Delayed { until } => Some(((until, j.id), j)),
                _ => None,
            })
            .min_by_key(|&(key, _)| key)
            .map(|(_, j)| j.view())
    }

    /// The tube's buried job with the smallest bury sequence.
    pub(crate) fn peek_buried(&self, tube: &str) -> Option<JobView> {
        self.jobs
            .values()
            .filter(|j| j.tube == tube)
            .filter_map(|j| match j.state {
                JobState::Buried { seq } => Some((seq, j)),
                _ => None,
            })
            .min_by_key(|&(seq, _)| seq)
            .map(|(_, j)| j.view())
    }

    pub(crate) fn next_deadline(&self) -> Option<Millis> {
        self.pending_timers().into_iter().min().map(|t| t.at)
    }

    pub(crate) fn used_tube(&self, client: &ClientKey) -> String {
        self.sessions.get(client).map_or_else(|| DEFAULT_TUBE.to_string(), |s| s.used.clone())
    }

    pub(crate) fn watched_tubes(&self, client: &ClientKey) -> Vec<String> {
        self.sessions.get(client).map_or_else(|| vec![DEFAULT_TUBE.to_string()], |s| s.watched.clone())
    }

    /// Job counts by state, as `stats` and `stats-tube` report them, over the jobs given.
    fn job_counts<'a>(jobs: impl Iterator<Item = &'a ModelJob>) -> Vec<(&'static str, i64)> {
        let (mut urgent, mut ready, mut reserved, mut delayed, mut buried) = (0, 0, 0, 0, 0);
        for job in jobs {
            match job.state {
                JobState::Ready => {
                    ready += 1;
                    urgent += i64::from(job.pri < URGENT_BELOW);
                }
                JobState::Reserved { .. } => reserved += 1,
                JobState::Delayed { .. } => delayed += 1,
                JobState::Buried { .. } => buried += 1,
            }
        }
        vec![
            ("current-jobs-urgent", urgent),
            ("current-jobs-ready", ready),
            ("current-jobs-reserved", reserved),
            ("current-jobs-delayed", delayed),
            ("current-jobs-buried", buried),
        ]
    }

    /// The `stats` fields the model keeps, by their YAML keys.
    pub(crate) fn server_stats(&self) -> Vec<(&'static str, i64)> {
        let c = &self.counters;
        let count = |f: fn(&ModelSession) -> bool| self.sessions.values().filter(|s| f(s)).count() as i64;
        let mut stats = Self::job_counts(self.jobs.values());
        stats.extend([
            ("cmd-put", c.cmd_put as i64),
            ("cmd-reserve", c.cmd_reserve as i64),
            ("cmd-reserve-with-timeout", c.cmd_reserve_with_timeout as i64),
            ("cmd-delete", c.cmd_delete as i64),
            ("cmd-release", c.cmd_release as i64),
            ("cmd-use", c.cmd_use as i64),
            ("cmd-watch", c.cmd_watch as i64),
            ("cmd-ignore", c.cmd_ignore as i64),
            ("cmd-bury", c.cmd_bury as i64),
            ("cmd-kick", c.cmd_kick as i64),
            ("cmd-touch", c.cmd_touch as i64),
            ("cmd-pause-tube", c.cmd_pause_tube as i64),
            ("job-timeouts", c.job_timeouts as i64),
            ("total-jobs", c.total_jobs as i64),
            ("current-tubes", self.tubes.len() as i64),
            ("current-producers", count(|s| s.producer)),
            ("current-workers", count(|s| s.worker)),
            ("current-waiting", count(|s| s.wait.is_some())),
        ]);
        stats
    }

    /// `cmd_reserve_job`, which `stats` does not show but the snapshot keeps.
    pub(crate) fn cmd_reserve_job(&self) -> u64 {
        self.counters.cmd_reserve_job
    }

    /// The `stats-tube` fields the model keeps, by their YAML keys; None if no such tube.
    pub(crate) fn tube_stats(&self, name: &str) -> Option<Vec<(&'static str, i64)>> {
        let tube = self.tube(name)?;
        let count = |f: &dyn Fn(&ModelSession) -> bool| self.sessions.values().filter(|s| f(s)).count() as i64;
        let (pause_secs, pause_left) = match tube.pause {
            Some(p) => (i64::from(p.secs), (p.until as i64 - self.clock as i64) / 1000),
            None => (0, 0),
        };
        let mut stats = Self::job_counts(self.jobs.values().filter(|j| j.tube == name));
        stats.extend([
            ("total-jobs", tube.total_jobs as i64),
            ("current-using", count(&|s| s.used == name)),
            ("current-watching", count(&|s| s.watched.iter().any(|w| w == name))),
            ("current-waiting", count(&|s| s.wait.as_ref().is_some_and(|w| w.tubes.iter().any(|t| t == name)))),
            ("cmd-delete", tube.cmd_delete as i64),
            ("cmd-pause-tube", tube.cmd_pause_tube as i64),
            ("pause", pause_secs),
            ("pause-time-left", pause_left),
        ]);
        Some(stats)
    }
}
