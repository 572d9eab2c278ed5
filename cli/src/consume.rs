//! `sluice consume`: print a topic's records, like `kcat -C`.
//!
//! Reads the partitions it is given (all of the topic's, or `-p`), without a consumer group,
//! from the offset `-o` names in each (kcat's spellings: `beginning`, the default; `end`; an
//! offset; `-N`, the last N records of each partition; `s@MILLIS`, the first record at or after
//! a time). Text output is the value per line, or `key DELIM value` with `-K`; null prints as
//! nothing, as in kcat. `--format json` prints the line `sluice dump` prints, plus `topic` and
//! `partition`.
//!
//! `-e` exits once every partition has been read to its end (`ends.rs`). `-c` stops after
//! that many records in all.
//!
//! With `-g GROUP` it reads as a member of a consumer group instead (`consume_group.rs`).
//!
//! References: the protocol guide's Fetch and ListOffsets; KIP-98 (isolation levels).

use std::collections::HashMap;
use std::io::{self, BufWriter, StdoutLock, Write};
use std::time::Duration;

use sluice_client::admin::{Admin, OffsetSpec};
use sluice_client::cluster::{Cluster, ClusterOptions};
use sluice_client::config::{AdminConfig, ConsumerConfig, IsolationLevel};
use sluice_client::consumer::{Consumer, FetchedBatch, Offset};
use sluice_protocol::record::Record;

use crate::connect::{topic_partitions, BrokerArgs};
use crate::ends::{Ends, Key};
use crate::flags::{parse_delimiter, Delimiter};
use crate::json::RecordLine;
use crate::CliError;

/// How often `-e` looks at the partitions' positions while no data comes: the position can
/// reach the end without a batch to show for it (a transaction marker is the last record).
const END_CHECK: Duration = Duration::from_millis(100);

/// Arguments of `sluice consume`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
    /// The topic to read (repeatable with `-g`).
    #[arg(short = 't', long = "topic", required = true)]
    topics: Vec<String>,
    /// Read as a member of this consumer group: the group spreads the topics' partitions
    /// over its members, and offsets are committed (kcat's -G).
    #[arg(short = 'g', long = "group")]
    group: Option<String>,
    /// Read only this partition (default: all of the topic's).
    #[arg(short = 'p', long = "partition")]
    partition: Option<i32>,
    /// Where to start in each partition: beginning | end | OFFSET | -N (the last N records) |
    /// s@MILLIS (the first record at or after this time, in ms since the epoch).
    #[arg(
        short = 'o',
        long = "offset",
        default_value = "beginning",
        value_parser = parse_start,
        allow_hyphen_values = true
    )]
    offset: Start,
    /// Stop after this many records (of all partitions together).
    #[arg(short = 'c', long = "count", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Exit once every partition has been read to its end.
    #[arg(short = 'e', long = "exit")]
    exit_at_end: bool,
    /// Which records to read (sets `isolation.level`; default read_uncommitted, as Java's
    /// client; kcat's librdkafka defaults to read_committed).
    #[arg(long = "isolation", value_enum)]
    isolation: Option<Isolation>,
    /// Output: the value per line, or one JSON object per record.
    #[arg(long = "format", value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Text format: print `key DELIM value` (kcat escapes: \t, \n, \xNN...).
    #[arg(short = 'K', long = "key-delimiter", value_name = "DELIM", value_parser = parse_delimiter)]
    key_delimiter: Option<Delimiter>,
}

/// Where to start reading, as `-o` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    Beginning,
    End,
    Exact(i64),
    /// This many records before the end (never before the log start).
    FromEnd(i64),
    Timestamp(i64),
}

