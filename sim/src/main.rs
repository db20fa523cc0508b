//! `coolbeans-sim`: runs seeds of the simulated cluster.
//!
//! - `--seed N`: one seed, printing its configuration first.
//! - `--seeds COUNT [--start S]`: seeds S, S+1, ... (S may be a commit hash: its first 12 hex
//!   digits are the start seed).
//! - `--seeds-file PATH`: the seeds listed in a file (one per line, `#` comments), e.g. the
//!   regression list.
//! - `--repeat K`: also runs the first K seeds a second time and fails if a trace differs.
//! - `--expect-failure`: for planted bugs: stops at the first failing seed and exits 0 only
//!   if some seed failed.
//!
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
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let has = |name: &str| args.iter().any(|a| a == name);
    let seeds = match seeds_from(&value) {
        Ok(seeds) => seeds,
        Err(why) => {
            eprintln!("{why}\nusage: coolbeans-sim --seed N | --seeds COUNT [--start S|COMMIT] | --seeds-file PATH [--repeat K] [--expect-failure]");
            std::process::exit(2);
        }
    };
    let repeat: usize = value("--repeat").and_then(|v| v.parse().ok()).unwrap_or(0);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let started = std::time::Instant::now();
    let mut sim_time = std::time::Duration::ZERO;
    let mut failed = Vec::new();
    let mut traces = Vec::new();
    for &seed in &seeds {
        println!("{}", coolbeans_sim::config::SeedConfig::derive(seed));
        match coolbeans_sim::run_seed(seed) {
            Ok((trace, stats)) => {
                sim_time += stats.sim_time;
                println!("ok: {} calls ({} unknown), {} entries, {:.1} simulated s", stats.calls, stats.unknown, stats.entries, stats.sim_time.as_secs_f64());
                println!("seed={seed} trace={trace:016x}");
                traces.push((seed, trace));
            }
            Err((why, trace)) => {
                println!("FAILED seed {seed}: {why}");
                println!("reproduce: make sim SEED={seed}");
                println!("seed={seed} trace={trace:016x}");
                failed.push(seed);
                if has("--expect-failure") {
                    break;
                }
            }
        }
    }
    for &(seed, first) in traces.iter().take(repeat) {
        let again = coolbeans_sim::run_seed(seed).map(|(t, _)| t).unwrap_or_else(|(_, t)| t);
        println!("repeat seed={seed} trace={again:016x}");
        if again != first {
            println!("FAILED seed {seed}: not deterministic: trace {first:016x} then {again:016x}");
            println!("reproduce: make sim SEED={seed}");
            failed.push(seed);
        }
    }
    let real = started.elapsed();
    println!(
        "{} seeds, {} failed, {:.0} simulated s in {:.1} real s: {:.0}x real time, {:.0} seeds per minute",
        seeds.len(),
        failed.len(),
        sim_time.as_secs_f64(),
        real.as_secs_f64(),
        sim_time.as_secs_f64() / real.as_secs_f64().max(1e-9),
        seeds.len() as f64 * 60.0 / real.as_secs_f64().max(1e-9)
    );
    if has("--expect-failure") {
        match failed.first() {
            Some(seed) => println!("caught: seed {seed} fails"),
            None => {
                println!("NOT caught: every seed passed");
                std::process::exit(1);
            }
        }
        return;
    }
    if !failed.is_empty() {
        eprintln!("{} of {} seeds failed: {failed:?}", failed.len(), seeds.len());
        std::process::exit(1);
    }
}

/// The seeds the arguments name.
#[cfg(madsim)]
fn seeds_from(value: &dyn Fn(&str) -> Option<String>) -> Result<Vec<u64>, String> {
    let number = |v: String| v.parse::<u64>().map_err(|_| format!("not a number: {v}"));
    if let Some(seed) = value("--seed") {
        return Ok(vec![number(seed)?]);
    }
    if let Some(path) = value("--seeds-file") {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let lines = text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty());
        return lines.map(|l| number(l.to_string())).collect();
    }
    let count = number(value("--seeds").ok_or("no seeds named")?)?;
    let start = match value("--start") {
        None => 1,
        Some(s) => s.parse::<u64>().or_else(|_| {
            let hex: String = s.chars().take(12).collect();
            u64::from_str_radix(&hex, 16).map_err(|_| format!("--start takes a number or a commit hash, not {s}"))
        })?,
    };
    Ok((start..start.saturating_add(count)).collect())
}
