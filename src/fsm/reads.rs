//! Reads: peeks, job views, tube lists and client states. None of them changes the machine,
//! so none needs to go through the log.

use super::index::{Job, TubeId};
use super::machine::{Fsm, DEFAULT_TUBE};
use super::types::{ClientKey, ClientStates, JobId, JobView};

impl Job {
    pub(crate) fn view(&self, tube: &str) -> JobView {
        JobView {
            id: self.id,
            tube: tube.to_string(),
            pri: self.pri,
            state: self.state.clone(),
            delay_secs: self.delay_secs,
            ttr_secs: self.ttr_secs,
            created_ms: self.created,
            body: self.body.clone(),
            reserves: self.reserves,
            timeouts: self.timeouts,
            releases: self.releases,
            buries: self.buries,
            kicks: self.kicks,
        }
    }
}

impl Fsm {
    /// `peek <id>`: any job, by id.
    pub fn job(&self, id: JobId) -> Option<JobView> {
        let job = self.s.jobs.get(&id)?;
        Some(job.view(&self.s.tubes[&job.tube].name))
    }

    fn tube_id(&self, name: &str) -> Option<TubeId> {
        self.s.tube_ids.get(name).copied()
    }

    /// `peek-ready`: the tube's next job to reserve.
    pub fn peek_ready(&self, tube: &str) -> Option<JobView> {
        let tube = self.tube_id(tube)?;
        self.s.tubes[&tube].ready.first().and_then(|&(_, id)| self.job(id))
    }

    /// `peek-delayed`: the tube's delayed job that becomes ready soonest.
    pub fn peek_delayed(&self, tube: &str) -> Option<JobView> {
        let tube = self.tube_id(tube)?;
        self.s.tubes[&tube].delayed.first().and_then(|&(_, id)| self.job(id))
    }

    /// `peek-buried`: the tube's oldest buried job.
    pub fn peek_buried(&self, tube: &str) -> Option<JobView> {
        let tube = self.tube_id(tube)?;
        self.s.tubes[&tube].buried.first().and_then(|&(_, id)| self.job(id))
    }

    /// `list-tubes`: every tube, in creation order.
    pub fn list_tubes(&self) -> Vec<String> {
        self.s.tubes.values().map(|t| t.name.to_string()).collect()
    }

    /// Whether a tube exists.
    pub fn has_tube(&self, name: &str) -> bool {
        self.s.tube_ids.contains_key(name)
    }

    /// How many tubes exist (each in use, watched, or holding jobs).
    pub fn tube_count(&self) -> usize {
        self.s.tubes.len()
    }

    /// `list-tube-used`: the tube a client puts into (`default` without a session).
    pub fn used_tube(&self, client: &ClientKey) -> String {
        match self.s.sessions.get(client) {
            Some(session) => self.s.tubes[&session.used].name.to_string(),
            None => DEFAULT_TUBE.to_string(),
        }
    }

    /// `list-tubes-watched`: a client's watch list in the order watched.
    pub fn watched_tubes(&self, client: &ClientKey) -> Vec<String> {
        match self.s.sessions.get(client) {
            Some(session) => session.watched.iter().map(|t| self.s.tubes[t].name.to_string()).collect(),
            None => vec![DEFAULT_TUBE.to_string()],
        }
    }

    /// The jobs a client holds, by id.
    pub fn reserved_by(&self, client: &ClientKey) -> Vec<JobId> {
        let mut ids: Vec<JobId> = match self.s.sessions.get(client) {
            Some(session) => session.reserved.iter().map(|&(_, id)| id).collect(),
            None => Vec::new(),
        };
        ids.sort_unstable();
        ids
    }

    /// Whether a client waits for a reservation, and with which request id.
    pub fn waiting_request(&self, client: &ClientKey) -> Option<&str> {
        self.s.sessions.get(client)?.wait.as_ref().map(|w| w.request_id.as_str())
    }

    /// CheckClientState: sorts a proxy's client ids into waiting, not waiting, and unknown.
    pub fn check_client_state(&self, proxy: &str, clients: &[String]) -> ClientStates {
        let mut states = ClientStates::default();
        for client in clients {
            let key = ClientKey::new(proxy, client);
            match self.s.sessions.get(&key) {
                Some(session) if session.wait.is_some() => states.waiting.push(client.clone()),
                Some(_) => states.not_waiting.push(client.clone()),
                None => states.missing.push(client.clone()),
            }
        }
        states
    }

    /// How many jobs the machine holds.
    pub fn job_count(&self) -> usize {
        self.s.jobs.len()
    }

    /// What the jobs held count for against a node's limit (`limits::job_bytes`).
    pub fn jobs_bytes(&self) -> u64 {
        self.s.jobs_bytes
    }
}
