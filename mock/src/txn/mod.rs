//! The transaction coordinator: producer ids, transactions and their markers, and the
//! partition leader's check that a transactional write belongs to an open transaction.
//!
//! Exactly-once clients are only as good as the coordinator they are tested against, so this
//! one keeps Apache Kafka's state machine (`TransactionCoordinator`, `TransactionMetadata`;
//! KIP-98), epoch fencing and bump-after-error (KIP-360), PRODUCER_FENCED (KIP-588), the
//! consumer-group fields of TxnOffsetCommit (KIP-447), and produce verification (KIP-890
//! part 1), with the error codes each request version understands.
//!
//! Simplifications (also in the README): markers are written synchronously while the request
//! that ends a transaction holds the cluster lock, so no one ever observes PrepareCommit or
//! PrepareAbort and CONCURRENT_TRANSACTIONS is only answered where Kafka answers it
//! regardless of timing (InitProducerId that had to abort the previous incarnation's
//! transaction); transactional ids never expire; the coordinator epoch is always 0.

mod coordinator;
mod handlers;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{
    AddOffsetsToTxnResponse, ApiKey, DescribeTransactionsResponse, EndTxnResponse,
    ListTransactionsResponse, RequestKind, ResponseKind,
};
use kafka_protocol::ResponseError;
use sluice_protocol::record::RecordBatch;

pub(crate) use coordinator::Transactions;

use crate::handlers::{Context, Reply};
use crate::state::{now_ms, Shared, State};

/// The transaction APIs the mock serves: (API, lowest version, highest version).
pub(crate) const SERVED: &[(ApiKey, i16, i16)] = &[
    // v5+ lets a client use TRANSACTION_ABORTABLE; v6 is two-phase commit (KIP-939).
    (ApiKey::InitProducerId, 0, 4),
    // v4+ is broker-to-broker batching and verification (KIP-890).
    (ApiKey::AddPartitionsToTxn, 0, 3),
    // v4+ lets a client use TRANSACTION_ABORTABLE (KIP-890).
    (ApiKey::AddOffsetsToTxn, 0, 3),
    // v4 TRANSACTION_ABORTABLE; v5 is transactions v2 (KIP-890 part 2): the epoch bumps at
    // every EndTxn. Capped at 4 below `transaction.version` 2 (`crate::versions`).
    (ApiKey::EndTxn, 0, 5),
    // v4 TRANSACTION_ABORTABLE; v5 adds the group to the transaction implicitly (v2).
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::DescribeTransactions, 0, 0),
    // v2 filters by a transactional id regular expression (KIP-1152).
    (ApiKey::ListTransactions, 0, 1),
];

/// How often open transactions are checked against their timeout (Kafka's
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms`, 10 s there; short here so
/// a test's timeout fires close to when it asked).
const TIMEOUT_CHECK_INTERVAL: Duration = Duration::from_millis(10);

/// Aborts transactions that outlive their timeout; runs for the cluster's lifetime.
pub(crate) async fn run_timers(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(TIMEOUT_CHECK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if *shared.shutdown.borrow() {
            return;
        }
        if abort_timed_out(&mut shared.lock(), now_ms()) {
            shared.notify();
        }
    }
}

/// Fences and aborts every transaction past its timeout; true if there was one.
fn abort_timed_out(state: &mut State, now_ms: i64) -> bool {
    let expired = state.txns.expire(now_ms);
    let any = !expired.is_empty();
    for markers in expired {
        tracing::debug!(
            transactional_id = markers.transactional_id,
            epoch = markers.epoch,
            "transaction timed out: fenced and aborted"
        );
        handlers::write_markers(state, markers);
    }
    any
}

/// Serves a transaction request, or hands back a request that is not one.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: RequestKind,
) -> Result<Reply, RequestKind> {
    let response = match request {
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(handlers::init_producer_id(shared, ctx, &r))
        }
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(handlers::add_partitions_to_txn(shared, ctx, &r))
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(handlers::add_offsets_to_txn(shared, ctx, &r))
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(handlers::end_txn(shared, ctx, &r)),
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(handlers::txn_offset_commit(shared, ctx, &r))
        }
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(handlers::describe_transactions(shared, ctx, &r))
        }
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(handlers::list_transactions(shared, ctx, &r))
        }
        other => return Err(other),
    };
    Ok(Reply::Respond(Box::new(response)))
}

/// Checks a transactional batch the way a partition leader does before it appends the
/// first batch of a transaction (KIP-890 part 1): the partition must be in the producer's
/// open transaction. Errors as Produce answers them at `version`: INVALID_TXN_STATE
/// (TRANSACTION_ABORTABLE for v11+) if it is not, INVALID_PRODUCER_EPOCH for a fenced
/// producer, INVALID_PRODUCER_ID_MAPPING for an id the coordinator does not know, and the
/// retriable NOT_ENOUGH_REPLICAS while the transaction is ending. From Produce v12
/// (transactions v2, KIP-890 part 2) the leader adds the partition to the transaction
/// instead, opening one if none is, with the same errors.
pub(crate) fn verify_produce(
    state: &mut State,
    version: i16,
    transactional_id: Option<&str>,
    batch: &RecordBatch,
    topic: &str,
    partition: i32,
) -> Result<(), ResponseError> {
    let Some(transactional_id) = transactional_id else {
        // Kafka rejects transactional records without a transactional id at authorization.
        return Err(ResponseError::TransactionalIdAuthorizationFailed);
    };
    let producer_id = batch.producer_id();
    let open_here = state
        .partition(topic, partition)
        .is_some_and(|p| p.log.has_open_txn(producer_id));
    if open_here {
        // Verified with the transaction's first batch here; the log checks the epoch.
        return Ok(());
    }
    let member = coordinator::Members {
        partitions: [(topic.to_owned(), partition)].into(),
        ..coordinator::Members::default()
    };
    let epoch = batch.producer_epoch();
    let in_transaction = if version >= 12 {
        state
            .txns
            .add(transactional_id, producer_id, epoch, member, now_ms())
    } else {
        state
            .txns
            .verify(transactional_id, producer_id, epoch, &member)
    };
    in_transaction.map_err(|e| match e {
        ResponseError::TransactionAbortable if version < 11 => ResponseError::InvalidTxnState,
        ResponseError::ProducerFenced => ResponseError::InvalidProducerEpoch,
        ResponseError::ConcurrentTransactions => ResponseError::NotEnoughReplicas,
        other => other,
    })
}

/// A transaction request failing as a whole with `code`.
pub(crate) fn error_response(
    _version: i16,
    request: &RequestKind,
    code: i16,
) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::InitProducerId(_) => ResponseKind::InitProducerId(handlers::init_error(code)),
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(handlers::add_partitions_response(r, |_, _| code))
        }
        RequestKind::AddOffsetsToTxn(_) => {
            ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(code))
        }
        RequestKind::EndTxn(_) => {
            ResponseKind::EndTxn(EndTxnResponse::default().with_error_code(code))
        }
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(handlers::txn_offset_commit_error(r, code))
        }
        RequestKind::DescribeTransactions(r) => ResponseKind::DescribeTransactions(
            DescribeTransactionsResponse::default().with_transaction_states(
                r.transactional_ids
                    .iter()
                    .map(|id| {
                        kafka_protocol::messages::describe_transactions_response::TransactionState::default()
                            .with_transactional_id(id.clone())
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        RequestKind::ListTransactions(_) => {
            ResponseKind::ListTransactions(ListTransactionsResponse::default().with_error_code(code))
        }
        _ => return None,
    })
}
