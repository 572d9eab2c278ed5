//! The producer: batches records per partition and sends them to partition leaders, with
//! idempotence on by default.
//!
//! Why it is shaped like the Java producer: its semantics (what `acks`, `linger`,
//! `batch.size`, `delivery.timeout.ms`, `buffer.memory` and idempotence mean) are what users
//! and operators know, and records placed by key must land where Java puts them. Underneath,
//! three parts:
//!
//! * `send` (the caller's task) picks the partition ([`partitioner`]), reserves buffer memory
//!   (`memory.rs`: back-pressure instead of unbounded growth) and encodes the record straight
//!   into its partition's open batch (`accumulator.rs`, `writer.rs`), in one pass under one
//!   lock with one clock read; it awaits only when it must wait for metadata or memory. The
//!   record's future shares its batch's completion (`completion.rs`).
//! * One sender task per producer (`sender.rs`) seals batches by size, linger, flush or close,
//!   has them compressed (on blocking threads), groups them by leader into ProduceRequests and
//!   handles the answers: retries, metadata refreshes, delivery timeouts.
//! * The idempotence state machine (`idempotence.rs`, pure) assigns sequence numbers and
//!   decides, per answer, whether a batch completes, is retried (keeping record order) or
//!   fails, and when a new producer id or epoch is needed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sluice_client::config::ProducerConfig;
//! use sluice_client::producer::{Producer, ProducerRecord};
//!
//! let producer = Producer::new(ProducerConfig::builder().bootstrap("localhost:9092").build()?).await?;
//! let delivery = producer.send(ProducerRecord::new("events").key("user-1").value("clicked")).await?;
//! let metadata = delivery.await?;
//! println!("written at {}-{}@{}", metadata.topic, metadata.partition, metadata.offset);
//! producer.close().await;
//! # Ok(()) }
//! ```
//!
//! With `transactional.id` it is a transactional producer (`init_transactions`,
//! `begin_transaction`, `send_offsets_to_transaction`, `commit_transaction`,
//! `abort_transaction`; the transaction manager is [`crate::txn`]): AddPartitionsToTxn goes
//! out before a partition's first batch of a transaction, and batches carry the
//! transactional attribute.
//!
//! Not supported yet: splitting a batch the
//! broker refuses as MESSAGE_TOO_LARGE, and `max.block.ms` as a setting of its own (`send`
//! waits for metadata and memory up to `delivery_timeout`).
//!
//! References: KIP-91 (delivery timeout), KIP-98 (idempotence), KIP-360 (epoch bump on
//! UNKNOWN_PRODUCER_ID / OUT_OF_ORDER_SEQUENCE_NUMBER), KIP-480 and KIP-794 (sticky
//! partitioning), KIP-580 (exponential retry backoff), KIP-679 (idempotence by default).

mod accumulator;
pub(crate) mod batch;
mod completion;
mod idempotence;
mod memory;
pub mod partitioner;
mod pool;
mod record;
mod requests;
mod sender;

use std::sync::Arc;
use std::time::Duration;

use sluice_protocol::record::BATCH_HEADER_LEN;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

pub use record::{DeliveryFuture, ProducerRecord, RecordMetadata, SendError, Topic};

use self::accumulator::{Accumulator, AccumulatorConfig, Append, Appended};
use self::batch::now_millis;
use self::memory::BufferMemory;
use self::requests::REQUEST_OVERHEAD;
use self::sender::{Sender, SenderConfig};
use crate::cluster::{Cluster, ClusterOptions, TopicInfo};
use crate::config::ProducerConfig;
use crate::error::{Error, KafkaCode, Result};
use crate::group::{GroupMetadata, OffsetToCommit};
use crate::txn::{TransactionManager, TxnCall, TxnMetrics, TxnSettings, TxnState};

/// A Kafka producer. Cheap to clone: clones share one set of batches, connections and one
/// sender task. `Send + Sync`.
///
/// Dropping the last clone closes it as [`Producer::close`] does, in the background: queued
/// records are still sent, for at most `delivery_timeout`.
#[derive(Debug, Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cluster: Cluster,
    acc: Arc<Accumulator>,
    memory: BufferMemory,
    max_request_size: usize,
    /// How long `send` may wait for metadata and buffer memory.
    max_block: Duration,
    retry_backoff: Duration,
    delivery_timeout: Duration,
    finished: watch::Receiver<bool>,
    /// The transaction manager, for a producer with `transactional.id`.
    txn: Option<Arc<TransactionManager>>,
}

impl Inner {
    /// The topic's metadata if the cluster knows it (with partitions), without waiting.
    fn known_topic(&self, topic: &str) -> Option<Arc<TopicInfo>> {
        self.cluster
            .snapshot()
            .topics
            .get(topic)
            .filter(|i| !i.partitions.is_empty())
            .cloned()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.memory.close();
        self.acc.close(Instant::now() + self.delivery_timeout);
    }
}

