//! [`ClientConfigBuilder`]: the shared settings' defaults and checks, and the macro that
//! gives every other builder the same setters.
//!
//! Backoff maxima follow Java's `postProcessReconnectBackoffConfigs`: when only the base
//! backoff is set above the default maximum, the maximum follows it; when both are set and
//! disagree, that is an error.

use std::time::Duration;

use sluice_protocol::frame::DEFAULT_MAX_FRAME_SIZE;

use super::client::ClientConfig;
use super::parse::{self, GivenNames, MAX_I32_SIZE};
use super::security::{SecurityConfig, SecurityParts};
use crate::Result;

/// Builds a [`ClientConfig`]. Setters never fail; [`build`](Self::build) checks everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfigBuilder {
    pub(super) bootstrap_servers: Vec<String>,
    pub(super) client_id: String,
    pub(super) request_timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) reconnect_backoff: Duration,
    pub(super) reconnect_backoff_max: Option<Duration>,
    pub(super) retry_backoff: Duration,
    pub(super) retry_backoff_max: Option<Duration>,
    pub(super) metadata_max_age: Duration,
    pub(super) max_in_flight_per_connection: usize,
    pub(super) max_response_size: usize,
    pub(super) security: SecurityParts,
    pub(super) names: GivenNames,
}

