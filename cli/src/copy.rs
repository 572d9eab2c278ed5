//! `sluice copy`: an exactly-once consume-transform-produce loop, the classic Kafka
//! transactions example.
//!
//! A consumer-group member reads `--from` under `read_committed`; every record (key and headers
//! kept, the value mapped by `--map`) is produced to `--to` inside a transaction, and the
//! consumed offsets are committed in that same transaction (KIP-447: with the member's
//! generation, so a zombie member cannot commit). Every `--commit-interval-ms` the transaction
//! commits: output records and input offsets become visible together, or neither does.
//!
//! Crash anywhere (even `kill -9` in the middle of EndTxn) and restart with the same
//! `--transactional-id`: `init_transactions` fences the old incarnation and aborts whatever it
//! left open, and reading resumes at the last committed offsets, so a read_committed reader of
//! `--to` sees every input record exactly once, in per-key order.
//!
//! Before partitions are revoked in a rebalance the open transaction commits, so the next owner
//! starts where this one stopped. An abortable error (a failed send, a refused offset commit)
//! aborts the transaction and rewinds the input to the committed offsets; a fatal one (fenced by
//! a newer incarnation) ends the command with an error.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice_client::config::{property_scope, ConsumerConfig, ProducerConfig, PropertyScope};
use sluice_client::consumer::Offset;
use sluice_client::group::{GroupConsumer, GroupEvent, OffsetToCommit};
use sluice_client::producer::{DeliveryFuture, Producer, ProducerRecord};
use tokio::time::Instant;

use crate::connect::BrokerArgs;
use crate::CliError;

/// Arguments of `sluice copy`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
    /// The topic to read.
    #[arg(long = "from")]
    from: String,
    /// The topic to write.
    #[arg(long = "to")]
    to: String,
    /// The consumer group reading `--from`.
    #[arg(short = 'g', long = "group")]
    group: String,
    /// The producer's transactional id: keep it across restarts of the same copy.
    #[arg(long = "transactional-id")]
    transactional_id: String,
    /// How to transform each value.
    #[arg(long = "map", value_enum, default_value_t = Map::Identity)]
    map: Map,
    /// How long a transaction stays open before it commits.
    #[arg(long = "commit-interval-ms", default_value_t = 100)]
    commit_interval_ms: u64,
    /// Exit after this long without input and with nothing left to commit (default: run
    /// until stopped).
    #[arg(long = "idle-exit-ms")]
    idle_exit_ms: Option<u64>,
}

/// Value transformations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Map {
    /// Copy values unchanged.
    Identity,
    /// Upper-case values (Unicode for UTF-8 values, ASCII letters otherwise).
    Upper,
}

impl Map {
    fn apply(self, value: Option<Bytes>) -> Option<Bytes> {
        match self {
            Map::Identity => value,
            Map::Upper => value.map(|v| match std::str::from_utf8(&v) {
                Ok(s) => Bytes::from(s.to_uppercase()),
                Err(_) => Bytes::from(v.to_ascii_uppercase()),
            }),
        }
    }
}

pub(crate) async fn run(args: &Args) -> Result<(), CliError> {
    let job = Job {
        properties: args.broker.all_properties(),
        from: args.from.clone(),
        to: args.to.clone(),
        group: args.group.clone(),
        transactional_id: args.transactional_id.clone(),
        map: args.map,
        commit_interval: Duration::from_millis(args.commit_interval_ms.max(1)),
        stop: match args.idle_exit_ms {
            Some(ms) => Stop::Idle(Duration::from_millis(ms)),
            None => Stop::Never,
        },
    };
    run_job(job, None).await.map(|_| ())
}

/// When a copy stops.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stop {
    /// Never (until killed).
    Never,
    /// After this long without input, with nothing left to commit.
    Idle(Duration),
    /// Once this many records are copied and committed.
    Count(u64),
}

