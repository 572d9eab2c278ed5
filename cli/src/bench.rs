//! `sluice bench produce|consume`: throughput of this client against a real cluster.
//!
//! `produce` sends N keyless records of BYTES bytes each as fast as the producer takes them
//! (sticky partitioning, so batches fill) and stops the clock when the last one is
//! acknowledged. `consume` reads N records from the beginning of every partition of the
//! topic (run `bench produce` first) and stops the clock at the Nth. Both print one line:
//!
//! ```text
//! 1000000 msgs in 2.10 s: 476190 msgs/s, 47.6 MB/s, client CPU 1.95 s user + 0.31 s sys
//! ```
//!
//! MB are 10^6 bytes of keys and values (the payload, not the wire bytes). CPU time is this
//! process's, over the timed part, from `/proc/self/stat` (see [`cpu_times`]); the broker's is
//! not counted. A progress bar is drawn on stderr when it is a terminal, never into a pipe.
//!
//! Values are random letters and digits (about 6 bits of entropy a byte) taken from a 4 MiB
//! pool at scattered offsets: the compressed numbers are neither flattered by an all-zero
//! payload nor by values repeating within a batch.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_client::cluster::{Cluster, ClusterOptions};
use sluice_client::config::ConsumerConfig;
use sluice_client::consumer::{Consumer, Offset};
use sluice_client::producer::{Producer, ProducerRecord};

use crate::connect::{topic_partitions, BrokerArgs};
use crate::deliveries::Deliveries;
use crate::flags::Codec;
use crate::produce::{check_topic, producer_config};
use crate::CliError;

/// `bench consume` gives up when no record comes for this long before it has N.
const CONSUME_IDLE: Duration = Duration::from_secs(10);

/// Arguments of `sluice bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    which: Which,
}

#[derive(Debug, clap::Subcommand)]
enum Which {
    /// Produce N records of BYTES bytes and time their acknowledgement.
    Produce(ProduceArgs),
    /// Consume N records from the beginning of the topic.
    Consume(ConsumeArgs),
}

/// What both benchmarks take.
#[derive(Debug, clap::Args)]
struct Common {
    #[command(flatten)]
    broker: BrokerArgs,
    /// The topic.
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// How many records.
    #[arg(long = "messages", value_name = "N")]
    messages: u64,
    /// The size of each value in bytes (`consume` counts the bytes it reads instead and
    /// accepts this only so that one command line serves both).
    #[arg(long = "size", value_name = "BYTES", default_value_t = 100)]
    size: usize,
}

#[derive(Debug, clap::Args)]
struct ProduceArgs {
    #[command(flatten)]
    common: Common,
    /// Compression codec (sets `compression.type`).
    #[arg(short = 'z', long = "compression", value_enum, value_name = "CODEC")]
    compression: Option<Codec>,
}

#[derive(Debug, clap::Args)]
struct ConsumeArgs {
    #[command(flatten)]
    common: Common,
}

pub(crate) async fn run(args: &Args) -> Result<(), CliError> {
    let result = match &args.which {
        Which::Produce(a) => produce(a).await?,
        Which::Consume(a) => consume(&a.common).await?,
    };
    writeln!(io::stdout(), "{result}")?;
    Ok(())
}

async fn produce(args: &ProduceArgs) -> Result<Measured, CliError> {
    let common = &args.common;
    let producer = Producer::new(producer_config(&common.broker, args.compression)?).await?;
    check_topic(&producer, &common.topic, None).await?;
    let values = Values::new(common.size);
    let deliveries = Deliveries::start();
    let progress = Progress::start(common.messages, deliveries.delivered());
    let clock = Clock::start();
    for i in 0..common.messages {
        let record = ProducerRecord::new(common.topic.as_str()).value(values.get(i));
        match producer.send(record).await {
            Ok(delivery) => deliveries.push(delivery),
            Err(refused) => {
                return Err(CliError::Failed(format!(
                    "record {} not sent: {}",
                    i + 1,
                    refused.error
                )))
            }
        }
        if i % 1024 == 0 && deliveries.has_failed() {
            break;
        }
    }
    producer.flush().await;
    let summary = deliveries.finish().await;
    let measured = clock.stop(summary.delivered, summary.delivered * common.size as u64);
    progress.finish();
    producer.close().await;
    match summary.first_error {
        Some(error) => Err(CliError::Failed(format!(
            "{} of {} records not delivered: {error}",
            summary.failed, common.messages
        ))),
        None => Ok(measured),
    }
}

async fn consume(args: &Common) -> Result<Measured, CliError> {
    let config = ConsumerConfig::from_properties(args.broker.all_properties())?;
    let cluster = Cluster::connect(ClusterOptions::from_client(config.client())).await?;
    let partitions = topic_partitions(&cluster, &args.topic, None).await?;
    drop(cluster);
    let assignment: Vec<(&str, i32, Offset)> = partitions
        .iter()
        .map(|p| (args.topic.as_str(), *p, Offset::Beginning))
        .collect();
    let mut consumer = Consumer::new(config).await?;
    let count = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(args.messages, Arc::clone(&count));
    let clock = Clock::start();
    consumer.assign_with_offsets(&assignment);
    let (mut records, mut bytes) = (0u64, 0u64);
    while records < args.messages {
        let batch = match tokio::time::timeout(CONSUME_IDLE, consumer.poll_batch()).await {
            Ok(batch) => batch?,
            Err(_) => {
                progress.finish();
                return Err(CliError::Failed(format!(
                    "only {records} of {} records in {}: nothing more came for {CONSUME_IDLE:?}",
                    args.messages, args.topic
                )));
            }
        };
        for record in batch.records() {
            let record = record?;
            let len = |b: Option<&[u8]>| b.map_or(0, |b| b.len() as u64);
            bytes += len(record.key()) + len(record.value());
            records += 1;
            if records == args.messages {
                break;
            }
        }
        count.store(records, Ordering::Relaxed);
    }
    let measured = clock.stop(records, bytes);
    progress.finish();
    Ok(measured)
}

