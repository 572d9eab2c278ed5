//! The transaction APIs on the wire: each handler checks what Kafka's `KafkaApis` checks
//! before the coordinator (request shape, unknown topics, whether this broker coordinates
//! the key), runs the coordinator's transition under the cluster lock, writes any markers it
//! asks for, and answers with the error codes the request's version understands.

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{self, TopicData};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    list_transactions_response, AddOffsetsToTxnRequest, AddOffsetsToTxnResponse,
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse, InitProducerIdRequest,
    InitProducerIdResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
    TopicName, TransactionalId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::ResponseError;

use super::coordinator::{Init, Markers, Members};
use crate::groups::TxnOffset;
use crate::handlers::{str_bytes, Context};
use crate::state::{now_ms, CoordinatorKind, Shared, State};

/// The coordinator epoch written into markers. The mock's coordinators never reload their
/// state, so there is one epoch.
const COORDINATOR_EPOCH: i32 = 0;

/// The longest offset metadata a commit may carry (`offset.metadata.max.bytes`).
const MAX_OFFSET_METADATA: usize = 4096;

/// The answer for an error of `code` from InitProducerId.
pub(super) fn init_error(code: i16) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(code)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

pub(super) fn init_producer_id(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: &InitProducerIdRequest,
) -> InitProducerIdResponse {
    // v3+ names the producer's current id and epoch when it asks for a bump (KIP-360);
    // naming only one of them is malformed.
    let expected = match (request.producer_id.0, request.producer_epoch) {
        _ if ctx.version < 3 => None,
        (-1, -1) => None,
        (-1, _) | (_, -1) => return init_error(ResponseError::InvalidRequest.code()),
        (id, epoch) => Some((id, epoch)),
    };
    let Some(transactional_id) = &request.transactional_id else {
        // An idempotent producer: any broker hands out a fresh id.
        let id = shared.lock().allocate_producer_id();
        return InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0);
    };
    let transactional_id: &str = transactional_id;
    if transactional_id.is_empty() {
        return init_error(ResponseError::InvalidRequest.code());
    }
    let max_timeout =
        i64::try_from(shared.config.transaction_max_timeout.as_millis()).unwrap_or(i64::MAX);
    if request.transaction_timeout_ms <= 0
        || i64::from(request.transaction_timeout_ms) > max_timeout
    {
        return init_error(ResponseError::InvalidTransactionTimeout.code());
    }
    let mut guard = shared.lock();
    if let Err(e) = check_coordinator(&guard, ctx, transactional_id) {
        return init_error(e.code());
    }
    let state = &mut *guard;
    let mut allocate = || {
        let id = state.next_producer_id;
        state.next_producer_id += 1;
        id
    };
    let result = state.txns.init_producer_id(
        transactional_id,
        request.transaction_timeout_ms,
        expected,
        &mut allocate,
    );
    match result {
        Ok(Init::Ready { producer_id, epoch }) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Ok(Init::Fencing(markers)) => {
            write_markers(state, markers);
            drop(guard);
            shared.notify();
            init_error(ResponseError::ConcurrentTransactions.code())
        }
        Err(e) => init_error(fenced_before(ctx.version, 4, e).code()),
    }
}

pub(super) fn add_partitions_to_txn(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: &AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let mut state = shared.lock();
    let unknown = |topic: &str, p: i32| state.partition(topic, p).is_none();
    let any_unknown = request
        .v3_and_below_topics
        .iter()
        .any(|t| t.partitions.iter().any(|&p| unknown(&t.name, p)));
    if any_unknown {
        // Nothing is added; the known partitions are told so (`KafkaApis`).
        return add_partitions_response(request, |topic, p| {
            if unknown(topic, p) {
                ResponseError::UnknownTopicOrPartition.code()
            } else {
                ResponseError::OperationNotAttempted.code()
            }
        });
    }
    let transactional_id: &str = &request.v3_and_below_transactional_id;
    let members = Members {
        partitions: request
            .v3_and_below_topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|&p| (t.name.to_string(), p)))
            .collect(),
        ..Members::default()
    };
    let outcome = check_request(&state, ctx, transactional_id).and_then(|()| {
        state.txns.add(
            transactional_id,
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
            members,
            now_ms(),
        )
    });
    drop(state);
    let code = match outcome {
        Ok(()) => 0,
        Err(e) => fenced_before(ctx.version, 2, e).code(),
    };
    add_partitions_response(request, |_, _| code)
}

/// An AddPartitionsToTxn v0-3 answer with `code(topic, partition)` for every partition.
pub(super) fn add_partitions_response(
    request: &AddPartitionsToTxnRequest,
    code: impl Fn(&str, i32) -> i16,
) -> AddPartitionsToTxnResponse {
    let topics = request
        .v3_and_below_topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|&p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(code(&t.name, p))
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics)
}

