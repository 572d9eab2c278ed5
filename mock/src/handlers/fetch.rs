//! Fetch: reading partition logs, with long-polling, isolation levels and the aborted list.

use std::sync::Arc;

use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::Context;
use crate::faults::InjectedError;
use crate::log::Read;
use crate::state::{millis, Shared, State};

/// READ_COMMITTED in Fetch's and ListOffsets' `isolation_level`.
pub(super) const READ_COMMITTED: i8 = 1;

/// Answers a Fetch once `min_bytes` are available, an error is to be reported, or `max_wait`
/// has passed, whichever comes first (Kafka's delayed fetch).
pub(super) async fn fetch(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: FetchRequest,
    injected: Option<&InjectedError>,
) -> FetchResponse {
    if request.session_id != 0 {
        // The mock never creates fetch sessions (it answers session id 0, which tells the
        // client to keep sending full requests), so a client naming one is confused.
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let deadline = Instant::now() + millis(request.max_wait_ms);
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    loop {
        let changed = shared.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let (response, bytes, errors) = read_all(&shared.lock(), ctx, &request, injected);
        if bytes >= min_bytes || errors || Instant::now() >= deadline {
            return response;
        }
        tokio::select! {
            () = &mut changed => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// One pass over the requested partitions: the response, its record bytes, and whether any
/// partition has an error (which answers at once).
fn read_all(
    state: &State,
    ctx: &Context,
    request: &FetchRequest,
    injected: Option<&InjectedError>,
) -> (FetchResponse, usize, bool) {
    let version = ctx.version;
    let read_committed = version >= 4 && request.isolation_level == READ_COMMITTED;
    let mut budget = if version >= 3 {
        usize::try_from(request.max_bytes).unwrap_or(0)
    } else {
        usize::MAX
    };
    let mut total = 0usize;
    let mut errors = false;
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.topic.0.as_str();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let mut out = PartitionData::default().with_partition_index(p.partition);
            let result = if let Some(e) = injected.filter(|e| e.matches(name, p.partition)) {
                Err(e.error())
            } else {
                let max = usize::try_from(p.partition_max_bytes)
                    .unwrap_or(0)
                    .min(budget);
                read_partition(state, ctx, name, p, max, read_committed, total == 0)
            };
            match result {
                Ok((read, hw, lso, log_start)) => {
                    out.high_watermark = hw;
                    if version >= 4 {
                        out.last_stable_offset = lso;
                        if read_committed {
                            out.aborted_transactions = Some(
                                read.aborted
                                    .iter()
                                    .map(|a| {
                                        AbortedTransaction::default()
                                            .with_producer_id(ProducerId(a.producer_id))
                                            .with_first_offset(a.first_offset)
                                    })
                                    .collect(),
                            );
                        }
                    }
                    if version >= 5 {
                        out.log_start_offset = log_start;
                    }
                    total += read.records.len();
                    budget = budget.saturating_sub(read.records.len());
                    out.records = Some(read.records.freeze());
                }
                Err(e) => {
                    errors = true;
                    out.error_code = e.code();
                    out.high_watermark = -1;
                    out.records = Some(bytes::Bytes::new());
                }
            }
            partitions.push(out);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions),
        );
    }
    (
        FetchResponse::default().with_responses(topics),
        total,
        errors,
    )
}

type PartitionRead = Result<(Read, i64, i64, i64), ResponseError>;

fn read_partition(
    state: &State,
    ctx: &Context,
    topic: &str,
    request: &kafka_protocol::messages::fetch_request::FetchPartition,
    max_bytes: usize,
    read_committed: bool,
    min_one: bool,
) -> PartitionRead {
    let partition = state
        .partition(topic, request.partition)
        .ok_or(ResponseError::UnknownTopicOrPartition)?;
    if partition.leader != ctx.broker {
        return Err(ResponseError::NotLeaderOrFollower);
    }
    check_leader_epoch(request.current_leader_epoch, partition.leader_epoch)?;
    let log = &partition.log;
    let read = log
        .read(request.fetch_offset, max_bytes, read_committed, min_one)
        .ok_or(ResponseError::OffsetOutOfRange)?;
    Ok((
        read,
        log.high_watermark(),
        log.last_stable_offset(),
        log.log_start_offset(),
    ))
}

/// KIP-320: a client that names a leader epoch must name the current one.
pub(super) fn check_leader_epoch(requested: i32, current: i32) -> Result<(), ResponseError> {
    if requested == -1 || requested == current {
        Ok(())
    } else if requested < current {
        Err(ResponseError::FencedLeaderEpoch)
    } else {
        Err(ResponseError::UnknownLeaderEpoch)
    }
}
