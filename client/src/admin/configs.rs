//! DescribeConfigs and IncrementalAlterConfigs: read and change topic and broker configs.
//!
//! A topic's config is answered by any broker; a broker's own config (resource name = its id)
//! only by that broker, so requests are routed per resource. Changes go through
//! IncrementalAlterConfigs (KIP-339, Kafka 2.3+), which touches only the keys named. The older
//! AlterConfigs replaces a resource's whole config, silently resetting every key not sent, so
//! sluice does not fall back to it: emulating an increment as describe-then-replace races
//! with every other writer. A broker without IncrementalAlterConfigs answers with
//! [`Error::BrokerTooOld`].

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

use super::leaders::layers;
use super::retry::{run_rounds, Batch, Rounds};
use super::{kafka_error, Admin, Outcomes};
use crate::error::{Error, KafkaCode, Result};

/// A resource's config asked about a topic that does not exist will not appear by retrying.
const CONFIG_FINAL_CODES: &[KafkaCode] = &[KafkaCode::UNKNOWN_TOPIC_OR_PARTITION];

/// What kind of thing a config belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResourceKind {
    /// A topic; the name is the topic's.
    Topic,
    /// A broker; the name is its id, or empty for the cluster-wide default.
    Broker,
    /// A broker's log4j loggers; the name is the broker's id.
    BrokerLogger,
}

impl ResourceKind {
    fn wire(self) -> i8 {
        match self {
            ResourceKind::Topic => 2,
            ResourceKind::Broker => 4,
            ResourceKind::BrokerLogger => 8,
        }
    }
}

/// A resource whose config is described or altered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConfigResource {
    /// What kind of resource.
    pub kind: ResourceKind,
    /// Its name: a topic name or a broker id.
    pub name: String,
}

impl ConfigResource {
    /// The topic named `name`.
    pub fn topic(name: impl Into<String>) -> ConfigResource {
        ConfigResource {
            kind: ResourceKind::Topic,
            name: name.into(),
        }
    }

    /// The broker with id `id`.
    pub fn broker(id: i32) -> ConfigResource {
        ConfigResource {
            kind: ResourceKind::Broker,
            name: id.to_string(),
        }
    }

    /// The broker that must answer for this resource; `None`: any broker.
    fn broker_id(&self) -> Option<i32> {
        match self.kind {
            ResourceKind::Broker | ResourceKind::BrokerLogger => self.name.parse().ok(),
            ResourceKind::Topic => None,
        }
    }

    fn context(&self) -> String {
        match self.kind {
            ResourceKind::Topic => format!("topic {}", self.name),
            ResourceKind::Broker => format!("broker {}", self.name),
            ResourceKind::BrokerLogger => format!("broker logger {}", self.name),
        }
    }
}

/// Where a config value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigSource {
    /// Set on the topic (`kafka-configs --entity-type topics`).
    DynamicTopic,
    /// Set dynamically on this broker.
    DynamicBroker,
    /// Set dynamically as the default of every broker.
    DynamicDefaultBroker,
    /// From the broker's `server.properties`.
    StaticBroker,
    /// Kafka's built-in default.
    Default,
    /// Set dynamically on a broker logger.
    DynamicBrokerLogger,
    /// A client-metrics subscription (KIP-714).
    ClientMetrics,
    /// Set on a consumer group (KIP-848).
    Group,
    /// A source this client does not know (or the broker did not say).
    Unknown(i8),
}

impl ConfigSource {
    fn from_wire(source: i8) -> ConfigSource {
        match source {
            1 => ConfigSource::DynamicTopic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            6 => ConfigSource::DynamicBrokerLogger,
            7 => ConfigSource::ClientMetrics,
            8 => ConfigSource::Group,
            other => ConfigSource::Unknown(other),
        }
    }
}

/// One config key of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The key, e.g. `retention.ms`.
    pub name: String,
    /// The value; `None` when it is sensitive (passwords) or unset.
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it cannot be changed dynamically.
    pub read_only: bool,
    /// Whether it is Kafka's built-in default (source [`ConfigSource::Default`]).
    pub is_default: bool,
    /// Whether the value is sensitive and therefore not returned.
    pub is_sensitive: bool,
}

/// A change to one key (IncrementalAlterConfigs operation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConfigOp {
    /// Set the value.
    Set(String),
    /// Remove the key, back to its default (or the broker-level value).
    Delete,
    /// Add an element to a list-valued key (`cleanup.policy`...).
    Append(String),
    /// Remove an element from a list-valued key.
    Subtract(String),
}

