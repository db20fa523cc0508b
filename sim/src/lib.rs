//! The deterministic simulator: the cluster under madsim, one seed at a time. Everything here
//! needs the `madsim` cfg (`RUSTFLAGS="--cfg madsim"`, target dir `target/sim`).

#[cfg(madsim)]
pub mod failover;
#[cfg(madsim)]
pub mod trace;
#[cfg(madsim)]
pub mod world;

/// Runs one seed in a fresh simulation on a fresh OS thread (rand's thread RNG is per thread:
/// a reused thread would carry one seed's state into the next). Answers the trace hash.
#[cfg(madsim)]
pub fn run_seed(seed: u64) -> Result<u64, (String, u64)> {
    std::thread::spawn(move || {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
        runtime.block_on(async move {
            let trace = trace::Trace::new();
            trace.event(format!("seed {seed}"));
            match failover::run(trace.clone()).await {
                Ok(()) => Ok(trace.hash()),
                Err(e) => Err((e, trace.hash())),
            }
        })
    })
    .join()
    .unwrap_or_else(|panic| {
        let message = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
        Err((format!("panicked: {}", message.unwrap_or_default()), 0))
    })
}
