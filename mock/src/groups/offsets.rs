//! Committed offsets: OffsetCommit, OffsetFetch, and the offsets a transaction holds until its
//! marker (KIP-98, KIP-447).
//!
//! Kafka keeps a group's offsets in `__consumer_offsets`; here they live in the group. A
//! transactional commit is *pending* until the transaction ends: OffsetFetch does not show it,
//! and a `require_stable` OffsetFetch (v7+, KIP-447) answers UNSTABLE_OFFSET_COMMIT for its
//! partitions, which is what makes a read_committed consumer wait rather than resume from a
//! stale offset.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::{check_coordinator, GroupIdRule, Groups};
use crate::handlers::{str_bytes, Context};
use crate::state::{Shared, State};

/// `offset.metadata.max.bytes`: longer commit metadata is refused.
const MAX_METADATA_BYTES: usize = 4096;

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Committed {
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: String,
    /// Commit order across the cluster: a transaction's offsets do not overwrite a commit
    /// made after them (Kafka compares their positions in `__consumer_offsets`).
    pub(crate) seq: u64,
}

type Key = (String, i32);

/// A group's offsets: committed, and pending per transactional producer id.
#[derive(Debug, Default)]
pub(crate) struct Offsets {
    committed: BTreeMap<Key, Committed>,
    pending: BTreeMap<i64, BTreeMap<Key, Committed>>,
}

impl Offsets {
    pub(crate) fn commit(&mut self, topic: &str, partition: i32, offset: Committed) {
        self.committed.insert((topic.to_owned(), partition), offset);
    }

    pub(crate) fn get(&self, topic: &str, partition: i32) -> Option<&Committed> {
        self.committed.get(&(topic.to_owned(), partition))
    }

    /// Every committed partition, by topic.
    pub(crate) fn partitions(&self) -> BTreeMap<String, Vec<i32>> {
        let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in self.committed.keys() {
            out.entry(topic.clone()).or_default().push(*partition);
        }
        out
    }

    /// Whether a transaction holds an offset for this partition that it has not committed yet.
    pub(crate) fn is_pending(&self, topic: &str, partition: i32) -> bool {
        let key = (topic.to_owned(), partition);
        self.pending.values().any(|p| p.contains_key(&key))
    }

    pub(crate) fn stage(
        &mut self,
        producer_id: i64,
        topic: &str,
        partition: i32,
        offset: Committed,
    ) {
        self.pending
            .entry(producer_id)
            .or_default()
            .insert((topic.to_owned(), partition), offset);
    }

    /// Applies (`commit`) or drops what `producer_id` staged.
    pub(crate) fn complete(&mut self, producer_id: i64, commit: bool) {
        let Some(staged) = self.pending.remove(&producer_id) else {
            return;
        };
        if !commit {
            return;
        }
        for (key, offset) in staged {
            let newer = self.committed.get(&key).is_none_or(|c| c.seq < offset.seq);
            if newer {
                self.committed.insert(key, offset);
            }
        }
    }
}

/// One partition of an OffsetFetch answer.
struct Fetched {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    error: i16,
}

impl Fetched {
    fn none(partition: i32, error: i16) -> Fetched {
        Fetched {
            partition,
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            error,
        }
    }
}

