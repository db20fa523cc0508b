//! Snapshot and restore: the whole state as the disk format's `SnapshotProto`, and back. The
//! snapshot keeps what replay would rebuild and cannot be derived; indexes, counts and timers
//! are derived on restore, and the result is checked against every invariant before it is used.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use super::encoded;
use super::index::{
    Answered, AnsweredOutcome, Job, Lease, Pause, Session, State, Timer, TimerKind, Tube, TubeId, Wait, DEADLINE_SOON_MARGIN_MS,
    URGENT_PRI_MAX_EXCLUSIVE,
};
use super::machine::Fsm;
use super::types::{ClientKey, JobState, Millis};
use crate::chaos::mutant::{self, Mutant};
use crate::storage::format::{ClientResvEntryProto, JobProto, LeaseProto, SnapshotProto, TubeProto};

/// A snapshot that cannot be restored, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreError(pub String);

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid snapshot: {}", self.0)
    }
}

impl std::error::Error for RestoreError {}

fn bad(what: impl Into<String>) -> RestoreError {
    RestoreError(what.into())
}

fn ms(value: i64, what: &str) -> Result<Millis, RestoreError> {
    Millis::try_from(value).map_err(|_| bad(format!("{what} is negative: {value}")))
}

fn secs_u32(value: i64, what: &str) -> Result<u32, RestoreError> {
    u32::try_from(value).map_err(|_| bad(format!("{what} is outside 0..2^32: {value}")))
}

/// A job in the published API's message (peeks, browsing).
pub mod wire {
    use crate::api as pb;
    include!("job_proto.rs");
}

/// A job in the disk format's message (snapshots).
mod disk {
    use crate::storage::format as pb;
    include!("job_proto.rs");
}

impl Fsm {
    /// The whole state as a snapshot: jobs by id, sessions by client, tubes in creation order.
    pub fn snapshot(&self) -> SnapshotProto {
        let s = &self.s;
        let mut ids: Vec<_> = s.jobs.keys().copied().collect();
        ids.sort_unstable();
        let jobs = ids.iter().map(|id| disk::job_to_proto(&self.job(*id).expect("listed job exists"))).collect();
        let name = |t: &TubeId| s.tubes[t].name.to_string();
        let reservations = s
            .client_keys()
            .into_iter()
            .map(|key| {
                let session = &s.sessions[key];
                let wait = session.wait.as_ref().filter(|_| !mutant::planted(Mutant::SnapshotForgetsWaiters));
                ClientResvEntryProto {
                    client_id: key.client.to_string(),
                    proxy_id: key.proxy.to_string(),
                    resv_deadline_at: wait.and_then(|w| w.deadline).unwrap_or(0) as i64,
                    is_waiting_for_resv: wait.is_some(),
                    req_id: wait.map(|w| w.request_id.clone()).unwrap_or_default(),
                    watched_tube: wait.map(|w| w.tubes.iter().map(name).collect()).unwrap_or_default(),
                    wait_seq: wait.map_or(0, |w| w.seq),
                    used_tube: name(&session.used),
                    watch_list: session.watched.iter().map(name).collect(),
                    is_producer: session.producer,
                    is_worker: session.worker,
                    answered_req_id: session.answered.as_ref().map(|a| a.request_id.clone()).unwrap_or_default(),
                    answered_outcome: answered_to_proto(session.answered.as_ref()).0,
                    answered_job_id: answered_to_proto(session.answered.as_ref()).1,
                    ..ClientResvEntryProto::default()
                }
            })
            .collect();
        let tubes = s
            .tubes
            .iter()
            .map(|(&id, t)| TubeProto {
                name: t.name.to_string(),
                pause_secs: t.pause.map_or(0, |p| i64::from(p.secs)),
                pause_until: t.pause.map_or(0, |p| p.until as i64),
                total_jobs: t.total_jobs,
                cmd_delete: t.cmd_delete,
                cmd_pause_tube: t.cmd_pause_tube,
                created_seq: id,
            })
            .collect();
        SnapshotProto {
            jobs,
            reservations,
            tubes,
            counters: Some(disk::counters_to_proto(&s.counters)),
            next_job_id: s.next_job_id,
            now_ms: s.clock as i64,
            next_bury_seq: s.next_bury_seq,
            next_wait_seq: s.next_wait_seq,
            next_tube_seq: s.next_tube_id,
            leases: s
                .leases
                .iter()
                .map(|(proxy, l)| LeaseProto { proxy_id: proxy.clone(), lease_id: l.id, until: l.until as i64, lease_secs: l.secs })
                .collect(),
            next_lease_id: s.next_lease_id,
        }
    }

    /// Rebuilds a machine from a snapshot, refusing one that breaks any invariant.
    pub fn restore(snap: &SnapshotProto) -> Result<Fsm, RestoreError> {
        restore_around(snap, |s| {
            s.jobs.reserve(snap.jobs.len());
            snap.jobs.iter().try_for_each(|p| restore_job(s, p))
        })
    }