pub(super) fn add_offsets_to_txn(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: &AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let transactional_id: &str = &request.transactional_id;
    let mut state = shared.lock();
    let members = Members {
        groups: [request.group_id.to_string()].into(),
        ..Members::default()
    };
    let outcome = check_request(&state, ctx, transactional_id).and_then(|()| {
        state.txns.add(
            transactional_id,
            request.producer_id.0,
            request.producer_epoch,
            members,
            now_ms(),
        )
    });
    drop(state);
    AddOffsetsToTxnResponse::default().with_error_code(match outcome {
        Ok(()) => 0,
        Err(e) => fenced_before(ctx.version, 2, e).code(),
    })
}

pub(super) fn end_txn(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: &EndTxnRequest,
) -> EndTxnResponse {
    let transactional_id: &str = &request.transactional_id;
    let mut guard = shared.lock();
    let state = &mut *guard;
    let outcome = check_request(state, ctx, transactional_id).and_then(|()| {
        let mut allocate = || {
            let id = state.next_producer_id;
            state.next_producer_id += 1;
            id
        };
        state.txns.end(
            transactional_id,
            request.producer_id.0,
            request.producer_epoch,
            request.committed,
            // v5 is transactions v2 (served only when the cluster has it).
            ctx.version >= 5,
            &mut allocate,
        )
    });
    match outcome {
        Ok(ended) => {
            if let Some(markers) = ended.markers {
                // Markers are written before the answer (Kafka answers once PrepareCommit
                // is durable and writes them after): a client that sees NONE can read its
                // transaction at once, and the coordinator is never seen in Prepare*.
                write_markers(state, markers);
                drop(guard);
                shared.notify();
            }
            EndTxnResponse::default()
                .with_producer_id(ProducerId(ended.producer_id))
                .with_producer_epoch(ended.epoch)
        }
        Err(e) => EndTxnResponse::default()
            .with_error_code(fenced_before(ctx.version, 2, e).code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

pub(super) fn txn_offset_commit(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: &TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let group: &str = &request.group_id;
    let mut state = shared.lock();
    let whole = check_txn_offset_commit(&mut state, ctx, request);
    let mut staged = Vec::new();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if state.partition(&t.name, p.partition_index).is_none() {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else if let Err(e) = &whole {
                        e.code()
                    } else if p
                        .committed_metadata
                        .as_ref()
                        .is_some_and(|m| m.len() > MAX_OFFSET_METADATA)
                    {
                        ResponseError::OffsetMetadataTooLarge.code()
                    } else {
                        staged.push(TxnOffset {
                            topic: t.name.to_string(),
                            partition: p.partition_index,
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        });
                        0
                    };
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    if !staged.is_empty() {
        state
            .groups
            .stage_txn_offsets(group, request.producer_id.0, staged);
    }
    drop(state);
    shared.notify();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// TxnOffsetCommit's errors for the whole request, in the order Kafka finds them: the group's
/// coordinator, the producer's transaction (KIP-890 part 1: AddOffsetsToTxn must have added
/// the group; from v5, transactions v2, the request adds it itself; errors converted as for
/// the clients before v4), then the member (KIP-447, v3+).
fn check_txn_offset_commit(
    state: &mut State,
    ctx: &Context,
    request: &TxnOffsetCommitRequest,
) -> Result<(), ResponseError> {
    let group: &str = &request.group_id;
    if state.coordinator(CoordinatorKind::Group, group) != ctx.broker {
        return Err(ResponseError::NotCoordinator);
    }
    let members = Members {
        groups: [group.to_owned()].into(),
        ..Members::default()
    };
    let (id, producer_id, epoch) = (
        &*request.transactional_id,
        request.producer_id.0,
        request.producer_epoch,
    );
    let in_transaction = if ctx.version >= 5 {
        state.txns.add(id, producer_id, epoch, members, now_ms())
    } else {
        state.txns.verify(id, producer_id, epoch, &members)
    };
    in_transaction.map_err(|e| match e {
        ResponseError::TransactionAbortable => ResponseError::InvalidTxnState,
        ResponseError::ProducerFenced => ResponseError::InvalidProducerEpoch,
        ResponseError::ConcurrentTransactions => ResponseError::CoordinatorNotAvailable,
        other => other,
    })?;
    state.groups.check_txn_member(
        group,
        &request.member_id,
        request.generation_id,
        request.group_instance_id.as_deref(),
    )
}

/// A TxnOffsetCommit answer with `code` for every partition.
pub(super) fn txn_offset_commit_error(
    request: &TxnOffsetCommitRequest,
    code: i16,
) -> TxnOffsetCommitResponse {
    TxnOffsetCommitResponse::default().with_topics(
        request
            .topics
            .iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

pub(super) fn describe_transactions(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: &DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let state = shared.lock();
    let described = request
        .transactional_ids
        .iter()
        .map(|id| {
            let out = describe_transactions_response::TransactionState::default()
                .with_transactional_id(id.clone());
            let key: &str = id;
            if key.is_empty() {
                return out.with_error_code(ResponseError::TransactionalIdNotFound.code());
            }
            if let Err(e) = check_coordinator(&state, ctx, key) {
                return out.with_error_code(e.code());
            }
            let Some(txn) = state.txns.get(key) else {
                return out.with_error_code(ResponseError::TransactionalIdNotFound.code());
            };
            // Groups are not listed: Kafka lists their `__consumer_offsets` partitions, a
            // topic the mock does not have.
            let mut topics: Vec<TopicData> = Vec::new();
            for (topic, p) in txn.state.members().iter().flat_map(|m| &m.partitions) {
                match topics.last_mut() {
                    Some(last) if *last.topic == **topic => last.partitions.push(*p),
                    _ => topics.push(
                        TopicData::default()
                            .with_topic(TopicName(str_bytes(topic)))
                            .with_partitions(vec![*p]),
                    ),
                }
            }
            out.with_transaction_state(str_bytes(txn.state.name()))
                .with_transaction_timeout_ms(txn.timeout_ms)
                .with_transaction_start_time_ms(txn.started_ms)
                .with_producer_id(ProducerId(txn.producer_id))
                .with_producer_epoch(txn.epoch)
                .with_topics(topics)
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(described)
}

/// What one broker lists: the transactions it coordinates (an admin client asks every
/// broker), filtered by state, producer id and (v1+) minimum running time.
pub(super) fn list_transactions(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: &ListTransactionsRequest,
) -> ListTransactionsResponse {
    let state = shared.lock();
    let now = now_ms();
    let unknown_states = request
        .state_filters
        .iter()
        .filter(|s| !super::coordinator::TxnState::NAMES.contains(&s.as_str()))
        .cloned()
        .collect();
    let duration = if ctx.version >= 1 {
        request.duration_filter
    } else {
        -1
    };
    let listed = state
        .txns
        .iter()
        .filter(|(id, txn)| {
            state.coordinator(CoordinatorKind::Transaction, id) == ctx.broker
                && (request.state_filters.is_empty()
                    || request
                        .state_filters
                        .iter()
                        .any(|s| s.as_str() == txn.state.name()))
                && (request.producer_id_filters.is_empty()
                    || request
                        .producer_id_filters
                        .iter()
                        .any(|p| p.0 == txn.producer_id))
                && (duration < 0 || now - txn.started_ms > duration)
        })
        .map(|(id, txn)| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(TransactionalId(str_bytes(id)))
                .with_producer_id(ProducerId(txn.producer_id))
                .with_transaction_state(str_bytes(txn.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown_states)
        .with_transaction_states(listed)
}

/// Writes a transaction's markers into its partitions, applies or drops its group offsets,
/// and completes it. The caller notifies waiters once the lock is released.
pub(super) fn write_markers(state: &mut State, markers: Markers) {
    let timestamp = now_ms();
    for (topic, index) in &markers.members.partitions {
        // A partition deleted since it was added has nothing to mark.
        let Some(partition) = state.partition_mut(topic, *index) else {
            continue;
        };
        let leader_epoch = partition.leader_epoch;
        if let Err(e) = partition.log.write_marker(
            markers.producer_id,
            markers.epoch,
            markers.commit,
            COORDINATOR_EPOCH,
            timestamp,
            leader_epoch,
        ) {
            tracing::warn!(topic, partition = index, error = ?e, "transaction marker not written");
        }
    }
    for group in &markers.members.groups {
        state
            .groups
            .complete_txn(group, markers.producer_id, markers.commit);
    }
    state.txns.markers_written(&markers.transactional_id);
}

/// A transactional id that names a transaction this broker coordinates.
fn check_request(
    state: &State,
    ctx: &Context,
    transactional_id: &str,
) -> Result<(), ResponseError> {
    check_transactional_id(transactional_id)?;
    check_coordinator(state, ctx, transactional_id)
}

/// NOT_COORDINATOR unless this broker coordinates `transactional_id`.
fn check_coordinator(
    state: &State,
    ctx: &Context,
    transactional_id: &str,
) -> Result<(), ResponseError> {
    if state.coordinator(CoordinatorKind::Transaction, transactional_id) == ctx.broker {
        Ok(())
    } else {
        Err(ResponseError::NotCoordinator)
    }
}

/// INVALID_REQUEST for an empty transactional id.
fn check_transactional_id(transactional_id: &str) -> Result<(), ResponseError> {
    if transactional_id.is_empty() {
        Err(ResponseError::InvalidRequest)
    } else {
        Ok(())
    }
}

/// PRODUCER_FENCED (KIP-588) as the INVALID_PRODUCER_EPOCH that requests older than `since`
/// understand.
fn fenced_before(version: i16, since: i16, error: ResponseError) -> ResponseError {
    if error == ResponseError::ProducerFenced && version < since {
        ResponseError::InvalidProducerEpoch
    } else {
        error
    }
}
