//! The cached view of the cluster: brokers, topics, partitions, leaders and leader epochs.
//!
//! Built from Metadata responses. A snapshot is immutable and shared behind an `Arc`; a
//! refresh builds a new one, so readers never see a half-updated map. Leader epochs (KIP-320)
//! let an update be ignored when it is older than what we already know for a partition.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::MetadataResponse;

use crate::error::KafkaCode;

/// A broker as the cluster advertises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// The broker id.
    pub id: i32,
    /// `host:port` to connect to.
    pub addr: String,
    /// The rack, if configured.
    pub rack: Option<String>,
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition number.
    pub partition: i32,
    /// The leader's broker id, or -1 when there is none right now.
    pub leader: i32,
    /// The leader epoch, or -1 if the broker does not report one.
    pub leader_epoch: i32,
    /// Broker ids of all replicas.
    pub replicas: Vec<i32>,
    /// Broker ids of the in-sync replicas.
    pub isr: Vec<i32>,
    /// A partition-level error, e.g. LEADER_NOT_AVAILABLE.
    pub error: Option<KafkaCode>,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic name.
    pub name: String,
    /// The topic id (KIP-516), all zero when the broker does not report one.
    pub id: [u8; 16],
    /// Whether it is an internal topic such as `__consumer_offsets`.
    pub internal: bool,
    /// Partitions sorted by number.
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    /// The partition numbered `partition`.
    pub fn partition(&self, partition: i32) -> Option<&PartitionInfo> {
        usize::try_from(partition)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .filter(|p| p.partition == partition)
            .or_else(|| self.partitions.iter().find(|p| p.partition == partition))
    }
}

/// An immutable snapshot of cluster metadata.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The cluster id, if reported.
    pub cluster_id: Option<String>,
    /// The controller's broker id, or -1.
    pub controller: i32,
    /// Brokers by id.
    pub brokers: HashMap<i32, BrokerInfo>,
    /// Topics known to exist, by name.
    pub topics: HashMap<String, Arc<TopicInfo>>,
    /// Topics the last refresh said do not exist (or cannot be described), with the error.
    pub topic_errors: HashMap<String, KafkaCode>,
}

impl Snapshot {
    /// This snapshot updated with `response`. Topics the response does not mention stay as
    /// they were (a refresh usually asks for a subset); brokers are replaced, since every
    /// response lists all of them.
    pub(crate) fn merged(&self, response: &MetadataResponse) -> Snapshot {
        let mut next = self.clone();
        if !response.brokers.is_empty() {
            next.brokers = response
                .brokers
                .iter()
                .map(|b| {
                    let id = b.node_id.0;
                    let addr = format!("{}:{}", b.host.as_str(), b.port);
                    (
                        id,
                        BrokerInfo {
                            id,
                            addr,
                            rack: b.rack.as_ref().map(|r| r.as_str().to_owned()),
                        },
                    )
                })
                .collect();
        }
        next.controller = response.controller_id.0;
        if let Some(id) = &response.cluster_id {
            next.cluster_id = Some(id.as_str().to_owned());
        }
        for topic in &response.topics {
            let Some(name) = topic.name.as_ref().map(|n| n.0.as_str().to_owned()) else {
                continue;
            };
            let code = KafkaCode(topic.error_code);
            if !code.is_ok() && topic.partitions.is_empty() {
                next.topics.remove(&name);
                next.topic_errors.insert(name, code);
                continue;
            }
            let mut partitions: Vec<PartitionInfo> = topic
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    error: Some(KafkaCode(p.error_code)).filter(|c| !c.is_ok()),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            // KIP-320: a stale broker may answer with an older leader epoch; keep what we had.
            if let Some(old) = self.topics.get(&name) {
                for p in &mut partitions {
                    if let Some(known) = old.partition(p.partition) {
                        if p.leader_epoch >= 0 && known.leader_epoch > p.leader_epoch {
                            *p = known.clone();
                        }
                    }
                }
            }
            next.topic_errors.remove(&name);
            let info = TopicInfo {
                name: name.clone(),
                id: *topic.topic_id.as_bytes(),
                internal: topic.is_internal,
                partitions,
            };
            next.topics.insert(name, Arc::new(info));
        }
        next
    }
}