fn parse_start(s: &str) -> Result<Start, String> {
    let number = |n: &str| {
        n.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("expected beginning, end, OFFSET, -N or s@MILLIS, got {s:?}"))
    };
    match s {
        "beginning" => Ok(Start::Beginning),
        "end" => Ok(Start::End),
        "stored" => Err("-o stored needs a consumer group, which consume does not use".into()),
        _ => match (s.strip_prefix("s@"), s.strip_prefix('-')) {
            (Some(t), _) => number(t).map(Start::Timestamp),
            (_, Some(n)) => number(n).map(Start::FromEnd),
            _ => number(s).map(Start::Exact),
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Isolation {
    #[value(name = "read_committed")]
    ReadCommitted,
    #[value(name = "read_uncommitted")]
    ReadUncommitted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub(crate) async fn run(args: &Args) -> Result<(), CliError> {
    let mut properties = args.broker.all_properties();
    if let Some(isolation) = args.isolation {
        let value = match isolation {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        };
        properties.push(("isolation.level".into(), value.into()));
    }
    let mut printer = Printer {
        format: args.format,
        key_delimiter: args.key_delimiter.clone(),
        out: BufWriter::with_capacity(1 << 16, io::stdout().lock()),
    };
    if let Some(group) = &args.group {
        let from_beginning = match args.offset {
            Start::Beginning => true,
            Start::End => false,
            _ => {
                return Err(CliError::Failed(
                    "with -g, -o can only be beginning or end (where a partition without a committed offset starts)".into(),
                ))
            }
        };
        if args.partition.is_some() {
            return Err(CliError::Failed(
                "-p cannot be used with -g: the group assigns the partitions".into(),
            ));
        }
        let read = crate::consume_group::GroupRead {
            group,
            topics: &args.topics,
            properties,
            from_beginning,
            count: args.count,
            exit_at_end: args.exit_at_end,
        };
        return crate::consume_group::run(read, &mut printer).await;
    }
    let [topic] = args.topics.as_slice() else {
        return Err(CliError::Failed(
            "several -t need a consumer group (-g)".into(),
        ));
    };
    let config = ConsumerConfig::from_properties(properties)?;
    let cluster = Cluster::connect(ClusterOptions::from_client(config.client())).await?;
    let partitions = topic_partitions(&cluster, topic, args.partition).await?;
    let admin = Admin::with_cluster(cluster, AdminConfig::from(config.client().clone()));
    let lookup = Lookup {
        admin: &admin,
        topic,
        partitions: &partitions,
        isolation: config.isolation_level(),
    };
    let ends = if args.exit_at_end || matches!(args.offset, Start::FromEnd(_)) {
        lookup.offsets(OffsetSpec::Latest).await?
    } else {
        HashMap::new()
    };
    let starts: Vec<(&str, i32, Offset)> = match args.offset {
        Start::FromEnd(n) => {
            let earliest = lookup.offsets(OffsetSpec::Earliest).await?;
            partitions
                .iter()
                .map(|p| {
                    let end = ends.get(p).copied().unwrap_or(0);
                    let first = earliest.get(p).copied().unwrap_or(0);
                    let start = end.saturating_sub(n).max(first);
                    (topic.as_str(), *p, Offset::Exact(start))
                })
                .collect()
        }
        start => partitions
            .iter()
            .map(|p| (topic.as_str(), *p, offset(start)))
            .collect(),
    };
    let ends = args.exit_at_end.then(|| {
        let mut tracked = Ends::new(lookup.isolation);
        for (partition, end) in ends {
            tracked.insert((topic.clone(), partition), end);
        }
        tracked
    });
    let keys: Vec<Key> = partitions.iter().map(|p| (topic.clone(), *p)).collect();
    let mut consumer = Consumer::new(config).await?;
    consumer.assign_with_offsets(&starts);
    let result = read(&mut consumer, &keys, ends, args.count, &mut printer).await;
    printer.out.flush()?;
    result
}

/// Prints records of `partitions` until `-e`'s ends or `-c`'s count are reached (or forever).
async fn read(
    consumer: &mut Consumer,
    partitions: &[Key],
    mut ends: Option<Ends>,
    count: Option<u64>,
    printer: &mut Printer,
) -> Result<(), CliError> {
    let mut printed: u64 = 0;
    loop {
        let batch = match &mut ends {
            Some(ends) => {
                if ends.all_reached(partitions.iter(), |(t, p)| consumer.position(t, *p)) {
                    return Ok(());
                }
                // poll_batch is cancel safe: a timeout loses nothing.
                match tokio::time::timeout(END_CHECK, consumer.poll_batch()).await {
                    Ok(batch) => batch?,
                    Err(_) => continue,
                }
            }
            None => consumer.poll_batch().await?,
        };
        if let Some(ends) = &mut ends {
            ends.saw(&batch);
        }
        for record in batch.records() {
            printer.print(&batch, &record?)?;
            printed += 1;
            if count == Some(printed) {
                return Ok(());
            }
        }
        // Whole batches at a time, so that a tail (`-o end`) shows records as they come.
        printer.out.flush()?;
    }
}

fn offset(start: Start) -> Offset {
    match start {
        Start::Beginning => Offset::Beginning,
        Start::End => Offset::End,
        Start::Exact(o) | Start::FromEnd(o) => Offset::Exact(o),
        Start::Timestamp(t) => Offset::Timestamp(t),
    }
}

/// ListOffsets for some partitions of one topic.
pub(crate) struct Lookup<'a> {
    pub(crate) admin: &'a Admin,
    pub(crate) topic: &'a str,
    pub(crate) partitions: &'a [i32],
    pub(crate) isolation: IsolationLevel,
}

impl Lookup<'_> {
    /// One offset of each partition, by partition.
    pub(crate) async fn offsets(&self, spec: OffsetSpec) -> Result<HashMap<i32, i64>, CliError> {
        let asked: Vec<(&str, i32, OffsetSpec)> = self
            .partitions
            .iter()
            .map(|p| (self.topic, *p, spec))
            .collect();
        let mut found = HashMap::new();
        for ((_, partition), result) in self.admin.list_offsets(&asked, self.isolation).await {
            let listed = result.map_err(|e| {
                CliError::Failed(format!(
                    "cannot look up the offsets of {}-{partition}: {e}",
                    self.topic
                ))
            })?;
            found.insert(partition, listed.offset);
        }
        Ok(found)
    }
}

/// Writes records as `--format` and `-K` say.
pub(crate) struct Printer {
    format: Format,
    key_delimiter: Option<Delimiter>,
    pub(crate) out: BufWriter<StdoutLock<'static>>,
}

impl Printer {
    pub(crate) fn print(&mut self, batch: &FetchedBatch, record: &Record<'_>) -> io::Result<()> {
        let out = &mut self.out;
        match self.format {
            Format::Json => {
                let line = RecordLine::new(batch.batch(), record)
                    .in_partition(batch.topic(), batch.partition());
                serde_json::to_writer(&mut *out, &line)?;
            }
            Format::Text => {
                if let Some(delimiter) = &self.key_delimiter {
                    out.write_all(record.key().unwrap_or_default())?;
                    out.write_all(&delimiter.0)?;
                }
                out.write_all(record.value().unwrap_or_default())?;
            }
        }
        out.write_all(b"\n")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_as_kcat_spells_them() {
        assert_eq!(parse_start("beginning").unwrap(), Start::Beginning);
        assert_eq!(parse_start("end").unwrap(), Start::End);
        assert_eq!(parse_start("42").unwrap(), Start::Exact(42));
        assert_eq!(parse_start("-3").unwrap(), Start::FromEnd(3));
        assert_eq!(
            parse_start("s@1700000000000").unwrap(),
            Start::Timestamp(1_700_000_000_000)
        );
        for bad in ["", "x", "--3", "s@", "s@-1", "1.5", "stored"] {
            assert!(parse_start(bad).is_err(), "{bad}");
        }
    }
}
