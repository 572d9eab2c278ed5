//! `sluice`: a kcat-like Kafka command-line tool, pure Rust.

mod bench;
mod connect;
mod consume;
mod consume_group;
mod copy;
mod deliveries;
mod demo;
mod dump;
mod ends;
mod flags;
mod group;
mod json;
mod metadata;
mod mock;
mod produce;

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
    /// The whole pipeline with nothing installed: an embedded cluster, a click stream, an
    /// exactly-once copy, and a check of the result.
    Demo(demo::Args),
    /// Decode a file of record batches (a Kafka `.log` segment) to JSON lines.
    Dump(dump::Args),
    /// List brokers, topics and partitions.
    Metadata(metadata::Args),
    /// Write one record per line of stdin to a topic (like `kcat -P`).
    Produce(produce::Args),
    /// Print a topic's records (like `kcat -C`).
    Consume(consume::Args),
    /// Measure producer or consumer throughput.
    Bench(bench::Args),
    /// Copy a topic to another exactly once (consume-transform-produce in transactions).
    Copy(copy::Args),
    /// List consumer groups, describe one, reset its offsets.
    Group(group::Args),
    /// Run an in-process mock Kafka cluster in the foreground and print its bootstrap address.
    Mock(mock::Args),
}

/// Why a command failed: printed as one line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Kafka(#[from] sluice_client::Error),
    /// A command's own one-line account of what went wrong.
    #[error("{0}")]
    Failed(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => runtime().and_then(|rt| rt.block_on(demo::run(&args))),
        Command::Dump(args) => dump::run(&args).map_err(CliError::from),
        Command::Metadata(args) => runtime().and_then(|rt| rt.block_on(metadata::run(&args))),
        Command::Produce(args) => runtime().and_then(|rt| rt.block_on(produce::run(&args))),
        Command::Consume(args) => runtime().and_then(|rt| rt.block_on(consume::run(&args))),
        Command::Bench(args) => runtime().and_then(|rt| rt.block_on(bench::run(&args))),
        Command::Copy(args) => runtime().and_then(|rt| rt.block_on(copy::run(&args))),
        Command::Group(args) => runtime().and_then(|rt| rt.block_on(group::run(&args))),
        Command::Mock(args) => runtime().and_then(|rt| rt.block_on(mock::run(&args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `sluice dump big.log | head` closes our stdout early: that is not a failure.
        Err(CliError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let _ = io::stdout().flush();
            eprintln!("sluice: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
