//! The consumer against a scripted cluster (`consumer_support`), for what the local broker
//! cannot be made to do (tansu-notes.md): OFFSET_OUT_OF_RANGE and the `auto.offset.reset`
//! policy (gap 4), aborted transactions listed in fetch responses (gap 1), a leader that moves,
//! a connection cut mid-fetch, responses cut inside a batch, a corrupt batch.
#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use consumer_support::{FakeCluster, Fault, NOT_LEADER_OR_FOLLOWER};
use futures::StreamExt;
use sluice_client::config::{ConsumerConfig, ConsumerConfigBuilder, IsolationLevel, OffsetReset};
use sluice_client::consumer::{Consumer, ConsumerRecord, Offset};
use sluice_client::KafkaCode;
use sluice_protocol::record::{BatchBuilder, BatchHeader, ControlRecord, ControlType};
use sluice_protocol::{Compression, Compressor};

const WAIT: Duration = Duration::from_secs(10);

/// A batch of `count` records from `base`, values `"v{offset}"`, by producer `pid` (-1: none).
fn batch(base: i64, count: usize, compression: Compression, pid: i64) -> Bytes {
    let header = BatchHeader {
        base_offset: base,
        producer_id: pid,
        producer_epoch: if pid >= 0 { 0 } else { -1 },
        transactional: pid >= 0,
        compression,
        ..BatchHeader::default()
    };
    let mut builder = BatchBuilder::new(header);
    for i in 0..count {
        let offset = base + i as i64;
        builder
            .push(
                1_000 + offset,
                Some(b"k"),
                Some(format!("v{offset}").as_bytes()),
                [("h", Some(b"x".as_slice()))],
            )
            .unwrap();
    }
    builder.finish(&mut Compressor::new()).unwrap()
}

fn plain(base: i64, count: usize) -> Bytes {
    batch(base, count, Compression::None, -1)
}

fn marker(offset: i64, pid: i64, kind: ControlType) -> Bytes {
    let header = BatchHeader {
        base_offset: offset,
        producer_id: pid,
        producer_epoch: 0,
        transactional: true,
        control: true,
        ..BatchHeader::default()
    };
    let mut builder = BatchBuilder::new(header);
    builder
        .push_control(1_000, &ControlRecord::marker(kind, 0))
        .unwrap();
    builder.finish(&mut Compressor::new()).unwrap()
}

fn config(cluster: &FakeCluster) -> ConsumerConfigBuilder {
    ConsumerConfig::builder()
        .bootstrap(&cluster.bootstrap())
        .fetch_max_wait(Duration::from_millis(50))
        .retry_backoff(Duration::from_millis(10))
        .reconnect_backoff(Duration::from_millis(10))
        .auto_offset_reset(OffsetReset::Earliest)
}

async fn consumer(builder: ConsumerConfigBuilder) -> Consumer {
    Consumer::new(builder.build().unwrap()).await.unwrap()
}

async fn recv(consumer: &mut Consumer) -> ConsumerRecord {
    tokio::time::timeout(WAIT, consumer.recv())
        .await
        .expect("no record in time")
        .unwrap()
}

/// The offsets of the next `n` records, checking each value.
async fn offsets(consumer: &mut Consumer, n: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let r = recv(consumer).await;
        assert_eq!(
            r.value.as_deref(),
            Some(format!("v{}", r.offset).as_bytes())
        );
        out.push(r.offset);
    }
    out
}

async fn assert_quiet(consumer: &mut Consumer) {
    if let Ok(got) = tokio::time::timeout(Duration::from_millis(300), consumer.recv()).await {
        panic!("expected nothing, got {got:?}");
    }
}

#[tokio::test]
async fn out_of_range_resets_to_earliest() {
    let cluster = FakeCluster::start(1).await;
    cluster.topic("t", 1, 1);
    cluster.append("t", 0, [plain(10, 10), plain(20, 10)]);
    cluster
        .script()
        .partitions
        .get_mut(&("t".into(), 0))
        .unwrap()
        .log_start = 10;
    let mut consumer = consumer(config(&cluster)).await;
    consumer.assign_with_offsets(&[("t", 0, Offset::Exact(3))]);
    assert_eq!(
        offsets(&mut consumer, 20).await,
        (10..30).collect::<Vec<_>>()
    );
    assert_eq!(consumer.position("t", 0), Some(30));
    let lookups = cluster.script().lookups.clone();
    assert_eq!(
        lookups,
        [("t".to_owned(), 0, -2, 0)],
        "one lookup of the earliest offset"
    );
}