/// Java's default for both backoff maxima.
const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Default for ClientConfigBuilder {
    fn default() -> Self {
        ClientConfigBuilder {
            bootstrap_servers: Vec::new(),
            client_id: "sluice".to_owned(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: None,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: None,
            metadata_max_age: Duration::from_secs(5 * 60),
            max_in_flight_per_connection: 5,
            max_response_size: DEFAULT_MAX_FRAME_SIZE,
            security: SecurityParts::default(),
            names: GivenNames::default(),
        }
    }
}

impl From<ClientConfig> for ClientConfigBuilder {
    /// A builder holding `config`'s values, all counted as set explicitly.
    fn from(config: ClientConfig) -> Self {
        ClientConfigBuilder {
            bootstrap_servers: config.bootstrap_servers,
            client_id: config.client_id,
            request_timeout: config.request_timeout,
            connect_timeout: config.connect_timeout,
            reconnect_backoff: config.reconnect_backoff,
            reconnect_backoff_max: Some(config.reconnect_backoff_max),
            retry_backoff: config.retry_backoff,
            retry_backoff_max: Some(config.retry_backoff_max),
            metadata_max_age: config.metadata_max_age,
            max_in_flight_per_connection: config.max_in_flight_per_connection,
            max_response_size: config.max_response_size,
            security: config.security.into(),
            names: GivenNames::default(),
        }
    }
}

impl ClientConfigBuilder {
    /// Sets the bootstrap servers from a comma-separated `host:port` list, as
    /// `bootstrap.servers` takes it (`"k1:9092,k2:9092"`). Required.
    pub fn bootstrap(self, servers: &str) -> Self {
        self.bootstrap_servers(parse::list(servers))
    }

    /// Sets the bootstrap servers, one `host:port` each (IPv6 as `[::1]:9092`). Required.
    pub fn bootstrap_servers<S: Into<String>>(
        mut self,
        servers: impl IntoIterator<Item = S>,
    ) -> Self {
        self.bootstrap_servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the client id. Default `sluice`.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// Sets the request timeout. Default 30 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the connection setup timeout. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the first reconnect wait. Default 50 ms.
    pub fn reconnect_backoff(mut self, backoff: Duration) -> Self {
        self.reconnect_backoff = backoff;
        self
    }

    /// Sets the longest reconnect wait. Default 1 s, or the first wait if that is longer.
    pub fn reconnect_backoff_max(mut self, max: Duration) -> Self {
        self.reconnect_backoff_max = Some(max);
        self
    }

    /// Sets the first retry wait. Default 100 ms.
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// Sets the longest retry wait. Default 1 s, or the first wait if that is longer.
    pub fn retry_backoff_max(mut self, max: Duration) -> Self {
        self.retry_backoff_max = Some(max);
        self
    }

    /// Sets the metadata refresh interval. Default 5 min.
    pub fn metadata_max_age(mut self, age: Duration) -> Self {
        self.metadata_max_age = age;
        self
    }

    /// Sets the most requests in flight per connection. Default 5.
    pub fn max_in_flight_per_connection(mut self, n: usize) -> Self {
        self.max_in_flight_per_connection = n;
        self
    }

    /// Sets the largest response accepted, in bytes. Default 100 MiB.
    pub fn max_response_size(mut self, bytes: usize) -> Self {
        self.max_response_size = bytes;
        self
    }

    /// Sets TLS and SASL. Default [`SecurityConfig::Plaintext`].
    pub fn security(mut self, security: SecurityConfig) -> Self {
        self.security = security.into();
        self
    }

    /// Applies Java/librdkafka properties on top of what is set; see the
    /// [module docs](super). Only the shared client properties are accepted here.
    pub fn properties<K, V>(mut self, properties: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        super::properties::apply(&mut self, properties)?;
        Ok(self)
    }

    /// Checks the settings and builds the config.
    pub fn build(self) -> Result<ClientConfig> {
        let names = &self.names;
        let name = |canonical: &'static str| names.name(canonical);
        if self.bootstrap_servers.is_empty() {
            return Err(parse::error(
                name("bootstrap.servers"),
                "required: give at least one host:port",
            ));
        }
        let bootstrap_servers = self
            .bootstrap_servers
            .iter()
            .map(|addr| parse::broker_address(name("bootstrap.servers"), addr))
            .collect::<Result<Vec<_>>>()?;
        let one_ms = Duration::from_millis(1);
        parse::check_duration(name("request.timeout.ms"), self.request_timeout, one_ms)?;
        parse::check_duration(
            name("socket.connection.setup.timeout.ms"),
            self.connect_timeout,
            one_ms,
        )?;
        parse::check_duration(
            name("metadata.max.age.ms"),
            self.metadata_max_age,
            Duration::ZERO,
        )?;
        let reconnect_backoff_max = backoff_max(
            names,
            ("reconnect.backoff.ms", self.reconnect_backoff),
            ("reconnect.backoff.max.ms", self.reconnect_backoff_max),
        )?;
        let retry_backoff_max = backoff_max(
            names,
            ("retry.backoff.ms", self.retry_backoff),
            ("retry.backoff.max.ms", self.retry_backoff_max),
        )?;
        let in_flight = name("max.in.flight.requests.per.connection");
        parse::check_size(
            in_flight,
            self.max_in_flight_per_connection,
            1,
            MAX_I32_SIZE,
        )?;
        // Below a kilobyte not even a metadata response fits; librdkafka has the same floor.
        parse::check_size(
            name("receive.message.max.bytes"),
            self.max_response_size,
            1000,
            MAX_I32_SIZE,
        )?;
        let security = self.security.build(names)?;
        Ok(ClientConfig {
            bootstrap_servers,
            client_id: self.client_id,
            request_timeout: self.request_timeout,
            connect_timeout: self.connect_timeout,
            reconnect_backoff: self.reconnect_backoff,
            reconnect_backoff_max,
            retry_backoff: self.retry_backoff,
            retry_backoff_max,
            metadata_max_age: self.metadata_max_age,
            max_in_flight_per_connection: self.max_in_flight_per_connection,
            max_response_size: self.max_response_size,
            security,
        })
    }
}

/// Resolves a backoff maximum the way Java does: an unset maximum is raised to the base, a set
/// one below the base is an error naming both.
fn backoff_max(
    names: &GivenNames,
    (base_name, base): (&'static str, Duration),
    (max_name, max): (&'static str, Option<Duration>),
) -> Result<Duration> {
    parse::check_duration(names.name(base_name), base, Duration::ZERO)?;
    match max {
        None => Ok(base.max(DEFAULT_BACKOFF_MAX)),
        Some(max) => {
            let (base_name, max_name) = (names.name(base_name), names.name(max_name));
            parse::check_duration(max_name, max, Duration::ZERO)?;
            if max < base {
                return Err(parse::error(
                    max_name,
                    format!("{max_name} ({max:?}) is below {base_name} ({base:?})"),
                ));
            }
            Ok(max)
        }
    }
}

/// Adds the [`ClientConfigBuilder`] setters to a builder with a `client: ClientConfigBuilder`
/// field, so `ProducerConfig::builder().bootstrap(..).linger(..)` reads as one chain.
macro_rules! client_setters {
    // The empty arm must come first: the list arm also matches an empty input.
    () => {
        client_setters! {
            @list
            bootstrap(&str);
            request_timeout(std::time::Duration);
            connect_timeout(std::time::Duration);
            reconnect_backoff(std::time::Duration);
            reconnect_backoff_max(std::time::Duration);
            retry_backoff(std::time::Duration);
            retry_backoff_max(std::time::Duration);
            metadata_max_age(std::time::Duration);
            max_in_flight_per_connection(usize);
            max_response_size(usize);
            security($crate::config::SecurityConfig);
        }
    };
    (@list $($setter:ident($arg:ty);)*) => {
        $(
            #[doc = concat!("See [`ClientConfigBuilder::", stringify!($setter), "`].")]
            pub fn $setter(mut self, value: $arg) -> Self {
                self.client = self.client.$setter(value);
                self
            }
        )*

        /// See [`ClientConfigBuilder::bootstrap_servers`].
        pub fn bootstrap_servers<S: Into<String>>(
            mut self,
            servers: impl IntoIterator<Item = S>,
        ) -> Self {
            self.client = self.client.bootstrap_servers(servers);
            self
        }

        /// See [`ClientConfigBuilder::client_id`].
        pub fn client_id(mut self, id: impl Into<String>) -> Self {
            self.client = self.client.client_id(id);
            self
        }

        /// Replaces every shared client setting with `client`'s, so one
        /// [`ClientConfig`](crate::config::ClientConfig) can serve a producer and a consumer.
        pub fn client(mut self, client: $crate::config::ClientConfig) -> Self {
            self.client = client.into();
            self
        }
    };
}
pub(super) use client_setters;
