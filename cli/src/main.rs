//! `sluice`: a kcat-like Kafka command-line tool, pure Rust.

mod dump;
mod json;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A Kafka client and stream processor in one static binary.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode a file of record batches (a Kafka `.log` segment) to JSON lines.
    Dump(dump::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dump(args) => dump::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `sluice dump big.log | head` closes our stdout early: that is not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let _ = io::stdout().flush();
            eprintln!("sluice: error: {e}");
            ExitCode::FAILURE
        }
    }
}