#[tokio::test]
async fn out_of_range_resets_to_latest() {
    let cluster = FakeCluster::start(1).await;
    cluster.topic("t", 1, 1);
    cluster.append("t", 0, [plain(0, 10)]);
    let mut consumer = consumer(config(&cluster).auto_offset_reset(OffsetReset::Latest)).await;
    consumer.assign_with_offsets(&[("t", 0, Offset::Exact(500))]);
    // The reset keeps the last known position until the application reaches the new data.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_quiet(&mut consumer).await;
    cluster.append("t", 0, [plain(10, 5)]);
    assert_eq!(
        offsets(&mut consumer, 5).await,
        (10..15).collect::<Vec<_>>()
    );
    assert!(cluster.script().lookups.iter().any(|l| l.2 == -1));
}

#[tokio::test]
async fn out_of_range_with_reset_none_stops_the_partition_until_sought() {
    let cluster = FakeCluster::start(1).await;
    cluster.topic("t", 2, 1);
    cluster.append("t", 0, [plain(0, 10)]);
    cluster.append("t", 1, [plain(0, 10)]);
    let mut consumer = consumer(config(&cluster).auto_offset_reset(OffsetReset::Error)).await;
    consumer.assign_with_offsets(&[("t", 0, Offset::Exact(99)), ("t", 1, Offset::Exact(5))]);
    let mut from_one = Vec::new();
    let error = loop {
        match tokio::time::timeout(WAIT, consumer.recv()).await.unwrap() {
            Ok(r) => from_one.push((r.partition, r.offset)),
            Err(e) => break e,
        }
    };
    assert_eq!(
        error.code(),
        Some(KafkaCode::OFFSET_OUT_OF_RANGE),
        "{error}"
    );
    // The other partition goes on; the failed one stays where it was.
    while from_one.len() < 5 {
        let r = recv(&mut consumer).await;
        from_one.push((r.partition, r.offset));
    }
    assert_eq!(from_one, (5..10).map(|o| (1, o)).collect::<Vec<_>>());
    assert_eq!(consumer.position("t", 0), Some(99));
    assert_quiet(&mut consumer).await;
    consumer.seek("t", 0, Offset::Exact(8)).unwrap();
    assert_eq!(offsets(&mut consumer, 2).await, [8, 9]);

    // Assigned without an offset under `none`: an error at once.
    consumer.assign(&[("t", 0), ("t", 1)]);
    assert_quiet(&mut consumer).await;
    consumer.assign(&[("t", 0), ("t", 1), ("other", 0)]);
    let e = tokio::time::timeout(WAIT, consumer.recv())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code(), Some(KafkaCode::OFFSET_OUT_OF_RANGE), "{e}");
    assert!(consumer.resolved_position("other", 0).await.is_err());
}

#[tokio::test]
async fn prefetched_data_comes_before_an_out_of_range_reset() {
    let cluster = FakeCluster::start(1).await;
    cluster.topic("t", 1, 1);
    cluster.append("t", 0, [plain(0, 10), plain(10, 10), plain(20, 10)]);
    // Retention deletes 0..20 once the consumer has fetched the first batch.
    cluster.script().hook = Some(Box::new(|_, _, offset, log| {
        if offset >= 10 {
            log.log_start = 20;
        }
    }));
    let batch_len = plain(0, 10).len();
    let mut consumer = consumer(config(&cluster).max_partition_fetch_bytes(batch_len)).await;
    consumer.assign_with_offsets(&[("t", 0, Offset::Beginning)]);
    // 0..10 was fetched before the log start moved: it comes first, then the log start.
    let got = offsets(&mut consumer, 20).await;
    assert_eq!(got, (0..10).chain(20..30).collect::<Vec<_>>());
    assert_eq!(consumer.position("t", 0), Some(30));
}

