//! Client throughput: sluice, librdkafka and rskafka producing and consuming the same records
//! through a local Tansu broker, with each client's CPU time and peak memory, and the broker's
//! CPU time.
//!
//! ```text
//! cargo run --release -p sluice-benches --bin throughput -- \
//!     [--messages 1000000] [--size 100] [--codec none,lz4] \
//!     [--clients sluice,librdkafka,rskafka] [--phase produce|consume|both] [--mode throughput|memory|all]
//! ```
//!
//! Every measurement gets a fresh broker (Tansu's memory storage grows without trimming) with
//! one topic, and runs in a child process: this binary started again with `--child <json>`, so
//! that the child's `/proc/<pid>/stat` holds only that client's CPU time and its `VmHWM` only
//! that client's memory. Consumers all read the same bytes: records written by sluice's
//! producer in its benchmarked configuration. `--mode memory` produces ~1 GB and reads it back
//! with a bounded prefetch (`max_buffered_bytes`), to check the consumer's peak memory.
//!
//! Prints a Markdown report (tables with ratios to the peers, and the command). See
//! `spec.rs` for each client's configuration. It has no tests: `cargo test` only builds it.

#[path = "throughput/broker.rs"]
mod broker;
#[path = "throughput/librdkafka.rs"]
mod librdkafka;
#[path = "throughput/orchestrate.rs"]
mod orchestrate;
#[path = "throughput/procfs.rs"]
mod procfs;
#[path = "throughput/report.rs"]
mod report;
#[path = "throughput/rskafka.rs"]
mod rskafka;
#[path = "throughput/sluice.rs"]
mod sluice;
#[path = "throughput/spec.rs"]
mod spec;

use anyhow::{Context, Result};
use clap::Parser;

use crate::spec::{ChildReport, ChildSpec, Client, Codec, Role, REPORT_PREFIX};

/// Which phases to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Phase {
    Produce,
    Consume,
    Both,
}

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// Produce and consume throughput of every client.
    Throughput,
    /// The consumer memory bar: ~1 GB read through a bounded prefetch.
    Memory,
    /// Both of the above.
    All,
}

#[derive(Debug, Parser)]
#[command(about = "Kafka client throughput: sluice vs librdkafka vs rskafka on a local Tansu")]
struct Args {
    /// Records per run.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Value bytes per record (keys are null).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Codecs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "none,lz4")]
    codec: Vec<Codec>,
    /// Clients, comma-separated (also: sluice-recv, sluice-defaults).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sluice,librdkafka,rskafka"
    )]
    clients: Vec<Client>,
    /// Which phases to measure.
    #[arg(long, value_enum, default_value = "both")]
    phase: Phase,
    /// Runs of each measurement; the report gives medians (and the range of msg/s).
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// What to run.
    #[arg(long, value_enum, default_value = "throughput")]
    mode: Mode,
    /// Memory mode: records to write and read back.
    #[arg(long, default_value_t = 1_000_000)]
    memory_messages: u64,
    /// Memory mode: value bytes per record.
    #[arg(long, default_value_t = 1000)]
    memory_size: usize,
    /// Memory mode: the consumer's prefetch bound, in MiB.
    #[arg(long, default_value_t = 64)]
    prefetch_mib: usize,
    /// Memory mode: how long the consumer waits before reading, so its prefetch fills up.
    #[arg(long, default_value_t = 3000)]
    start_delay_ms: u64,
    /// Kill a child that runs longer than this.
    #[arg(long, default_value_t = 600)]
    child_timeout_s: u64,
    /// Profile every child: run it under `perf record` into `DIR/<codec>-<client>-<role>.data`
    /// (CPU and RSS are still the child's own; perf's overhead is in its timings).
    #[arg(long, value_name = "DIR")]
    perf_dir: Option<std::path::PathBuf>,
    /// Arguments for `perf record` with `--perf-dir`.
    #[arg(
        long,
        default_value = "-F 999 --call-graph dwarf,16384",
        allow_hyphen_values = true
    )]
    perf_args: String,
    /// Internal: run one phase of one client (a JSON `ChildSpec`) and print its report.
    #[arg(long, hide = true)]
    child: Option<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(json) = &args.child {
        let spec: ChildSpec = serde_json::from_str(json).context("parsing --child")?;
        return run_child(&spec);
    }
    orchestrate::run(&args)
}

/// The child side: one phase of one client, then its own CPU time and peak memory.
fn run_child(spec: &ChildSpec) -> Result<()> {
    let mut report = match spec.client {
        Client::Librdkafka => match spec.role {
            Role::Produce => librdkafka::produce(spec)?,
            Role::Consume => librdkafka::consume(spec)?,
        },
        _ => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = runtime.block_on(async {
                match (spec.client, spec.role) {
                    (Client::Rskafka, Role::Produce) => rskafka::produce(spec).await,
                    (Client::Rskafka, Role::Consume) => rskafka::consume(spec).await,
                    (_, Role::Produce) => sluice::produce(spec).await,
                    (_, Role::Consume) => sluice::consume(spec).await,
                }
            })?;
            // Stops the runtime's threads, so that nothing runs after the CPU time is read.
            drop(runtime);
            report
        }
    };
    report.cpu_ticks = procfs::cpu_ticks("self")?;
    report.peak_rss_kib = procfs::peak_rss_kib("self")?;
    println!("{REPORT_PREFIX}{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The report line a child printed.
fn parse_report(stdout: &str) -> Option<ChildReport> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(REPORT_PREFIX))
        .and_then(|json| serde_json::from_str(json).ok())
}
