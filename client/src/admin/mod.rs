//! The admin client: create and delete topics, describe the cluster, list offsets, describe and
//! alter configs, delete records.
//!
//! Why its own layer: admin requests go to different brokers than produce and fetch (the
//! controller for topic changes, each partition's leader for offsets and record deletion, any
//! broker for configs) and answer per item, so one call can half succeed. Every batch call
//! therefore returns [`Outcomes`], one result per item in the order asked, and retries only the
//! items that failed with a retriable error (NOT_CONTROLLER, LEADER_NOT_AVAILABLE,
//! NOT_LEADER_OR_FOLLOWER, a lost connection...), after a metadata refresh and a backoff
//! (`retry.backoff.ms` doubling up to `retry.backoff.max.ms`), until the call's deadline
//! (`request.timeout.ms` unless an option says otherwise). An item still failing then gets its
//! last error, typed as [`Error::Kafka`] with a context naming the topic, partition or resource.
//!
//! Files: `mod.rs` (the client, [`Outcomes`], describe_cluster), `retry.rs` (rounds and
//! per-item bookkeeping), `leaders.rs` (grouping partitions by leader), `topics.rs`,
//! `offsets.rs`, `configs.rs`, `records.rs`, `groups.rs` (consumer groups: list, describe, offsets).
//!
//! References: the protocol guide (<https://kafka.apache.org/protocol>), KIP-4 (admin
//! requests), KIP-107 (DeleteRecords), KIP-339 (IncrementalAlterConfigs), KIP-700
//! (DescribeCluster), KIP-734 (ListOffsets MAX_TIMESTAMP), KIP-516 (DeleteTopics v6).

mod configs;
mod groups;
mod leaders;
mod offsets;
mod records;
mod retry;
mod topics;

use std::time::Duration;

use kafka_protocol::messages::DescribeClusterRequest;
use kafka_protocol::protocol::Request;

pub use configs::{AlterConfig, ConfigEntry, ConfigOp, ConfigResource, ConfigSource, ResourceKind};
pub use groups::{GroupDescription, GroupListing, MemberDescription};
pub use offsets::{ListedOffset, OffsetSpec};
pub use topics::{CreateTopicsOptions, NewTopic};

use crate::cluster::{Backoff, BrokerInfo, Cluster, ClusterOptions, Snapshot};
use crate::config::AdminConfig;
use crate::error::{Error, KafkaCode, Result};
use retry::Rounds;

/// The per-item results of a batch admin call: one entry per item asked for, in the order
/// given, each with its own result.
#[derive(Debug)]
pub struct Outcomes<K, V> {
    entries: Vec<(K, Result<V>)>,
}

impl<K, V> Outcomes<K, V> {
    /// Every item with its result, in the order asked.
    pub fn entries(&self) -> &[(K, Result<V>)] {
        &self.entries
    }

    /// The result of the first entry whose key is `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&Result<V>>
    where
        K: std::borrow::Borrow<Q>,
        Q: PartialEq + ?Sized,
    {
        self.entries
            .iter()
            .find(|(k, _)| k.borrow() == key)
            .map(|(_, r)| r)
    }

    /// All values if every item succeeded, else the first error (in item order).
    pub fn into_result(self) -> Result<Vec<(K, V)>> {
        self.entries
            .into_iter()
            .map(|(k, r)| r.map(|v| (k, v)))
            .collect()
    }

    /// How many items there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the call was given no items.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<K, V> IntoIterator for Outcomes<K, V> {
    type Item = (K, Result<V>);
    type IntoIter = std::vec::IntoIter<(K, Result<V>)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

/// What [`Admin::describe_cluster`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    /// The cluster id, if the broker reports one.
    pub cluster_id: Option<String>,
    /// The controller's broker id (in KRaft clusters, a broker that forwards to the controller
    /// quorum), if known.
    pub controller: Option<i32>,
    /// The live brokers, sorted by id.
    pub brokers: Vec<BrokerInfo>,
}

/// The admin client. Clones share the cluster connections.
#[derive(Debug, Clone)]
pub struct Admin {
    cluster: Cluster,
    config: AdminConfig,
}

impl Admin {
    /// Connects to the cluster named by `config`'s bootstrap servers.
    ///
    /// Cancel safety: safe to drop; at most a connection is left open, and closed with the
    /// last handle.
    pub async fn new(config: AdminConfig) -> Result<Admin> {
        let cluster = Cluster::connect(ClusterOptions::from_client(config.client())).await?;
        Ok(Admin { cluster, config })
    }

    /// An admin client on an existing cluster handle (shared with a producer or consumer).
    pub fn with_cluster(cluster: Cluster, config: AdminConfig) -> Admin {
        Admin { cluster, config }
    }

    /// The cluster handle: metadata cache and connections.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The configuration.
    pub fn config(&self) -> &AdminConfig {
        &self.config
    }

