//! The clients' workload: each client connects to a proxy, uses and watches one tube, and
//! makes random calls of every kind, recording each with its start, end and answer. A broken
//! connection is an unknown outcome, then a reconnect (perhaps to another proxy).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use madsim::rand::{thread_rng, Rng};
use tokio::sync::watch;

use crate::client::{CallError, Connection};
use crate::history::{Answer, Call, ClientId, History, HoldRisk, JobId, Record};

/// How long a client waits for an answer beyond what the call itself may wait (the proxy's
/// patience is 15 s).
const PATIENCE: Duration = Duration::from_secs(30);
/// A blocking `reserve` may wait for as long as it takes; liveness bounds it after healing.
const RESERVE_FOREVER: Duration = Duration::from_secs(24 * 3600);

/// Simulated time since the world started.
pub fn now() -> Duration {
    madsim::time::TimeHandle::current().elapsed()
}

/// What the clients of one world share.
#[derive(Clone)]
pub struct Shared {
    pub history: Arc<Mutex<History>>,
    /// Job ids any client has seen, for calls on other clients' jobs.
    pub known: Arc<Mutex<Vec<JobId>>>,
    /// Clients in a blocking reserve now, with their tube (the liveness phase feeds them).
    pub blocked: Arc<Mutex<BTreeMap<ClientId, String>>>,
    /// Set when clients must finish their current call and quit.
    pub stop: watch::Receiver<bool>,
    /// Each proxy's crash counter.
    pub generations: Vec<watch::Receiver<u64>>,
    /// Where each proxy listens.
    pub addrs: Vec<std::net::SocketAddr>,
    /// Which client was connected to which proxy, when.
    pub attachments: Arc<Mutex<Vec<Attachment>>>,
}

/// A client's connection to a proxy, from its start to its end (`None`: still open).
#[derive(Clone, Debug)]
pub struct Attachment {
    pub client: ClientId,
    pub proxy: u32,
    pub from: Duration,
    pub until: Option<Duration>,
}

impl Shared {
    pub fn record(&self, record: Record) {
        if let Some(Answer::Inserted(id) | Answer::Reserved { id, .. }) = &record.answer {
            self.known.lock().expect("known lock").push(*id);
        }
        self.history.lock().expect("history lock").records.push(record);
    }

    pub fn risk(&self, risk: HoldRisk) {
        self.history.lock().expect("history lock").risks.push(risk);
    }

    fn attach(&self, client: ClientId, proxy: u32) -> usize {
        let mut all = self.attachments.lock().expect("attachments lock");
        all.push(Attachment { client, proxy, from: now(), until: None });
        all.len() - 1
    }

    fn detach(&self, index: usize) {
        self.attachments.lock().expect("attachments lock")[index].until = Some(now());
    }

    fn known_job(&self) -> Option<JobId> {
        let known = self.known.lock().expect("known lock");
        (!known.is_empty()).then(|| known[thread_rng().gen_range(0..known.len())])
    }
}

/// One client's settings.
pub struct ClientSetup {
    pub id: ClientId,
    pub tube: String,
    pub proxies: u32,
    pub think_time_mean: Duration,
}

/// A client's state between calls.
struct Client {
    setup: ClientSetup,
    shared: Shared,
    /// Jobs this connection holds, with their TTR.
    holds: BTreeMap<JobId, u32>,
    puts: u64,
    /// When this connection last answered: it was surely alive then.
    alive_at: Duration,
}

