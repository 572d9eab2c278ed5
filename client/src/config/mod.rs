//! Typed client configuration, and the Java/librdkafka property names that map onto it.
//!
//! Settings are `Duration`s, enums and byte counts rather than strings and `*.ms` integers,
//! so a unit or spelling mistake does not compile. Each config ([`ClientConfig`],
//! [`ProducerConfig`], [`ConsumerConfig`], [`AdminConfig`]) is made by a builder whose
//! setters never fail and whose `build()` checks everything once, and is read-only afterwards
//! so the rest of the client can rely on those checks (no zero timeouts, no deadline that
//! overflows an `Instant`). Builders rather than `Default` structs with public fields because
//! Kafka's cross-field rules depend on whether a value was *given* or defaulted: Java turns
//! idempotence off quietly for `acks=1` unless `enable.idempotence=true` was set, in which case
//! it is an error; a struct field defaulting to `true` cannot tell the two apart.
//!
//! ```
//! use std::time::Duration;
//! use sluice_client::config::{Acks, ProducerConfig};
//!
//! let config = ProducerConfig::builder()
//!     .bootstrap("localhost:9092")
//!     .linger(Duration::from_millis(10))
//!     .acks(Acks::All)
//!     .build()?;
//! # Ok::<(), sluice_client::Error>(())
//! ```
//!
//! # Properties
//!
//! `from_properties` (and the builders' `properties`, to start from a file and override in
//! code) accept the Java and librdkafka names users already have:
//!
//! * Every client: `bootstrap.servers` (`metadata.broker.list`), `client.id`,
//!   `request.timeout.ms`, `socket.connection.setup.timeout.ms`, `reconnect.backoff.ms`,
//!   `reconnect.backoff.max.ms`, `retry.backoff.ms`, `retry.backoff.max.ms`,
//!   `metadata.max.age.ms`, `max.in.flight.requests.per.connection` (`max.in.flight`),
//!   `receive.message.max.bytes`, `security.protocol`, `sasl.mechanism` (`sasl.mechanisms`),
//!   `sasl.username`, `sasl.password`, `ssl.ca.location`, `ssl.certificate.location`,
//!   `ssl.key.location`, `ssl.endpoint.identification.algorithm`.
//! * Producer: `linger.ms` (`queue.buffering.max.ms`), `batch.size`, `acks`
//!   (`request.required.acks`), `compression.type` (`compression.codec`),
//!   `enable.idempotence`, `retries` (`message.send.max.retries`), `delivery.timeout.ms`
//!   (`message.timeout.ms`), `buffer.memory`, `max.request.size` (`message.max.bytes`),
//!   `partitioner` (`partitioner.class`), `sticky.partitioning.linger.ms`,
//!   `transactional.id`, `transaction.timeout.ms`.
//! * Consumer: `group.id`, `group.instance.id`, `isolation.level`, `auto.offset.reset`,
//!   `fetch.min.bytes`, `fetch.max.bytes`, `max.partition.fetch.bytes`
//!   (`fetch.message.max.bytes`), `fetch.max.wait.ms` (`fetch.wait.max.ms`),
//!   `queued.max.messages.kbytes`, `check.crcs`, `enable.auto.commit`,
//!   `auto.commit.interval.ms`, `session.timeout.ms`, `heartbeat.interval.ms`,
//!   `max.poll.interval.ms`, `partition.assignment.strategy`, `client.rack`,
//!   `group.protocol` (`classic`, the default, or `consumer` for KIP-848),
//!   `group.remote.assignor`.
//!
//! Values are trimmed, as Java does. `*.ms` values are whole milliseconds up to `i32::MAX`;
//! booleans are `true` or `false` (any case) and nothing else; lists are comma-separated.
//! Enum values are matched ignoring case, and Java class names are accepted where Java wants
//! them (`org.apache.kafka.clients.consumer.RangeAssignor`).
//!
//! **Strictness.** An unknown name is an error naming it, and so is a producer property given
//! to a consumer (or the reverse), where Java only logs a warning: a misspelt or misplaced
//! setting silently doing nothing is the bug this prevents. A bad value is an error naming
//! the property, the value and what was expected. A name repeated in the input is fine (the
//! last value wins); two names for one setting (`linger.ms` and `queue.buffering.max.ms`) are
//! an error, since from a `HashMap` the winner would be random.
//!
//! **Accepted and ignored**, on purpose, so that existing files load:
//!
//! | Name | Why sluice ignores it |
//! |------|-----------------------|
//! | `key.serializer`, `value.serializer` (producer) | Rust callers pass bytes or their own types |
//! | `key.deserializer`, `value.deserializer` (consumer) | the same |
//! | `api.version.request` | sluice always negotiates versions (ApiVersions) |
//! | `socket.keepalive.enable` | the connection layer decides TCP options |
//! | `statistics.interval.ms` | there is no statistics callback; use `tracing` |
//! | `enable.metrics.push` | sluice does not push client telemetry (KIP-714) |
//!
//! The list is short on purpose: everything else that Java or librdkafka knows and sluice
//! does not is refused, because ignoring a setting the user relies on (an interceptor, a
//! custom partitioner, `sasl.jaas.config`) changes behaviour silently. Some of those errors
//! say what to use instead.
//!
//! Files: each config has `X.rs` (the settings, read-only) and `X_builder.rs` (defaults,
//! checks, and its own property names) for `client`, `producer` and `consumer`; `admin.rs`;
//! `security.rs` (TLS and SASL data); `properties.rs` (name lookup, aliases, ignore list,
//! shared client names); `parse.rs` (value parsing).

mod admin;
mod client;
mod client_builder;
mod consumer;
mod consumer_builder;
mod parse;
mod producer;
mod producer_builder;
mod properties;
mod security;

pub use admin::{AdminConfig, AdminConfigBuilder};
pub use client::ClientConfig;
pub use client_builder::ClientConfigBuilder;
pub use consumer::{Assignor, ConsumerConfig, GroupProtocol, IsolationLevel, OffsetReset};
pub use consumer_builder::ConsumerConfigBuilder;
pub use producer::{Acks, Partitioner, ProducerConfig};
pub use producer_builder::ProducerConfigBuilder;
pub use properties::{property_scope, PropertyScope};
pub use security::{
    ClientCert, Password, SaslConfig, SaslMechanism, SecurityConfig, SecurityProtocol, TlsConfig,
};
pub use sluice_protocol::Compression;