/// A change to one config key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlterConfig {
    /// The key.
    pub name: String,
    /// What to do to it.
    pub op: ConfigOp,
}

impl AlterConfig {
    /// Sets `name` to `value`.
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> AlterConfig {
        AlterConfig {
            name: name.into(),
            op: ConfigOp::Set(value.into()),
        }
    }

    /// Removes `name`, so it falls back to its default.
    pub fn delete(name: impl Into<String>) -> AlterConfig {
        AlterConfig {
            name: name.into(),
            op: ConfigOp::Delete,
        }
    }

    fn wire(&self) -> AlterableConfig {
        let (op, value) = match &self.op {
            ConfigOp::Set(v) => (0, Some(v)),
            ConfigOp::Delete => (1, None),
            ConfigOp::Append(v) => (2, Some(v)),
            ConfigOp::Subtract(v) => (3, Some(v)),
        };
        AlterableConfig::default()
            .with_name(StrBytes::from_string(self.name.clone()))
            .with_config_operation(op)
            .with_value(value.map(|v| StrBytes::from_string(v.clone())))
    }
}

impl Admin {
    /// Describes the config of each resource, in the order given.
    ///
    /// Topic resources are asked of any broker, broker resources of that broker. Every entry
    /// comes with its source and flags; Kafka lists every key, defaults included. Tansu
    /// (tansu-notes gap 7) lists only the keys set explicitly on the topic. A topic that does
    /// not exist fails with UNKNOWN_TOPIC_OR_PARTITION; retriable errors are retried until
    /// `request.timeout.ms`.
    ///
    /// Cancel safety: cancel safe; it only reads.
    pub async fn describe_configs(
        &self,
        resources: &[ConfigResource],
    ) -> Outcomes<ConfigResource, Vec<ConfigEntry>> {
        let batch = Batch::new(resources.len(), CONFIG_FINAL_CODES);
        let results = run_rounds(
            self.rounds(self.timeout()),
            batch,
            "DescribeConfigs",
            async |pending, rounds, batch| {
                self.describe_round(resources, pending, rounds, batch).await
            },
        )
        .await;
        Outcomes {
            entries: resources.iter().cloned().zip(results).collect(),
        }
    }

    async fn describe_round(
        &self,
        resources: &[ConfigResource],
        pending: &[usize],
        rounds: &Rounds,
        batch: &mut Batch<Vec<ConfigEntry>>,
    ) -> Result<()> {
        let sends = self.route(resources, pending, rounds).await?;
        let responses = futures::future::join_all(sends.into_iter().map(|(broker, request)| {
            let body = DescribeConfigsRequest::default().with_resources(
                request
                    .iter()
                    .map(|&i| {
                        DescribeConfigsResource::default()
                            .with_resource_type(resources[i].kind.wire())
                            .with_resource_name(StrBytes::from_string(resources[i].name.clone()))
                            .with_configuration_keys(None)
                    })
                    .collect(),
            );
            async move { (request, self.send(broker, |_| Ok(body)).await) }
        }))
        .await;
        for (request, response) in responses {
            let response = match response {
                Ok(response) => response,
                Err(e) => {
                    batch.settle_all(&request, &e);
                    continue;
                }
            };
            let results = response.results.iter().map(|r| {
                let code = KafkaCode(r.error_code);
                let result = if code.is_ok() {
                    Ok(r.configs.iter().map(entry).collect())
                } else {
                    Err(code)
                };
                (
                    r.resource_type,
                    r.resource_name.as_str(),
                    result,
                    r.error_message.as_deref(),
                )
            });
            settle_resources(resources, &request, results, batch);
        }
        Ok(())
    }

    /// Applies `changes` to each resource with IncrementalAlterConfigs, one result per
    /// resource in the order given.
    ///
    /// Only the keys named change. Routed like [`Admin::describe_configs`].
    ///
    /// A broker without IncrementalAlterConfigs (KIP-339, before Kafka 2.3) gives
    /// [`Error::BrokerTooOld`] and nothing is sent. There is deliberately no fallback to the
    /// older AlterConfigs: it replaces a resource's whole config, silently resetting every key
    /// not sent, and emulating an increment as describe-then-replace races with every other
    /// writer. On such a broker, use its own tools or AlterConfigs with the complete config.
    ///
    /// A resource named twice gets INVALID_REQUEST without being sent, as Kafka would answer
    /// it (sent apart, the order of the changes would be undefined).
    ///
    /// Cancel safety: dropping the future may leave any of the changes applied.
    pub async fn alter_configs(
        &self,
        changes: &[(ConfigResource, Vec<AlterConfig>)],
    ) -> Outcomes<ConfigResource, ()> {
        let resources: Vec<ConfigResource> = changes.iter().map(|(r, _)| r.clone()).collect();
        let mut batch = Batch::new(changes.len(), CONFIG_FINAL_CODES);
        batch.reject_duplicates(&resources, ConfigResource::context);
        let results = run_rounds(
            self.rounds(self.timeout()),
            batch,
            "IncrementalAlterConfigs",
            async |pending, rounds, batch| {
                self.alter_round(changes, &resources, pending, rounds, batch)
                    .await
            },
        )
        .await;
        Outcomes {
            entries: resources.into_iter().zip(results).collect(),
        }
    }

