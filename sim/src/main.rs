//! `coolbeans-sim`: runs seeds of the simulated cluster.
//!
//! `coolbeans-sim --seed N` runs one seed; `--seeds COUNT --start S` runs S, S+1, ...
//! Each seed prints, as its last line, `seed=<n> trace=<hex>`; a failing seed prints the
//! command that reproduces it, and the process exits non-zero.

#[cfg(not(madsim))]
fn main() {
    eprintln!("coolbeans-sim needs the simulator build: RUSTFLAGS=\"--cfg madsim\" (see `make sim`)");
    std::process::exit(2);
}

#[cfg(madsim)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(|v| v.parse::<u64>());
    let (start, count) = match (flag("--seed"), flag("--start"), flag("--seeds")) {
        (Some(Ok(seed)), _, _) => (seed, 1),
        (None, start, Some(Ok(count))) => (start.and_then(Result::ok).unwrap_or(1), count),
        _ => {
            eprintln!("usage: coolbeans-sim --seed N | --seeds COUNT [--start S]");
            std::process::exit(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let mut failed = Vec::new();
    for seed in start..start + count {
        match coolbeans_sim::run_seed(seed) {
            Ok(trace) => println!("seed={seed} trace={trace:016x}"),
            Err((why, trace)) => {
                println!("FAILED seed {seed}: {why}");
                println!("reproduce: make sim SEED={seed}");
                println!("seed={seed} trace={trace:016x}");
                failed.push(seed);
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("{} of {count} seeds failed: {failed:?}", failed.len());
        std::process::exit(1);
    }
}
