//! [`ProducerConfigBuilder`]: producer defaults, the rules between settings, and the
//! producer's property names.
//!
//! The builder remembers which settings were given, because Kafka's rules depend on it.
//! Idempotence is on by default (KIP-679), but Java turns it off quietly when `acks` or
//! `retries` conflict and `enable.idempotence` was left alone, and refuses the same values when
//! `enable.idempotence=true` was asked for; a struct whose `bool` defaults to `true` cannot
//! tell those apart. `delivery.timeout.ms` is the same: below `linger.ms +
//! request.timeout.ms` it is raised when defaulted and an error when given (KIP-91).

use std::time::Duration;

use sluice_protocol::Compression;

use super::client_builder::{client_setters, ClientConfigBuilder};
use super::parse::{self, invalid, GivenNames, MAX_DURATION, MAX_I32_SIZE};
use super::producer::{Acks, Partitioner, ProducerConfig, ACKS, PARTITIONERS};
use super::properties::{unknown, Kind, Target};
use super::ClientConfig;
use crate::Result;

/// Builds a [`ProducerConfig`]. Setters never fail; [`build`](Self::build) checks everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfigBuilder {
    pub(super) client: ClientConfigBuilder,
    pub(super) acks: Acks,
    pub(super) linger: Duration,
    pub(super) batch_size: usize,
    pub(super) compression: Compression,
    pub(super) enable_idempotence: Option<bool>,
    pub(super) retries: u32,
    pub(super) delivery_timeout: Option<Duration>,
    pub(super) buffer_memory: usize,
    pub(super) max_request_size: usize,
    pub(super) partitioner: Partitioner,
    pub(super) sticky_partitioning_linger: Option<Duration>,
    pub(super) transactional_id: Option<String>,
    pub(super) transaction_timeout: Duration,
    pub(super) names: GivenNames,
}

const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

impl Default for ProducerConfigBuilder {
    fn default() -> Self {
        ProducerConfigBuilder {
            client: ClientConfigBuilder::default(),
            acks: Acks::All,
            linger: Duration::from_millis(5),
            // Java's; librdkafka's `batch.size` default is 1000000.
            batch_size: 16 * 1024,
            compression: Compression::None,
            enable_idempotence: None,
            retries: i32::MAX.unsigned_abs(),
            delivery_timeout: None,
            buffer_memory: 32 * 1024 * 1024,
            max_request_size: 1024 * 1024,
            partitioner: Partitioner::Murmur2,
            sticky_partitioning_linger: None,
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
            names: GivenNames::default(),
        }
    }
}

/// The outcome of Java's idempotence rules.
enum Idempotence {
    On,
    /// `enable.idempotence=false`.
    OffAsked,
    /// Turned off quietly by this conflicting setting, as `name=value`.
    OffBy(String),
}

impl ProducerConfigBuilder {
    client_setters!();