#[tokio::test]
async fn a_moved_leader_is_followed() {
    let cluster = FakeCluster::start(2).await;
    cluster.topic("t", 1, 1);
    cluster.append("t", 0, [plain(0, 10)]);
    let mut consumer = consumer(config(&cluster)).await;
    consumer.assign_with_offsets(&[("t", 0, Offset::Beginning)]);
    assert_eq!(
        offsets(&mut consumer, 10).await,
        (0..10).collect::<Vec<_>>()
    );
    cluster
        .script()
        .partitions
        .get_mut(&("t".into(), 0))
        .unwrap()
        .leader = 2;
    cluster.append("t", 0, [plain(10, 10)]);
    assert_eq!(
        offsets(&mut consumer, 10).await,
        (10..20).collect::<Vec<_>>()
    );
    let script = cluster.script();
    assert!(
        script.fetches.iter().any(|f| f.node == 2 && f.offset == 10),
        "node 2 was never fetched from"
    );
    assert!(
        script
            .fetches
            .iter()
            .all(|f| f.version <= 12 && f.topic == "t"),
        "Fetch is capped at v12, by name"
    );
}

#[tokio::test]
async fn retriable_partition_errors_and_a_cut_connection_lose_nothing() {
    let cluster = FakeCluster::start(1).await;
    cluster.topic("t", 1, 1);
    cluster.append("t", 0, [plain(0, 10)]);
    let mut consumer = consumer(config(&cluster)).await;
    consumer.assign_with_offsets(&[("t", 0, Offset::Beginning)]);
    assert_eq!(
        offsets(&mut consumer, 10).await,
        (0..10).collect::<Vec<_>>()
    );
    {
        let mut script = cluster.script();
        script.faults.push_back(Fault::Disconnect);
        script.faults.push_back(Fault::Error {
            topic: "t".into(),
            partition: 0,
            code: NOT_LEADER_OR_FOLLOWER,
        });
        script.faults.push_back(Fault::Error {
            topic: "t".into(),
            partition: 0,
            code: 3,
        });
    }
    cluster.append("t", 0, [plain(10, 10)]);
    assert_eq!(
        offsets(&mut consumer, 10).await,
        (10..20).collect::<Vec<_>>()
    );
    assert!(cluster.script().faults.is_empty());
    assert_quiet(&mut consumer).await;
}

#[tokio::test]
async fn responses_cut_inside_a_batch_are_refetched_from_it() {
    let cluster = FakeCluster::start(1).await;
    cluster.topic("t", 1, 1);
    let batches: Vec<Bytes> = (0..10)
        .map(|i| batch(i * 5, 5, Compression::Snappy, -1))
        .collect();
    let limit = batches[0].len() * 3 / 2;
    cluster.append("t", 0, batches);
    let mut consumer = consumer(config(&cluster).max_partition_fetch_bytes(limit)).await;
    consumer.assign_with_offsets(&[("t", 0, Offset::Beginning)]);
    assert_eq!(
        offsets(&mut consumer, 50).await,
        (0..50).collect::<Vec<_>>()
    );
    let fetched: Vec<i64> = cluster.script().fetches.iter().map(|f| f.offset).collect();
    assert_eq!(
        &fetched[..10],
        &(0..10).map(|i| i * 5).collect::<Vec<_>>(),
        "one whole batch per fetch"
    );
}

