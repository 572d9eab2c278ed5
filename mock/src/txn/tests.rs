//! The transaction APIs as a client sees them: error codes per version, NOT_COORDINATOR,
//! produce verification, markers in the logs, and every answer encodable at every served
//! version.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::BytesMut;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, DescribeTransactionsRequest, EndTxnRequest,
    GroupId, InitProducerIdRequest, ListTransactionsRequest, ProducerId, TopicName,
    TransactionalId,
};
use sluice_protocol::record::{BatchBuilder, BatchHeader};
use sluice_protocol::Compressor;

use super::*;
use crate::config::MockConfig;
use crate::handlers::str_bytes;
use crate::state::{Broker, CoordinatorKind};

const ID: &str = "txn-a";

fn cluster() -> Arc<Shared> {
    let brokers = (1..=3)
        .map(|id| Broker {
            id,
            host: "127.0.0.1".to_owned(),
            port: 9000 + id,
            rack: None,
        })
        .collect();
    let shared = Shared::new(MockConfig::default(), brokers);
    shared
        .lock()
        .create_topic("t", 2, std::collections::BTreeMap::new());
    shared
}

fn coordinator(shared: &Shared) -> i32 {
    shared.lock().coordinator(CoordinatorKind::Transaction, ID)
}

/// Sends `request` to `broker` at `version`; checks the answer encodes at that version.
fn call(shared: &Arc<Shared>, broker: i32, version: i16, request: RequestKind) -> ResponseKind {
    let ctx = Context {
        broker,
        api: api_of(&request),
        version,
        client_id: None,
    };
    let reply = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(handle(shared, &ctx, request));
    let Ok(Reply::Respond(response)) = reply else {
        panic!("no response");
    };
    response
        .encode(&mut BytesMut::new(), version)
        .unwrap_or_else(|e| panic!("{:?} v{version} does not encode: {e}", ctx.api));
    *response
}

fn api_of(request: &RequestKind) -> ApiKey {
    match request {
        RequestKind::InitProducerId(_) => ApiKey::InitProducerId,
        RequestKind::AddPartitionsToTxn(_) => ApiKey::AddPartitionsToTxn,
        RequestKind::AddOffsetsToTxn(_) => ApiKey::AddOffsetsToTxn,
        RequestKind::EndTxn(_) => ApiKey::EndTxn,
        RequestKind::TxnOffsetCommit(_) => ApiKey::TxnOffsetCommit,
        RequestKind::DescribeTransactions(_) => ApiKey::DescribeTransactions,
        RequestKind::ListTransactions(_) => ApiKey::ListTransactions,
        other => panic!("not a transaction request: {other:?}"),
    }
}

fn init(shared: &Arc<Shared>, broker: i32, version: i16, timeout_ms: i32) -> (i16, i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(str_bytes(ID))))
        .with_transaction_timeout_ms(timeout_ms);
    let ResponseKind::InitProducerId(r) = call(
        shared,
        broker,
        version,
        RequestKind::InitProducerId(request),
    ) else {
        panic!("wrong response");
    };
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

fn add_partitions(
    shared: &Arc<Shared>,
    version: i16,
    (pid, epoch): (i64, i16),
    topic: &str,
    partitions: Vec<i32>,
) -> Vec<i16> {
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(str_bytes(ID)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(TopicName(str_bytes(topic)))
            .with_partitions(partitions)]);
    let broker = coordinator(shared);
    let ResponseKind::AddPartitionsToTxn(r) = call(
        shared,
        broker,
        version,
        RequestKind::AddPartitionsToTxn(request),
    ) else {
        panic!("wrong response");
    };
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