    /// As `restore`, from the snapshot's encoding, decoding one job at a time. Decoded whole
    /// first, every job would be held twice at the peak of a restore, and an allocator keeps
    /// much of what a peak took: `serve -b` held 689 MB after restarting with 930k jobs,
    /// against 503 MB before.
    pub fn restore_encoded(bytes: &Bytes) -> Result<Fsm, RestoreError> {
        let mut others = Vec::new();
        let mut jobs_count = 0;
        for field in encoded::fields(bytes) {
            let field = field.map_err(bad)?;
            match field.number {
                JOBS_FIELD if !field.delimited => return Err(bad("a job is not a message")),
                JOBS_FIELD => jobs_count += 1,
                _ => others.extend_from_slice(field.raw),
            }
        }
        let snap = SnapshotProto::decode(&others[..]).map_err(|e| bad(format!("does not decode: {e}")))?;
        restore_around(&snap, |s| {
            s.jobs.reserve(jobs_count);
            for field in encoded::fields(bytes).flatten().filter(|f| f.number == JOBS_FIELD) {
                // A slice of `bytes`: the body is not copied twice.
                let job = JobProto::decode(bytes.slice_ref(field.content)).map_err(|e| bad(format!("a job does not decode: {e}")))?;
                restore_job(s, &job)?;
            }
            Ok(())
        })
    }
}

/// The field number of `SnapshotProto.jobs`.
const JOBS_FIELD: u32 = 1;

/// A machine from a snapshot's other parts and its jobs, which `restore_jobs` adds to the state
/// once the tubes and sessions they name are in place; refused if it breaks any invariant.
fn restore_around(snap: &SnapshotProto, restore_jobs: impl FnOnce(&mut State) -> Result<(), RestoreError>) -> Result<Fsm, RestoreError> {
    let mut s = State {
        clock: ms(snap.now_ms, "now_ms")?,
        next_job_id: snap.next_job_id,
        next_bury_seq: snap.next_bury_seq,
        next_wait_seq: snap.next_wait_seq,
        next_tube_id: snap.next_tube_seq,
        next_lease_id: snap.next_lease_id,
        counters: snap.counters.as_ref().map(disk::counters_from_proto).unwrap_or_default(),
        ..State::default()
    };
    restore_tubes(&mut s, &snap.tubes)?;
    restore_sessions(&mut s, &snap.reservations)?;
    restore_jobs(&mut s)?;
    restore_leases(&mut s, &snap.leases)?;
    let fsm = Fsm::from_state(s);
    fsm.check_invariants().map_err(RestoreError)?;
    Ok(fsm)
}

fn restore_leases(s: &mut State, leases: &[LeaseProto]) -> Result<(), RestoreError> {
    for l in leases {
        let until = ms(l.until, "lease until")?;
        if s.lease_proxies.insert(l.lease_id, l.proxy_id.clone()).is_some()
            || s.leases.insert(l.proxy_id.clone(), Lease { id: l.lease_id, until, secs: l.lease_secs }).is_some()
        {
            return Err(bad(format!("lease of {:?} or its id {} is listed twice", l.proxy_id, l.lease_id)));
        }
        s.timers.insert(Timer { at: until, kind: TimerKind::LeaseEnd, key: l.lease_id });
    }
    Ok(())
}

fn tube_named(s: &State, name: &str) -> Result<TubeId, RestoreError> {
    s.tube_ids.get(name).copied().ok_or_else(|| bad(format!("tube {name:?} is named but not listed")))
}

fn restore_tubes(s: &mut State, tubes: &[TubeProto]) -> Result<(), RestoreError> {
    for t in tubes {
        let id = t.created_seq;
        let name: Arc<str> = t.name.as_str().into();
        let pause = match t.pause_secs {
            0 => None,
            secs => Some(Pause { secs: secs_u32(secs, "pause_secs")?, until: ms(t.pause_until, "pause_until")? }),
        };
        if let Some(p) = pause {
            s.timers.insert(Timer { at: p.until, kind: TimerKind::PauseEnd, key: id });
        }
        let tube = Tube { pause, total_jobs: t.total_jobs, cmd_delete: t.cmd_delete, cmd_pause_tube: t.cmd_pause_tube, ..Tube::new(name.clone()) };
        if s.tubes.insert(id, tube).is_some() || s.tube_ids.insert(name, id).is_some() {
            return Err(bad(format!("tube {:?} or its id {id} is listed twice", t.name)));
        }
    }
    Ok(())
}

/// A session's last answer as the snapshot's (outcome code, job id): 0 none, 1 reserved,
/// 2 timed out, 3 deadline soon.
fn answered_to_proto(answered: Option<&Answered>) -> (i32, i64) {
    match answered.map(|a| a.outcome) {
        None => (0, 0),
        Some(AnsweredOutcome::Reserved(id)) => (1, id as i64),
        Some(AnsweredOutcome::TimedOut) => (2, 0),
        Some(AnsweredOutcome::DeadlineSoon) => (3, 0),
    }
}