#[tokio::test]
async fn a_seek_into_a_compressed_batch_skips_the_records_before_it() {
    let cluster = FakeCluster::start(1).await;
    cluster.topic("t", 1, 1);
    cluster.append(
        "t",
        0,
        [
            batch(0, 10, Compression::Zstd, -1),
            batch(10, 10, Compression::Gzip, -1),
        ],
    );
    let mut consumer = consumer(config(&cluster)).await;
    consumer.assign_with_offsets(&[("t", 0, Offset::Exact(7))]);
    let first = tokio::time::timeout(WAIT, consumer.poll_batch())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            first.batch().base_offset(),
            first.first_offset(),
            first.next_offset()
        ),
        (0, 7, 10)
    );
    let got: Vec<i64> = first.records().map(|r| r.unwrap().offset()).collect();
    assert_eq!(got, [7, 8, 9]);
    assert_eq!(
        first.decoded().len(),
        10,
        "the whole batch is there, for who wants it"
    );
    assert_eq!(
        offsets(&mut consumer, 10).await,
        (10..20).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn read_committed_drops_the_aborted_transactions_the_broker_lists() {
    const P1: i64 = 7;
    const P2: i64 = 8;
    let cluster = FakeCluster::start(1).await;
    cluster.topic("t", 1, 1);
    cluster.append(
        "t",
        0,
        [
            batch(0, 3, Compression::Lz4, P1),
            batch(3, 3, Compression::None, P2),
            marker(6, P1, ControlType::Abort),
            marker(7, P2, ControlType::Commit),
            plain(8, 2),
            batch(10, 2, Compression::None, P1),
            marker(12, P1, ControlType::Abort),
        ],
    );
    cluster
        .script()
        .partitions
        .get_mut(&("t".into(), 0))
        .unwrap()
        .aborted = vec![(P1, 0), (P1, 10)];
    for (isolation, expected) in [
        (IsolationLevel::ReadCommitted, vec![3, 4, 5, 8, 9]),
        (
            IsolationLevel::ReadUncommitted,
            vec![0, 1, 2, 3, 4, 5, 8, 9, 10, 11],
        ),
    ] {
        let mut consumer = consumer(config(&cluster).isolation_level(isolation)).await;
        consumer.assign_with_offsets(&[("t", 0, Offset::Beginning)]);
        let mut stream = consumer.records();
        let mut got = Vec::new();
        while got.len() < expected.len() {
            let r = tokio::time::timeout(WAIT, stream.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            got.push(r.offset);
        }
        assert_eq!(got, expected, "{isolation:?}");
        assert_quiet(&mut consumer).await;
        // Past the markers and the aborted tail.
        assert_eq!(consumer.position("t", 0), Some(13), "{isolation:?}");
    }
    assert!(cluster
        .script()
        .lookups
        .iter()
        .all(|l| l.3 == 0 || l.3 == 1));
    assert!(cluster.script().fetches.iter().any(|f| f.isolation == 1));
}

#[tokio::test]
async fn a_corrupt_batch_stops_its_partition_and_a_seek_skips_it() {
    let cluster = FakeCluster::start(1).await;
    cluster.topic("t", 2, 1);
    let mut bad = plain(5, 5).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    cluster.append("t", 0, [plain(0, 5), Bytes::from(bad), plain(10, 5)]);
    cluster.append("t", 1, [plain(0, 3)]);
    let mut consumer = consumer(config(&cluster)).await;
    consumer.assign_with_offsets(&[("t", 0, Offset::Beginning), ("t", 1, Offset::Beginning)]);
    let mut got: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut errors = Vec::new();
    while got.values().map(Vec::len).sum::<usize>() < 8 || errors.is_empty() {
        match tokio::time::timeout(WAIT, consumer.recv()).await.unwrap() {
            Ok(r) => got.entry(r.partition).or_default().push(r.offset),
            Err(e) => errors.push(e),
        }
    }
    assert_eq!(got[&0], (0..5).collect::<Vec<_>>());
    assert_eq!(got[&1], (0..3).collect::<Vec<_>>());
    assert_eq!(
        errors[0].code(),
        Some(KafkaCode::CORRUPT_MESSAGE),
        "{}",
        errors[0]
    );
    assert_eq!(consumer.position("t", 0), Some(5));
    assert_quiet(&mut consumer).await;
    consumer.seek("t", 0, Offset::Exact(10)).unwrap();
    assert_eq!(
        offsets(&mut consumer, 5).await,
        (10..15).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_consumer_streams_batches_and_seeks_by_time() {
    let cluster = FakeCluster::start(1).await;
    cluster.topic("t", 1, 1);
    cluster.append("t", 0, [plain(0, 4), plain(4, 4)]);
    let mut consumer = consumer(config(&cluster)).await;
    consumer.assign_with_offsets(&[("t", 0, Offset::Timestamp(1_005))]);
    assert_eq!(
        consumer.resolved_position("t", 0).await.unwrap(),
        4,
        "the batch holding the time"
    );
    let batch = tokio::time::timeout(WAIT, consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (batch.topic(), batch.partition(), batch.first_offset()),
        ("t", 0, 4)
    );
    let records = batch.to_records().unwrap();
    assert_eq!(records[0].key.as_deref(), Some(b"k".as_slice()));
    assert_eq!(records[0].headers[0].key_str(), Some("h"));
    assert_eq!(batch.high_watermark(), 8);
    // No record at or after the time: the end.
    consumer.seek("t", 0, Offset::Timestamp(5_000)).unwrap();
    assert_eq!(consumer.resolved_position("t", 0).await.unwrap(), 8);
    assert_eq!(consumer.assignment(), [("t".to_owned(), 0)]);
}

#[test]
fn consumer_futures_are_send() {
    fn send<T: Send>(_: T) {}
    fn check(c: &mut Consumer) {
        send(c.poll_batch());
        send(c.recv());
        send(c.resolved_position("t", 0));
    }
    let _ = check;
    fn is_send<T: Send + Sync>() {}
    is_send::<Consumer>();
}