impl Producer {
    /// Connects to the cluster and starts the sender task. With idempotence (the default) the
    /// producer id is fetched before the first batch is sent, not here.
    ///
    /// Metadata requests may create missing topics, as the Java producer's do (whether they
    /// are created is the broker's `auto.create.topics.enable`).
    ///
    /// Cancel safety: safe to drop; nothing is started until it returns.
    pub async fn new(config: ProducerConfig) -> Result<Producer> {
        let options = ClusterOptions {
            allow_auto_topic_creation: true,
            ..ClusterOptions::from_client(config.client())
        };
        let cluster = Cluster::connect(options).await?;
        Producer::with_cluster(cluster, &config)
    }

    /// A producer on an existing [`Cluster`] handle (shared with a consumer, say); `config`'s
    /// client settings other than the producer's own are those of `cluster`. Must be called
    /// inside a tokio runtime: it spawns the sender task.
    pub fn with_cluster(cluster: Cluster, config: &ProducerConfig) -> Result<Producer> {
        let client = config.client();
        let max_request_size = config.max_request_size();
        let batch_limit = config
            .batch_size()
            .min(max_request_size.saturating_sub(REQUEST_OVERHEAD).max(1));
        let partitioner = config.partitioner();
        let acc = Arc::new(Accumulator::new(
            AccumulatorConfig {
                batch_limit,
                linger: config.linger(),
                delivery_timeout: config.delivery_timeout(),
                compression: config.compression(),
                partitioner,
                sticky: !config.sticky_partitioning_linger().is_zero(),
                buffer_memory: config.buffer_memory(),
            },
            config.batch_size(),
        ));
        let sender_config = SenderConfig {
            acks: config.acks(),
            idempotent: config.idempotence(),
            max_in_flight: client.max_in_flight_per_connection(),
            request_timeout: client.request_timeout(),
            delivery_timeout: config.delivery_timeout(),
            retries: config.retries(),
            retry_backoff: client.retry_backoff(),
            retry_backoff_max: client.retry_backoff_max(),
            max_request_size,
            metadata_max_age: client.metadata_max_age(),
        };
        let txn = config.transactional_id().map(|id| {
            Arc::new(TransactionManager::new(
                cluster.clone(),
                TxnSettings {
                    transactional_id: id.to_owned(),
                    transaction_timeout: config.transaction_timeout(),
                    request_timeout: client.request_timeout(),
                    max_block: config.delivery_timeout(),
                    backoff: crate::cluster::Backoff {
                        initial: client.retry_backoff(),
                        max: client.retry_backoff_max(),
                    },
                },
            ))
        });
        let (finished_tx, finished) = watch::channel(false);
        let sender = Sender::new(
            cluster.clone(),
            Arc::clone(&acc),
            sender_config,
            txn.clone(),
            finished_tx,
        );
        tokio::spawn(
            sender
                .run()
                .instrument(tracing::debug_span!("producer_sender")),
        );
        Ok(Producer {
            inner: Arc::new(Inner {
                cluster,
                acc,
                memory: BufferMemory::new(config.buffer_memory()),
                max_request_size,
                max_block: config.delivery_timeout(),
                retry_backoff: client.retry_backoff(),
                delivery_timeout: config.delivery_timeout(),
                finished,
                txn,
            }),
        })
    }

