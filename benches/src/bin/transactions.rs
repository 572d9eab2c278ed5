//! The transactions performance bar (issue 6): what exactly-once costs in throughput.
//!
//! ```text
//! cargo run --release -p sluice-benches --bin transactions -- \
//!     [--messages 1000000] [--size 100] [--partitions 3] [--repeat 3] \
//!     [--commit-interval-ms 100] [--target tansu,mock] [--scenario produce,copy]
//! ```
//!
//! Two comparisons, each measured on a fresh broker per run (a local Tansu with memory
//! storage, or the in-process `sluice_mock::MockCluster` on its own runtime), with the order of
//! the two sides alternating from one repetition to the next so that load from elsewhere on
//! the machine falls on both alike:
//!
//! - **produce**: N records to a topic with an idempotent `Producer` vs a transactional one
//!   (`init_transactions`, then `begin_transaction` ... `commit_transaction` every
//!   `--commit-interval-ms` of wall time). Same records, same batching (`linger.ms=5`,
//!   `batch.size=1000000`, as in the throughput bench). Bar: transactional >= 0.95x.
//! - **copy**: an input topic pre-loaded with N records (not timed), then (a) plain
//!   consume+produce: a `Consumer` assigned every partition from the beginning feeding an
//!   idempotent `Producer`, until N deliveries are acknowledged; vs (b) the exactly-once loop
//!   of `sluice copy` (`cli/src/copy.rs`, `run_job` with a record-count stop): a
//!   `GroupConsumer` under `read_committed` feeding a transactional `Producer`, the consumed
//!   offsets sent with `send_offsets_to_transaction` and the transaction committed every
//!   `--commit-interval-ms`, until N records are in committed transactions.
//!   Bar: exactly-once >= 0.70x.
//!
//! Throughput counts from the first record handled to the last one acknowledged (produce) or
//! committed (copy); set-up (connecting, `init_transactions`, the group join) is reported on
//! its own (on Tansu the exactly-once copy's ~23 s of set-up is the group join: Tansu holds
//! JoinGroup for half the 45 s session timeout, tansu-notes.md gap 6). Client CPU is this
//! process's; with `--target mock` it includes the mock broker.
//!
//! Runs of 1M records last ~0.4 s, and their msgs/s varies by ±10% from one run to the next on
//! a shared 2-core machine, more than the 5% bar: use `--repeat 15` or `--messages 5000000`
//! for a verdict, and read the per-repetition ratios (each pair ran back to back).
//! Prints a Markdown report with medians, ranges and the ratios against the bars.

#[path = "throughput/broker.rs"]
mod broker;
#[allow(dead_code)]
#[path = "throughput/procfs.rs"]
mod procfs;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use sluice_client::config::{ConsumerConfig, IsolationLevel, OffsetReset, ProducerConfig};
use sluice_client::consumer::{Consumer, Offset};
use sluice_client::group::{GroupConsumer, GroupEvent, OffsetToCommit};
use sluice_client::producer::{DeliveryFuture, Producer, ProducerRecord};
use sluice_mock::{MockCluster, MockConfig};

use crate::broker::{create_topic, tansu_binary, Broker};

/// Bytes per producer batch: librdkafka's default `batch.size`, as in the throughput bench.
const BATCH_BYTES: usize = 1_000_000;
/// Distinct values cycled through (400 KiB at 100 B).
const DISTINCT_VALUES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    /// A local Tansu broker (`scripts/broker.sh path`, or `$SLUICE_TANSU_BIN`).
    Tansu,
    /// The in-process mock cluster, one broker, on its own 1-thread runtime.
    Mock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// Idempotent vs transactional produce.
    Produce,
    /// Plain consume+produce vs the exactly-once copy loop.
    Copy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Idempotent,
    Transactional,
    PlainCopy,
    ExactlyOnceCopy,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Idempotent => "idempotent produce",
            Side::Transactional => "transactional produce",
            Side::PlainCopy => "plain consume+produce",
            Side::ExactlyOnceCopy => "exactly-once copy",
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "Transactions throughput bar: transactional vs idempotent produce, EOS copy")]
struct Args {
    /// Records per run.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Value bytes per record (keys are null).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Partitions of every topic.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Runs of each side; the report gives medians.
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    /// Wall time between transaction commits.
    #[arg(long, default_value_t = 100)]
    commit_interval_ms: u64,
    /// Brokers, comma-separated; each gets its own tables.
    #[arg(long, value_delimiter = ',', default_value = "tansu")]
    target: Vec<Target>,
    /// What to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "produce,copy")]
    scenario: Vec<Scenario>,
}

