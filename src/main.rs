//! The `coolbeans` binary: subcommands and flags only; the work is in the library.

use clap::{Parser, Subcommand};

/// A beanstalkd-compatible work queue replicated through Raft.
#[derive(Parser, Debug)]
#[command(name = "coolbeans", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the state machine's limits and wire API version.
    Info,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Info => {
            println!("coolbeans {}", env!("CARGO_PKG_VERSION"));
            println!("api: coolbeans.api.v1");
            println!("tube name: 1..={} bytes", coolbeans::fsm::TUBE_NAME_BYTES_MAX);
        }
    }
}
