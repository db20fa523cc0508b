//! The faults: a bounded loop that, at random moments, SIGKILLs or SIGTERMs a random process
//! (a node with its proxy inside, or the standalone proxy) and starts it again a
//! little later on the same ports and data dir. One node at most is down at a time, but now
//! and then a second goes too, and the cluster has no majority until one is back. A SIGTERM
//! goes only to a process whose proxy has served a while (earlier, its handler may not be
//! installed yet) and must end in exit 0 within a bound.

use std::net::{SocketAddr, TcpStream};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::Proc;
use crate::record::Recorder;
use crate::say;

/// How often the loop looks at the processes.
const STEP: Duration = Duration::from_millis(50);
/// Time between two faults, drawn from this range.
const GAP_MS: std::ops::Range<u64> = 400..2_500;
/// How long a killed or stopped process stays down, drawn from this range.
const DOWNTIME_MS: std::ops::Range<u64> = 200..3_000;
/// The chance that a fault picks a stop (SIGTERM) rather than a kill, when it may.
const TERM_CHANCE: f64 = 0.3;
/// The chance that a fault may take a second node down.
const SECOND_NODE_CHANCE: f64 = 0.2;
/// How long after a start a process whose proxy accepts counts as ready for a SIGTERM.
const READY_AFTER: Duration = Duration::from_secs(1);
/// How long a SIGTERMed process may take to exit: the proxy gives its clients 5 s, a
/// leader waits up to 5 s for a successor, and the machine is loaded.
const STOP_LIMIT: Duration = Duration::from_secs(40);

/// A process the faults hit.
pub struct Target {
    /// How the report names it: `node 2`, `proxy`.
    pub name: String,
    pub proc: Proc,
    /// Whether it is a cluster node (else the standalone proxy).
    pub is_node: bool,
    /// Its proxy's place in the clients' list of addresses.
    pub proxy: usize,
    /// Where its proxy listens.
    pub beanstalkd: SocketAddr,
    state: State,
}

/// Where a process is in its life.
#[derive(Clone, Copy, Debug)]
enum State {
    /// Running since `since`; `ready` once its proxy accepted a connection, `READY_AFTER`
    /// or more after the start.
    Up { since: Instant, ready: bool },
    /// Sent SIGTERM at `since`, not exited yet.
    Stopping { since: Instant },
    /// Not running; to be started again from `until` on.
    Down { until: Instant },
}

impl Target {
    /// A process already started (and serving) as a target.
    pub fn running(name: String, proc: Proc, is_node: bool, proxy: usize, beanstalkd: SocketAddr) -> Target {
        Target { name, proc, is_node, proxy, beanstalkd, state: State::Up { since: Instant::now(), ready: true } }
    }

    fn is_up(&self) -> bool {
        matches!(self.state, State::Up { .. })
    }

    /// The exit status, once the process has ended (it is then reaped).
    fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.proc.child.as_mut()?.try_wait().ok()??;
        self.proc.child = None;
        Some(status)
    }
}

/// What the faults did, for the report and the checks.
#[derive(Debug, Default)]
pub struct Tally {
    pub kills: u32,
    pub stops: u32,
    pub restarts: u32,
    /// Each SIGTERM's proxy and time, for the hold risks it makes.
    pub stopped_proxies: Vec<(usize, Duration)>,
    /// How each process did not end as it should: a SIGTERM not followed by exit 0 in time,
    /// or an end no fault caused.
    pub misbehaved: Vec<String>,
}

/// The fault loop's state.
pub struct Chaos {
    pub targets: Vec<Target>,
    rng: StdRng,
    record: Arc<Recorder>,
    pub tally: Tally,
}

impl Chaos {
    pub fn new(targets: Vec<Target>, seed: u64, record: Arc<Recorder>) -> Chaos {
        Chaos { targets, rng: StdRng::seed_from_u64(seed), record, tally: Tally::default() }
    }

    /// Strikes at random moments for `length`, keeping every process's state current.
    pub fn run(&mut self, length: Duration) {
        let end = Instant::now() + length;
        let mut next = Instant::now() + self.draw(GAP_MS);
        while Instant::now() < end {
            self.step();
            if Instant::now() >= next {
                self.strike();
                next = Instant::now() + self.draw(GAP_MS);
            }
            std::thread::sleep(STEP);
        }
    }

