//! Produce: validating record batches and appending them to partition logs.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;
use sluice_protocol::record::{RecordBatch, RecordBatches};
use sluice_protocol::{Compression, Error as ProtocolError};

use super::Context;
use crate::faults::InjectedError;
use crate::state::{Shared, State};

/// Appends what a Produce request carries. `None` for acks=0: the broker does not answer.
pub(super) fn produce(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: ProduceRequest,
    injected: Option<&InjectedError>,
) -> Option<ProduceResponse> {
    let acks_ok = matches!(request.acks, -1..=1);
    let transactional_id = request.transactional_id.as_ref().map(|t| t.0.to_string());
    let mut state = shared.lock();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = topic.name.0.to_string();
        let partitions = topic
            .partition_data
            .into_iter()
            .map(|p| {
                let result = if !acks_ok {
                    Err(ResponseError::InvalidRequiredAcks)
                } else if let Some(e) = injected.filter(|e| e.matches(&name, p.index)) {
                    Err(e.error())
                } else {
                    append(
                        &mut state,
                        shared,
                        ctx,
                        &name,
                        p.index,
                        transactional_id.as_deref(),
                        p.records,
                    )
                };
                partition_response(ctx.version, p.index, result)
            })
            .collect();
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    drop(state);
    shared.notify();
    (request.acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

/// (base offset, log start offset) of the appended batch.
type Appended = Result<(i64, i64), ResponseError>;

fn append(
    state: &mut State,
    shared: &Shared,
    ctx: &Context,
    topic: &str,
    partition: i32,
    transactional_id: Option<&str>,
    records: Option<Bytes>,
) -> Appended {
    let Some(p) = state.partition(topic, partition) else {
        return Err(ResponseError::UnknownTopicOrPartition);
    };
    if p.leader != ctx.broker {
        return Err(ResponseError::NotLeaderOrFollower);
    }
    let batch = validate(ctx.version, records, shared.config.max_message_bytes)?;
    if batch.is_transactional() {
        crate::txn::verify_produce(
            state,
            ctx.version,
            transactional_id,
            &batch,
            topic,
            partition,
        )?;
    }
    let Some(p) = state.partition_mut(topic, partition) else {
        return Err(ResponseError::UnknownTopicOrPartition);
    };
    let epoch = p.leader_epoch;
    let appended = p.log.append(&batch, epoch)?;
    Ok((appended.base_offset, appended.log_start_offset))
}

/// The one magic-2 batch a Produce v3+ partition must carry, checked as Kafka's leader checks
/// it (`ProduceRequest.validateRecords`, `LogValidator`).
fn validate(
    version: i16,
    records: Option<Bytes>,
    max_bytes: usize,
) -> Result<RecordBatch, ResponseError> {
    let records = records.ok_or(ResponseError::CorruptMessage)?;
    if records.len() > max_bytes {
        return Err(ResponseError::MessageTooLarge);
    }
    let mut batches = RecordBatches::new(records);
    let batch = match batches.next() {
        Some(Ok(batch)) => batch,
        Some(Err(ProtocolError::UnsupportedMagic { .. })) => {
            return Err(ResponseError::InvalidRecord)
        }
        Some(Err(_)) | None => return Err(ResponseError::CorruptMessage),
    };
    if batches.next().is_some() {
        // "Produce requests with version 3+ are only allowed to contain exactly one batch".
        return Err(ResponseError::InvalidRecord);
    }
    if batch.verify_crc().is_err() {
        return Err(ResponseError::CorruptMessage);
    }
    if batch.is_control() {
        // Only the transaction coordinator writes control batches.
        return Err(ResponseError::InvalidRecord);
    }
    if batch.compression() == Compression::Zstd && version < 7 {
        return Err(ResponseError::UnsupportedCompressionType);
    }
    let records = batch.records().map_err(|_| ResponseError::CorruptMessage)?;
    let mut count = 0i32;
    for record in records.iter() {
        record.map_err(|_| ResponseError::CorruptMessage)?;
        count += 1;
    }
    if count != batch.records_count() || count == 0 {
        return Err(ResponseError::CorruptMessage);
    }
    Ok(batch)
}

fn partition_response(version: i16, index: i32, result: Appended) -> PartitionProduceResponse {
    let mut out = PartitionProduceResponse::default().with_index(index);
    match result {
        Ok((base_offset, log_start_offset)) => {
            out.base_offset = base_offset;
            if version >= 5 {
                out.log_start_offset = log_start_offset;
            }
        }
        Err(e) => {
            out.error_code = e.code();
            out.base_offset = -1;
            if version >= 5 {
                out.log_start_offset = -1;
            }
        }
    }
    if version >= 2 {
        out.log_append_time_ms = -1;
    }
    out
}
