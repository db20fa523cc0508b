//! Accepting connections without taking the descriptors storage needs: every listener of the
//! process (the beanstalkd proxy, the gRPC server) draws on one budget of descriptors
//! (`fds`), so together they leave storage its reserve. A listener takes a permit before it
//! accepts, so past its limit or the budget new connections wait in the kernel's backlog.

pub mod fds;
#[cfg(not(madsim))]
pub mod keepalive;

use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The permits a listener draws from: its own limit, if any, and the process's budget.
pub struct Permits {
    /// The listener's own limit (a proxy's `-c`).
    own: Option<Arc<Semaphore>>,
    /// The process's descriptor budget, shared by every listener; none in the simulator.
    budget: Option<Arc<Semaphore>>,
}

/// What one accepted connection holds until it closes.
pub struct Permit {
    _own: Option<OwnedSemaphorePermit>,
    _budget: Option<OwnedSemaphorePermit>,
}

impl Permits {
    /// Permits for a listener of at most `own_max` connections (no limit of its own: `None`)
    /// within the process's budget.
    pub fn new(own_max: Option<usize>) -> Permits {
        let own = own_max.map(|max| Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))));
        Permits { own, budget: process_budget() }
    }

    /// A permit if one is free now (a listener's own, taken first, goes back if the budget is
    /// spent).
    fn try_acquire(&self) -> Option<Permit> {
        let own = match &self.own {
            Some(own) => Some(own.clone().try_acquire_owned().ok()?),
            None => None,
        };
        let budget = match &self.budget {
            Some(budget) => Some(budget.clone().try_acquire_owned().ok()?),
            None => None,
        };
        Some(Permit { _own: own, _budget: budget })
    }

    /// Waits for a permit: its own first, so a listener at its own limit holds none of the
    /// budget meanwhile.
    async fn acquire(&self) -> Permit {
        let own = match &self.own {
            Some(own) => own.clone().acquire_owned().await.ok(),
            None => None,
        };
        let budget = match &self.budget {
            Some(budget) => budget.clone().acquire_owned().await.ok(),
            None => None,
        };
        Permit { _own: own, _budget: budget }
    }
}

/// The process's descriptor budget for accepted connections: created at the first listener's
/// start (after `fds::raise_soft_limit`).
#[cfg(not(madsim))]
fn process_budget() -> Option<Arc<Semaphore>> {
    static BUDGET: std::sync::OnceLock<Arc<Semaphore>> = std::sync::OnceLock::new();
    let budget = BUDGET.get_or_init(|| Arc::new(Semaphore::new(fds::connections_max().min(Semaphore::MAX_PERMITS))));
    Some(budget.clone())
}

/// The simulator has no descriptors to run out of, and runs many processes in one.
#[cfg(madsim)]
fn process_budget() -> Option<Arc<Semaphore>> {
    None
}

/// The first pause after a failed accept; it doubles up to the longest while accepts keep
/// failing. A failure such as "too many open files" leaves the listener readable, so accepting
/// again at once would spin; a pause lets connections close meanwhile.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(100);

/// At most one line per kind of trouble this often: at the descriptor limit, accepts fail
/// about as often as the backoff allows.
const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Accepts until `hand_on` breaks (or the task is dropped): a permit first, then the accept,
/// then the connection and its permit to `hand_on`. `listener` names it in the log.
pub async fn accept_loop<S, F>(
    listener: &str,
    permits: &Permits,
    mut accept: impl FnMut() -> F,
    mut hand_on: impl FnMut(S, Permit) -> ControlFlow<()>,
) where
    F: Future<Output = std::io::Result<S>>,
{
    let started = tokio::time::Instant::now();
    let mut full_log = LogLimit::default();
    let mut failures = AcceptFailures::default();
    loop {
        let permit = match permits.try_acquire() {
            Some(permit) => permit,
            None => {
                if let Some(suppressed) = full_log.allow(started.elapsed()) {
                    tracing::warn!(listener, suppressed, "every connection is taken; new ones wait in the listen backlog");
                }
                permits.acquire().await
            }
        };
        match accept().await {
            Ok(stream) => {
                failures.backoff = Duration::ZERO;
                if hand_on(stream, permit).is_break() {
                    return;
                }
            }
            Err(e) => {
                let (pause, log) = failures.failed(started.elapsed());
                if let Some(suppressed) = log {
                    tracing::warn!(listener, error = %e, suppressed, "accept failed; retrying");
                }
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Lets a repeated log line through at most once per `LOG_INTERVAL`.
#[derive(Default)]
struct LogLimit {
    /// When the last line went out, as time since the accept loop started.
    logged_at: Option<Duration>,
    /// Lines held back since then.
    suppressed: u64,
}

impl LogLimit {
    /// Whether to log at `now`: `Some(lines held back before this one)`, or `None` to hold
    /// this one back.
    fn allow(&mut self, now: Duration) -> Option<u64> {
        if self.logged_at.is_some_and(|at| now < at + LOG_INTERVAL) {
            self.suppressed += 1;
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Failed accepts in a row: how long to pause, and whether to say so.
#[derive(Default)]
struct AcceptFailures {
    /// The last pause; zero after an accept that worked.
    backoff: Duration,
    log: LogLimit,
}

impl AcceptFailures {
    /// One more failure at `now`: the pause before accepting again, and what `LogLimit`
    /// says of logging it.
    fn failed(&mut self, now: Duration) -> (Duration, Option<u64>) {
        self.backoff = (self.backoff * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
        (self.backoff, self.log.allow(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failing accepts back off from 10 ms to 100 ms, and a second of them logs one line that
    /// counts the rest; an accept that works starts the backoff over.
    #[test]
    fn accept_failures_back_off_and_log_once_a_second() {
        let mut failures = AcceptFailures::default();
        let mut now = Duration::ZERO;
        let mut pauses = Vec::new();
        let mut logged = Vec::new();
        while now < Duration::from_millis(2500) {
            let (pause, log) = failures.failed(now);
            pauses.push(pause.as_millis());
            logged.extend(log);
            now += pause;
        }
        assert_eq!(pauses[..6], [10, 20, 40, 80, 100, 100]);
        assert_eq!(logged.len(), 3, "one line at 0 s, 1 s and 2 s: {logged:?}");
        assert_eq!(logged[0], 0);
        assert!(logged[1] >= 9, "the second line counts the failures of the first second: {logged:?}");
        failures.backoff = Duration::ZERO;
        assert_eq!(failures.failed(now).0, ACCEPT_BACKOFF_MIN);
    }

    /// A permit takes one of the listener's own and one of the budget; at its own limit a
    /// listener gets none, and a permit dropped frees both.
    #[test]
    fn a_permit_holds_one_of_each() {
        let budget = Arc::new(Semaphore::new(3));
        let permits = Permits { own: Some(Arc::new(Semaphore::new(2))), budget: Some(budget.clone()) };
        let first = permits.try_acquire().expect("a first permit");
        let second = permits.try_acquire().expect("a second permit");
        assert_eq!(budget.available_permits(), 1);
        assert!(permits.try_acquire().is_none(), "the listener's own limit is reached");
        assert_eq!(budget.available_permits(), 1, "a refused permit holds none of the budget");
        drop((first, second));
        assert_eq!(budget.available_permits(), 3);
        let other = Permits { own: None, budget: Some(budget.clone()) };
        let held: Vec<Permit> = (0..3).map(|_| other.try_acquire().expect("budget left")).collect();
        assert!(permits.try_acquire().is_none(), "the budget is spent by another listener");
        drop(held);
    }
}