    /// Starts every process that is down at once, and each stopping one as soon as it exits;
    /// fails if some process is not running after `limit`.
    pub fn heal(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            for target in &mut self.targets {
                if let State::Down { .. } = target.state {
                    target.state = State::Down { until: Instant::now() };
                }
            }
            self.step();
            if self.targets.iter().all(Target::is_up) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let states: Vec<String> = self.targets.iter().map(|t| format!("{}: {:?}", t.name, t.state)).collect();
                return Err(format!("not every process runs {limit:?} after the faults: {}", states.join(", ")));
            }
            std::thread::sleep(STEP);
        }
    }

    fn draw(&mut self, range_ms: std::ops::Range<u64>) -> Duration {
        Duration::from_millis(self.rng.gen_range(range_ms))
    }

    /// Brings each process's state up to date: exits seen, restarts due, readiness. Draws
    /// from the generator only when something happens, so a seed's draws follow its events.
    fn step(&mut self) {
        for i in 0..self.targets.len() {
            match self.targets[i].state {
                State::Up { since, ready } => self.running(i, since, ready),
                State::Stopping { since } => self.stopping(i, since),
                State::Down { until } if Instant::now() >= until => {
                    let at = self.record.now().as_secs_f64();
                    let target = &mut self.targets[i];
                    target.proc.start();
                    target.state = State::Up { since: Instant::now(), ready: false };
                    self.tally.restarts += 1;
                    say(&format!("{at:7.2}s restart {}", target.name));
                }
                State::Down { .. } => {}
            }
        }
    }

    /// A process running since `since`: an end no fault caused is noted (and it is started
    /// again later); one not yet ready becomes so once its proxy accepts.
    fn running(&mut self, i: usize, since: Instant, ready: bool) {
        let at = self.record.now().as_secs_f64();
        if let Some(status) = self.targets[i].exited() {
            let until = Instant::now() + self.draw(DOWNTIME_MS);
            let target = &mut self.targets[i];
            let why = format!("{} ended with {status}, though no fault hit it", target.name);
            say(&format!("{at:7.2}s {why}"));
            self.tally.misbehaved.push(why);
            target.state = State::Down { until };
        } else if !ready && since.elapsed() >= READY_AFTER {
            let target = &mut self.targets[i];
            let serving = TcpStream::connect_timeout(&target.beanstalkd, Duration::from_secs(1)).is_ok();
            target.state = State::Up { since, ready: serving };
        }
    }

    /// A process sent SIGTERM at `since`: once it exits (or is killed for being too slow), it
    /// stays down a while.
    fn stopping(&mut self, i: usize, since: Instant) {
        let at = self.record.now().as_secs_f64();
        let exited = self.targets[i].exited();
        if exited.is_none() && since.elapsed() <= STOP_LIMIT {
            return;
        }
        let until = Instant::now() + self.draw(DOWNTIME_MS);
        let target = &mut self.targets[i];
        match exited {
            Some(status) => {
                let took = since.elapsed().as_secs_f64();
                say(&format!("{at:7.2}s {} exited {took:.1}s after SIGTERM: {status}", target.name));
                if !status.success() {
                    self.tally.misbehaved.push(format!("{} ended with {status} after SIGTERM, not exit 0", target.name));
                }
            }
            None => {
                self.tally.misbehaved.push(format!("{} did not exit within {STOP_LIMIT:?} of SIGTERM", target.name));
                target.proc.kill();
            }
        }
        target.state = State::Down { until };
    }

    /// Kills or stops one process, if one may go down now.
    fn strike(&mut self) {
        let nodes_out = self.targets.iter().filter(|t| t.is_node && !t.is_up()).count();
        let second = self.rng.gen_bool(SECOND_NODE_CHANCE);
        let may_go = |t: &Target| t.is_up() && (!t.is_node || nodes_out == 0 || (nodes_out == 1 && second));
        let candidates: Vec<usize> = (0..self.targets.len()).filter(|&i| may_go(&self.targets[i])).collect();
        if candidates.is_empty() {
            return;
        }
        let i = candidates[self.rng.gen_range(0..candidates.len())];
        let stop = matches!(self.targets[i].state, State::Up { ready: true, .. }) && self.rng.gen_bool(TERM_CHANCE);
        let downtime = self.draw(DOWNTIME_MS);
        let at = self.record.now();
        let target = &mut self.targets[i];
        let now = Instant::now();
        if stop {
            let pid = target.proc.child.as_ref().expect("a running process").id();
            // SAFETY: kill(2) on a child this test started and has not reaped.
            assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0, "SIGTERM {}", target.name);
            target.state = State::Stopping { since: now };
            self.tally.stops += 1;
            self.tally.stopped_proxies.push((target.proxy, at));
            say(&format!("{:7.2}s SIGTERM {}", at.as_secs_f64(), target.name));
        } else {
            target.proc.kill();
            target.state = State::Down { until: now + downtime };
            self.tally.kills += 1;
            say(&format!("{:7.2}s SIGKILL {}", at.as_secs_f64(), target.name));
        }
    }
}