/// The partitions of one group's OffsetFetch: the requested ones, or every committed one.
fn fetch_group(
    groups: &Groups,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Vec<(String, Vec<Fetched>)> {
    let group = groups.offsets(group_id);
    let topics = match topics {
        Some(topics) => topics,
        None => group
            .map(|g| g.partitions().into_iter().collect())
            .unwrap_or_default(),
    };
    topics
        .into_iter()
        .map(|(topic, partitions)| {
            let fetched = partitions
                .into_iter()
                .map(|p| {
                    let Some(group) = group else {
                        return Fetched::none(p, 0);
                    };
                    if require_stable && group.is_pending(&topic, p) {
                        return Fetched::none(p, ResponseError::UnstableOffsetCommit.code());
                    }
                    match group.get(&topic, p) {
                        Some(c) => Fetched {
                            partition: p,
                            offset: c.offset,
                            leader_epoch: c.leader_epoch,
                            metadata: c.metadata.clone(),
                            error: 0,
                        },
                        None => Fetched::none(p, 0),
                    }
                })
                .collect();
            (topic, fetched)
        })
        .collect()
}

pub(super) fn offset_fetch(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let version = ctx.version;
    let state = shared.lock();
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let group_id = g.group_id.0.to_string();
                let out = OffsetFetchResponseGroup::default().with_group_id(g.group_id);
                let member = (version >= 9).then(|| {
                    (
                        g.member_id
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default(),
                        g.member_epoch,
                    )
                });
                let checked = check_coordinator(&state, ctx, &group_id, GroupIdRule::AnyString)
                    .and_then(|()| match &member {
                        Some((id, epoch)) => state.groups.check_fetch(&group_id, id, *epoch),
                        None => Ok(()),
                    });
                if let Err(e) = checked {
                    return out.with_error_code(e.code());
                }
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let fetched = fetch_group(&state.groups, &group_id, topics, request.require_stable);
                out.with_topics(
                    fetched
                        .into_iter()
                        .map(|(topic, partitions)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(str_bytes(&topic)))
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|f| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(f.partition)
                                                .with_committed_offset(f.offset)
                                                .with_committed_leader_epoch(f.leader_epoch)
                                                .with_metadata(Some(str_bytes(&f.metadata)))
                                                .with_error_code(f.error)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let group_id = request.group_id.0.to_string();
    let topics: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let require_stable = version >= 7 && request.require_stable;
    let fetched = match check_coordinator(&state, ctx, &group_id, GroupIdRule::AnyString) {
        Ok(()) => fetch_group(&state.groups, &group_id, topics, require_stable),
        Err(e) => {
            let response = OffsetFetchResponse::default();
            if version >= 2 {
                return response.with_error_code(e.code());
            }
            // v1 has no top-level error: every requested partition carries it.
            topics
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| {
                    (
                        t,
                        ps.into_iter().map(|p| Fetched::none(p, e.code())).collect(),
                    )
                })
                .collect()
        }
    };
    OffsetFetchResponse::default().with_topics(
        fetched
            .into_iter()
            .map(|(topic, partitions)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(str_bytes(&topic)))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|f| {
                                let mut p = OffsetFetchResponsePartition::default()
                                    .with_partition_index(f.partition)
                                    .with_committed_offset(f.offset)
                                    .with_metadata(Some(str_bytes(&f.metadata)))
                                    .with_error_code(f.error);
                                if version >= 5 {
                                    p.committed_leader_epoch = f.leader_epoch;
                                }
                                p
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

pub(super) fn offset_commit(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let version = ctx.version;
    let mut state = shared.lock();
    let group_id = request.group_id.0.to_string();
    let instance = request
        .group_instance_id
        .as_ref()
        .filter(|_| version >= 7)
        .map(|i| i.to_string());
    let member_id = request.member_id.to_string();
    let generation = request.generation_id_or_member_epoch;
    // Kafka answers a whole-request error on every partition.
    let group_error = check_coordinator(&state, ctx, &group_id, GroupIdRule::AnyString)
        .err()
        .or_else(|| {
            // Only the topics that exist reach the coordinator; if none do, it is not asked.
            let any_known = request
                .topics
                .iter()
                .any(|t| state.topics.contains_key(t.name.0.as_str()));
            if !any_known {
                return None;
            }
            let now = Instant::now();
            state
                .groups
                .check_commit(
                    &group_id,
                    &member_id,
                    instance.as_deref(),
                    generation,
                    version,
                    now,
                )
                .err()
        });
    let State { topics, groups, .. } = &mut *state;
    let topics_out = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let known = topics.contains_key(&name);
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let code = if !known {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else if let Some(e) = group_error {
                        e.code()
                    } else {
                        let metadata = p
                            .committed_metadata
                            .map(|m| m.to_string())
                            .unwrap_or_default();
                        if metadata.len() > MAX_METADATA_BYTES {
                            ResponseError::OffsetMetadataTooLarge.code()
                        } else {
                            let epoch = if version >= 6 {
                                p.committed_leader_epoch
                            } else {
                                -1
                            };
                            groups.commit(
                                &group_id,
                                &name,
                                p.partition_index,
                                p.committed_offset,
                                epoch,
                                metadata,
                            );
                            0
                        }
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics_out)
}
