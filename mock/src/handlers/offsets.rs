//! ListOffsets, OffsetForLeaderEpoch and DeleteRecords: questions about and changes to a
//! partition's offsets.

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use kafka_protocol::ResponseError;

use super::fetch::{check_leader_epoch, READ_COMMITTED};
use super::Context;
use crate::faults::InjectedError;
use crate::state::{Partition, Shared};

/// ListOffsets' special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub(super) fn list_offsets(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: ListOffsetsRequest,
    injected: Option<&InjectedError>,
) -> ListOffsetsResponse {
    let version = ctx.version;
    let read_committed = version >= 2 && request.isolation_level == READ_COMMITTED;
    let state = shared.lock();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let result = match injected.filter(|e| e.matches(&name, p.partition_index)) {
                        Some(e) => Err(e.error()),
                        None => state
                            .partition(&name, p.partition_index)
                            .ok_or(ResponseError::UnknownTopicOrPartition)
                            .and_then(|partition| {
                                lookup(
                                    partition,
                                    ctx,
                                    p.current_leader_epoch,
                                    p.timestamp,
                                    read_committed,
                                )
                            }),
                    };
                    match result {
                        Ok((offset, timestamp, epoch)) => {
                            out.offset = offset;
                            out.timestamp = timestamp;
                            if version >= 4 {
                                out.leader_epoch = epoch;
                            }
                        }
                        Err(e) => out.error_code = e.code(),
                    }
                    out
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp, leader epoch) for one partition; (-1, -1) when no record matches.
fn lookup(
    partition: &Partition,
    ctx: &Context,
    current_leader_epoch: i32,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64, i32), ResponseError> {
    if partition.leader != ctx.broker {
        return Err(ResponseError::NotLeaderOrFollower);
    }
    if ctx.version >= 4 {
        check_leader_epoch(current_leader_epoch, partition.leader_epoch)?;
    }
    let log = &partition.log;
    let end = log.visible_end(read_committed);
    let epoch = partition.leader_epoch;
    let found = match timestamp {
        LATEST => Some((end, -1)),
        EARLIEST => Some((log.log_start_offset(), -1)),
        MAX_TIMESTAMP if ctx.version >= 7 => log.max_timestamp(end),
        t if t < 0 => return Err(ResponseError::InvalidRequest),
        t => log.offset_for_timestamp(t, end),
    };
    Ok(match found {
        Some((offset, timestamp)) => (offset, timestamp, epoch),
        None => (-1, -1, -1),
    })
}

pub(super) fn offset_for_leader_epoch(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let state = shared.lock();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.topic.0.to_string();
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut out = EpochEndOffset::default().with_partition(p.partition);
                    let result = state
                        .partition(&name, p.partition)
                        .ok_or(ResponseError::UnknownTopicOrPartition)
                        .and_then(|partition| {
                            if partition.leader != ctx.broker {
                                return Err(ResponseError::NotLeaderOrFollower);
                            }
                            check_leader_epoch(p.current_leader_epoch, partition.leader_epoch)?;
                            Ok(partition.end_offset_for_epoch(p.leader_epoch))
                        });
                    match result {
                        Ok((epoch, offset)) => {
                            out.leader_epoch = epoch;
                            out.end_offset = offset;
                        }
                        Err(e) => out.error_code = e.code(),
                    }
                    out
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

pub(super) fn delete_records(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut state = shared.lock();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut out = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    let result = match state.partition_mut(&name, p.partition_index) {
                        None => Err(ResponseError::UnknownTopicOrPartition),
                        Some(partition) if partition.leader != ctx.broker => {
                            Err(ResponseError::NotLeaderOrFollower)
                        }
                        Some(partition) => partition
                            .log
                            .delete_before(p.offset)
                            .ok_or(ResponseError::OffsetOutOfRange),
                    };
                    match result {
                        Ok(low) => out.low_watermark = low,
                        Err(e) => {
                            out.low_watermark = -1;
                            out.error_code = e.code();
                        }
                    }
                    out
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    drop(state);
    shared.notify();
    DeleteRecordsResponse::default().with_topics(topics)
}
