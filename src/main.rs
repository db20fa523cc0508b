//! The `coolbeans` binary: subcommands and flags only; the work is in the library.

use clap::{Parser, Subcommand};
use coolbeans::cli;

/// mimalloc rather than glibc's malloc: serve allocates and frees small buffers for every
/// command, and glibc spent about a tenth of serve's time consolidating free chunks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A beanstalkd-compatible work queue replicated through Raft.
#[derive(Parser, Debug)]
#[command(name = "coolbeans", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Threads of the async runtime: 0 for one per core. The servers default to 1: every
    /// command is a few small steps handed between tasks, and on a small machine waking
    /// other threads for them costs more than the steps (3 nodes behind a front end on 2
    /// cores: 92 µs of CPU per command with one per core, 62 µs with 1). The bench defaults
    /// to one per core.
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One node and the beanstalkd front end in one process: a drop-in for beanstalkd.
    Serve(cli::serve::ServeArgs),
    /// The beanstalkd front end before a cluster.
    Beanstalkd(cli::front::FrontArgs),
    /// Run one Raft node serving the gRPC API.
    ClusterNode(cli::node::NodeArgs),
    /// Ask a node about the cluster, or change its membership.
    ClusterClient {
        #[command(subcommand)]
        command: cli::client::ClientCommand,
        /// The node to ask (HOST:PORT of its gRPC port).
        #[arg(long, global = true, default_value = "127.0.0.1:7001")]
        node_addr: String,
    },
    /// Benchmark a beanstalkd-protocol server (ours or beanstalkd itself).
    Bench(cli::bench::BenchArgs),
}

fn init_logging() {
    init_logging_with("info,raft=warn");
}

/// `serve` is quiet like beanstalkd unless asked (-V, or RUST_LOG).
fn init_logging_verbose(verbose: u8) {
    init_logging_with(match verbose {
        0 => "warn,raft=error",
        1 => "info,raft=warn",
        _ => "debug",
    });
}

fn init_logging_with(default: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Transparent huge pages off for this process. The allocator hands freed memory back to
/// the kernel and faults it in again as load comes and goes; with THP each such fault zeroes
/// 2 MiB, and serve spent 6-14% of its CPU in clear_page under `coolbeans bench`.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes no pointers; it only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// The soft limit on open files raised to the hard one: each client connection takes a
/// descriptor, and the usual soft limit of 1024 is far below what a server is allowed. A
/// failure is not fatal: the front end keeps its connections within whatever limit holds.
fn raise_open_files_limit() {
    #[cfg(not(madsim))]
    if let Err(e) = coolbeans::accept::fds::raise_soft_limit() {
        eprintln!("warning: could not raise the limit on open files: {e}");
    }
}

fn main() {
    disable_transparent_huge_pages();
    raise_open_files_limit();
    let cli = Cli::parse();
    let default_threads = if matches!(cli.command, Command::Bench(_)) { 0 } else { 1 };
    let runtime = match cli.threads.unwrap_or(default_threads) {
        1 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        0 => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build(),
    };
    let runtime = runtime.unwrap_or_else(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        std::process::exit(1);
    });
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve(args) => {
            init_logging_verbose(args.verbose);
            cli::serve::run(args).await
        }
        Command::Beanstalkd(args) => {
            init_logging();
            cli::front::run(args).await
        }
        Command::ClusterNode(args) => {
            init_logging();
            cli::node::run(args).await
        }
        Command::ClusterClient { command, node_addr } => {
            cli::client::run(command, &node_addr).await.map(|out| println!("{out}"))
        }
        Command::Bench(args) => cli::bench::run(args).await.map(|out| println!("{out}")),
    }
}