/// The session's last answer back from its snapshot entry; an unknown outcome code is the error.
fn answered_from_proto(e: &ClientResvEntryProto) -> Result<Option<Answered>, i32> {
    let outcome = match e.answered_outcome {
        0 => return Ok(None),
        1 => AnsweredOutcome::Reserved(e.answered_job_id as u64),
        2 => AnsweredOutcome::TimedOut,
        3 => AnsweredOutcome::DeadlineSoon,
        other => return Err(other),
    };
    Ok(Some(Answered { request_id: e.answered_req_id.clone(), outcome }))
}

fn restore_sessions(s: &mut State, entries: &[ClientResvEntryProto]) -> Result<(), RestoreError> {
    for e in entries {
        let key = ClientKey::new(&e.proxy_id, &e.client_id);
        let used = tube_named(s, &e.used_tube)?;
        let watched = e.watch_list.iter().map(|n| tube_named(s, n)).collect::<Result<Vec<_>, _>>()?;
        s.tubes.get_mut(&used).expect("named tube exists").using_count += 1;
        for t in &watched {
            s.tubes.get_mut(t).expect("named tube exists").watching_count += 1;
        }
        let wait = if e.is_waiting_for_resv {
            let tubes = e.watched_tube.iter().map(|n| tube_named(s, n)).collect::<Result<Vec<_>, _>>()?;
            let deadline = match e.resv_deadline_at {
                0 => None,
                at => Some(ms(at, "resv_deadline_at")?),
            };
            for t in &tubes {
                s.tubes.get_mut(t).expect("named tube exists").waiters.insert(e.wait_seq);
            }
            if let Some(at) = deadline {
                s.timers.insert(Timer { at, kind: TimerKind::WaitTimeout, key: e.wait_seq });
            }
            if s.waits.insert(e.wait_seq, key.clone()).is_some() {
                return Err(bad(format!("wait sequence {} is used twice", e.wait_seq)));
            }
            Some(Wait { seq: e.wait_seq, request_id: e.req_id.clone(), tubes, deadline })
        } else {
            None
        };
        let answered = answered_from_proto(e).map_err(|other| bad(format!("client {key}: unknown answered outcome {other}")))?;
        let session = Session { used, watched, reserved: Default::default(), answered, wait, producer: e.is_producer, worker: e.is_worker };
        if s.sessions.insert(key.clone(), session).is_some() {
            return Err(bad(format!("client {key} is listed twice")));
        }
    }
    Ok(())
}

/// Adds one job to the state, in the index of its state. Its body is a copy, as a put's is,
/// so the job does not keep alive the buffer it was decoded from.
fn restore_job(s: &mut State, p: &JobProto) -> Result<(), RestoreError> {
    let view = disk::job_view_from_proto(p)?;
    let id = view.id;
    if s.jobs.contains_key(&id) {
        return Err(bad(format!("job {id} is listed twice")));
    }
    let mut job = Job {
        id,
        tube: tube_named(s, &view.tube)?,
        pri: view.pri,
        delay_secs: view.delay_secs,
        ttr_secs: view.ttr_secs,
        created: view.created_ms,
        body: Bytes::copy_from_slice(&view.body),
        timer: None,
        state: view.state,
        reserves: view.reserves,
        timeouts: view.timeouts,
        releases: view.releases,
        buries: view.buries,
        kicks: view.kicks,
    };
    index_restored_job(s, &mut job)?;
    s.jobs_bytes += crate::limits::job_bytes(job.body.len(), s.tubes[&job.tube].name.len());
    s.jobs.insert(id, Box::new(job));
    Ok(())
}

/// Files a restored job in the index of its state and gives it the timer its state calls for.
fn index_restored_job(s: &mut State, job: &mut Job) -> Result<(), RestoreError> {
    let id = job.id;
    let tube = s.tubes.get_mut(&job.tube).expect("job's tube exists");
    job.timer = match &job.state {
        JobState::Ready => {
            tube.ready.insert((job.pri, id));
            tube.urgent_count += u64::from(job.pri < URGENT_PRI_MAX_EXCLUSIVE);
            None
        }
        JobState::Delayed { until } => {
            tube.delayed.insert((*until, id));
            Some(Timer { at: *until, kind: TimerKind::DelayEnd, key: id })
        }
        JobState::Buried { seq } => {
            tube.buried.insert((*seq, id));
            None
        }
        JobState::Reserved { by, deadline } => {
            tube.reserved_count += 1;
            let session = s.sessions.get_mut(by).ok_or_else(|| bad(format!("job {id} is held by unknown client {by}")))?;
            session.reserved.insert((*deadline, id));
            let soon = deadline.saturating_sub(DEADLINE_SOON_MARGIN_MS);
            Some(if soon > s.clock {
                Timer { at: soon, kind: TimerKind::DeadlineSoon, key: id }
            } else {
                Timer { at: *deadline, kind: TimerKind::TtrEnd, key: id }
            })
        }
    };
    s.timers.extend(job.timer);
    Ok(())
}
