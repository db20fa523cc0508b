//! What the clients write into while they run: the history the checkers judge, which client
//! was connected to which proxy when, and the job ids seen (for calls on other clients'
//! jobs). Times are real time since the run started.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use coolbeans::history::{Answer, ClientId, History, HoldRisk, JobId, Record};
use rand::Rng;

/// A client's connection to a proxy, from when it was set up to when it ended (`None`:
/// still open).
#[derive(Clone, Copy, Debug)]
pub struct Attachment {
    pub client: ClientId,
    pub proxy: usize,
    pub from: Duration,
    pub until: Option<Duration>,
}

/// What the run records, behind one lock: it is held only to push or read a value, brief
/// next to any call's round trip.
#[derive(Default)]
struct Recorded {
    history: History,
    attachments: Vec<Attachment>,
    /// Every id answered `INSERTED` or `RESERVED`, in order seen.
    known: Vec<JobId>,
}

/// The run's shared record.
pub struct Recorder {
    /// Time zero of every record.
    epoch: Instant,
    recorded: Mutex<Recorded>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder { epoch: Instant::now(), recorded: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.recorded.lock().expect("the record's lock")
    }

    /// Time since the run started.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    pub fn record(&self, record: Record) {
        let mut recorded = self.lock();
        if let Some(Answer::Inserted(id) | Answer::Reserved { id, .. }) = record.answer {
            recorded.known.push(id);
        }
        recorded.history.records.push(record);
    }

    pub fn risk(&self, risk: HoldRisk) {
        self.lock().history.risks.push(risk);
    }

    /// Notes that `client` is connected to `proxy` from now on; answers the attachment's
    /// number for `detach`.
    pub fn attach(&self, client: ClientId, proxy: usize) -> usize {
        let from = self.now();
        let mut recorded = self.lock();
        recorded.attachments.push(Attachment { client, proxy, from, until: None });
        recorded.attachments.len() - 1
    }

    pub fn detach(&self, attachment: usize) {
        let now = self.now();
        self.lock().attachments[attachment].until = Some(now);
    }

    /// A job id some client saw, at random.
    pub fn known_job(&self, rng: &mut impl Rng) -> Option<JobId> {
        let recorded = self.lock();
        (!recorded.known.is_empty()).then(|| recorded.known[rng.gen_range(0..recorded.known.len())])
    }

    /// Puts at risk, from `from` on, every hold of the clients connected to `proxy` at
    /// `from` or later: a proxy that stops gracefully ends its clients' sessions after
    /// draining, possibly before they hang up and see it. Called once every client is done,
    /// when each attachment's end is known.
    pub fn proxy_stopped(&self, proxy: usize, from: Duration) {
        let attached = self.lock().attachments.clone();
        for a in attached.iter().filter(|a| a.proxy == proxy && a.until.is_none_or(|until| until >= from)) {
            self.risk(HoldRisk { client: a.client, from: from.max(a.from), until: a.until });
        }
    }

    /// Puts at risk every hold ever taken through `proxy`, from the moment its connection
    /// was set up: the proxy's lease ran out at a time the test does not know. Called once
    /// every client is done.
    pub fn proxy_lost_lease(&self, proxy: usize) {
        let attached = self.lock().attachments.clone();
        for a in attached.iter().filter(|a| a.proxy == proxy) {
            self.risk(HoldRisk { client: a.client, from: a.from, until: a.until });
        }
    }

    /// The history so far, with `final_jobs` empty: the run ends with every job drained.
    pub fn history(&self) -> History {
        self.lock().history.clone()
    }
}