    /// Sets the acknowledgements. Default [`Acks::All`].
    pub fn acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }

    /// Sets how long batches wait for more records. Default 5 ms (Java 4.0).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Sets the batch size in bytes. Default 16384.
    pub fn batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }

    /// Sets the compression codec. Default none.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Asks for idempotence on or off. Left alone it is on unless `acks` or `retries` rule it
    /// out; asked for, a conflicting `acks`, `retries` or in-flight limit is an error.
    pub fn enable_idempotence(mut self, enable: bool) -> Self {
        self.enable_idempotence = Some(enable);
        self
    }

    /// Sets the retry limit. Default `i32::MAX`, so that `delivery_timeout` decides.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sets the delivery timeout. Default 120 s, raised to `linger + request_timeout` if that
    /// is longer; set explicitly, shorter than that is an error.
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = Some(timeout);
        self
    }

    /// Sets the send buffer size in bytes. Default 32 MiB.
    pub fn buffer_memory(mut self, bytes: usize) -> Self {
        self.buffer_memory = bytes;
        self
    }

    /// Sets the largest request in bytes. Default 1 MiB.
    pub fn max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// Sets the partitioner. Default [`Partitioner::Murmur2`].
    pub fn partitioner(mut self, partitioner: Partitioner) -> Self {
        self.partitioner = partitioner;
        self
    }

    /// Sets how long unkeyed records stick to a partition. Default twice `linger`.
    pub fn sticky_partitioning_linger(mut self, linger: Duration) -> Self {
        self.sticky_partitioning_linger = Some(linger);
        self
    }

    /// Makes the producer transactional under `id`. Needs idempotence.
    pub fn transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into());
        self
    }

    /// Sets the transaction timeout. Default 60 s.
    pub fn transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_timeout = timeout;
        self
    }

    /// Applies Java/librdkafka properties on top of what is set; see the
    /// [module docs](super). Shared client properties are accepted too.
    pub fn properties<K, V>(mut self, properties: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        super::properties::apply(&mut self, properties)?;
        Ok(self)
    }

    /// Checks the settings, each alone and against each other, and builds the config.
    pub fn build(self) -> Result<ProducerConfig> {
        let in_flight_name = self
            .client
            .names
            .name("max.in.flight.requests.per.connection")
            .to_owned();
        let request_timeout_name = self.client.names.name("request.timeout.ms").to_owned();
        let client = self.client.clone().build()?;
        let name = |canonical: &'static str| self.names.name(canonical);

        parse::check_duration(name("linger.ms"), self.linger, Duration::ZERO)?;
        let one_ms = Duration::from_millis(1);
        parse::check_duration(
            name("transaction.timeout.ms"),
            self.transaction_timeout,
            one_ms,
        )?;
        parse::check_size(name("batch.size"), self.batch_size, 0, MAX_I32_SIZE)?;
        parse::check_size(
            name("max.request.size"),
            self.max_request_size,
            1,
            MAX_I32_SIZE,
        )?;
        parse::check_size(name("buffer.memory"), self.buffer_memory, 1, usize::MAX)?;
        if self.transactional_id.as_deref() == Some("") {
            return Err(parse::error(name("transactional.id"), "must not be empty"));
        }
        let sticky_partitioning_linger = match self.sticky_partitioning_linger {
            Some(linger) => {
                parse::check_duration(
                    name("sticky.partitioning.linger.ms"),
                    linger,
                    Duration::ZERO,
                )?;
                linger
            }
            None => self.linger.saturating_mul(2).min(MAX_DURATION),
        };

        let off_because = match self.resolve_idempotence(&client, &in_flight_name)? {
            Idempotence::On => None,
            Idempotence::OffAsked => Some(format!("{}=false", name("enable.idempotence"))),
            Idempotence::OffBy(setting) => Some(format!("{setting} turns it off")),
        };
        if let (Some(why), Some(id)) = (&off_because, &self.transactional_id) {
            let tx = name("transactional.id");
            let reason = format!("{tx}={id:?} needs the idempotent producer, but {why}");
            return Err(parse::error(tx, reason));
        }
        let idempotence = off_because.is_none();

        // KIP-91: a record must be allowed at least one full linger and one request.
        let floor = self.linger + client.request_timeout();
        let delivery_timeout = match self.delivery_timeout {
            Some(timeout) => {
                let dt = name("delivery.timeout.ms");
                parse::check_duration(dt, timeout, one_ms)?;
                if timeout < floor {
                    return Err(parse::error(
                        dt,
                        format!(
                            "{dt} ({timeout:?}) is below {} + {request_timeout_name} ({floor:?})",
                            name("linger.ms")
                        ),
                    ));
                }
                timeout
            }
            None => {
                let timeout = DEFAULT_DELIVERY_TIMEOUT.max(floor);
                parse::check_duration(name("delivery.timeout.ms"), timeout, one_ms)?;
                timeout
            }
        };

        Ok(ProducerConfig {
            client,
            acks: self.acks,
            linger: self.linger,
            batch_size: self.batch_size,
            compression: self.compression,
            idempotence,
            retries: self.retries,
            delivery_timeout,
            buffer_memory: self.buffer_memory,
            max_request_size: self.max_request_size,
            partitioner: self.partitioner,
            sticky_partitioning_linger,
            transactional_id: self.transactional_id,
            transaction_timeout: self.transaction_timeout,
        })
    }

    /// Java's `postProcessAndValidateIdempotenceConfigs`: whether the producer is idempotent,
    /// or an error for a conflict with an explicit `enable.idempotence=true`.
    ///
    /// One deviation: Java 4.0 refuses more than 5 requests in flight even when `acks=1` has
    /// already turned idempotence off; we check the in-flight limit only if it is still on.
    fn resolve_idempotence(
        &self,
        client: &ClientConfig,
        in_flight_name: &str,
    ) -> Result<Idempotence> {
        let asked = match self.enable_idempotence {
            Some(false) => return Ok(Idempotence::OffAsked),
            Some(true) => true,
            None => false,
        };
        let idem = self.names.name("enable.idempotence");
        let conflicts = [
            (self.retries == 0, "retries", "retries above 0"),
            (self.acks != Acks::All, "acks", "acks=all"),
        ];
        if let Some(&(_, canonical, needs)) = conflicts.iter().find(|c| c.0) {
            let name = self.names.name(canonical);
            let value = if canonical == "acks" {
                self.acks.wire()
            } else {
                0
            };
            if asked {
                return Err(parse::error(
                    name,
                    format!(
                        "{name}={value} conflicts with {idem}=true: the idempotent producer \
                         needs {needs}"
                    ),
                ));
            }
            tracing::info!(
                "idempotence is disabled because {name} is {value} ({idem} was not set)"
            );
            return Ok(Idempotence::OffBy(format!("{name}={value}")));
        }
        let in_flight = client.max_in_flight_per_connection();
        if in_flight > 5 {
            let why = if asked {
                format!("{idem}=true")
            } else {
                "idempotence (on by default)".to_owned()
            };
            return Err(parse::error(
                in_flight_name,
                format!(
                    "{in_flight_name}={in_flight}, but {why} keeps order only with at most 5 \
                     requests in flight; lower it or set {idem}=false"
                ),
            ));
        }
        Ok(Idempotence::On)
    }
}

