//! The deterministic simulator: the cluster under madsim, one seed at a time. Everything here
//! needs the `madsim` cfg (`RUSTFLAGS="--cfg madsim"`, target dir `target/sim`).

pub mod check;
#[cfg(madsim)]
pub mod failover;
pub mod history;
#[cfg(madsim)]
pub mod membership;
#[cfg(madsim)]
pub mod partition;
#[cfg(madsim)]
pub mod trace;
#[cfg(madsim)]
pub mod world;

/// One scenario: given the run's trace, plays out and checks one story.
#[cfg(madsim)]
type Scenario = fn(trace::Trace) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>>>>;

/// The scenarios every seed plays, each in its own fresh world.
#[cfg(madsim)]
const SCENARIOS: [(&str, Scenario); 3] = [
    ("failover", |t| Box::pin(failover::run(t))),
    ("membership", |t| Box::pin(membership::run(t))),
    ("partition", |t| Box::pin(partition::run(t))),
];

/// Runs one seed: every scenario in a fresh simulation on a fresh OS thread (rand's thread
/// RNG is per thread: a reused thread would carry one seed's state into the next). Answers
/// the trace hash, which covers every scenario's events in order.
#[cfg(madsim)]
pub fn run_seed(seed: u64) -> Result<u64, (String, u64)> {
    let trace = trace::Trace::new();
    for (name, scenario) in SCENARIOS {
        let t = trace.clone();
        let outcome = std::thread::spawn(move || {
            let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
            runtime.block_on(async move {
                t.event(format!("seed {seed} scenario {name}"));
                scenario(t).await
            })
        })
        .join()
        .unwrap_or_else(|panic| {
            let message = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            Err(format!("panicked: {}", message.unwrap_or_default()))
        });
        if let Err(e) = outcome {
            return Err((format!("{name}: {e}"), trace.hash()));
        }
    }
    Ok(trace.hash())
}