/// Runs one client until the stop signal, then quits.
pub async fn run_client(setup: ClientSetup, shared: Shared) {
    let mut client = Client { setup, shared, holds: BTreeMap::new(), puts: 0, alive_at: now() };
    let mut attempt = 0u32;
    while !*client.shared.stop.borrow() {
        let index = (client.setup.id + attempt) % client.setup.proxies;
        attempt += 1;
        let Ok(mut conn) = Connection::open(client.shared.addrs[index as usize]).await else {
            madsim::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut generation = client.shared.generations[index as usize].clone();
        generation.borrow_and_update();
        if conn.settle_on(&client.setup.tube, PATIENCE).await.is_err() {
            madsim::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        client.alive_at = now();
        let attachment = client.shared.attach(client.setup.id, index);
        let quit = client.session(&mut conn, &mut generation).await;
        client.shared.detach(attachment);
        if quit {
            conn.quit().await;
        }
        // Whatever this connection held may now go back to the queue.
        let until = Some(now());
        client.shared.risk(HoldRisk { client: client.setup.id, from: client.alive_at, until });
        client.holds.clear();
    }
}

impl Client {
    /// Makes calls on one connection; answers true to quit politely, false when it broke.
    async fn session(&mut self, conn: &mut Connection, generation: &mut watch::Receiver<u64>) -> bool {
        loop {
            if *self.shared.stop.borrow() {
                return true;
            }
            let think = thread_rng().gen_range(Duration::ZERO..self.setup.think_time_mean * 2);
            madsim::time::sleep(think).await;
            if thread_rng().gen_bool(0.005) {
                return true; // a client that hangs up now and then
            }
            let call = self.next_call().await;
            let blocking = matches!(call, Call::Reserve { timeout_secs: None, .. });
            if blocking {
                self.shared.blocked.lock().expect("blocked lock").insert(self.setup.id, self.setup.tube.clone());
            }
            let start = now();
            let patience = match &call {
                Call::Reserve { timeout_secs: None, .. } => RESERVE_FOREVER,
                Call::Reserve { timeout_secs: Some(t), .. } => PATIENCE + Duration::from_secs(u64::from(*t)),
                _ => PATIENCE,
            };
            let outcome = tokio::select! {
                // In order: tokio picks branches at random from a process-wide seed, which would make
                // a simulated run depend on how many ran before it in the same process.
                biased;
                r = conn.call(&call, patience) => r,
                _ = generation.changed() => Err(CallError::Broken("proxy crashed".into())),
            };
            if blocking {
                self.shared.blocked.lock().expect("blocked lock").remove(&self.setup.id);
            }
            let answer = outcome.ok();
            // An error line (the proxy could not reach the cluster in time) may mean its
            // sessions are in trouble too: start afresh, as a careful client would.
            let broken = matches!(answer, None | Some(Answer::Other(_)));
            self.note(&call, answer.as_ref());
            self.shared.record(Record { client: self.setup.id, call, start, end: now(), answer });
            if broken {
                return false;
            }
            self.alive_at = now();
        }
    }

    /// Keeps `holds` in step with an answer.
    fn note(&mut self, call: &Call, answer: Option<&Answer>) {
        match (call, answer) {
            (_, Some(Answer::Reserved { id, body })) => {
                let ttr = ttr_of_body(body);
                self.holds.insert(*id, ttr);
            }
            (Call::Delete(id) | Call::Release { id, .. } | Call::Bury { id, .. }, _) => {
                self.holds.remove(id);
            }
            (Call::Touch(id), Some(Answer::NotFound)) => {
                self.holds.remove(id);
            }
            _ => {}
        }
    }

    /// Picks the next call at random, sometimes first outliving a held job's TTR on purpose.
    async fn next_call(&mut self) -> Call {
        let mut rng = thread_rng();
        let held: Vec<(JobId, u32)> = self.holds.iter().map(|(id, ttr)| (*id, *ttr)).collect();
        if let Some(&(id, ttr)) = (!held.is_empty()).then(|| &held[rng.gen_range(0..held.len())]) {
            if rng.gen_bool(0.6) {
                if rng.gen_bool(0.08) {
                    madsim::time::sleep(Duration::from_millis(u64::from(ttr) * 1000 + rng.gen_range(100..1500))).await;
                }
                return match rng.gen_range(0..10) {
                    0..=4 => Call::Delete(id),
                    5..=6 => Call::Release { id, pri: rng.gen_range(0..4), delay_secs: rng.gen_range(0..2) },
                    7 => Call::Bury { id, pri: rng.gen_range(0..4) },
                    _ => Call::Touch(id),
                };
            }
        }
        let tube = self.setup.tube.clone();
        let other = self.shared.known_job();
        match (rng.gen_range(0..100), other) {
            (0..=39, _) => self.put(tube),
            (40..=59, _) => Call::Reserve { tube, timeout_secs: Some(if rng.gen_bool(0.4) { 0 } else { rng.gen_range(1..4) }) },
            (60..=64, _) => Call::Reserve { tube, timeout_secs: None },
            (65..=69, _) => Call::Kick { tube, bound: rng.gen_range(1..6) },
            (70, _) => Call::PauseTube { tube, delay_secs: rng.gen_range(0..3) },
            (71..=75, Some(id)) => Call::KickJob(id),
            (76..=80, Some(id)) => Call::ReserveJob(id),
            (81..=87, Some(id)) => Call::Peek(id),
            (88..=91, Some(id)) => Call::Delete(id),
            (92..=93, Some(id)) => Call::Touch(id),
            _ => self.put(tube),
        }
    }

    fn put(&mut self, tube: String) -> Call {
        let mut rng = thread_rng();
        self.puts += 1;
        let ttr_secs = rng.gen_range(1..5);
        let delay_secs = if rng.gen_bool(0.7) { 0 } else { rng.gen_range(1..4) };
        let pri = if rng.gen_bool(0.1) { u32::MAX } else { rng.gen_range(0..5) };
        Call::Put { tube, pri, delay_secs, ttr_secs, body: body_of(self.setup.id, self.puts, ttr_secs) }
    }
}

/// A unique body that also carries its TTR, so a client that reserves the job knows it.
pub fn body_of(client: ClientId, n: u64, ttr_secs: u32) -> Vec<u8> {
    format!("c{client}-{n}-ttr{ttr_secs}").into_bytes()
}

fn ttr_of_body(body: &[u8]) -> u32 {
    let text = String::from_utf8_lossy(body);
    text.rsplit("-ttr").next().and_then(|t| t.parse().ok()).unwrap_or(1)
}

/// Calls whose answers a history summary counts, by kind.
pub fn summary(history: &History) -> BTreeMap<&'static str, (u64, u64)> {
    let mut out: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    for r in &history.records {
        let kind = match r.call {
            Call::Put { .. } => "put",
            Call::Reserve { timeout_secs: None, .. } => "reserve",
            Call::Reserve { .. } => "reserve-with-timeout",
            Call::ReserveJob(_) => "reserve-job",
            Call::Delete(_) => "delete",
            Call::Release { .. } => "release",
            Call::Bury { .. } => "bury",
            Call::Touch(_) => "touch",
            Call::KickJob(_) => "kick-job",
            Call::Kick { .. } => "kick",
            Call::PauseTube { .. } => "pause-tube",
            Call::Peek(_) => "peek",
        };
        let entry = out.entry(kind).or_default();
        entry.0 += 1;
        if r.answer.is_none() {
            entry.1 += 1;
        }
    }
    out
}
