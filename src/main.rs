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
    /// other threads for them costs more than the steps (3 nodes behind a proxy on 2
    /// cores: 92 µs of CPU per command with one per core, 62 µs with 1). The bench defaults
    /// to one per core.
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Log lines as human-readable text, or as one JSON object per line (its fields at the
    /// top level). RUST_LOG filters both.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One node and the beanstalkd proxy in one process: a drop-in for beanstalkd.
    Serve(cli::serve::ServeArgs),
    /// The beanstalkd proxy before a cluster.
    Beanstalkd(cli::proxy::ProxyArgs),
    /// Run one Raft node serving the gRPC API.
    ClusterNode(cli::node::NodeArgs),
    /// Ask a node about the cluster, or change its membership.
    ClusterClient {
        #[command(subcommand)]
        command: cli::client::ClientCommand,
        /// The node to ask (HOST:PORT of its gRPC port).
        #[arg(long, global = true, default_value = "127.0.0.1:7001")]
        node_addr: String,
        #[command(flatten)]
        dial: cli::security::DialArgs,
    },
    /// Write a test CA and certificates for mTLS into DIR: ca.pem; node.pem (roles peer and
    /// frontend), frontend.pem and admin.pem, each with its NAME-key.pem. Not for production.
    GenTestCa {
        /// Where to write them.
        dir: std::path::PathBuf,
        /// The hosts every certificate names (a node's must name the host it is dialed at).
        #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1")]
        hosts: Vec<String>,
    },
    /// Benchmark a beanstalkd-protocol server (ours or beanstalkd itself).
    Bench(cli::bench::BenchArgs),
    /// A live view of a beanstalkd-protocol server (ours or beanstalkd itself).
    ///
    /// Each second: every tube's jobs in each state, its waiting clients, and its puts and
    /// deletes per second, under the server's totals. s switches the order (name, activity);
    /// q, Esc or Ctrl-C quits.
    Top(cli::top::TopArgs),
}

fn init_logging(format: LogFormat) {
    init_logging_with("info,raft=warn", format);
}

/// `serve` is quiet like beanstalkd unless asked (-V, or RUST_LOG), but for the lines of its
/// start and stop.
fn init_logging_verbose(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "warn,raft=error,coolbeans::cli=info",
        1 => "info,raft=warn",
        _ => "debug",
    };
    init_logging_with(default, format);
}

fn init_logging_with(default: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).init(),
    }
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
/// failure is not fatal: the proxy keeps its connections within whatever limit holds.
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
    let format = cli.log_format;
    if let Err(e) = runtime.block_on(run(cli)) {
        match format {
            LogFormat::Text => eprintln!("error: {e}"),
            // The last line stays JSON, for whatever reads the log.
            LogFormat::Json => tracing::error!(error = %e, "exiting"),
        }
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match &cli.command {
        Command::Serve(args) => init_logging_verbose(args.verbose, cli.log_format),
        Command::Beanstalkd(_) | Command::ClusterNode(_) => init_logging(cli.log_format),
        // Their output is what they print; only trouble is logged.
        Command::ClusterClient { .. } | Command::Bench(_) | Command::Top(_) | Command::GenTestCa { .. } => init_logging_with("warn", cli.log_format),
    }
    match cli.command {
        Command::Serve(args) => cli::serve::run(args).await,
        Command::Beanstalkd(args) => cli::proxy::run(args).await,
        Command::ClusterNode(args) => cli::node::run(args).await,
        Command::ClusterClient { command, node_addr, dial } => {
            let security = dial.load(None)?;
            cli::client::run(command, &node_addr, &security.dialer).await.map(|out| println!("{out}"))
        }
        #[cfg(not(madsim))]
        Command::GenTestCa { dir, hosts } => coolbeans::security::gen_ca::write(&dir, &hosts).map(|out| println!("{out}")),
        #[cfg(madsim)]
        Command::GenTestCa { .. } => Err("not in the simulator".into()),
        Command::Bench(args) => cli::bench::run(args).await.map(|out| println!("{out}")),
        Command::Top(args) => cli::top::run(args).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every argument of every subcommand, at any depth, the global ones included, has help
    /// text: walks the command tree clap builds from the flags (its own --help and
    /// --version aside) and names each argument without it.
    #[test]
    fn every_argument_has_help() {
        let mut root = super::Cli::command();
        root.build();
        let mut missing = Vec::new();
        let mut commands = vec![(String::from("coolbeans"), root)];
        while let Some((path, command)) = commands.pop() {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (the subcommand)", sub.get_name()));
                }
                commands.push((format!("{path} {}", sub.get_name()), sub.clone()));
            }
        }
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }
}
