//! Committed offsets: OffsetCommit and OffsetFetch against the group coordinator.
//!
//! Both retry what the coordinator says may be retried (it moved, is loading, or holds
//! offsets of a transaction still open: UNSTABLE_OFFSET_COMMIT) until the deadline, and fail
//! at once on what retrying cannot fix (the member was fenced or the group rebalanced, which
//! the caller answers by rejoining).

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use super::coordinator::Coordinator;
use crate::cluster::Backoff;
use crate::error::{Error, KafkaCode, Result};

/// An offset to commit for a partition: the next record to read, as Kafka stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetToCommit {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset of the next record to consume.
    pub offset: i64,
    /// The leader epoch of the last consumed record, if known (KIP-320).
    pub leader_epoch: Option<i32>,
    /// Free-form metadata stored with the offset.
    pub metadata: Option<String>,
}

impl OffsetToCommit {
    /// `offset` for `topic`/`partition`, without leader epoch or metadata.
    pub fn new(topic: impl Into<String>, partition: i32, offset: i64) -> Self {
        OffsetToCommit {
            topic: topic.into(),
            partition,
            offset,
            leader_epoch: None,
            metadata: None,
        }
    }
}

/// A committed offset as OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The offset of the next record to consume.
    pub offset: i64,
    /// The leader epoch stored with it, if any.
    pub leader_epoch: Option<i32>,
    /// The metadata stored with it.
    pub metadata: Option<String>,
}

/// Who commits: a group member's generation and ids, or generation -1 and an empty member id
/// for a consumer outside the group protocol (a "simple" commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Committer {
    pub(crate) generation: i32,
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
}

/// How long and how often to retry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retry {
    pub(crate) deadline: Instant,
    pub(crate) request_timeout: Duration,
    pub(crate) backoff: Backoff,
}

/// Commits `offsets` for the group, retrying until `retry.deadline`.
pub(crate) async fn commit(
    coordinator: &Coordinator,
    committer: &Committer,
    offsets: &[OffsetToCommit],
    retry: Retry,
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut failures = 0u32;
    loop {
        let result = coordinator
            .send(retry.request_timeout, |version| {
                Ok(commit_request(
                    coordinator.key(),
                    committer,
                    offsets,
                    version,
                ))
            })
            .await
            .and_then(|response| {
                for topic in &response.topics {
                    for p in &topic.partitions {
                        if p.error_code != 0 {
                            return Err(Error::kafka(
                                KafkaCode(p.error_code),
                                format!(
                                    "OffsetCommit of {}-{} for group {}",
                                    topic.name.0.as_str(),
                                    p.partition_index,
                                    coordinator.key()
                                ),
                            ));
                        }
                    }
                }
                Ok(())
            });
        match result {
            Ok(()) => return Ok(()),
            Err(e) => {
                failures += 1;
                if !coordinator.on_error(&e) || Instant::now() >= retry.deadline {
                    return Err(e);
                }
                tokio::time::sleep(retry.backoff.delay(failures)).await;
            }
        }
    }
}

fn commit_request(
    group: &str,
    committer: &Committer,
    offsets: &[OffsetToCommit],
    version: i16,
) -> OffsetCommitRequest {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for o in offsets {
        let mut p = OffsetCommitRequestPartition::default()
            .with_partition_index(o.partition)
            .with_committed_offset(o.offset)
            .with_committed_metadata(o.metadata.as_deref().map(str_bytes).or(Some(str_bytes(""))));
        if version >= 6 {
            p.committed_leader_epoch = o.leader_epoch.unwrap_or(-1);
        }
        topics.entry(o.topic.as_str()).or_default().push(p);
    }
    let mut request = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id_or_member_epoch(committer.generation)
        .with_member_id(str_bytes(&committer.member_id))
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(str_bytes(name)))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    if version >= 7 {
        request.group_instance_id = committer.instance_id.as_deref().map(str_bytes);
    }
    request
}

