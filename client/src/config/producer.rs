//! [`ProducerConfig`]: batching, acknowledgements, idempotence and transactions.
//!
//! The settings and their enums; defaults and the rules between settings are in
//! [`ProducerConfigBuilder`].
//!
//! References: KIP-91 (delivery timeout), KIP-98 (idempotence and transactions), KIP-480
//! (sticky partitioning), KIP-679 (idempotence by default), KIP-1030 (`linger.ms` 5 ms).

use std::time::Duration;

use sluice_protocol::Compression;

use super::producer_builder::ProducerConfigBuilder;
use super::ClientConfig;
use crate::Result;

/// How many replicas must have a batch before the broker answers (`acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Acks {
    /// `acks=0`: the broker does not answer; a lost batch goes unnoticed.
    None,
    /// `acks=1`: the leader has written it; lost if the leader dies before followers copy it.
    Leader,
    /// `acks=all` (`-1`): every in-sync replica has it. The default, and what idempotence needs.
    #[default]
    All,
}

impl Acks {
    /// The value sent in ProduceRequest.
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// How a record's partition is chosen when the caller does not give one.
///
/// Keyed records go to `murmur2(key) % partitions` (Java's hash, so keys land where Java and
/// librdkafka's `murmur2`/`murmur2_random` put them) under both `Murmur2` variants.
/// librdkafka's `consistent` and `fnv1a` hashes are not offered: they would send keys elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Partitioner {
    /// Java's default: unkeyed records stick to one partition until
    /// [`sticky_partitioning_linger`](ProducerConfig::sticky_partitioning_linger) passes or
    /// the batch is sent, then move on (KIP-480). Also what librdkafka's `murmur2` name
    /// selects, although librdkafka sends all unkeyed records to a single partition there.
    #[default]
    Murmur2,
    /// librdkafka's default `murmur2_random`: like `Murmur2`, but the next partition for
    /// unkeyed records is drawn at random rather than spread evenly.
    Murmur2Random,
    /// Every record to a random partition, key or not (librdkafka's `random`).
    Random,
}

/// Settings of a producer.
///
/// Built by [`ProducerConfigBuilder::build`] or [`ProducerConfig::from_properties`].
/// `max.in.flight.requests.per.connection` and `request.timeout.ms` live in
/// [`ClientConfig`], the one place every client reads them from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    pub(super) client: ClientConfig,
    pub(super) acks: Acks,
    pub(super) linger: Duration,
    pub(super) batch_size: usize,
    pub(super) compression: Compression,
    pub(super) idempotence: bool,
    pub(super) retries: u32,
    pub(super) delivery_timeout: Duration,
    pub(super) buffer_memory: usize,
    pub(super) max_request_size: usize,
    pub(super) partitioner: Partitioner,
    pub(super) sticky_partitioning_linger: Duration,
    pub(super) transactional_id: Option<String>,
    pub(super) transaction_timeout: Duration,
}

impl ProducerConfig {
    /// A builder with Java's defaults and no bootstrap servers.
    pub fn builder() -> ProducerConfigBuilder {
        ProducerConfigBuilder::default()
    }

    /// A config from Java/librdkafka property names; see the [module docs](super).
    pub fn from_properties<K, V>(properties: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        ProducerConfig::builder().properties(properties)?.build()
    }

    /// The shared client settings.
    pub fn client(&self) -> &ClientConfig {
        &self.client
    }

    /// Acknowledgements asked for (`acks`).
    pub fn acks(&self) -> Acks {
        self.acks
    }

    /// How long a batch waits for more records before it is sent (`linger.ms`).
    pub fn linger(&self) -> Duration {
        self.linger
    }

    /// The size in bytes at which a batch is sent without waiting (`batch.size`); a record
    /// larger than this gets a batch of its own.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The codec batches are compressed with (`compression.type`).
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Whether the producer is idempotent (`enable.idempotence`, resolved against `acks` and
    /// `retries`).
    pub fn idempotence(&self) -> bool {
        self.idempotence
    }

    /// How often a failed batch is retried at most (`retries`); `delivery_timeout` usually
    /// ends retrying first.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// How long after `send` a record may take to be acknowledged, retries included
    /// (`delivery.timeout.ms`). At least `linger + request_timeout`.
    pub fn delivery_timeout(&self) -> Duration {
        self.delivery_timeout
    }

    /// Bytes of records waiting to be sent before `send` waits for room (`buffer.memory`).
    pub fn buffer_memory(&self) -> usize {
        self.buffer_memory
    }

    /// The largest produce request, and so the largest record (`max.request.size`).
    pub fn max_request_size(&self) -> usize {
        self.max_request_size
    }

    /// How records without a partition are placed (`partitioner`).
    pub fn partitioner(&self) -> Partitioner {
        self.partitioner
    }

    /// How long unkeyed records stay on one partition before the partitioner picks another
    /// (`sticky.partitioning.linger.ms`); zero picks anew for every record. Defaults to twice
    /// `linger`, librdkafka's rule.
    pub fn sticky_partitioning_linger(&self) -> Duration {
        self.sticky_partitioning_linger
    }

    /// The transactional id, if the producer is transactional (`transactional.id`).
    pub fn transactional_id(&self) -> Option<&str> {
        self.transactional_id.as_deref()
    }

    /// How long the coordinator lets a transaction stay open before aborting it
    /// (`transaction.timeout.ms`).
    pub fn transaction_timeout(&self) -> Duration {
        self.transaction_timeout
    }
}

/// `acks` values.
pub(super) const ACKS: &[(&str, Acks)] = &[
    ("all", Acks::All),
    ("-1", Acks::All),
    ("1", Acks::Leader),
    ("0", Acks::None),
];

/// `partitioner` values: librdkafka names and Java class names.
pub(super) const PARTITIONERS: &[(&str, Partitioner)] = &[
    ("murmur2", Partitioner::Murmur2),
    (
        "org.apache.kafka.clients.producer.internals.DefaultPartitioner",
        Partitioner::Murmur2,
    ),
    ("murmur2_random", Partitioner::Murmur2Random),
    ("random", Partitioner::Random),
];
