//! A client of the load: it connects to a proxy (the next one after each failure), uses
//! and watches a tube of its own, and makes random calls. Mostly puts and reserves; on the
//! jobs it holds, deletes, releases, burys and touches, now and then only after the job's TTR
//! ran out; sometimes a kick of its tube, or a peek, delete or touch of a job some client saw.
//! A broken connection, a silence past its patience or an error line leaves the call's outcome
//! unknown and ends the connection: from its last answer on, the jobs it held may go back to
//! the queue without it asking, and it starts afresh.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coolbeans::history::{Answer, Call, ClientId, HoldRisk, JobId, Record};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::conn::Conn;
use crate::record::Recorder;

/// How long a client waits for an answer beyond what the call itself may wait: the proxy
/// gives up on the cluster after 15 s, and a loaded machine adds to that.
pub const PATIENCE: Duration = Duration::from_secs(30);
/// How long setting up a connection may take (`use` and `watch` reach the cluster).
const SETTLE_PATIENCE: Duration = Duration::from_secs(10);
/// Pause before trying the next proxy.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// A client thinks up to this long between calls.
const THINK_MAX: Duration = Duration::from_millis(40);
/// The chance that a client hangs up politely before a call (and reconnects).
const HANG_UP_CHANCE: f64 = 0.005;

/// One client thread's state.
pub struct Worker {
    id: ClientId,
    tube: String,
    /// Every proxy's beanstalkd address.
    addrs: Vec<SocketAddr>,
    rng: StdRng,
    record: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    /// The jobs this connection holds, with their TTR in seconds.
    holds: BTreeMap<JobId, u32>,
    /// Puts made, which numbers the bodies.
    puts: u64,
    /// When this connection last answered: it surely held its jobs until then.
    alive_at: Duration,
}

impl Worker {
    pub fn new(id: ClientId, tube: String, addrs: Vec<SocketAddr>, seed: u64, record: Arc<Recorder>, stop: Arc<AtomicBool>) -> Worker {
        let rng = StdRng::seed_from_u64(seed ^ u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        Worker { id, tube, addrs, rng, record, stop, holds: BTreeMap::new(), puts: 0, alive_at: Duration::ZERO }
    }

    /// Makes calls, reconnecting as needed, until told to stop; then hangs up.
    pub fn run(mut self) {
        let mut attempt = 0;
        while !self.stop.load(Ordering::Relaxed) {
            let proxy = (self.id as usize + attempt) % self.addrs.len();
            attempt += 1;
            let Ok(mut conn) = Conn::open(self.addrs[proxy]) else {
                std::thread::sleep(RETRY_PAUSE);
                continue;
            };
            if conn.settle_on(&self.tube, SETTLE_PATIENCE).is_err() {
                std::thread::sleep(RETRY_PAUSE);
                continue;
            }
            self.alive_at = self.record.now();
            let attachment = self.record.attach(self.id, proxy);
            let polite = self.session(&mut conn);
            self.record.detach(attachment);
            if polite {
                conn.quit();
            }
            let until = Some(self.record.now());
            self.record.risk(HoldRisk { client: self.id, from: self.alive_at, until });
            self.holds.clear();
        }
    }

    /// Makes calls on one connection; answers true to hang up politely, false if it broke.
    fn session(&mut self, conn: &mut Conn) -> bool {
        loop {
            if self.stop.load(Ordering::Relaxed) || self.rng.gen_bool(HANG_UP_CHANCE) {
                return true;
            }
            let (call, pause) = self.next_call();
            std::thread::sleep(pause);
            let patience = match &call {
                Call::Reserve { timeout_secs: Some(t), .. } => PATIENCE + Duration::from_secs(u64::from(*t)),
                _ => PATIENCE,
            };
            let start = self.record.now();
            let answer = conn.call(&call, patience).ok();
            let end = self.record.now();
            self.note(&call, answer.as_ref());
            let broken = matches!(answer, None | Some(Answer::Other(_)));
            self.record.record(Record { client: self.id, call, start, end, answer });
            if broken {
                return false;
            }
            self.alive_at = end;
        }
    }

    /// Keeps `holds` in step with an answer.
    fn note(&mut self, call: &Call, answer: Option<&Answer>) {
        match (call, answer) {
            (_, Some(Answer::Reserved { id, body })) => {
                self.holds.insert(*id, ttr_in(body));
            }
            (Call::Delete(id) | Call::Release { id, .. } | Call::Bury { id, .. }, _) | (Call::Touch(id), Some(Answer::NotFound)) => {
                self.holds.remove(id);
            }
            _ => {}
        }
    }

    /// The next call, and how long to wait before it (past a held job's TTR, now and then).
    fn next_call(&mut self) -> (Call, Duration) {
        if !self.holds.is_empty() && self.rng.gen_bool(0.6) {
            let held: Vec<(JobId, u32)> = self.holds.iter().map(|(id, ttr)| (*id, *ttr)).collect();
            let (id, ttr_secs) = held[self.rng.gen_range(0..held.len())];
            let pause = if self.rng.gen_bool(0.03) {
                Duration::from_secs(u64::from(ttr_secs)) + Duration::from_millis(self.rng.gen_range(100..1_000))
            } else {
                self.rng.gen_range(Duration::ZERO..THINK_MAX)
            };
            let pri = self.rng.gen_range(0..4);
            let call = match self.rng.gen_range(0..20) {
                0..=8 => Call::Delete(id),
                9..=13 => Call::Release { id, pri, delay_secs: self.rng.gen_range(0..2) },
                14..=16 => Call::Bury { id, pri },
                _ => Call::Touch(id),
            };
            return (call, pause);
        }
        let pause = self.rng.gen_range(Duration::ZERO..THINK_MAX);
        let tube = self.tube.clone();
        let call = match (self.rng.gen_range(0..100), self.record.known_job(&mut self.rng)) {
            (0..=29, _) => Call::Reserve { tube, timeout_secs: Some(self.rng.gen_range(0..3)) },
            (30..=37, _) => Call::Kick { tube, bound: self.rng.gen_range(1..8) },
            (38..=44, Some(id)) => Call::Peek(id),
            (45..=48, Some(id)) => Call::Delete(id),
            (49..=51, Some(id)) => Call::Touch(id),
            _ => self.put(),
        };
        (call, pause)
    }

    fn put(&mut self) -> Call {
        self.puts += 1;
        let ttr_secs = self.rng.gen_range(1..5);
        let delay_secs = if self.rng.gen_bool(0.8) { 0 } else { self.rng.gen_range(1..3) };
        let pri = if self.rng.gen_bool(0.1) { u32::MAX } else { self.rng.gen_range(0..5) };
        // Unique in the run, so the body names its put; it carries the TTR for whoever
        // reserves the job.
        let body = format!("w{}-{}-ttr{ttr_secs}", self.id, self.puts).into_bytes();
        Call::Put { tube: self.tube.clone(), pri, delay_secs, ttr_secs, body }
    }
}

/// The TTR a body carries (see `Worker::put`).
fn ttr_in(body: &[u8]) -> u32 {
    let text = String::from_utf8_lossy(body);
    text.rsplit("-ttr").next().and_then(|t| t.parse().ok()).unwrap_or(1)
}
