//! Where to start reading: [`Offset`], and the ListOffsets lookups that turn "earliest",
//! "latest" and "at this time" into offsets.
//!
//! Lookups go to the partition's leader, at the consumer's isolation level: under
//! `read_committed` "latest" is the last stable offset, so a consumer that starts at the end
//! does not wait behind records that may yet be aborted (KIP-98).
//!
//! References: the protocol guide's ListOffsets; KIP-79 (lookup by timestamp).

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::state::Tp;
use crate::cluster::Cluster;
use crate::config::IsolationLevel;
use crate::error::{Error, KafkaCode, Result};

/// A place in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Offset {
    /// The first offset still in the log.
    Beginning,
    /// The end of the log: the next record produced (under `read_committed`, the last stable
    /// offset).
    End,
    /// This offset. Past the end, the `auto.offset.reset` policy decides once the broker says
    /// it is out of range.
    Exact(i64),
    /// The first record whose timestamp is at or after this one (milliseconds since the
    /// epoch); the end of the log if there is none.
    Timestamp(i64),
}

impl Offset {
    /// The `timestamp` field of a ListOffsets request for this offset, or `None` for an exact
    /// offset, which needs no lookup.
    pub(crate) fn lookup_timestamp(self) -> Option<i64> {
        match self {
            Offset::Beginning => Some(-2),
            Offset::End => Some(-1),
            Offset::Timestamp(t) => Some(t),
            Offset::Exact(_) => None,
        }
    }
}

/// A partition to look up: its key, the assignment epoch, what to look for and the leader
/// epoch known from metadata.
#[derive(Debug, Clone)]
pub(crate) struct Lookup {
    pub(crate) tp: Tp,
    pub(crate) epoch: u64,
    pub(crate) offset: Offset,
    pub(crate) leader_epoch: i32,
}

/// The answer for one partition.
#[derive(Debug)]
pub(crate) enum Found {
    /// The offset to start at.
    At(i64),
    /// A timestamp lookup found no record at or after it: start at the end instead.
    NoneAfterTimestamp,
    /// The broker's error for this partition.
    Failed(Error),
}

/// Looks up `lookups` on broker `leader` in one request. A transport or request-level error
/// fails the whole call; partition-level errors come back per partition.
pub(crate) async fn list_offsets(
    cluster: &Cluster,
    leader: i32,
    isolation: IsolationLevel,
    lookups: &[Lookup],
) -> Result<Vec<(Lookup, Found)>> {
    let mut topics: Vec<ListOffsetsTopic> = Vec::new();
    for lookup in lookups {
        let partition = ListOffsetsPartition::default()
            .with_partition_index(lookup.tp.1)
            .with_current_leader_epoch(lookup.leader_epoch)
            .with_timestamp(lookup.offset.lookup_timestamp().unwrap_or(-1));
        match topics
            .iter_mut()
            .find(|t| t.name.0.as_str() == &*lookup.tp.0)
        {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(lookup.tp.0.to_string())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let timeout_ms =
        i32::try_from(cluster.options().request_timeout.as_millis()).unwrap_or(i32::MAX);
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation.wire())
        .with_topics(topics)
        .with_timeout_ms(timeout_ms);
    let response = cluster.send_to(leader, &request).await?;
    let mut out = Vec::with_capacity(lookups.len());
    for lookup in lookups {
        let answer = response
            .topics
            .iter()
            .filter(|t| t.name.0.as_str() == &*lookup.tp.0)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == lookup.tp.1);
        let found = match answer {
            None => Found::Failed(Error::kafka(
                KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!(
                    "ListOffsets answer from broker {leader} leaves out {}-{}",
                    lookup.tp.0, lookup.tp.1
                ),
            )),
            Some(p) if p.error_code != 0 => Found::Failed(Error::kafka(
                KafkaCode(p.error_code),
                format!("ListOffsets {}-{}", lookup.tp.0, lookup.tp.1),
            )),
            Some(p) if p.offset < 0 => match lookup.offset {
                Offset::Timestamp(_) => Found::NoneAfterTimestamp,
                _ => Found::Failed(Error::kafka(
                    KafkaCode::UNKNOWN_SERVER_ERROR,
                    format!(
                        "ListOffsets {}-{} answered offset {}",
                        lookup.tp.0, lookup.tp.1, p.offset
                    ),
                )),
            },
            // A record found by time has a timestamp at or after the one asked for; Kafka says
            // "none" with offset -1 (above), Tansu with timestamp -1 and offset 0.
            Some(p) if p.timestamp < 0 && matches!(lookup.offset, Offset::Timestamp(_)) => {
                Found::NoneAfterTimestamp
            }
            Some(p) => Found::At(p.offset),
        };
        out.push((lookup.clone(), found));
    }
    Ok(out)
}

/// Topic names of `tps`, each once.
pub(crate) fn topics_of<'a>(tps: impl IntoIterator<Item = &'a Tp>) -> Vec<Arc<str>> {
    let mut topics: Vec<Arc<str>> = Vec::new();
    for (topic, _) in tps {
        if !topics.iter().any(|t| t == topic) {
            topics.push(Arc::clone(topic));
        }
    }
    topics
}
