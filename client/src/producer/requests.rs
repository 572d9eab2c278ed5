//! The wire side of the sender: building ProduceRequests, reading their answers per
//! partition, InitProducerId, and how an error counts for the sequence state machine.
//!
//! Kept apart from the task loop so each rule is a small pure function with its own test.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    InitProducerIdRequest, ProduceRequest, ProduceResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::batch::{Ack, ProducerBatch, TopicPartition};
use super::idempotence::{IdentityRequest, Outcome, ProducerIdentity};
use crate::cluster::Cluster;
use crate::error::{Error, KafkaCode, Result};

/// Produce v13 names topics by id (KIP-516); sluice sends names, which every version up to 12
/// takes and every Kafka 4 broker still accepts.
pub(crate) const MAX_PRODUCE_VERSION: i16 = 12;
/// Bytes of a ProduceRequest besides its batches (header, acks, timeout, array lengths),
/// generously rounded up.
pub(crate) const REQUEST_OVERHEAD: usize = 256;
/// Bytes per partition of a ProduceRequest besides its batch and topic name.
pub(crate) const PER_PARTITION_OVERHEAD: usize = 32;

/// A ProduceRequest carrying `items`, at most one batch per partition.
pub(crate) fn produce_request(
    items: &[(ProducerBatch, Bytes)],
    acks: i16,
    timeout: Duration,
    transactional_id: Option<&str>,
) -> ProduceRequest {
    let mut topics: Vec<TopicProduceData> = Vec::new();
    for (batch, bytes) in items {
        let data = PartitionProduceData::default()
            .with_index(batch.tp.partition)
            .with_records(Some(bytes.clone()));
        match topics
            .iter_mut()
            .find(|t| t.name.0.as_str() == &*batch.tp.topic)
        {
            Some(topic) => topic.partition_data.push(data),
            None => topics.push(
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(batch.tp.topic.to_string())))
                    .with_partition_data(vec![data]),
            ),
        }
    }
    ProduceRequest::default()
        .with_transactional_id(transactional_id.map(|t| {
            kafka_protocol::messages::TransactionalId(StrBytes::from_string(t.to_owned()))
        }))
        .with_acks(acks)
        .with_timeout_ms(i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX))
        .with_topic_data(topics)
}

/// InitProducerId without a transactional id, to any broker. A bump sends the current id
/// and epoch (KIP-360, v3+); Kafka answers a non-transactional one with a fresh id, which
/// restarts sequences just as well.
pub(crate) async fn init_producer_id(
    cluster: &Cluster,
    request: IdentityRequest,
    timeout: Duration,
) -> Result<ProducerIdentity> {
    let mut brokers: Vec<i32> = cluster.snapshot().brokers.keys().copied().collect();
    brokers.sort_unstable();
    let mut last = None;
    for broker in brokers {
        let conn = match cluster.connection(broker).await {
            Ok(conn) => conn,
            Err(error) => {
                last = Some(error);
                continue;
            }
        };
        let version = conn.version_of::<InitProducerIdRequest>()?;
        let mut body = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(i32::MAX);
        if let IdentityRequest::Bump(current) = request {
            if version < 3 {
                return Err(Error::kafka(
                    KafkaCode::UNSUPPORTED_VERSION,
                    "InitProducerId below v3 cannot bump an epoch",
                ));
            }
            body = body
                .with_producer_id(ProducerId(current.id))
                .with_producer_epoch(current.epoch);
        }
        let response = conn.send_at(&body, version, timeout).await?;
        let code = KafkaCode(response.error_code);
        if !code.is_ok() {
            return Err(Error::kafka(code, "InitProducerId"));
        }
        return Ok(ProducerIdentity {
            id: response.producer_id.0,
            epoch: response.producer_epoch,
        });
    }
    Err(last.unwrap_or_else(|| {
        Error::kafka(
            KafkaCode::BROKER_NOT_AVAILABLE,
            "no broker known for InitProducerId",
        )
    }))
}

/// The answer for `tp` in `response`.
pub(crate) fn partition_result(response: &ProduceResponse, tp: &TopicPartition) -> Result<Ack> {
    let found = response
        .responses
        .iter()
        .filter(|t| t.name.0.as_str() == &*tp.topic)
        .flat_map(|t| &t.partition_responses)
        .find(|p| p.index == tp.partition);
    let Some(p) = found else {
        return Err(Error::kafka(
            KafkaCode::UNKNOWN_SERVER_ERROR,
            format!("{tp}: missing from the produce response"),
        ));
    };
    let code = KafkaCode(p.error_code);
    // DUPLICATE_SEQUENCE_NUMBER: an earlier attempt was written. Kafka answers such a retry
    // with success and the original offset; Tansu with this code and offset -1.
    if code.is_ok() || code == KafkaCode::DUPLICATE_SEQUENCE_NUMBER {
        return Ok(Ack {
            base_offset: p.base_offset,
            log_append_time: p.log_append_time_ms,
        });
    }
    let context = match &p.error_message {
        Some(message) => format!("{tp}: {}", message.as_str()),
        None => tp.to_string(),
    };
    Err(Error::kafka(code, context))
}