/// One exactly-once copy.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// Client properties (`-b` and `-X`), split between consumer and producer.
    pub(crate) properties: Vec<(String, String)>,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) group: String,
    pub(crate) transactional_id: String,
    pub(crate) map: Map,
    pub(crate) commit_interval: Duration,
    pub(crate) stop: Stop,
}

/// What a copy did.
#[derive(Debug, Clone)]
pub(crate) struct Copied {
    /// Records copied in committed transactions.
    pub(crate) records: u64,
    /// The producer's transaction counters.
    pub(crate) metrics: Option<sluice_client::txn::TxnMetrics>,
}

/// Runs `job`; `progress` counts the records copied in committed transactions.
pub(crate) async fn run_job(
    job: Job,
    progress: Option<Arc<AtomicU64>>,
) -> Result<Copied, CliError> {
    // `-X` properties go to whichever of the consumer and the producer takes them (both for
    // client settings); one neither takes is an error from the consumer's config.
    let (mut consumer_properties, mut producer_properties): (Vec<_>, Vec<_>) =
        (Vec::new(), Vec::new());
    for (name, value) in job.properties.iter().cloned() {
        match property_scope(&name) {
            PropertyScope::Producer => producer_properties.push((name, value)),
            PropertyScope::Consumer | PropertyScope::Unknown => {
                consumer_properties.push((name, value))
            }
            PropertyScope::Both => {
                producer_properties.push((name.clone(), value.clone()));
                consumer_properties.push((name, value));
            }
        }
    }
    consumer_properties.extend([
        ("group.id".to_owned(), job.group.clone()),
        ("isolation.level".to_owned(), "read_committed".to_owned()),
        ("enable.auto.commit".to_owned(), "false".to_owned()),
        ("auto.offset.reset".to_owned(), "earliest".to_owned()),
    ]);
    producer_properties.push(("transactional.id".to_owned(), job.transactional_id.clone()));
    let mut consumer =
        GroupConsumer::new(ConsumerConfig::from_properties(consumer_properties)?).await?;
    let producer = Producer::new(ProducerConfig::from_properties(producer_properties)?).await?;
    producer.init_transactions().await?;
    consumer.subscribe(&[job.from.as_str()]);

    let mut copy = Copy {
        producer,
        to: job.to.clone(),
        map: job.map,
        open: None,
        offsets: BTreeMap::new(),
        deliveries: Vec::new(),
        pending: 0,
        copied: 0,
        progress,
    };
    let interval = job.commit_interval;
    let idle_exit = match job.stop {
        Stop::Idle(idle) => Some(idle),
        Stop::Never | Stop::Count(_) => None,
    };
    let mut last_input = Instant::now();
    loop {
        let wait = match copy.open {
            Some(opened) => interval.saturating_sub(opened.elapsed()),
            None => idle_exit.unwrap_or(interval).min(interval),
        };
        match consumer.poll_for(wait).await? {
            Some(GroupEvent::Batch(batch)) => {
                last_input = Instant::now();
                copy.begin()?;
                let mut aborted = false;
                for record in batch.to_records()? {
                    let mut out = ProducerRecord::new(copy.to.as_str());
                    out.key = record.key;
                    out.value = copy.map.apply(record.value);
                    out.headers = record
                        .headers
                        .into_iter()
                        .map(|h| (String::from_utf8_lossy(&h.key).into_owned(), h.value))
                        .collect();
                    match copy.producer.send(out).await {
                        Ok(delivery) => {
                            copy.deliveries.push(delivery);
                            copy.pending += 1;
                        }
                        Err(e) if e.error.is_fatal() => return Err(e.error.into()),
                        // An earlier record of the transaction failed: abort, rewind, go on.
                        Err(e) => {
                            eprintln!(
                                "sluice copy: a send failed, aborting the transaction: {}",
                                e.error
                            );
                            copy.abort(&mut consumer).await?;
                            aborted = true;
                            break;
                        }
                    }
                }
                if !aborted {
                    copy.offsets.insert(
                        (batch.topic().to_owned(), batch.partition()),
                        batch.next_offset(),
                    );
                }
            }
            // Commit before the partitions go: their next owner starts where this one stopped.
            Some(GroupEvent::Revoked(_)) => copy.commit(&mut consumer).await?,
            // Gone without a chance: the group moved on, the offsets could not be committed.
            Some(GroupEvent::Lost(_)) => copy.abort(&mut consumer).await?,
            Some(GroupEvent::Assigned(_)) | None => {}
        }
        if copy.open.is_some_and(|opened| opened.elapsed() >= interval) {
            copy.commit(&mut consumer).await?;
        }
        if let Stop::Count(n) = job.stop {
            if copy.copied + copy.pending >= n && copy.open.is_some() {
                copy.commit(&mut consumer).await?;
            }
            if copy.copied >= n {
                break;
            }
        }
        if copy.open.is_none() && idle_exit.is_some_and(|idle| last_input.elapsed() >= idle) {
            break;
        }
    }
    consumer.close().await?;
    copy.producer.close().await;
    Ok(Copied {
        records: copy.copied,
        metrics: copy.producer.transaction_metrics(),
    })
}