fn end(shared: &Arc<Shared>, version: i16, (pid, epoch): (i64, i16), commit: bool) -> i16 {
    let request = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(str_bytes(ID)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let broker = coordinator(shared);
    let ResponseKind::EndTxn(r) = call(shared, broker, version, RequestKind::EndTxn(request))
    else {
        panic!("wrong response");
    };
    r.error_code
}

fn batch((pid, epoch): (i64, i16), sequence: i32) -> RecordBatch {
    let mut builder = BatchBuilder::new(BatchHeader {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: sequence,
        transactional: true,
        ..BatchHeader::default()
    });
    builder
        .push(
            0,
            None,
            Some(b"v".as_slice()),
            Vec::<(&[u8], Option<&[u8]>)>::new(),
        )
        .unwrap();
    RecordBatch::from_bytes(builder.finish(&mut Compressor::default()).unwrap()).unwrap()
}

fn produce(shared: &Shared, version: i16, batch: &RecordBatch) -> Result<(), ResponseError> {
    let mut state = shared.lock();
    if batch.is_transactional() {
        verify_produce(&mut state, version, Some(ID), batch, "t", 0)?;
    }
    let p = state.partition_mut("t", 0).unwrap();
    let epoch = p.leader_epoch;
    p.log.append(batch, epoch).map(|_| ())
}

const FENCED: i16 = 90;
const INVALID_PRODUCER_EPOCH: i16 = 47;

#[test]
fn init_producer_id_checks_and_version_dependent_fencing() {
    let shared = cluster();
    let home = coordinator(&shared);
    let other = home % 3 + 1;
    assert_eq!(
        init(&shared, other, 4, 60_000).0,
        ResponseError::NotCoordinator.code()
    );
    assert_eq!(
        init(&shared, home, 4, 0).0,
        ResponseError::InvalidTransactionTimeout.code()
    );
    assert_eq!(
        init(&shared, home, 4, 15 * 60_000 + 1).0,
        ResponseError::InvalidTransactionTimeout.code()
    );
    let (code, pid, epoch) = init(&shared, home, 4, 60_000);
    assert_eq!((code, epoch), (0, 0));

    // KIP-360: naming a stale epoch is fenced, as 47 before v4 and 90 from v4.
    for (version, expected) in [(3, INVALID_PRODUCER_EPOCH), (4, FENCED)] {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(str_bytes(ID))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch + 5);
        let ResponseKind::InitProducerId(r) =
            call(&shared, home, version, RequestKind::InitProducerId(request))
        else {
            panic!("wrong response");
        };
        assert_eq!(r.error_code, expected, "v{version}");
        assert_eq!((r.producer_id.0, r.producer_epoch), (-1, -1));
    }
    // Only one of producer id and epoch is malformed.
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(str_bytes(ID))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(pid));
    let ResponseKind::InitProducerId(r) =
        call(&shared, home, 3, RequestKind::InitProducerId(request))
    else {
        panic!("wrong response");
    };
    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
}

#[test]
fn a_transaction_end_to_end_on_the_wire() {
    let shared = cluster();
    let home = coordinator(&shared);
    let (_, pid, epoch) = init(&shared, home, 1, 60_000);
    let producer = (pid, epoch);

    // KIP-890 part 1: a partition not in the transaction is refused.
    assert_eq!(
        produce(&shared, 10, &batch(producer, 0)),
        Err(ResponseError::InvalidTxnState)
    );
    assert_eq!(
        produce(&shared, 11, &batch(producer, 0)),
        Err(ResponseError::TransactionAbortable)
    );

    // An unknown partition fails the request; the rest are not attempted.
    assert_eq!(
        add_partitions(&shared, 0, producer, "t", vec![0, 7]),
        vec![
            ResponseError::OperationNotAttempted.code(),
            ResponseError::UnknownTopicOrPartition.code()
        ]
    );
    assert_eq!(add_partitions(&shared, 0, producer, "t", vec![0]), vec![0]);
    produce(&shared, 10, &batch(producer, 0)).unwrap();
    produce(&shared, 10, &batch(producer, 1)).unwrap();
    let offsets = |shared: &Shared| {
        let state = shared.lock();
        let log = &state.partition("t", 0).unwrap().log;
        (log.last_stable_offset(), log.high_watermark())
    };
    assert_eq!(offsets(&shared), (0, 2));
    // A plain (non-transactional) write from a producer whose transaction is open here.
    let mut builder = BatchBuilder::new(BatchHeader {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: 2,
        ..BatchHeader::default()
    });
    builder
        .push(
            0,
            None,
            Some(b"v".as_slice()),
            Vec::<(&[u8], Option<&[u8]>)>::new(),
        )
        .unwrap();
    let plain = RecordBatch::from_bytes(builder.finish(&mut Compressor::default()).unwrap());
    assert_eq!(
        produce(&shared, 10, &plain.unwrap()),
        Err(ResponseError::InvalidTxnState)
    );

    let request = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(str_bytes(ID)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(str_bytes("g")));
    let ResponseKind::AddOffsetsToTxn(r) =
        call(&shared, home, 0, RequestKind::AddOffsetsToTxn(request))
    else {
        panic!("wrong response");
    };
    assert_eq!(r.error_code, 0);

    let ResponseKind::DescribeTransactions(r) = call(
        &shared,
        home,
        0,
        RequestKind::DescribeTransactions(
            DescribeTransactionsRequest::default().with_transactional_ids(vec![
                TransactionalId(str_bytes(ID)),
                TransactionalId(str_bytes("unknown")),
            ]),
        ),
    ) else {
        panic!("wrong response");
    };
    let described = &r.transaction_states[0];
    assert_eq!(described.transaction_state.as_str(), "Ongoing");
    assert_eq!(described.producer_id.0, pid);
    assert_eq!(described.topics.len(), 1);
    assert_ne!(r.transaction_states[1].error_code, 0);

    let ResponseKind::ListTransactions(r) = call(
        &shared,
        home,
        1,
        RequestKind::ListTransactions(
            ListTransactionsRequest::default()
                .with_state_filters(vec![str_bytes("Ongoing"), str_bytes("Bogus")]),
        ),
    ) else {
        panic!("wrong response");
    };
    assert_eq!(r.transaction_states.len(), 1);
    assert_eq!(r.unknown_state_filters.len(), 1);

    assert_eq!(end(&shared, 1, producer, false), 0);
    assert_eq!(offsets(&shared), (3, 3), "abort marker at offset 2");
    assert_eq!(end(&shared, 1, producer, false), 0, "retry");
    assert_eq!(
        end(&shared, 1, producer, true),
        ResponseError::InvalidTxnState.code()
    );
    {
        let state = shared.lock();
        let read = state
            .partition("t", 0)
            .unwrap()
            .log
            .read(0, 1 << 20, true, true);
        let aborted = read.unwrap().aborted;
        assert_eq!(aborted.len(), 1);
        assert_eq!((aborted[0].first_offset, aborted[0].last_offset), (0, 2));
    }

    // The next incarnation fences this one: 47 before EndTxn v2, 90 from v2.
    let (_, _, new_epoch) = init(&shared, home, 1, 60_000);
    assert_eq!(new_epoch, epoch + 1);
    assert_eq!(end(&shared, 1, producer, true), INVALID_PRODUCER_EPOCH);
    assert_eq!(end(&shared, 2, producer, true), FENCED);
    assert_eq!(
        add_partitions(&shared, 1, producer, "t", vec![1]),
        vec![INVALID_PRODUCER_EPOCH]
    );
    assert_eq!(
        add_partitions(&shared, 2, producer, "t", vec![1]),
        vec![FENCED]
    );
    // The zombie's produce: its epoch is fenced at the coordinator.
    assert_eq!(
        produce(&shared, 10, &batch(producer, 2)),
        Err(ResponseError::InvalidProducerEpoch)
    );
}