/// How the sequencer sees an error.
pub(crate) fn classify(error: &Error) -> Outcome {
    match error.code() {
        Some(KafkaCode::OUT_OF_ORDER_SEQUENCE_NUMBER) => Outcome::OutOfOrder,
        Some(KafkaCode::UNKNOWN_PRODUCER_ID | KafkaCode::INVALID_PRODUCER_EPOCH) => {
            Outcome::UnknownProducer
        }
        _ if error.is_retriable() => Outcome::Retriable,
        _ => Outcome::Rejected,
    }
}

/// Whether the batch may have been written although the attempt failed.
pub(crate) fn is_indefinite(error: &Error) -> bool {
    // REQUEST_TIMED_OUT: the leader wrote it and timed out waiting for replicas;
    // NOT_ENOUGH_REPLICAS_AFTER_APPEND says so outright.
    error.is_indefinite()
        || matches!(
            error.code(),
            Some(
                KafkaCode::REQUEST_TIMED_OUT
                    | KafkaCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
                    | KafkaCode::NETWORK_EXCEPTION
            )
        )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn errors_are_classified_for_the_sequencer() {
        let kafka = |code| Error::kafka(code, "t-0");
        assert_eq!(
            classify(&kafka(KafkaCode::NOT_LEADER_OR_FOLLOWER)),
            Outcome::Retriable
        );
        assert_eq!(
            classify(&kafka(KafkaCode::OUT_OF_ORDER_SEQUENCE_NUMBER)),
            Outcome::OutOfOrder
        );
        assert_eq!(
            classify(&kafka(KafkaCode::UNKNOWN_PRODUCER_ID)),
            Outcome::UnknownProducer
        );
        assert_eq!(
            classify(&kafka(KafkaCode::INVALID_PRODUCER_EPOCH)),
            Outcome::UnknownProducer
        );
        assert_eq!(
            classify(&kafka(KafkaCode::MESSAGE_TOO_LARGE)),
            Outcome::Rejected
        );
        let lost = Error::Disconnected {
            broker: "b".into(),
            reason: "gone".into(),
        };
        assert_eq!(classify(&lost), Outcome::Retriable);
        assert!(is_indefinite(&lost));
        assert!(is_indefinite(&kafka(KafkaCode::REQUEST_TIMED_OUT)));
        assert!(!is_indefinite(&kafka(KafkaCode::NOT_LEADER_OR_FOLLOWER)));
    }

    #[test]
    fn duplicate_sequence_is_success_with_whatever_offset_came_back() {
        use kafka_protocol::messages::produce_response::{
            PartitionProduceResponse, TopicProduceResponse,
        };
        let tp = TopicPartition {
            topic: Arc::from("t"),
            partition: 1,
        };
        let answer = |code: KafkaCode, offset| {
            ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_responses(vec![PartitionProduceResponse::default()
                    .with_index(1)
                    .with_error_code(code.0)
                    .with_base_offset(offset)])])
        };
        assert_eq!(
            partition_result(&answer(KafkaCode::NONE, 10), &tp)
                .unwrap()
                .base_offset,
            10
        );
        // Kafka: the original offset; Tansu: -1 (tansu-notes gap 5).
        assert_eq!(
            partition_result(&answer(KafkaCode::DUPLICATE_SEQUENCE_NUMBER, 10), &tp)
                .unwrap()
                .base_offset,
            10
        );
        assert_eq!(
            partition_result(&answer(KafkaCode::DUPLICATE_SEQUENCE_NUMBER, -1), &tp)
                .unwrap()
                .base_offset,
            -1
        );
        let err =
            partition_result(&answer(KafkaCode::NOT_LEADER_OR_FOLLOWER, -1), &tp).unwrap_err();
        assert_eq!(err.code(), Some(KafkaCode::NOT_LEADER_OR_FOLLOWER));
        let other = TopicPartition {
            topic: Arc::from("t"),
            partition: 2,
        };
        assert!(partition_result(&answer(KafkaCode::NONE, 0), &other).is_err());
    }

    #[test]
    fn a_request_groups_partitions_by_topic() {
        use crate::producer::batch::Incomplete;
        use crate::producer::pool::BufferPool;
        use sluice_protocol::record::{BatchBuilder, BatchHeader};
        use tokio::time::Instant;
        let incomplete = Arc::new(Incomplete::default());
        let pool = Arc::new(BufferPool::new(0, 0));
        let batch = |topic: &str, partition, id| {
            let tp = TopicPartition {
                topic: Arc::from(topic),
                partition,
            };
            let b = ProducerBatch::new(
                tp,
                BatchBuilder::new(BatchHeader::default()),
                Instant::now(),
                Duration::from_secs(1),
                &incomplete,
                id,
                &pool,
            );
            (b, Bytes::from_static(b"batch"))
        };
        let items = [batch("a", 0, 0), batch("b", 0, 1), batch("a", 2, 2)];
        let request = produce_request(&items, -1, Duration::from_secs(30), None);
        assert_eq!((request.acks, request.timeout_ms), (-1, 30_000));
        let layout: Vec<(&str, Vec<i32>)> = request
            .topic_data
            .iter()
            .map(|t| {
                (
                    t.name.0.as_str(),
                    t.partition_data.iter().map(|p| p.index).collect(),
                )
            })
            .collect();
        assert_eq!(layout, [("a", vec![0, 2]), ("b", vec![0])]);
    }
}
