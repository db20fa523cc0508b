//! raft-rs draws its election timeouts from rand 0.8's thread RNG, which seeds itself through
//! getrandom 0.2. These tests show that, with our getrandom stand-in, those draws follow the
//! simulation seed: the same seed gives the same timeouts, another seed other ones.
#![cfg(madsim)]

use madsim::runtime::Runtime;
use madsim::Config;
use raft::storage::MemStorage;
use raft::RawNode;
use rand::Rng;

/// Runs `f` in a fresh simulation with `seed` on a fresh OS thread: rand's thread RNG is per
/// thread, so a thread reused across seeds would carry one seed's state into the next.
fn in_sim<T: Send + 'static>(seed: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || Runtime::with_seed_and_config(seed, Config::default()).block_on(async move { f() }))
        .join()
        .expect("simulation thread panicked")
}

/// The election timeouts a fresh single-voter raft node draws over ten resets.
fn election_timeouts() -> Vec<usize> {
    let config = raft::Config { id: 1, election_tick: 10, heartbeat_tick: 3, ..Default::default() };
    let storage = MemStorage::new_with_conf_state((vec![1], vec![]));
    let logger = raft::default_logger();
    let mut node = RawNode::new(&config, storage, &logger).expect("valid raft config");
    (0..10)
        .map(|_| {
            node.raft.reset_randomized_election_timeout();
            node.raft.randomized_election_timeout()
        })
        .collect()
}

/// Same seed, same thread-RNG draws; another seed, other draws.
#[test]
fn thread_rng_follows_the_seed() {
    let draw = |seed| in_sim(seed, || (0..8).map(|_| rand::thread_rng().gen::<u64>()).collect::<Vec<_>>());
    assert_eq!(draw(7), draw(7));
    assert_ne!(draw(7), draw(8));
}

/// raft-rs's randomized election timeouts repeat under the same seed.
#[test]
fn raft_election_timeouts_follow_the_seed() {
    let a = in_sim(42, election_timeouts);
    let b = in_sim(42, election_timeouts);
    assert_eq!(a, b);
    let others: Vec<_> = (43..48).map(|seed| in_sim(seed, election_timeouts)).collect();
    assert!(others.iter().any(|o| *o != a), "five other seeds all drew {a:?}");
}
