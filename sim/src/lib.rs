//! The deterministic simulator: the cluster under madsim, one seed at a time. The world, the
//! nemesis and the workload need the `madsim` cfg (`RUSTFLAGS="--cfg madsim"`, target dir
//! `target/sim`); the configuration is plain code. The history and its checkers live in
//! `coolbeans::history`, which the chaos test on real processes shares.

pub use coolbeans::history;
pub use coolbeans::history::check;
pub mod config;

#[cfg(madsim)]
pub mod chaos;
#[cfg(madsim)]
pub mod client;
#[cfg(madsim)]
pub mod cluster;
#[cfg(madsim)]
pub mod failover;
#[cfg(madsim)]
pub mod lone_node;
#[cfg(madsim)]
pub mod membership;
#[cfg(madsim)]
pub mod nemesis;
#[cfg(madsim)]
pub mod partition;
#[cfg(madsim)]
pub mod proxies;
#[cfg(madsim)]
pub mod raft_watch;
#[cfg(madsim)]
pub mod trace;
#[cfg(madsim)]
pub mod workload;
#[cfg(madsim)]
pub mod world;

/// What a seed's run ends with: the trace hash, and on success the run's figures.
#[cfg(madsim)]
pub type SeedResult = Result<(u64, chaos::RunStats), (String, u64)>;

/// Runs `body` in a fresh simulation of `seed` on a fresh OS thread (rand's thread RNG is per
/// thread: a reused thread would carry one seed's state into the next). A panic anywhere in
/// the world is the run's error.
#[cfg(madsim)]
pub fn in_fresh_world<T: Send + 'static, F>(seed: u64, body: impl FnOnce() -> F + Send + 'static) -> Result<T, String>
where
    F: std::future::Future<Output = Result<T, String>> + 'static,
{
    std::thread::spawn(move || {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
        runtime.block_on(body())
    })
    .join()
    .unwrap_or_else(|panic| {
        let message = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
        Err(format!("panicked: {}", message.unwrap_or_default()))
    })
}

/// Runs one seed of the chaos run (see `chaos`): its configuration comes from the seed alone.
#[cfg(madsim)]
pub fn run_seed(seed: u64) -> SeedResult {
    run_config(config::SeedConfig::derive(seed))
}

/// Runs a configuration (normally the one its seed derives).
#[cfg(madsim)]
pub fn run_config(config: config::SeedConfig) -> SeedResult {
    let trace = trace::Trace::new();
    let t = trace.clone();
    let seed = config.seed;
    in_fresh_world(seed, move || async move {
        t.event(format!("{config}"));
        chaos::run(config, t).await
    })
    .map(|stats| (trace.hash(), stats))
    .map_err(|why| (why, trace.hash()))
}

/// One focused scenario: given the run's trace, plays out and checks one story.
#[cfg(madsim)]
type Scenario = fn(trace::Trace) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>>>>;

/// The focused scenarios of the gRPC API (the chaos run reaches the cluster through proxies):
/// failover, membership, and a partitioned leader.
#[cfg(madsim)]
pub const SCENARIOS: [(&str, Scenario); 3] =
    [("failover", |t| Box::pin(failover::run(t))), ("membership", |t| Box::pin(membership::run(t))), ("partition", |t| Box::pin(partition::run(t)))];

/// Runs every focused scenario for `seed`, each in a fresh world; answers the trace hash.
#[cfg(madsim)]
pub fn run_scenarios(seed: u64) -> Result<u64, (String, u64)> {
    let trace = trace::Trace::new();
    for (name, scenario) in SCENARIOS {
        let t = trace.clone();
        in_fresh_world(seed, move || async move {
            t.event(format!("seed {seed} scenario {name}"));
            scenario(t).await
        })
        .map_err(|e| (format!("{name}: {e}"), trace.hash()))?;
    }
    Ok(trace.hash())
}