/// The committed offsets of `partitions` (`None` where nothing is committed), or of every
/// partition the group has offsets for when `partitions` is `None`. With
/// `require_stable`, partitions with offsets pending in an open transaction are waited for
/// (KIP-447), so a read_committed consumer never starts before a transaction's offsets.
pub(crate) async fn fetch_committed(
    coordinator: &Coordinator,
    partitions: Option<&[(String, i32)]>,
    require_stable: bool,
    retry: Retry,
) -> Result<BTreeMap<(String, i32), Option<CommittedOffset>>> {
    let mut failures = 0u32;
    loop {
        let result = coordinator
            .send(retry.request_timeout, |version| {
                fetch_request(coordinator.key(), partitions, require_stable, version)
            })
            .await
            .and_then(|response| read_fetch_response(coordinator.key(), response));
        match result {
            Ok(found) => return Ok(found),
            Err(e) => {
                failures += 1;
                let retriable =
                    e.code() == Some(KafkaCode::UNSTABLE_OFFSET_COMMIT) || coordinator.on_error(&e);
                if !retriable || Instant::now() >= retry.deadline {
                    return Err(e);
                }
                tokio::time::sleep(retry.backoff.delay(failures)).await;
            }
        }
    }
}

fn fetch_request(
    group: &str,
    partitions: Option<&[(String, i32)]>,
    require_stable: bool,
    version: i16,
) -> Result<OffsetFetchRequest> {
    if partitions.is_none() && version < 2 {
        return Err(Error::BrokerTooOld {
            broker: format!("group coordinator of {group}"),
            reason: "listing all of a group's offsets needs OffsetFetch v2".into(),
        });
    }
    // `None` (null topics) asks for every partition the group has offsets for (v2+).
    let by_topic = partitions.map(|partitions| {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in partitions {
            by_topic.entry(topic.as_str()).or_default().push(*partition);
        }
        by_topic
    });
    let mut request = OffsetFetchRequest::default();
    if version >= 8 {
        request.groups = vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_topics(by_topic.map(|by_topic| {
                by_topic
                    .into_iter()
                    .map(|(name, ids)| {
                        OffsetFetchRequestTopics::default()
                            .with_name(TopicName(str_bytes(name)))
                            .with_partition_indexes(ids)
                    })
                    .collect()
            }))];
    } else {
        request.group_id = GroupId(str_bytes(group));
        request.topics = by_topic.map(|by_topic| {
            by_topic
                .into_iter()
                .map(|(name, ids)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(str_bytes(name)))
                        .with_partition_indexes(ids)
                })
                .collect()
        });
    }
    if version >= 7 {
        request.require_stable = require_stable;
    }
    Ok(request)
}

type Committed = BTreeMap<(String, i32), Option<CommittedOffset>>;

/// One partition of either OffsetFetch response form: (topic, partition, error code, offset,
/// leader epoch, metadata).
type FetchedPartition = (String, i32, i16, i64, i32, Option<StrBytes>);

fn read_fetch_response(group: &str, response: OffsetFetchResponse) -> Result<Committed> {
    // v8+ answers per group; older versions at the top level. Same fields either way.
    let (code, partitions): (i16, Vec<FetchedPartition>) = match response.groups.into_iter().next()
    {
        Some(g) => (
            g.error_code,
            g.topics
                .into_iter()
                .flat_map(|t| {
                    let topic = t.name.0.to_string();
                    t.partitions.into_iter().map(move |p| {
                        (
                            topic.clone(),
                            p.partition_index,
                            p.error_code,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.metadata,
                        )
                    })
                })
                .collect(),
        ),
        None => (
            response.error_code,
            response
                .topics
                .into_iter()
                .flat_map(|t| {
                    let topic = t.name.0.to_string();
                    t.partitions.into_iter().map(move |p| {
                        (
                            topic.clone(),
                            p.partition_index,
                            p.error_code,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.metadata,
                        )
                    })
                })
                .collect(),
        ),
    };
    if code != 0 {
        return Err(Error::kafka(
            KafkaCode(code),
            format!("OffsetFetch for group {group}"),
        ));
    }
    let mut found = BTreeMap::new();
    for (topic, partition, code, offset, epoch, metadata) in partitions {
        if code != 0 {
            return Err(Error::kafka(
                KafkaCode(code),
                format!("OffsetFetch of {topic}-{partition} for group {group}"),
            ));
        }
        let committed = (offset >= 0).then(|| CommittedOffset {
            offset,
            leader_epoch: (epoch >= 0).then_some(epoch),
            metadata: metadata.map(|m| m.to_string()),
        });
        found.insert((topic, partition), committed);
    }
    Ok(found)
}

pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}
