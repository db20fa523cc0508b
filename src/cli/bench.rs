//! `coolbeans bench`: a load generator for any beanstalkd-protocol server, ours or beanstalkd
//! itself. It speaks the text protocol over TCP and runs up to three phases, each printing one
//! line of `key=value` fields:
//!
//! - `put`: connections put jobs as fast as they can; puts/s and per-put latency.
//! - `reserve-delete`: connections reserve and delete those jobs until the tube is drained;
//!   pairs/s and per-cycle latency.
//! - `wakeup`: how long a client blocked in `reserve` takes to get a job just put.
//! - `fsync`: what the disk takes to make a small append durable (no server needed).
//!
//! Timing uses `std::time::Instant`: this is a measuring tool, not the product's clock.

// A client's side of the text protocol, which `top` speaks too.
pub(crate) mod answer;
pub(crate) mod conn;
mod drain;
mod fsync;
mod measure;
mod put;
mod wakeup;

use std::time::Duration;

use clap::{Args, ValueEnum};

/// The most commands one connection may keep in flight: far past where pipelining stops
/// paying, and small enough that a batch's answers fit in a socket buffer.
const PIPELINE_MAX: usize = 4096;

/// The suffix of the wakeup phase's own tube, which must also be a valid tube name.
const WAKEUP_TUBE_SUFFIX: &str = "-wakeup";

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// The server: HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:11300")]
    pub addr: String,
    /// Connections of the put and reserve-delete phases, each its own TCP connection.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// How long the put and reserve-delete phases each run at most, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Commands in flight per connection.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Each job's body, in bytes.
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// The tube to load (default `bench-<pid>`, so runs don't mix); the wakeup phase uses
    /// `<tube>-wakeup`.
    #[arg(long)]
    pub tube: Option<String>,
    /// The phases to run, comma separated; they always run in the order put,
    /// reserve-delete, wakeup, fsync.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "put,reserve-delete,wakeup")]
    pub phases: Vec<Phase>,
    /// Wake-up latency samples, taken one after another.
    #[arg(long, default_value_t = 2000)]
    pub wakeup_samples: usize,
    /// Jobs put before the reserve-delete phase when the put phase does not run.
    #[arg(long, default_value_t = 100_000)]
    pub prefill_jobs: u64,
    /// Where the fsync phase appends and syncs its file (the disk the servers write to).
    #[arg(long, default_value = ".")]
    pub fsync_dir: std::path::PathBuf,
    /// fdatasync samples of the fsync phase, taken one after another.
    #[arg(long, default_value_t = 500)]
    pub fsync_samples: usize,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Put jobs as fast as the server takes them.
    Put,
    /// Reserve and delete the tube's jobs until it is drained.
    ReserveDelete,
    /// Time a blocked reserve's wake-up by a put.
    Wakeup,
    /// Time the disk's own fdatasync of a small append.
    Fsync,
}

/// The checked settings every phase reads.
#[derive(Clone, Debug)]
struct Config {
    /// The server, HOST:PORT.
    addr: String,
    /// Connections of the put and reserve-delete phases: at least 1.
    connections: usize,
    /// How long the put and reserve-delete phases each run at most.
    phase: Duration,
    /// Commands in flight per connection: 1 to `PIPELINE_MAX`.
    pipeline: usize,
    /// Each job's body; at most what the answer parser takes back in `RESERVED`.
    body_bytes: usize,
    /// A valid tube name; with the wakeup phase, `<tube>-wakeup` is valid too.
    tube: String,
    /// Wake-up samples, taken one after another.
    wakeup_samples: usize,
    /// Jobs put for the reserve-delete phase when the put phase does not run.
    prefill_jobs: u64,
}

impl Config {
    fn from_args(args: &BenchArgs) -> Result<Config, String> {
        if args.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if !(args.seconds.is_finite() && args.seconds > 0.0) {
            return Err("--seconds must be a positive number".into());
        }
        if !(1..=PIPELINE_MAX).contains(&args.pipeline) {
            return Err(format!("--pipeline must be 1 to {PIPELINE_MAX}"));
        }
        if args.body_bytes > answer::ANSWER_BODY_BYTES_MAX {
            return Err(format!("--body-bytes must be at most {}", answer::ANSWER_BODY_BYTES_MAX));
        }
        let tube = args.tube.clone().unwrap_or_else(|| format!("bench-{}", std::process::id()));
        crate::fsm::validate_tube_name(&tube).map_err(|e| format!("--tube {tube:?}: {e}"))?;
        if args.phases.contains(&Phase::Wakeup) {
            let wakeup_tube = format!("{tube}{WAKEUP_TUBE_SUFFIX}");
            crate::fsm::validate_tube_name(&wakeup_tube).map_err(|e| format!("wakeup tube {wakeup_tube:?}: {e}"))?;
        }
        Ok(Config {
            addr: args.addr.clone(),
            connections: args.connections,
            phase: Duration::from_secs_f64(args.seconds),
            pipeline: args.pipeline,
            body_bytes: args.body_bytes,
            tube,
            wakeup_samples: args.wakeup_samples,
            prefill_jobs: args.prefill_jobs,
        })
    }
}

/// Runs the chosen phases in order; one report line per phase. If a phase fails (a stuck or
/// misbehaving server), the error says which, and keeps the lines of the phases before it.
pub async fn run(args: BenchArgs) -> Result<String, String> {
    let config = Config::from_args(&args)?;
    let mut lines: Vec<String> = Vec::new();
    for phase in [Phase::Put, Phase::ReserveDelete, Phase::Wakeup, Phase::Fsync] {
        if !args.phases.contains(&phase) {
            continue;
        }
        let line = match phase {
            Phase::Put => put::run(&config).await,
            Phase::ReserveDelete => reserve_delete(&config, args.phases.contains(&Phase::Put)).await,
            Phase::Wakeup => wakeup::run(&config).await,
            Phase::Fsync => fsync::run(&args.fsync_dir, args.fsync_samples.max(1)),
        };
        match line {
            Ok(line) => lines.push(line),
            Err(e) if lines.is_empty() => return Err(e),
            Err(e) => return Err(format!("{e}\nthe phases before it:\n{}", lines.join("\n"))),
        }
    }
    Ok(lines.join("\n"))
}

/// The reserve-delete phase, after filling the tube if the put phase did not.
async fn reserve_delete(config: &Config, put_ran: bool) -> Result<String, String> {
    let prefilled = if put_ran { 0 } else { put::prefill(config).await? };
    drain::run(config, prefilled).await
}