/// One timed run.
#[derive(Debug, Clone, Default)]
struct Run {
    /// Records timed (the first one, a warm-up, is not).
    records: u64,
    elapsed_s: f64,
    setup_s: f64,
    /// Transactions committed in the timed part.
    commits: u64,
    /// Time the loop spent blocked committing (send_offsets_to_transaction, flush, EndTxn).
    commit_s: f64,
    client_cpu_s: f64,
    broker_cpu_s: Option<f64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.records as f64 / self.elapsed_s
    }
}

/// A broker for one run.
enum Env {
    Tansu(Broker),
    Mock {
        cluster: MockCluster,
        /// The runtime the mock's tasks run on; dropped after the cluster.
        _runtime: tokio::runtime::Runtime,
    },
}

impl Env {
    fn start(target: Target, binary: Option<&std::path::Path>) -> Result<Env> {
        Ok(match target {
            Target::Tansu => Env::Tansu(Broker::start(binary.context("no Tansu binary")?)?),
            Target::Mock => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("mock")
                    .enable_all()
                    .build()?;
                let cluster = runtime.block_on(MockCluster::start(MockConfig::with_brokers(1)))?;
                Env::Mock {
                    cluster,
                    _runtime: runtime,
                }
            }
        })
    }

    fn bootstrap(&self) -> String {
        match self {
            Env::Tansu(b) => b.bootstrap(),
            Env::Mock { cluster, .. } => cluster.bootstrap(),
        }
    }

    async fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        match self {
            Env::Tansu(b) => create_topic(&b.bootstrap(), topic, partitions).await,
            Env::Mock { cluster, .. } => {
                cluster.create_topic(topic, partitions);
                Ok(())
            }
        }
    }

    fn broker_cpu_ticks(&self) -> Option<u64> {
        match self {
            Env::Tansu(b) => procfs::cpu_ticks(&b.pid()).ok(),
            Env::Mock { .. } => None,
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let binary = if args.target.contains(&Target::Tansu) {
        Some(tansu_binary()?)
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let hz = procfs::ticks_per_second() as f64;
    let values: Vec<Bytes> = payloads(args.size).into_iter().map(Bytes::from).collect();
    let mut report = String::new();
    for &target in &args.target {
        for &scenario in &args.scenario {
            let sides = match scenario {
                Scenario::Produce => [Side::Idempotent, Side::Transactional],
                Scenario::Copy => [Side::PlainCopy, Side::ExactlyOnceCopy],
            };
            let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
            for rep in 0..args.repeat {
                // Alternate which side goes first.
                let order = if rep % 2 == 0 { [0, 1] } else { [1, 0] };
                for i in order {
                    let side = sides[i];
                    let env = Env::start(target, binary.as_deref())?;
                    let run = runtime
                        .block_on(measure(&args, &env, side, &values, hz))
                        .with_context(|| format!("{target:?}: {}", side.label()))?;
                    eprintln!(
                        "{target:?} rep {rep} {}: {:.0} msgs/s ({} records in {:.2} s, \
                         setup {:.2} s, {} commits taking {:.0} ms)",
                        side.label(),
                        run.rate(),
                        run.records,
                        run.elapsed_s,
                        run.setup_s,
                        run.commits,
                        run.commit_s * 1e3
                    );
                    runs[i].push(run);
                    drop(env);
                }
            }
            table(&mut report, &args, target, scenario, sides, &runs);
        }
    }
    let command =
        std::iter::once("cargo run --release -p sluice-benches --bin transactions --".to_owned())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" ");
    println!("{report}Command: `{command}`");
    Ok(())
}

/// Runs one side on a fresh broker, with the client's and the broker's CPU time around it.
async fn measure(args: &Args, env: &Env, side: Side, values: &[Bytes], hz: f64) -> Result<Run> {
    match side {
        Side::Idempotent | Side::Transactional => env.create_topic("out", args.partitions).await?,
        Side::PlainCopy | Side::ExactlyOnceCopy => {
            env.create_topic("in", args.partitions).await?;
            env.create_topic("out", args.partitions).await?;
            // The input, not timed.
            produce(args, env, "in", None, values).await?;
        }
    }
    let client0 = procfs::cpu_ticks("self")?;
    let broker0 = env.broker_cpu_ticks();
    let mut run = match side {
        Side::Idempotent => produce(args, env, "out", None, values).await?,
        Side::Transactional => produce(args, env, "out", Some("bench-txn"), values).await?,
        Side::PlainCopy => plain_copy(args, env).await?,
        Side::ExactlyOnceCopy => eos_copy(args, env).await?,
    };
    run.client_cpu_s = (procfs::cpu_ticks("self")? - client0) as f64 / hz;
    run.broker_cpu_s = broker0
        .zip(env.broker_cpu_ticks())
        .map(|(a, b)| (b - a) as f64 / hz);
    Ok(run)
}

fn producer_config(env: &Env, transactional_id: Option<&str>) -> Result<ProducerConfig> {
    let mut config = ProducerConfig::builder()
        .bootstrap(&env.bootstrap())
        .linger(Duration::from_millis(5))
        .batch_size(BATCH_BYTES)
        .enable_idempotence(true);
    if let Some(id) = transactional_id {
        config = config.transactional_id(id);
    }
    Ok(config.build()?)
}

/// Produces `args.messages` records to `topic`; with a transactional id, committing every
/// `commit_interval_ms` of wall time.
async fn produce(
    args: &Args,
    env: &Env,
    topic: &str,
    transactional_id: Option<&str>,
    values: &[Bytes],
) -> Result<Run> {
    let created = Instant::now();
    let producer = Producer::new(producer_config(env, transactional_id)?).await?;
    let txn = transactional_id.is_some();
    if txn {
        producer.init_transactions().await?;
        producer.begin_transaction()?;
    }
    // Warm-up: the first record waits for metadata (and the partition's AddPartitionsToTxn).
    let first = ProducerRecord::new(topic).value(values[0].clone());
    producer.send(first).await.map_err(|e| e.error)?.await?;
    if txn {
        producer.commit_transaction().await?;
    }
    let setup_s = created.elapsed().as_secs_f64();

    let interval = Duration::from_millis(args.commit_interval_ms.max(1));
    let start = Instant::now();
    let mut opened = start;
    let (mut commits, mut commit_s) = (0, 0.0);
    if txn {
        producer.begin_transaction()?;
    }
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
    for i in 1..args.messages as usize {
        let record = ProducerRecord::new(topic).value(values[i % values.len()].clone());
        let delivery = producer.send(record).await.map_err(|e| e.error)?;
        sluice_benches::drain_acknowledged(&mut pending).await?;
        pending.push_back(delivery);
        // Instant::now() is a vDSO call; checking every 64 records bounds the overshoot to
        // a few microseconds.
        if txn && i % 64 == 0 && opened.elapsed() >= interval {
            let committing = Instant::now();
            producer.commit_transaction().await?;
            commit_s += committing.elapsed().as_secs_f64();
            commits += 1;
            producer.begin_transaction()?;
            opened = Instant::now();
        }
    }
    if txn {
        let committing = Instant::now();
        producer.commit_transaction().await?;
        commit_s += committing.elapsed().as_secs_f64();
        commits += 1;
    } else {
        producer.flush().await;
    }
    for delivery in pending {
        delivery.await?;
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    producer.close().await;
    Ok(Run {
        records: args.messages - 1,
        elapsed_s,
        setup_s,
        commits,
        commit_s,
        ..Run::default()
    })
}

/// The output record for an input one, as `sluice copy --map identity` makes it.
fn copy_of(record: sluice_client::consumer::ConsumerRecord) -> ProducerRecord {
    let mut out = ProducerRecord::new("out");
    out.key = record.key;
    out.value = record.value;
    out.headers = record
        .headers
        .into_iter()
        .map(|h| (String::from_utf8_lossy(&h.key).into_owned(), h.value))
        .collect();
    out
}

/// (a) Plain consume+produce: no group, no transactions, until every record is acknowledged.
async fn plain_copy(args: &Args, env: &Env) -> Result<Run> {
    let created = Instant::now();
    let config = ConsumerConfig::builder()
        .bootstrap(&env.bootstrap())
        .build()?;
    let mut consumer = Consumer::new(config).await?;
    let producer = Producer::new(producer_config(env, None)?).await?;
    let partitions: Vec<(&str, i32, Offset)> = (0..args.partitions)
        .map(|p| ("in", p, Offset::Beginning))
        .collect();
    consumer.assign_with_offsets(&partitions);
    let mut start = None;
    let mut read = 0u64;
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
    while read < args.messages {
        let batch = consumer.poll_batch().await?;
        start.get_or_insert_with(Instant::now);
        for record in batch.to_records()? {
            let delivery = producer.send(copy_of(record)).await.map_err(|e| e.error)?;
            sluice_benches::drain_acknowledged(&mut pending).await?;
            pending.push_back(delivery);
            read += 1;
        }
    }
    producer.flush().await;
    for delivery in pending {
        delivery.await?;
    }
    let start = start.context("no input")?;
    let elapsed_s = start.elapsed().as_secs_f64();
    if read != args.messages {
        bail!("copied {read} records, expected {}", args.messages);
    }
    producer.close().await;
    Ok(Run {
        records: read,
        elapsed_s,
        setup_s: (start - created).as_secs_f64(),
        ..Run::default()
    })
}

/// (b) The exactly-once loop of `sluice copy` (cli/src/copy.rs `run_job`, `Stop::Count`),
/// without its abort-and-rewind path: any error fails the run.
async fn eos_copy(args: &Args, env: &Env) -> Result<Run> {
    let created = Instant::now();
    let consumer_config = ConsumerConfig::builder()
        .bootstrap(&env.bootstrap())
        .group_id("bench-copy")
        .isolation_level(IsolationLevel::ReadCommitted)
        .enable_auto_commit(false)
        .auto_offset_reset(OffsetReset::Earliest)
        .build()?;
    let mut consumer = GroupConsumer::new(consumer_config).await?;
    let producer = Producer::new(producer_config(env, Some("bench-copy"))?).await?;
    producer.init_transactions().await?;
    consumer.subscribe(&["in"]);

    let interval = Duration::from_millis(args.commit_interval_ms.max(1));
    let n = args.messages;
    let mut start = None;
    let mut open: Option<Instant> = None;
    let mut offsets: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut deliveries: Vec<DeliveryFuture> = Vec::new();
    let (mut pending, mut copied, mut commits, mut commit_s) = (0u64, 0u64, 0u64, 0.0);
    while copied < n {
        let wait = match open {
            Some(opened) => interval.saturating_sub(opened.elapsed()),
            None => interval,
        };
        match consumer.poll_for(wait).await? {
            Some(GroupEvent::Batch(batch)) => {
                start.get_or_insert_with(Instant::now);
                if open.is_none() {
                    producer.begin_transaction()?;
                    open = Some(Instant::now());
                }
                for record in batch.to_records()? {
                    deliveries.push(producer.send(copy_of(record)).await.map_err(|e| e.error)?);
                    pending += 1;
                }
                offsets.insert(
                    (batch.topic().to_owned(), batch.partition()),
                    batch.next_offset(),
                );
            }
            Some(GroupEvent::Revoked(_) | GroupEvent::Lost(_)) => {
                bail!("a rebalance during the benchmark")
            }
            Some(GroupEvent::Assigned(_)) | None => {}
        }
        let due = open.is_some_and(|opened| opened.elapsed() >= interval);
        if open.is_some() && (due || copied + pending >= n) {
            let committing = Instant::now();
            let to_commit: Vec<OffsetToCommit> = offsets
                .iter()
                .map(|((t, p), o)| OffsetToCommit::new(t.clone(), *p, *o))
                .collect();
            producer
                .send_offsets_to_transaction(&to_commit, &consumer.group_metadata())
                .await?;
            producer.commit_transaction().await?;
            commit_s += committing.elapsed().as_secs_f64();
            for delivery in deliveries.drain(..) {
                delivery.await?;
            }
            open = None;
            offsets.clear();
            copied += std::mem::take(&mut pending);
            commits += 1;
        }
    }
    let start = start.context("no input")?;
    let elapsed_s = start.elapsed().as_secs_f64();
    if copied != n {
        bail!("copied {copied} records, expected {n}");
    }
    consumer.close().await?;
    producer.close().await;
    Ok(Run {
        records: copied,
        elapsed_s,
        setup_s: (start - created).as_secs_f64(),
        commits,
        commit_s,
        ..Run::default()
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Appends one scenario's Markdown table.
fn table(
    out: &mut String,
    args: &Args,
    target: Target,
    scenario: Scenario,
    sides: [Side; 2],
    runs: &[Vec<Run>; 2],
) {
    let (title, bar) = match scenario {
        Scenario::Produce => ("transactional vs idempotent produce", 0.95),
        Scenario::Copy => ("exactly-once copy vs plain consume+produce", 0.70),
    };
    let _ = writeln!(
        out,
        "### {target:?}: {title}\n\n{} records x {} B, {} partitions, commit every {} ms, \
         median of {} runs\n",
        args.messages, args.size, args.partitions, args.commit_interval_ms, args.repeat
    );
    let _ = writeln!(
        out,
        "| side | msgs/s (median) | range | ratio | set-up s | commits | ms blocked in commits | \
         client CPU s | broker CPU s |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    let base = median(runs[0].iter().map(Run::rate).collect());
    for (side, runs) in sides.iter().zip(runs) {
        let rates: Vec<f64> = runs.iter().map(Run::rate).collect();
        let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rates.iter().copied().fold(0.0, f64::max);
        let rate = median(rates);
        let broker = median(runs.iter().filter_map(|r| r.broker_cpu_s).collect());
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0}-{:.0} | {:.3}x | {:.2} | {:.0} | {:.0} | {:.2} | {} |",
            side.label(),
            rate,
            lo,
            hi,
            rate / base,
            median(runs.iter().map(|r| r.setup_s).collect()),
            median(runs.iter().map(|r| r.commits as f64).collect()),
            median(runs.iter().map(|r| r.commit_s * 1e3).collect()),
            median(runs.iter().map(|r| r.client_cpu_s).collect()),
            if broker.is_nan() {
                "-".to_owned()
            } else {
                format!("{broker:.2}")
            },
        );
    }
    let ratio = median(runs[1].iter().map(Run::rate).collect()) / base;
    // Also the ratio per repetition (each pair ran back to back), less sensitive to drift.
    let paired: Vec<String> = runs[0]
        .iter()
        .zip(&runs[1])
        .map(|(a, b)| format!("{:.3}", b.rate() / a.rate()))
        .collect();
    let _ = writeln!(
        out,
        "\nRatio of medians {ratio:.3}x (per repetition: {}); bar >= {bar:.2}x: **{}**\n",
        paired.join(", "),
        if ratio >= bar { "met" } else { "missed" }
    );
}

/// `DISTINCT_VALUES` values of `size` bytes: JSON-like click events, as in the throughput
/// bench (codec none here, so only their size matters).
fn payloads(size: usize) -> Vec<Vec<u8>> {
    (0..DISTINCT_VALUES)
        .map(|i| {
            let h = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut v = format!(
                "{{\"user\":{},\"session\":\"{:08x}\",\"page\":\"/item/{}\",\"ts\":{}}}",
                h % 100_000,
                h >> 32,
                (h >> 16) % 5000,
                1_700_000_000_000u64 + i as u64 * 37,
            )
            .into_bytes();
            v.resize(size, b' ');
            v
        })
        .collect()
}
