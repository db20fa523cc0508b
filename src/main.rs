//! The `coolbeans` binary: subcommands and flags only; the work is in the library.

use clap::{Parser, Subcommand};
use coolbeans::cli;

/// A beanstalkd-compatible work queue replicated through Raft.
#[derive(Parser, Debug)]
#[command(name = "coolbeans", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,raft=warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::ClusterNode(args) => {
            init_logging();
            cli::node::run(args).await
        }
        Command::ClusterClient { command, node_addr } => {
            cli::client::run(command, &node_addr).await.map(|out| println!("{out}"))
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