    /// The cluster id, the controller and the brokers.
    ///
    /// Uses DescribeCluster (KIP-700, Kafka 2.8+) when the broker offers it, else a Metadata
    /// request. Retriable errors are retried until `request.timeout.ms`.
    ///
    /// Cancel safety: cancel safe; it only reads.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let mut rounds = self.rounds(self.timeout());
        let mut last = None;
        while rounds.next().await {
            let attempt = self.describe_cluster_once(&rounds);
            match tokio::time::timeout_at(rounds.deadline(), attempt).await {
                Ok(Ok(description)) => return Ok(description),
                Ok(Err(e)) if e.is_retriable() => last = Some(e),
                Ok(Err(e)) => return Err(e),
                Err(_) => break,
            }
        }
        Err(last.unwrap_or_else(|| rounds.timeout_error("DescribeCluster")))
    }

    async fn describe_cluster_once(&self, rounds: &Rounds) -> Result<ClusterDescription> {
        if rounds.attempt() > 1 {
            self.cluster.refresh(&[]).await?;
        }
        let broker = self.any_broker().await?;
        let request = DescribeClusterRequest::default();
        match self.send(broker, |_| Ok(request)).await {
            Ok(response) => {
                let code = KafkaCode(response.error_code);
                if !code.is_ok() {
                    return Err(kafka_error(
                        code,
                        "DescribeCluster".into(),
                        response.error_message.as_deref(),
                    ));
                }
                let mut brokers: Vec<BrokerInfo> = response
                    .brokers
                    .iter()
                    .filter(|b| !b.is_fenced)
                    .map(|b| BrokerInfo {
                        id: b.broker_id.0,
                        addr: format!("{}:{}", b.host.as_str(), b.port),
                        rack: b.rack.as_ref().map(|r| r.as_str().to_owned()),
                    })
                    .collect();
                brokers.sort_by_key(|b| b.id);
                Ok(ClusterDescription {
                    cluster_id: Some(response.cluster_id.as_str().to_owned()),
                    controller: Some(response.controller_id.0).filter(|id| *id >= 0),
                    brokers,
                })
            }
            // Kafka before 2.8 (and some compatible brokers) lack DescribeCluster; Metadata
            // carries the same three facts.
            Err(Error::BrokerTooOld { .. }) => {
                let snapshot = self.cluster.refresh(&[]).await?;
                let mut brokers: Vec<BrokerInfo> = snapshot.brokers.values().cloned().collect();
                brokers.sort_by_key(|b| b.id);
                Ok(ClusterDescription {
                    cluster_id: snapshot.cluster_id.clone(),
                    controller: Some(snapshot.controller).filter(|id| *id >= 0),
                    brokers,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The bound on a whole call: `request.timeout.ms`.
    fn timeout(&self) -> Duration {
        self.config.client().request_timeout()
    }

    fn rounds(&self, timeout: Duration) -> Rounds {
        Rounds::new(timeout, self.backoff())
    }

    /// `retry.backoff.ms` doubling up to `retry.backoff.max.ms`.
    fn backoff(&self) -> Backoff {
        let client = self.config.client();
        Backoff {
            initial: client.retry_backoff(),
            max: client.retry_backoff_max(),
        }
    }

    /// Sends a request built for the version negotiated with `broker`.
    ///
    /// Several admin messages change shape between versions (DeleteTopics v6 names topics
    /// in another field; ListOffsets v1 has no isolation level), so the body is built only
    /// once the version is known. Bounded by `request.timeout.ms`; callers bound the whole
    /// call by its deadline by dropping this future, which leaves the connection open (a
    /// connection-level timeout would close it for every other user of the cluster handle).
    async fn send<R: Request>(
        &self,
        broker: i32,
        build: impl FnOnce(i16) -> Result<R>,
    ) -> Result<R::Response> {
        let conn = self.cluster.connection(broker).await?;
        let version = conn.version_of::<R>()?;
        let request = build(version)?;
        conn.send_at(&request, version, self.cluster.options().request_timeout)
            .await
    }

    /// The controller from the cached metadata, or any broker when it is unknown. Callers
    /// refresh the metadata before a retry, so a NOT_CONTROLLER answer moves the next round
    /// to the new controller.
    async fn controller(&self) -> Result<i32> {
        let snapshot = self.cluster.snapshot();
        if snapshot.controller >= 0 && snapshot.brokers.contains_key(&snapshot.controller) {
            return Ok(snapshot.controller);
        }
        self.any_broker().await
    }

    /// A broker picked at random from the metadata, so retries spread over the cluster.
    async fn any_broker(&self) -> Result<i32> {
        let mut snapshot = self.cluster.snapshot();
        if snapshot.brokers.is_empty() {
            snapshot = self.cluster.refresh(&[]).await?;
        }
        random_broker(&snapshot).ok_or_else(|| {
            Error::kafka(
                KafkaCode::BROKER_NOT_AVAILABLE,
                "no broker in the cluster metadata",
            )
        })
    }
}

fn random_broker(snapshot: &Snapshot) -> Option<i32> {
    let mut ids: Vec<i32> = snapshot.brokers.keys().copied().collect();
    ids.sort_unstable();
    (!ids.is_empty()).then(|| ids[fastrand::usize(..ids.len())])
}

/// A broker error with its context ("topic X") and the broker's message, if any.
fn kafka_error(code: KafkaCode, context: String, message: Option<&str>) -> Error {
    match message.filter(|m| !m.is_empty()) {
        Some(message) => Error::kafka(code, format!("{context}: {message}")),
        None => Error::kafka(code, context),
    }
}

/// Milliseconds for a `timeout_ms` field.
fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}