    /// Enqueues `record` and returns a future of its delivery.
    ///
    /// Returns once the record is in a batch; awaiting the [`DeliveryFuture`] waits for the
    /// broker's acknowledgement. Waits (back-pressure) while buffer memory is full, and for
    /// the topic's metadata when it is not known yet, both at most `delivery_timeout`.
    ///
    /// Fails with the record handed back in [`SendError`] when it cannot be enqueued: the topic
    /// does not exist (UNKNOWN_TOPIC_OR_PARTITION, after a metadata refresh) or the partition
    /// is out of range; the record is larger than `max_request_size` or `buffer_memory`
    /// (MESSAGE_TOO_LARGE); no memory or metadata within the bound (`Timeout`); the producer
    /// is closed (`Closed`) or hit a fatal error.
    ///
    /// It yields to the runtime once in a while (tokio's cooperative budget), so that a loop
    /// of sends leaves room to the producer's own tasks and to whatever shares its thread.
    ///
    /// Cancel safety: dropping the future before it completes drops the record, which was not
    /// enqueued: the append happens only after the last await point. Once it returned `Ok`,
    /// the record is sent whether or not the `DeliveryFuture` is kept.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, SendError> {
        // Appending rarely waits for anything, so a loop of sends would otherwise never give
        // its thread back: on a current-thread runtime the sender task would not run until
        // buffer memory is full, and a `join!` beside the loop would not be polled. This
        // yields once per tokio coop budget (128 sends), as tokio's own channels do.
        tokio::task::coop::consume_budget().await;
        let inner = &*self.inner;
        if let Some(txn) = &inner.txn {
            if let Err(error) = txn.start_send() {
                return Err(SendError { error, record });
            }
        }
        let size = record.size_upper_bound();
        if BATCH_HEADER_LEN + size > inner.max_request_size {
            let error = Error::kafka(
                KafkaCode::MESSAGE_TOO_LARGE,
                format!(
                    "the record takes up to {} bytes in a batch, more than max.request.size ({})",
                    BATCH_HEADER_LEN + size,
                    inner.max_request_size
                ),
            );
            return Err(SendError { error, record });
        }
        // The one clock read of a send: the create time, and the accumulator's coarse clock.
        let now_ms = now_millis();
        let append = Append {
            record: &record,
            size,
            now_ms,
            info: None,
            memory: None,
        };
        match inner
            .acc
            .append(append, &inner.memory, |topic| inner.known_topic(topic))
        {
            Appended::Done(delivery) => Ok(delivery),
            Appended::Refused(error) => Err(SendError { error, record }),
            Appended::NoMetadata | Appended::NoMemory => {
                self.send_waiting(record, size, now_ms).await
            }
        }
    }

    /// `send` when the record must wait for the topic's metadata or for buffer memory.
    async fn send_waiting(
        &self,
        record: ProducerRecord,
        size: usize,
        now_ms: i64,
    ) -> Result<DeliveryFuture, SendError> {
        let inner = &*self.inner;
        let deadline = Instant::now() + inner.max_block;
        loop {
            if let Some(error) = inner.acc.refusal() {
                return Err(SendError { error, record });
            }
            let info = match self.topic(&record.topic, deadline).await {
                Ok(info) => info,
                Err(error) => return Err(SendError { error, record }),
            };
            if let Some(partition) = record.partition {
                if info.partition(partition).is_none() {
                    let error = Error::kafka(
                        KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
                        format!(
                            "topic {} has {} partitions, not {partition}",
                            info.name,
                            info.partitions.len()
                        ),
                    );
                    return Err(SendError { error, record });
                }
            }
            tracing::trace!(topic = %record.topic, size, "send waits for buffer memory or metadata");
            let memory = match inner.memory.reserve(size, deadline, inner.max_block).await {
                Ok(memory) => memory,
                Err(error) => return Err(SendError { error, record }),
            };
            let append = Append {
                record: &record,
                size,
                now_ms,
                info: Some(info),
                memory: Some(memory),
            };
            match inner
                .acc
                .append(append, &inner.memory, |topic| inner.known_topic(topic))
            {
                Appended::Done(delivery) => return Ok(delivery),
                Appended::Refused(error) => return Err(SendError { error, record }),
                // Neither happens with metadata and memory in hand; try again if it did.
                Appended::NoMetadata | Appended::NoMemory => {}
            }
        }
    }

    /// The metadata of `topic`, waiting until `deadline` while the broker reports a retriable
    /// error (LEADER_NOT_AVAILABLE while a topic is being created). UNKNOWN_TOPIC_OR_PARTITION
    /// fails at once rather than waiting (Java waits `max.block.ms` for someone to create the
    /// topic): a typo should not block a caller for minutes. Checking metadata first is also
    /// what keeps records from vanishing on brokers that accept produce requests for unknown
    /// topics and drop them (Tansu, tansu-notes.md gap 4).
    async fn topic(&self, topic: &str, deadline: Instant) -> Result<Arc<TopicInfo>> {
        let cluster = &self.inner.cluster;
        if let Some(info) = self.inner.known_topic(topic) {
            return Ok(info);
        }
        loop {
            let error = match cluster.topic(topic).await {
                Ok(info) if !info.partitions.is_empty() => return Ok(info),
                Ok(_) => Error::kafka(
                    KafkaCode::LEADER_NOT_AVAILABLE,
                    format!("topic {topic} has no partitions yet"),
                ),
                Err(error) => error,
            };
            let retry = error.is_retriable()
                && error.code() != Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION)
                && Instant::now() + self.inner.retry_backoff < deadline;
            if !retry {
                return Err(error);
            }
            tracing::debug!(topic, %error, "waiting for topic metadata");
            cluster.on_error(topic, &error).await;
            tokio::time::sleep(self.inner.retry_backoff).await;
        }
    }

    /// Sends everything enqueued so far without waiting for `linger`, and waits until all of
    /// it is acknowledged or failed (see each record's [`DeliveryFuture`] for which). Records
    /// sent while it waits are not waited for.
    ///
    /// Cancel safety: safe to drop; it only stops waiting (the records are still sent).
    pub async fn flush(&self) {
        let (_flushing, waiters) = self.inner.acc.begin_flush();
        for done in waiters {
            // Closed when the batch completes; no permit is ever added.
            let _ = done.acquire().await;
        }
    }

    /// Closes the producer: refuses new records, sends what is enqueued and waits for it, at
    /// most `delivery_timeout`; records still undelivered then fail with `Closed`. Other clones
    /// are closed too.
    ///
    /// Cancel safety: safe to drop; the producer still closes in the background.
    pub async fn close(&self) {
        self.close_timeout(self.inner.delivery_timeout).await;
    }

    /// [`Producer::close`] with its own bound (`Duration::ZERO`: fail what is queued at once).
    ///
    /// Cancel safety: as [`Producer::close`].
    pub async fn close_timeout(&self, timeout: Duration) {
        self.inner.memory.close();
        self.inner.acc.close(Instant::now() + timeout);
        let mut finished = self.inner.finished.clone();
        // An error means the task is gone already.
        let _ = finished.wait_for(|done| *done).await;
    }

    fn transactions(&self) -> Result<&TransactionManager> {
        self.inner.txn.as_deref().ok_or_else(|| Error::Config {
            property: "transactional.id".into(),
            reason: "transactions need a producer with a transactional.id".into(),
        })
    }

    /// Registers the transactional id with its coordinator: fences any older producer with
    /// the same id (its next call fails fatally), aborts the transaction it left open, and
    /// gets this producer's id and epoch. Call once, before the first transaction.
    ///
    /// Cancel safety: not cancel safe; a cut-short call leaves the producer in
    /// `Initializing`, and calling it again retries.
    pub async fn init_transactions(&self) -> Result<()> {
        let txn = self.transactions()?;
        txn.init().await?;
        self.inner.acc.wake.notify_one();
        Ok(())
    }

    /// Starts a transaction: records sent from now until commit or abort belong to it.
    pub fn begin_transaction(&self) -> Result<()> {
        self.transactions()?.start(TxnCall::Begin)
    }

    /// Commits `offsets` of the consumer group `group` as part of the transaction (the
    /// consume-transform-produce pattern): they take effect only if the transaction commits,
    /// and the group coordinator refuses them if the member's generation is stale (KIP-447).
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &[OffsetToCommit],
        group: &GroupMetadata,
    ) -> Result<()> {
        self.transactions()?.send_offsets(offsets, group).await
    }

    /// Sends everything of the transaction, waits for it, then commits (EndTxn): its records
    /// and offsets become visible to `read_committed` consumers together. Fails if any record
    /// of the transaction failed (abort it then), or fatally if the producer was fenced.
    pub async fn commit_transaction(&self) -> Result<()> {
        let txn = self.transactions()?;
        let started = Instant::now();
        txn.start(TxnCall::Commit)?;
        self.flush().await;
        if let TxnState::AbortableError(reason) | TxnState::FatalError(reason) = txn.state() {
            return Err(Error::Transaction {
                state: txn.state(),
                reason: format!("the transaction cannot commit: {reason}"),
            });
        }
        txn.end(true).await?;
        txn.counters.committed(started.elapsed());
        Ok(())
    }

    /// Aborts the transaction: what it wrote stays invisible to `read_committed` consumers
    /// and its offsets are dropped. Legal after a failed send or commit, not after fencing.
    pub async fn abort_transaction(&self) -> Result<()> {
        let txn = self.transactions()?;
        txn.start(TxnCall::Abort)?;
        self.flush().await;
        txn.end(false).await?;
        if txn.bump_if_needed().await? {
            self.inner.acc.wake.notify_one();
        }
        Ok(())
    }

    /// Where the transactional producer is (Uninitialized for a producer without one).
    pub fn transaction_state(&self) -> TxnState {
        self.inner
            .txn
            .as_ref()
            .map_or(TxnState::Uninitialized, |t| t.state())
    }

    /// Commits, aborts and fences so far, and the commit-latency histogram.
    pub fn transaction_metrics(&self) -> Option<TxnMetrics> {
        self.inner.txn.as_ref().map(|t| t.counters.snapshot())
    }

    /// The cluster handle the producer uses.
    pub fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    /// Bytes of buffer memory free right now (of `buffer_memory`).
    pub fn available_memory(&self) -> usize {
        self.inner.memory.available()
    }

    /// Bytes of buffer memory in all (`buffer_memory`).
    pub fn buffer_memory(&self) -> usize {
        self.inner.memory.total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_is_send_sync_and_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Producer>();
        fn send<T: Send + 'static>() {}
        send::<DeliveryFuture>();
        send::<SendError>();
    }

    #[test]
    fn a_delivery_future_is_small() {
        // Callers keep one per record in flight (hundreds of thousands at full speed).
        assert!(std::mem::size_of::<DeliveryFuture>() <= 40);
    }
}
