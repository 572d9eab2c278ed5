//! [`AdminConfig`]: the admin client's settings.
//!
//! Today these are exactly the shared [`ClientConfig`]; a newtype rather than an alias so
//! that admin-only settings (Java's `default.api.timeout.ms`, say) can be added later without
//! giving them to every client, and so `AdminConfig::from_properties` refuses producer and
//! consumer properties.

use super::client_builder::{client_setters, ClientConfigBuilder};
use super::ClientConfig;
use crate::Result;

/// Settings of the admin client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    client: ClientConfig,
}

impl AdminConfig {
    /// A builder with Java's defaults and no bootstrap servers.
    pub fn builder() -> AdminConfigBuilder {
        AdminConfigBuilder::default()
    }

    /// A config from Java/librdkafka property names; see the [module docs](super).
    pub fn from_properties<K, V>(properties: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        AdminConfig::builder().properties(properties)?.build()
    }

    /// The shared client settings.
    pub fn client(&self) -> &ClientConfig {
        &self.client
    }
}

impl From<ClientConfig> for AdminConfig {
    fn from(client: ClientConfig) -> Self {
        AdminConfig { client }
    }
}

/// Builds an [`AdminConfig`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminConfigBuilder {
    pub(super) client: ClientConfigBuilder,
}

impl AdminConfigBuilder {
    client_setters!();

    /// Applies Java/librdkafka properties on top of what is set; see the
    /// [module docs](super).
    pub fn properties<K, V>(mut self, properties: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        super::properties::apply(&mut self, properties)?;
        Ok(self)
    }

    /// Checks the settings and builds the config.
    pub fn build(self) -> Result<AdminConfig> {
        Ok(AdminConfig {
            client: self.client.build()?,
        })
    }
}
