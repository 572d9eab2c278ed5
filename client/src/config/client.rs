//! [`ClientConfig`]: what every client (producer, consumer, admin) needs to reach brokers.
//!
//! Defaults are the Java client's (Kafka 4.0), so a config ported from Java behaves the same;
//! they are set, and checked, in [`ClientConfigBuilder`]. Backoffs grow exponentially with
//! jitter (KIP-144 for reconnects, KIP-580 for retries); connection setup is bounded by its own
//! timeout (KIP-601).

use std::time::Duration;

use super::client_builder::ClientConfigBuilder;
use super::security::SecurityConfig;
use crate::Result;

/// Settings shared by the producer, the consumer and the admin client.
///
/// Built by [`ClientConfigBuilder::build`] or [`ClientConfig::from_properties`], which check
/// it; read-only afterwards, so the rest of the client can rely on those checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub(super) bootstrap_servers: Vec<String>,
    pub(super) client_id: String,
    pub(super) request_timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) reconnect_backoff: Duration,
    pub(super) reconnect_backoff_max: Duration,
    pub(super) retry_backoff: Duration,
    pub(super) retry_backoff_max: Duration,
    pub(super) metadata_max_age: Duration,
    pub(super) max_in_flight_per_connection: usize,
    pub(super) max_response_size: usize,
    pub(super) security: SecurityConfig,
}

impl ClientConfig {
    /// A builder with Java's defaults and no bootstrap servers.
    pub fn builder() -> ClientConfigBuilder {
        ClientConfigBuilder::default()
    }

    /// A config from Java/librdkafka property names; see the [module docs](super) for the
    /// names accepted.
    pub fn from_properties<K, V>(properties: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        ClientConfig::builder().properties(properties)?.build()
    }

    /// `host:port` addresses to fetch the cluster's metadata from (`bootstrap.servers`).
    pub fn bootstrap_servers(&self) -> &[String] {
        &self.bootstrap_servers
    }

    /// The id sent in every request header (`client.id`), for broker logs and quotas.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// How long to wait for a response before failing the request (`request.timeout.ms`).
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// How long a TCP connect plus TLS and SASL handshakes may take
    /// (`socket.connection.setup.timeout.ms`, KIP-601).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The first wait before reconnecting to a broker (`reconnect.backoff.ms`).
    pub fn reconnect_backoff(&self) -> Duration {
        self.reconnect_backoff
    }

    /// The most the reconnect wait grows to (`reconnect.backoff.max.ms`).
    pub fn reconnect_backoff_max(&self) -> Duration {
        self.reconnect_backoff_max
    }

    /// The first wait before retrying a failed request (`retry.backoff.ms`).
    pub fn retry_backoff(&self) -> Duration {
        self.retry_backoff
    }

    /// The most the retry wait grows to (`retry.backoff.max.ms`).
    pub fn retry_backoff_max(&self) -> Duration {
        self.retry_backoff_max
    }

    /// How old cached metadata may get before it is refreshed anyway (`metadata.max.age.ms`).
    pub fn metadata_max_age(&self) -> Duration {
        self.metadata_max_age
    }

    /// The most requests in flight on one connection
    /// (`max.in.flight.requests.per.connection`). The idempotent producer needs 5 or fewer.
    pub fn max_in_flight_per_connection(&self) -> usize {
        self.max_in_flight_per_connection
    }

    /// The largest response frame accepted (`receive.message.max.bytes`); a larger size
    /// prefix fails the connection before anything is allocated for it.
    pub fn max_response_size(&self) -> usize {
        self.max_response_size
    }

    /// TLS and SASL settings.
    pub fn security(&self) -> &SecurityConfig {
        &self.security
    }
}
