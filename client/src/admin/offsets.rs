//! ListOffsets: a partition's offset at its start, its end, or a point in time, asked of the
//! partition's leader.
//!
//! References: the protocol guide's ListOffsets; KIP-79 (timestamp lookup), KIP-98 (isolation
//! level, v2), KIP-320 (leader epoch, v4), KIP-734 (MAX_TIMESTAMP, v7).

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, ListOffsetsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::leaders::{group_by_leader, partition_context};
use super::retry::{run_rounds, Batch, Rounds};
use super::{Admin, Outcomes};
use crate::config::IsolationLevel;
use crate::error::{Error, KafkaCode, Result};

/// Which offset of a partition to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OffsetSpec {
    /// The log start offset: the first offset still stored.
    Earliest,
    /// The log end: the high watermark under read_uncommitted, the last stable offset under
    /// read_committed. The offset the next record will get (or, under read_committed, the
    /// first not yet decided).
    Latest,
    /// The first offset whose record timestamp is at or after this many milliseconds since the
    /// Unix epoch.
    Timestamp(i64),
    /// The offset of the record with the largest timestamp (KIP-734, Kafka 3.0+).
    MaxTimestamp,
}

impl OffsetSpec {
    /// The `timestamp` field of the request: the lookup's timestamp or a sentinel.
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Latest => -1,
            OffsetSpec::Earliest => -2,
            OffsetSpec::MaxTimestamp => -3,
            OffsetSpec::Timestamp(t) => t,
        }
    }

    /// The lowest ListOffsets version that knows the sentinel.
    fn min_version(self) -> i16 {
        match self {
            OffsetSpec::MaxTimestamp => 7,
            _ => 1,
        }
    }
}

/// What [`Admin::list_offsets`] found for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset; -1 when a timestamp lookup finds no record at or after the timestamp.
    pub offset: i64,
    /// The timestamp of the record at `offset`, for timestamp and MAX_TIMESTAMP lookups;
    /// Kafka gives none for EARLIEST and LATEST.
    pub timestamp: Option<i64>,
    /// The leader epoch of the record at `offset` (KIP-320), if the broker reports it.
    pub leader_epoch: Option<i32>,
}

/// The items of one request by (topic, partition), to match the response's entries.
type Sent = HashMap<(String, i32), usize>;

impl Admin {
    /// Looks up offsets, one result per (topic, partition, spec) in the order given.
    ///
    /// Requests are grouped by each partition's leader (a partition asked for twice goes in
    /// two requests, since Kafka refuses a partition repeated in one). `isolation` decides
    /// what LATEST means (high watermark or last stable offset). A topic or partition that
    /// the metadata says does not exist fails at once with UNKNOWN_TOPIC_OR_PARTITION;
    /// NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, a lost connection and the like are
    /// retried after a metadata refresh until `request.timeout.ms`. MAX_TIMESTAMP against a
    /// broker before Kafka 3.0 fails with [`Error::BrokerTooOld`] for that partition.
    ///
    /// Tansu (tansu-notes gap 3) answers LATEST with the last *batch's* base offset + 1,
    /// which is the log end only when that batch holds one record, and drops the connection
    /// on MAX_TIMESTAMP (which then ends as a connection error at the deadline).
    ///
    /// Cancel safety: cancel safe; it only reads.
    pub async fn list_offsets<T: AsRef<str>>(
        &self,
        partitions: &[(T, i32, OffsetSpec)],
        isolation: IsolationLevel,
    ) -> Outcomes<(String, i32), ListedOffset> {
        let items: Vec<(&str, i32, OffsetSpec)> = partitions
            .iter()
            .map(|(t, p, s)| (t.as_ref(), *p, *s))
            .collect();
        let batch = Batch::new(items.len(), &[]);
        let results = run_rounds(
            self.rounds(self.timeout()),
            batch,
            "ListOffsets",
            async |pending, rounds, batch| {
                self.list_round(&items, pending, isolation, rounds, batch)
                    .await
            },
        )
        .await;
        Outcomes {
            entries: items
                .iter()
                .map(|&(t, p, _)| (t.to_owned(), p))
                .zip(results)
                .collect(),
        }
    }

