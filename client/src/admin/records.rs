//! DeleteRecords (KIP-107): move a partition's log start offset forward, asked of its leader.
//!
//! Kafka deletes whole segments lazily, but from the answer on no fetch can read below the
//! new log start offset (the "low watermark"), and ListOffsets EARLIEST returns it.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::leaders::{group_by_leader, partition_context};
use super::retry::{run_rounds, Batch, Rounds};
use super::{millis, Admin, Outcomes};
use crate::error::{Error, KafkaCode, Result};

impl Admin {
    /// Deletes the records before `before_offset` in each (topic, partition, before_offset),
    /// and returns each partition's new low watermark, in the order given.
    ///
    /// `before_offset` -1 means the high watermark: everything now in the partition. An offset
    /// above the high watermark fails with OFFSET_OUT_OF_RANGE. Requests are grouped by leader
    /// like [`Admin::list_offsets`], with the same retries (the operation is idempotent, so a
    /// retry after a lost response is harmless).
    ///
    /// Tansu (tansu-notes gap 7) drops the connection on DeleteRecords: each retry loses its
    /// connection too, and the call ends at `request.timeout.ms` with that connection error
    /// (`Error::Disconnected` or `Error::Io`) for every partition.
    ///
    /// Cancel safety: dropping the future may leave records deleted on any of the partitions.
    pub async fn delete_records<T: AsRef<str>>(
        &self,
        partitions: &[(T, i32, i64)],
    ) -> Outcomes<(String, i32), i64> {
        let items: Vec<(&str, i32, i64)> = partitions
            .iter()
            .map(|(t, p, o)| (t.as_ref(), *p, *o))
            .collect();
        let batch = Batch::new(items.len(), &[]);
        let results = run_rounds(
            self.rounds(self.timeout()),
            batch,
            "DeleteRecords",
            async |pending, rounds, batch| {
                self.delete_records_round(&items, pending, rounds, batch)
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

    async fn delete_records_round(
        &self,
        items: &[(&str, i32, i64)],
        pending: &[usize],
        rounds: &Rounds,
        batch: &mut Batch<i64>,
    ) -> Result<()> {
        let snapshot = self
            .partition_metadata(pending.iter().map(|&i| items[i].0), rounds)
            .await?;
        let placed = pending.iter().map(|&i| (i, items[i].0, items[i].1));
        let grouped = group_by_leader(&snapshot, placed);
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
        let timeout_ms = millis(rounds.remaining());
        let responses = futures::future::join_all(sends.map(|(leader, request)| async move {
            let body = delete_request(items, &request, timeout_ms);
            let response = self.send(leader, |_| Ok(body)).await;
            (request, response)
        }))
        .await;
        for (request, response) in responses {
            match response {
                Ok(response) => settle_deleted(items, &request, &response, batch),
                Err(e) => batch.settle_all(&request, &e),
            }
        }
        Ok(())
    }
}

fn delete_request(
    items: &[(&str, i32, i64)],
    request: &[usize],
    timeout_ms: i32,
) -> DeleteRecordsRequest {
    let mut topics: BTreeMap<&str, Vec<DeleteRecordsPartition>> = BTreeMap::new();
    for &i in request {
        let (topic, partition, offset) = items[i];
        topics.entry(topic).or_default().push(
            DeleteRecordsPartition::default()
                .with_partition_index(partition)
                .with_offset(offset),
        );
    }
    DeleteRecordsRequest::default()
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    DeleteRecordsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_timeout_ms(timeout_ms)
}

fn settle_deleted(
    items: &[(&str, i32, i64)],
    request: &[usize],
    response: &DeleteRecordsResponse,
    batch: &mut Batch<i64>,
) {
    let mut sent: HashMap<(String, i32), usize> = request
        .iter()
        .map(|&i| ((items[i].0.to_owned(), items[i].1), i))
        .collect();
    for topic in &response.topics {
        for p in &topic.partitions {
            let key = (topic.name.0.as_str().to_owned(), p.partition_index);
            let Some(i) = sent.remove(&key) else { continue };
            let code = KafkaCode(p.error_code);
            let result = if code.is_ok() {
                Ok(p.low_watermark)
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