#[test]
fn reinit_over_an_open_transaction_aborts_it_then_answers_concurrent_transactions() {
    let shared = cluster();
    let home = coordinator(&shared);
    let (_, pid, epoch) = init(&shared, home, 4, 60_000);
    assert_eq!(
        add_partitions(&shared, 3, (pid, epoch), "t", vec![0]),
        vec![0]
    );
    produce(&shared, 10, &batch((pid, epoch), 0)).unwrap();

    assert_eq!(
        init(&shared, home, 4, 60_000).0,
        ResponseError::ConcurrentTransactions.code()
    );
    {
        let state = shared.lock();
        let log = &state.partition("t", 0).unwrap().log;
        assert_eq!(log.last_stable_offset(), log.high_watermark(), "aborted");
    }
    assert_eq!(init(&shared, home, 4, 60_000), (0, pid, epoch + 2));
    // The fenced producer's next write is refused: the coordinator has a newer epoch.
    assert_eq!(
        produce(&shared, 10, &batch((pid, epoch), 1)),
        Err(ResponseError::InvalidProducerEpoch)
    );
}

#[test]
fn the_timer_aborts_an_expired_transaction() {
    let shared = cluster();
    let home = coordinator(&shared);
    let (_, pid, epoch) = init(&shared, home, 4, 1_000);
    assert_eq!(
        add_partitions(&shared, 3, (pid, epoch), "t", vec![1]),
        vec![0]
    );
    let started = shared.lock().txns.get(ID).unwrap().started_ms;
    assert!(!abort_timed_out(&mut shared.lock(), started + 1_000));
    assert!(abort_timed_out(&mut shared.lock(), started + 1_001));
    assert_eq!(
        shared
            .lock()
            .partition("t", 1)
            .unwrap()
            .log
            .high_watermark(),
        1,
        "an abort marker, though nothing was written"
    );
    assert_eq!(end(&shared, 3, (pid, epoch), true), FENCED);
}

#[test]
fn whole_request_errors_encode_at_every_served_version() {
    let requests = [
        RequestKind::InitProducerId(InitProducerIdRequest::default()),
        RequestKind::AddPartitionsToTxn(AddPartitionsToTxnRequest::default()),
        RequestKind::AddOffsetsToTxn(AddOffsetsToTxnRequest::default()),
        RequestKind::EndTxn(EndTxnRequest::default()),
        RequestKind::TxnOffsetCommit(Default::default()),
        RequestKind::DescribeTransactions(DescribeTransactionsRequest::default()),
        RequestKind::ListTransactions(ListTransactionsRequest::default()),
    ];
    assert_eq!(requests.len(), SERVED.len());
    for request in &requests {
        let api = api_of(request);
        let (_, min, max) = SERVED.iter().copied().find(|s| s.0 == api).unwrap();
        for version in min..=max {
            let response = error_response(version, request, 16).unwrap();
            response
                .encode(&mut BytesMut::new(), version)
                .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
        }
    }
}