/// Value bytes for the records: slices of one pool of random letters and digits, at
/// scattered offsets, so consecutive values differ and no allocation is made per record.
struct Values {
    pool: Bytes,
    size: usize,
}

/// Where values may start: wider than any codec's match window (lz4 64 KiB, gzip 32 KiB, and
/// zstd's at the levels used), so a batch is not compressed by repeating earlier values.
const VALUE_SPREAD: usize = 4 << 20;

impl Values {
    fn new(size: usize) -> Self {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let mut rng = fastrand::Rng::with_seed(0x5115_cafe);
        let pool: Vec<u8> = (0..size + VALUE_SPREAD)
            .map(|_| ALPHABET[rng.usize(..ALPHABET.len())])
            .collect();
        Values {
            pool: Bytes::from(pool),
            size,
        }
    }

    fn get(&self, i: u64) -> Bytes {
        // Fibonacci hashing scatters consecutive indices over the pool.
        let start = (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize % VALUE_SPREAD;
        self.pool.slice(start..start + self.size)
    }
}

/// A progress bar fed by a counter from a ticker task, so the hot loop only bumps an atomic.
pub(crate) struct Progress {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub(crate) fn start(total: u64, done: Arc<AtomicU64>) -> Self {
        let target = if io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        if let Ok(style) =
            ProgressStyle::with_template("{bar:30} {human_pos}/{human_len} msgs, eta {eta}")
        {
            bar.set_style(style);
        }
        let shown = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                shown.set_position(done.load(Ordering::Relaxed));
            }
        });
        Progress { bar, ticker }
    }

    pub(crate) fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

/// Wall-clock and CPU time from `start` to `stop`.
struct Clock {
    wall: Instant,
    cpu: Option<(f64, f64)>,
}

impl Clock {
    fn start() -> Self {
        Clock {
            wall: Instant::now(),
            cpu: cpu_times(),
        }
    }

    fn stop(self, records: u64, bytes: u64) -> Measured {
        let elapsed = self.wall.elapsed();
        let cpu = self
            .cpu
            .zip(cpu_times())
            .map(|((u0, s0), (u1, s1))| (u1 - u0, s1 - s0));
        Measured {
            records,
            bytes,
            elapsed,
            cpu,
        }
    }
}

/// The result line.
struct Measured {
    records: u64,
    bytes: u64,
    elapsed: Duration,
    cpu: Option<(f64, f64)>,
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "{} msgs in {secs:.2} s: {:.0} msgs/s, {:.1} MB/s, client CPU ",
            self.records,
            self.records as f64 / secs,
            self.bytes as f64 / secs / 1e6
        )?;
        match self.cpu {
            Some((user, sys)) => write!(f, "{user:.2} s user + {sys:.2} s sys"),
            None => write!(f, "n/a (no /proc/self/stat)"),
        }
    }
}

/// Clock ticks per second of `/proc/self/stat`'s times: `sysconf(_SC_CLK_TCK)`, which is
/// `USER_HZ`, 100 on every Linux architecture's ABI whatever the kernel's `HZ`. Assumed rather
/// than asked, to stay free of libc calls.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// This process's CPU time so far, `(user, system)` in seconds, from `/proc/self/stat`; `None`
/// where there is no such file (not Linux).
fn cpu_times() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat)
}

/// utime and stime are fields 14 and 15 of `/proc/PID/stat` (proc(5)). Field 2, the command
/// name, is in parentheses and may hold spaces and parentheses itself, so count from the last
/// `)`: the fields after it start at field 3.
fn parse_stat(stat: &str) -> Option<(f64, f64)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(14 - 3);
    let mut ticks = || fields.next()?.parse::<u64>().ok();
    let user = ticks()?;
    let sys = ticks()?;
    Some((
        user as f64 / CLOCK_TICKS_PER_SEC,
        sys as f64 / CLOCK_TICKS_PER_SEC,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_are_fields_14_and_15() {
        let stat = "4242 (sl uice) (x)) R 1 2 3 4 5 6 7 8 9 10 250 37 0 0 20 0 3 0";
        assert_eq!(parse_stat(stat), Some((2.5, 0.37)));
        assert_eq!(parse_stat("garbage"), None);
        assert!(cpu_times().is_some(), "this test runs on Linux");
    }

    #[test]
    fn values_have_the_size_asked_and_differ() {
        let values = Values::new(100);
        assert_eq!(values.get(0).len(), 100);
        assert_eq!(values.get(u64::MAX).len(), 100);
        assert_ne!(values.get(0), values.get(1));
        assert_eq!(Values::new(0).get(7).len(), 0);
    }
}