/// The transaction in progress.
struct Copy {
    producer: Producer,
    to: String,
    map: Map,
    /// When the open transaction began.
    open: Option<Instant>,
    /// The next input offset per partition, committed with the transaction.
    offsets: BTreeMap<(String, i32), i64>,
    deliveries: Vec<DeliveryFuture>,
    /// Records sent in the open transaction.
    pending: u64,
    /// Records in committed transactions.
    copied: u64,
    progress: Option<Arc<AtomicU64>>,
}

impl Copy {
    fn begin(&mut self) -> Result<(), CliError> {
        if self.open.is_none() {
            self.producer.begin_transaction()?;
            self.open = Some(Instant::now());
        }
        Ok(())
    }

    /// Commits the open transaction with the consumed offsets; on an abortable error aborts
    /// it and rewinds the input instead.
    async fn commit(&mut self, consumer: &mut GroupConsumer) -> Result<(), CliError> {
        if self.open.is_none() {
            return Ok(());
        }
        let offsets: Vec<OffsetToCommit> = self
            .offsets
            .iter()
            .map(|((t, p), o)| OffsetToCommit::new(t.clone(), *p, *o))
            .collect();
        let result = async {
            self.producer
                .send_offsets_to_transaction(&offsets, &consumer.group_metadata())
                .await?;
            self.producer.commit_transaction().await
        }
        .await;
        match result {
            Ok(()) => {
                self.finish_deliveries().await;
                self.open = None;
                self.offsets.clear();
                self.copied += std::mem::take(&mut self.pending);
                if let Some(progress) = &self.progress {
                    progress.store(self.copied, Ordering::Relaxed);
                }
                Ok(())
            }
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => {
                eprintln!("sluice copy: transaction failed, aborting it: {e}");
                self.abort(consumer).await
            }
        }
    }

    /// Aborts the open transaction and moves the input back to the committed offsets.
    async fn abort(&mut self, consumer: &mut GroupConsumer) -> Result<(), CliError> {
        if self.open.take().is_some() {
            self.producer.abort_transaction().await?;
        }
        self.finish_deliveries().await;
        self.offsets.clear();
        self.pending = 0;
        let owned = consumer.assignment();
        let committed = consumer.committed(&owned).await?;
        for (topic, partition) in owned {
            let start = match committed
                .get(&(topic.clone(), partition))
                .cloned()
                .flatten()
            {
                Some(c) => Offset::Exact(c.offset),
                None => Offset::Beginning,
            };
            consumer.consumer().seek(&topic, partition, start)?;
        }
        Ok(())
    }

    /// The transaction's outcome decides the records' fate; their futures only need draining.
    async fn finish_deliveries(&mut self) {
        for delivery in self.deliveries.drain(..) {
            let _ = delivery.await;
        }
    }
}