    async fn alter_round(
        &self,
        changes: &[(ConfigResource, Vec<AlterConfig>)],
        resources: &[ConfigResource],
        pending: &[usize],
        rounds: &Rounds,
        batch: &mut Batch<()>,
    ) -> Result<()> {
        let sends = self.route(resources, pending, rounds).await?;
        let responses = futures::future::join_all(sends.into_iter().map(|(broker, request)| {
            let body = IncrementalAlterConfigsRequest::default().with_resources(
                request
                    .iter()
                    .map(|&i| {
                        let (resource, ops) = &changes[i];
                        AlterConfigsResource::default()
                            .with_resource_type(resource.kind.wire())
                            .with_resource_name(StrBytes::from_string(resource.name.clone()))
                            .with_configs(ops.iter().map(AlterConfig::wire).collect())
                    })
                    .collect(),
            );
            async move { (request, self.send(broker, |_| Ok(body)).await) }
        }))
        .await;
        for (request, response) in responses {
            match response {
                Ok(response) => {
                    let results = response.responses.iter().map(|r| {
                        let code = KafkaCode(r.error_code);
                        let result = if code.is_ok() { Ok(()) } else { Err(code) };
                        (
                            r.resource_type,
                            r.resource_name.as_str(),
                            result,
                            r.error_message.as_deref(),
                        )
                    });
                    settle_resources(resources, &request, results, batch);
                }
                Err(e) => batch.settle_all(&request, &e),
            }
        }
        Ok(())
    }

    /// The requests of a round: pending resources grouped by the broker that must answer
    /// (any broker, picked at random, for topics), no resource twice in one request.
    async fn route(
        &self,
        resources: &[ConfigResource],
        pending: &[usize],
        rounds: &Rounds,
    ) -> Result<Vec<(i32, Vec<usize>)>> {
        if rounds.attempt() > 1 {
            self.cluster.refresh(&[]).await?;
        }
        let mut by_broker: BTreeMap<Option<i32>, Vec<(usize, &ConfigResource)>> = BTreeMap::new();
        for &i in pending {
            let resource = &resources[i];
            by_broker
                .entry(resource.broker_id())
                .or_default()
                .push((i, resource));
        }
        let mut sends = Vec::new();
        for (broker, items) in by_broker {
            let broker = match broker {
                Some(id) => id,
                None => self.any_broker().await?,
            };
            sends.extend(layers(items).into_iter().map(|request| (broker, request)));
        }
        Ok(sends)
    }
}

fn entry(c: &DescribeConfigsResourceResult) -> ConfigEntry {
    let source = ConfigSource::from_wire(c.config_source);
    ConfigEntry {
        name: c.name.as_str().to_owned(),
        value: c.value.as_ref().map(|v| v.as_str().to_owned()),
        source,
        read_only: c.read_only,
        is_default: source == ConfigSource::Default,
        is_sensitive: c.is_sensitive,
    }
}

/// Settles the resources of one request from per-resource results, matched by type and
/// name.
fn settle_resources<'a, V>(
    resources: &[ConfigResource],
    request: &[usize],
    results: impl Iterator<Item = (i8, &'a str, Result<V, KafkaCode>, Option<&'a str>)>,
    batch: &mut Batch<V>,
) {
    let mut sent: HashMap<(i8, &str), usize> = request
        .iter()
        .map(|&i| ((resources[i].kind.wire(), resources[i].name.as_str()), i))
        .collect();
    for (kind, name, result, message) in results {
        let Some(i) = sent.remove(&(kind, name)) else {
            continue;
        };
        let result = result.map_err(|code| kafka_error(code, resources[i].context(), message));
        batch.settle(i, result);
    }
    for (_, i) in sent {
        let context = format!("{}: missing from the response", resources[i].context());
        batch.finish(
            i,
            Err(Error::kafka(KafkaCode::UNKNOWN_SERVER_ERROR, context)),
        );
    }
}