/// The property names this kind takes besides the shared client ones (aliases are in
/// `properties.rs`).
pub(super) const PROPERTIES: &[&str] = &[
    "linger.ms",
    "batch.size",
    "acks",
    "compression.type",
    "enable.idempotence",
    "retries",
    "delivery.timeout.ms",
    "buffer.memory",
    "max.request.size",
    "partitioner",
    "sticky.partitioning.linger.ms",
    "transactional.id",
    "transaction.timeout.ms",
];

impl Target for ProducerConfigBuilder {
    const KIND: Kind = Kind::Producer;

    fn client(&mut self) -> &mut ClientConfigBuilder {
        &mut self.client
    }

    fn apply_own(&mut self, canonical: &'static str, name: &str, value: &str) -> Result<()> {
        self.names.record(canonical, name)?;
        let ms = || parse::millis(name, value);
        match canonical {
            "linger.ms" => self.linger = ms()?,
            "batch.size" => self.batch_size = parse::size(name, value, 0, MAX_I32_SIZE)?,
            "acks" => self.acks = parse::one_of(name, value, ACKS, "all, -1, 0 or 1")?,
            "compression.type" => {
                let expected = "none, gzip, snappy, lz4 or zstd";
                self.compression = value.parse().map_err(|_| invalid(name, value, expected))?;
            }
            "enable.idempotence" => self.enable_idempotence = Some(parse::boolean(name, value)?),
            "retries" => self.retries = parse::count(name, value)?,
            "delivery.timeout.ms" => self.delivery_timeout = Some(ms()?),
            "buffer.memory" => self.buffer_memory = parse::size(name, value, 1, usize::MAX)?,
            "max.request.size" => {
                self.max_request_size = parse::size(name, value, 1, MAX_I32_SIZE)?
            }
            "partitioner" => {
                let expected = "murmur2, murmur2_random, random or \
                    org.apache.kafka.clients.producer.internals.DefaultPartitioner (librdkafka's \
                    consistent and fnv1a hashes would send keys to other partitions than Java's \
                    murmur2, so they are not offered)";
                self.partitioner = parse::one_of(name, value, PARTITIONERS, expected)?;
            }
            "sticky.partitioning.linger.ms" => self.sticky_partitioning_linger = Some(ms()?),
            "transactional.id" => self.transactional_id = Some(parse::non_empty(name, value)?),
            "transaction.timeout.ms" => self.transaction_timeout = ms()?,
            _ => return Err(unknown(Self::KIND, name, canonical)),
        }
        Ok(())
    }
}
