//! `sluice produce`: one record per line of standard input, like `kcat -P`.
//!
//! Input follows kcat's rules, so existing pipelines carry over: records are separated by
//! `\n`, which is not sent (a `\r` before it is kept); empty lines are skipped. With
//! `-K DELIM` the bytes before the first DELIM are the key and the rest is the value (either
//! may be empty, never null); a line without DELIM is sent whole as the value with a null key.
//! `-H name=value` adds a header to every record, in the order given (`-H name` alone: a null
//! value). Lines are bytes: nothing needs to be UTF-8.
//!
//! With `--transactional-id ID` the records are written in transactions of `--txn-size N`
//! records, each committed before the next begins (the last one at the end of input); a
//! failure aborts the open transaction.
//!
//! Like kcat the command is quiet, and it exits only once every record is acknowledged or
//! failed. Any failure (a record refused at `send`, or a delivery that failed) stops reading,
//! waits for what was already sent, prints one line and exits non-zero. `-v` prints how many
//! records were delivered, to stderr.

use bytes::Bytes;
use sluice_client::config::ProducerConfig;
use sluice_client::producer::{Producer, ProducerRecord};
use sluice_client::KafkaCode;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::connect::{topic_error, BrokerArgs};
use crate::deliveries::Deliveries;
use crate::flags::{parse_delimiter, parse_header, Codec, Delimiter};
use crate::CliError;

/// Arguments of `sluice produce`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
    /// The topic to write to.
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// Write every record to this partition (default: keyed records by the hash of their
    /// key, the others spread by the sticky partitioner).
    #[arg(short = 'p', long = "partition")]
    partition: Option<i32>,
    /// Split each line into key and value at the first DELIM (kcat escapes: \t, \n, \xNN...).
    /// A line without DELIM is all value, with a null key.
    #[arg(short = 'K', long = "key-delimiter", value_name = "DELIM", value_parser = parse_delimiter)]
    key_delimiter: Option<Delimiter>,
    /// Compression codec (sets `compression.type`).
    #[arg(short = 'z', long = "compression", value_enum, value_name = "CODEC")]
    compression: Option<Codec>,
    /// Add a header to every record: `name=value`, or `name` for a null value. Repeatable.
    #[arg(short = 'H', long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    headers: Vec<(String, Option<Bytes>)>,
    /// Print the number of records delivered to stderr at the end.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Write in transactions under this transactional id (read_committed readers see the
    /// records only once their transaction commits).
    #[arg(long = "transactional-id", value_name = "ID")]
    transactional_id: Option<String>,
    /// With --transactional-id: commit every N records (and at the end of input).
    #[arg(long = "txn-size", value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    txn_size: u64,
}

/// The producer's config: `-b`, then `-X`, then `-z` (so `-z` wins over `-X
/// compression.type`).
pub(crate) fn producer_config(
    broker: &BrokerArgs,
    codec: Option<Codec>,
) -> Result<ProducerConfig, CliError> {
    let mut properties = broker.all_properties();
    properties.extend(codec.map(Codec::property));
    Ok(ProducerConfig::from_properties(properties)?)
}

impl Args {
    /// The record for one input line (without its `\n`).
    fn record(&self, line: Bytes) -> ProducerRecord {
        let (key, value) = match &self.key_delimiter {
            Some(delimiter) => match delimiter.split(line) {
                Ok((key, value)) => (Some(key), value),
                Err(line) => (None, line),
            },
            None => (None, line),
        };
        let mut record = ProducerRecord::new(self.topic.as_str());
        record.key = key;
        record.value = Some(value);
        record.partition = self.partition;
        record.headers.clone_from(&self.headers);
        record
    }
}

pub(crate) async fn run(args: &Args) -> Result<(), CliError> {
    let mut broker = args.broker.clone();
    if let Some(id) = &args.transactional_id {
        broker
            .properties
            .push(("transactional.id".into(), id.clone()));
    }
    let config = producer_config(&broker, args.compression)?;
    let producer = Producer::new(config).await?;
    check_topic(&producer, &args.topic, args.partition).await?;
    let transactional = args.transactional_id.is_some();
    if transactional {
        producer.init_transactions().await?;
    }
    let mut in_transaction: u64 = 0;
    let deliveries = Deliveries::start();
    let mut input = BufReader::with_capacity(1 << 16, tokio::io::stdin());
    let mut sent: u64 = 0;
    let mut stopped = None;
    loop {
        let mut line = Vec::new();
        match input.read_until(b'\n', &mut line).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                stopped = Some(format!("cannot read standard input: {e}"));
                break;
            }
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.is_empty() {
            continue;
        }
        if transactional && in_transaction == 0 {
            producer.begin_transaction()?;
        }
        match producer.send(args.record(Bytes::from(line))).await {
            Ok(delivery) => deliveries.push(delivery),
            Err(refused) => {
                stopped = Some(match refused.error.code() {
                    Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION) => {
                        topic_error(&args.topic, refused.error).to_string()
                    }
                    _ => format!("record {} not sent: {}", sent + 1, refused.error),
                });
                break;
            }
        }
        sent += 1;
        if deliveries.has_failed() {
            break;
        }
        if transactional {
            in_transaction += 1;
            if in_transaction == args.txn_size {
                producer.commit_transaction().await?;
                in_transaction = 0;
            }
        }
    }
    // The last, partial transaction: committed if everything went well, else aborted.
    if transactional && in_transaction > 0 {
        if stopped.is_none() && !deliveries.has_failed() {
            producer.commit_transaction().await?;
        } else {
            producer.abort_transaction().await?;
        }
    }
    // Sends what is batched and waits for every record to be acknowledged or to fail (at
    // most `delivery.timeout.ms`) before closing: closing first would cut that wait short
    // and fail the stragglers as "closed" rather than with their own error.
    producer.flush().await;
    let summary = deliveries.finish().await;
    producer.close().await;
    if args.verbose {
        eprintln!(
            "sluice: {} records delivered to {}",
            summary.delivered, args.topic
        );
    }
    if let Some(error) = summary.first_error {
        return Err(CliError::Failed(format!(
            "{} of {sent} records not delivered to {}: {error}",
            summary.failed, args.topic
        )));
    }
    match stopped {
        Some(why) => Err(CliError::Failed(why)),
        None => Ok(()),
    }
}

/// Fails at once for a topic or partition that does not exist, rather than at the first
/// line (which, typed by hand, may be a while). The producer's metadata requests may create
/// the topic, as Java's and librdkafka's do, if the broker auto-creates topics; a topic that
/// is being created (no leader yet) passes, and `send` waits for it.
pub(crate) async fn check_topic(
    producer: &Producer,
    topic: &str,
    partition: Option<i32>,
) -> Result<(), CliError> {
    match producer.cluster().topic(topic).await {
        Ok(info) => match partition {
            Some(p) if !info.partitions.is_empty() && info.partition(p).is_none() => {
                Err(CliError::Failed(format!(
                    "topic {topic:?} has partitions 0..{}: partition {p} does not exist",
                    info.partitions.len() - 1
                )))
            }
            _ => Ok(()),
        },
        Err(e) if e.code() == Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION) || !e.is_retriable() => {
            Err(topic_error(topic, e))
        }
        Err(_) => Ok(()),
    }
}
