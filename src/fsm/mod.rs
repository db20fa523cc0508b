//! The job state machine: beanstalkd's jobs, tubes and reservations as a pure, deterministic
//! function of the operations applied to it.
//!
//! It never reads a clock, does no I/O, draws no randomness, and no hash-map iteration order
//! reaches its output. Every replica applies the same operations and so holds the same state.
//!
//! # Time
//! Each operation comes with the leader's time in milliseconds. The machine's clock is the
//! largest time seen so far, so it never runs backwards. `apply(op, now)`:
//! 1. sets the clock to `max(clock, now)`;
//! 2. fires every timer due by the clock (see below);
//! 3. executes `op`;
//! 4. fires every timer due by the clock again (so `reserve-with-timeout 0` times out within
//!    the same operation, and no timer is ever left due after an apply).
//!
//! Timers fire in order of (time, kind, key), kinds in this order: delay end (key: job id),
//! pause end (key: tube creation sequence), TTR end (job id), deadline-soon start (job id),
//! reserve timeout (wait sequence), lease end (lease id). A reserved job with deadline D has one timer at a time:
//! "soon" at D − 1000 ms, then "TTR end" at D. When "soon" fires and the holder is waiting,
//! the wait is answered DEADLINE_SOON. `next_deadline()` is the earliest pending timer: the
//! leader proposes `Tick` then, and only then.
//!
//! # Leases
//! A proxy renews its lease with `ProxyLease`; when the lease ends, the proxy
//! counts as gone (`ProxyGone`). Lease ends are measured in leader time, which runs on while
//! a cluster has no leader, so a new leader's first write is `NewLeader`: before anything
//! else of that apply, every lease runs at least its own length from then.
//!
//! # Lost answers
//! A reserve asked again with the request id of the client's wait keeps waiting; asked with
//! the request id of its last answer, it gets that answer again, a job even if its TTR has
//! since run out (the reservation took place when first answered), and is served afresh only
//! if that job is gone.
//!
//! # Matching
//! Waiting reserves are FIFO per tube (by wait sequence). Whenever a job becomes ready in an
//! unpaused tube that has waiters (put, release, delay end, kick, TTR end, a client gone, a
//! pause end), the tube's first waiter gets the tube's best ready job, repeatedly while both
//! exist: best is the smallest (priority, id). A new reserve takes, among the unpaused tubes
//! it waits on, the ready job with the smallest (priority, id). So an unpaused tube never has
//! both ready jobs and waiters after an apply.
//!
//! A reserve takes a ready job if one of its unpaused tubes has one. Otherwise, if the client
//! holds a job whose deadline is within 1000 ms (`now >= deadline - 1000`), it answers
//! DEADLINE_SOON; else it waits, with a timeout if one was given. `ProxyGone` ends every wait
//! of the proxy's clients before releasing any of their jobs.
//!
//! # Tubes and sessions
//! A client (`ClientKey`) gets a session when it says hello, or the first time a put, reserve,
//! reserve-job, use, watch or ignore names it: it uses `default` and watches `default`. `ClientGone` ends it
//! (releasing its jobs, dropping its wait); `ProxyGone` ends all of a proxy's sessions. A tube exists while it is `default`, or
//! holds jobs, or is used, watched or waited on; pausing does not keep it alive. Tubes list in
//! creation order.

mod types;

pub use types::*;
mod browse;
mod digest;
mod encoded;
mod index;
mod invariants;
mod machine;
#[cfg(test)]
mod proptests;
mod reads;
#[cfg(test)]
mod reference;
mod snapshot;
mod stats;
mod tube_name;

pub use browse::{BrowseCursor, BrowseState, JobPage, TubePage, TubeSummary};
pub use encoded::{fields, Field};
pub use index::Counters;
pub use machine::{Fsm, DEFAULT_TUBE};
pub use snapshot::wire::{counters_from_proto, counters_to_proto, job_to_proto, job_view_from_proto};
pub use snapshot::RestoreError;
pub use stats::{JobCounts, JobStats, MachineStats, TubeStats};
pub use tube_name::{is_tube_name_byte, validate_tube_name, TUBE_NAME_BYTES_MAX};
#[cfg(test)]
mod tests;