#[test]
fn txn_offset_commit_needs_the_group_in_the_transaction() {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::TxnOffsetCommitRequest;

    let shared = cluster();
    let home = coordinator(&shared);
    let group_home = shared.lock().coordinator(CoordinatorKind::Group, "g");
    let (_, pid, epoch) = init(&shared, home, 4, 60_000);
    let commit = |broker: i32, version: i16, epoch: i16| -> Vec<i16> {
        let request = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(str_bytes(ID)))
            .with_group_id(GroupId(str_bytes("g")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(str_bytes("t")))
                .with_partitions(vec![
                    TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(5),
                    TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(9)
                        .with_committed_offset(5),
                ])]);
        let ResponseKind::TxnOffsetCommit(r) = call(
            &shared,
            broker,
            version,
            RequestKind::TxnOffsetCommit(request),
        ) else {
            panic!("wrong response");
        };
        r.topics[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect()
    };
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(
        commit(group_home % 3 + 1, 3, epoch),
        vec![ResponseError::NotCoordinator.code(), unknown]
    );
    assert_eq!(
        commit(group_home, 0, epoch),
        vec![ResponseError::InvalidTxnState.code(), unknown],
        "AddOffsetsToTxn first"
    );
    let request = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(str_bytes(ID)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(str_bytes("g")));
    call(&shared, home, 3, RequestKind::AddOffsetsToTxn(request));
    for version in 0..=3 {
        assert_eq!(commit(group_home, version, epoch), vec![0, unknown]);
    }
    assert_eq!(
        commit(group_home, 3, epoch + 1),
        vec![INVALID_PRODUCER_EPOCH, unknown]
    );
}

#[test]
fn transactions_v2_add_implicitly_and_bump_the_epoch_at_every_end() {
    let shared = cluster();
    let home = coordinator(&shared);
    let (_, pid, epoch) = init(&shared, home, 4, 60_000);
    // Produce v11 still needs AddPartitionsToTxn; v12 adds the partition itself.
    assert_eq!(
        produce(&shared, 11, &batch((pid, epoch), 0)),
        Err(ResponseError::TransactionAbortable)
    );
    produce(&shared, 12, &batch((pid, epoch), 0)).unwrap();
    let open = shared.lock().txns.get(ID).unwrap().state.clone();
    assert!(
        matches!(&open, coordinator::TxnState::Ongoing(m) if m.partitions.contains(&("t".to_owned(), 0))),
        "{open:?}"
    );

    let request = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(str_bytes(ID)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(true);
    let ResponseKind::EndTxn(r) = call(&shared, home, 5, RequestKind::EndTxn(request.clone()))
    else {
        panic!("wrong response");
    };
    assert_eq!(
        (r.error_code, r.producer_id.0, r.producer_epoch),
        (0, pid, epoch + 1)
    );
    // A retry (the answer was lost) gets the same answer and writes no second marker.
    let end_offset = shared
        .lock()
        .partition("t", 0)
        .unwrap()
        .log
        .high_watermark();
    let ResponseKind::EndTxn(retry) = call(&shared, home, 5, RequestKind::EndTxn(request)) else {
        panic!("wrong response");
    };
    assert_eq!((retry.error_code, retry.producer_epoch), (0, epoch + 1));
    assert_eq!(
        shared
            .lock()
            .partition("t", 0)
            .unwrap()
            .log
            .high_watermark(),
        end_offset
    );
    // The old epoch is fenced; the new one starts over at sequence 0.
    assert!(produce(&shared, 12, &batch((pid, epoch), 1)).is_err());
    produce(&shared, 12, &batch((pid, epoch + 1), 0)).unwrap();
    assert_eq!(
        end(&shared, 4, (pid, epoch + 1), false),
        0,
        "v1 ends keep working"
    );
}

#[test]
fn below_transaction_version_2_the_v2_versions_are_not_served() {
    let v1 = crate::versions::served(ApiKey::EndTxn, 1);
    let v2 = crate::versions::served(ApiKey::EndTxn, 2);
    assert_eq!((v1, v2), (Some((0, 4)), Some((0, 5))));
    assert_eq!(crate::versions::served(ApiKey::Produce, 1), Some((3, 11)));
    assert_eq!(
        crate::versions::served(ApiKey::TxnOffsetCommit, 1),
        Some((0, 4))
    );
    let features = crate::versions::api_versions(3, 2).finalized_features;
    assert_eq!(features.len(), 1);
    assert_eq!(
        (&*features[0].name, features[0].max_version_level),
        ("transaction.version", 2)
    );
    assert!(crate::versions::api_versions(2, 2)
        .finalized_features
        .is_empty());
}