    async fn list_round(
        &self,
        items: &[(&str, i32, OffsetSpec)],
        pending: &[usize],
        isolation: IsolationLevel,
        rounds: &Rounds,
        batch: &mut Batch<ListedOffset>,
    ) -> Result<()> {
        let snapshot = self
            .partition_metadata(pending.iter().map(|&i| items[i].0), rounds)
            .await?;
        let grouped = group_by_leader(
            &snapshot,
            pending.iter().map(|&i| (i, items[i].0, items[i].1)),
        );
        for (i, error, retry) in grouped.unplaced {
            if retry {
                batch.retry(i, error);
            } else {
                batch.finish(i, Err(error));
            }
        }
        let sends = grouped.requests.into_iter().flat_map(|(leader, requests)| {
            requests.into_iter().map(move |request| (leader, request))
        });
        let responses = futures::future::join_all(sends.map(|(leader, request)| async move {
            let mut too_new = Vec::new();
            let response = self
                .send(leader, |version| {
                    let (body, skipped) = list_request(items, &request, isolation, version)?;
                    too_new = skipped;
                    Ok(body)
                })
                .await;
            (leader, request, too_new, response)
        }))
        .await;
        for (leader, request, too_new, response) in responses {
            for &i in &too_new {
                let (topic, partition, spec) = items[i];
                batch.finish(
                    i,
                    Err(Error::BrokerTooOld {
                        broker: format!("broker {leader}"),
                        reason: format!(
                            "{spec:?} needs ListOffsets v{} ({})",
                            spec.min_version(),
                            partition_context(topic, partition)
                        ),
                    }),
                );
            }
            let sent: Vec<usize> = request
                .into_iter()
                .filter(|i| !too_new.contains(i))
                .collect();
            match response {
                Ok(response) => settle_listed(items, &sent, &response, batch),
                Err(e) => batch.settle_all(&sent, &e),
            }
        }
        Ok(())
    }
}

/// The ListOffsets request for the items `request` at `version`, and the items left out
/// because `version` cannot express their spec.
fn list_request(
    items: &[(&str, i32, OffsetSpec)],
    request: &[usize],
    isolation: IsolationLevel,
    version: i16,
) -> Result<(ListOffsetsRequest, Vec<usize>)> {
    if version < 2 && isolation == IsolationLevel::ReadCommitted {
        return Err(Error::BrokerTooOld {
            broker: String::new(),
            reason: format!("ListOffsets v{version} has no read_committed (needs v2)"),
        });
    }
    let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
    let mut too_new = Vec::new();
    for &i in request {
        let (topic, partition, spec) = items[i];
        if spec.min_version() > version {
            too_new.push(i);
            continue;
        }
        topics.entry(topic).or_default().push(
            ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(spec.wire()),
        );
    }
    let topics = topics
        .into_iter()
        .map(|(name, partitions)| {
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                .with_partitions(partitions)
        })
        .collect();
    // replica_id -1: a client, not a follower (the generated default is 0, a broker id).
    let body = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(if version >= 2 { isolation.wire() } else { 0 })
        .with_topics(topics);
    Ok((body, too_new))
}

/// Settles the items of one request from its response.
fn settle_listed(
    items: &[(&str, i32, OffsetSpec)],
    request: &[usize],
    response: &ListOffsetsResponse,
    batch: &mut Batch<ListedOffset>,
) {
    let mut sent: Sent = request
        .iter()
        .map(|&i| ((items[i].0.to_owned(), items[i].1), i))
        .collect();
    for topic in &response.topics {
        for p in &topic.partitions {
            let key = (topic.name.0.as_str().to_owned(), p.partition_index);
            let Some(i) = sent.remove(&key) else { continue };
            let code = KafkaCode(p.error_code);
            let result = if code.is_ok() {
                Ok(ListedOffset {
                    offset: p.offset,
                    timestamp: Some(p.timestamp).filter(|t| *t >= 0),
                    leader_epoch: Some(p.leader_epoch).filter(|e| *e >= 0),
                })
            } else {
                Err(Error::kafka(code, partition_context(&key.0, key.1)))
            };
            batch.settle(i, result);
        }
    }
    for ((topic, partition), i) in sent {
        let context = format!(
            "{}: missing from the response",
            partition_context(&topic, partition)
        );
        batch.finish(
            i,
            Err(Error::kafka(KafkaCode::UNKNOWN_SERVER_ERROR, context)),
        );
    }
}
