//! The sluice consumer against the local broker, with librdkafka as the producer: every codec,
//! keys, values and headers (null and empty kept apart) come back exactly once and in
//! partition order; seeks by offset, to either end and by time; pause and resume; starting at
//! the end; the prefetch buffer's bound; transaction markers never handed out.
//!
//! Not here, because Tansu cannot produce them (tansu-notes.md): OFFSET_OUT_OF_RANGE and the
//! `auto.offset.reset` policy (gap 4), aborted-transaction filtering (gap 1), leader moves and
//! partial trailing batches on demand. `client/tests/consumer_fake_broker.rs` covers those
//! against a scripted broker, and `client/tests/consumer_aborted.rs` the abort filter.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sluice_client::config::{ConsumerConfig, ConsumerConfigBuilder, IsolationLevel, OffsetReset};
use sluice_client::consumer::{Consumer, ConsumerRecord, Offset};
use sluice_tests::{create_topic_with_rdkafka, rdkafka_config, TestBroker};

const PARTITIONS: i32 = 3;
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
const WAIT: Duration = Duration::from_secs(30);

/// A record as written or read: key, value, headers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl From<&ConsumerRecord> for Rec {
    fn from(r: &ConsumerRecord) -> Self {
        Rec {
            key: r.key.as_ref().map(|k| k.to_vec()),
            value: r.value.as_ref().map(|v| v.to_vec()),
            headers: r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.key_str().unwrap().to_owned(),
                        h.value.as_ref().map(|v| v.to_vec()),
                    )
                })
                .collect(),
        }
    }
}

/// Record `i` of `codec`: null and empty keys and values now and then, duplicate, null and
/// empty headers on some.
fn rec(codec: &str, i: usize) -> Rec {
    let key = match i % 37 {
        0 => None,
        1 => Some(Vec::new()),
        _ => Some(format!("{codec}-key-{i}").into_bytes()),
    };
    let value = match i % 41 {
        0 => None,
        1 => Some(Vec::new()),
        _ => Some(
            format!("{codec} value {i}; ")
                .repeat(1 + i % 13)
                .into_bytes(),
        ),
    };
    let mut headers = vec![("i".to_owned(), Some(i.to_string().into_bytes()))];
    if i.is_multiple_of(3) {
        headers.push(("dup".to_owned(), Some(b"a".to_vec())));
        headers.push(("dup".to_owned(), Some(b"b".to_vec())));
        headers.push(("null".to_owned(), None));
        headers.push(("empty".to_owned(), Some(Vec::new())));
    }
    Rec {
        key,
        value,
        headers,
    }
}

fn producer(broker: &TestBroker, codec: &str) -> FutureProducer {
    rdkafka_config(&broker.bootstrap())
        .set("acks", "all")
        .set("compression.type", codec)
        .set("linger.ms", "5")
        .set("batch.size", "16384")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap()
}

/// Sends `records` (partition, record) and returns where each landed, in send order.
async fn send(
    producer: &FutureProducer,
    topic: &str,
    records: Vec<(i32, Rec)>,
) -> Vec<((i32, i64), Rec)> {
    let mut pending = Vec::with_capacity(records.len());
    for (partition, r) in records {
        let headers = r
            .headers
            .iter()
            .fold(OwnedHeaders::new(), |all, (key, value)| {
                all.insert(Header {
                    key,
                    value: value.as_deref(),
                })
            });
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(partition)
            .headers(headers);
        if let Some(key) = &r.key {
            record = record.key(key.as_slice());
        }
        if let Some(value) = &r.value {
            record = record.payload(value.as_slice());
        }
        let delivery = producer.send_result(record).map_err(|(e, _)| e).unwrap();
        pending.push((delivery, r));
    }
    let mut out = Vec::with_capacity(pending.len());
    for (delivery, r) in pending {
        let d = delivery
            .await
            .unwrap()
            .unwrap_or_else(|(e, _)| panic!("delivery failed: {e}"));
        out.push(((d.partition, d.offset), r));
    }
    out
}

/// Ends every partition with a batch of one record. Tansu answers ListOffsets LATEST with the
/// last batch's base offset + 1 (tansu-notes.md, gap 3), which is right only then.
async fn end_with_single_record_batches(
    broker: &TestBroker,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, i64> {
    let producer = producer(broker, "none");
    let mut ends = BTreeMap::new();
    for partition in 0..partitions {
        let marker = Rec {
            key: None,
            value: Some(b"end".to_vec()),
            headers: Vec::new(),
        };
        let ((_, offset), _) = send(&producer, topic, vec![(partition, marker)]).await[0].clone();
        ends.insert(partition, offset + 1);
    }
    ends
}

fn config(broker: &TestBroker) -> ConsumerConfigBuilder {
    ConsumerConfig::builder()
        .bootstrap(&broker.bootstrap())
        .auto_offset_reset(OffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100))
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

/// Asserts that nothing arrives for a while.
async fn assert_quiet(consumer: &mut Consumer) {
    if let Ok(got) = tokio::time::timeout(Duration::from_millis(700), consumer.recv()).await {
        panic!("expected nothing, got {got:?}");
    }
}

fn all_partitions(topic: &str) -> Vec<(&str, i32, Offset)> {
    (0..PARTITIONS)
        .map(|p| (topic, p, Offset::Beginning))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_records_in_every_codec_come_back_once_in_partition_order() {
    const PER_CODEC: usize = 2_000;
    let broker = TestBroker::start();
    create_topic_with_rdkafka(&broker.bootstrap(), "all", PARTITIONS).await;
    let mut written = BTreeMap::new();
    for codec in CODECS {
        let producer = producer(&broker, codec);
        let records = (0..PER_CODEC)
            .map(|i| (i32::try_from(i).unwrap() % PARTITIONS, rec(codec, i)))
            .collect();
        for (at, r) in send(&producer, "all", records).await {
            assert!(written.insert(at, r).is_none(), "two deliveries at {at:?}");
        }
    }
    assert_eq!(written.len(), CODECS.len() * PER_CODEC);

    let mut consumer = consumer(config(&broker)).await;
    consumer.assign_with_offsets(&all_partitions("all"));
    let mut read: BTreeMap<(i32, i64), Rec> = BTreeMap::new();
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    let mut batches = 0;
    while read.len() < written.len() {
        let batch = tokio::time::timeout(WAIT, consumer.poll_batch())
            .await
            .unwrap_or_else(|_| panic!("stuck at {} of {} records", read.len(), written.len()))
            .unwrap();
        batches += 1;
        assert!(
            !batch.batch().is_control(),
            "a control batch was handed out"
        );
        for r in batch.to_records().unwrap() {
            let previous = last.insert(r.partition, r.offset);
            assert!(
                previous.is_none_or(|p| p < r.offset),
                "{}-{} out of order after {previous:?}",
                r.partition,
                r.offset
            );
            assert!(
                read.insert((r.partition, r.offset), Rec::from(&r))
                    .is_none(),
                "{:?} twice",
                (r.partition, r.offset)
            );
        }
        assert_eq!(
            consumer.position("all", batch.partition()),
            Some(batch.next_offset())
        );
    }
    assert!(
        batches < written.len() / 10,
        "{batches} batches for {} records: not batched",
        written.len()
    );
    for (at, expected) in &written {
        assert_eq!(read.get(at), Some(expected), "record at {at:?}");
    }
    assert_eq!(read.len(), written.len());
    assert_quiet(&mut consumer).await;
    for partition in 0..PARTITIONS {
        let end = written
            .keys()
            .filter(|(p, _)| *p == partition)
            .map(|(_, o)| o + 1)
            .max()
            .unwrap();
        assert_eq!(consumer.position("all", partition), Some(end));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_to_an_offset_either_end_and_a_time() {
    let broker = TestBroker::start();
    create_topic_with_rdkafka(&broker.bootstrap(), "seek", 1).await;
    let producer = producer(&broker, "lz4");
    let first: Vec<(i32, Rec)> = (0..300).map(|i| (0, rec("early", i))).collect();
    send(&producer, "seek", first).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let middle = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second: Vec<(i32, Rec)> = (0..200).map(|i| (0, rec("late", i))).collect();
    let late_start = send(&producer, "seek", second).await[0].0 .1;
    let end = end_with_single_record_batches(&broker, "seek", 1).await[&0];

    let mut consumer = consumer(config(&broker)).await;
    consumer.assign_with_offsets(&[("seek", 0, Offset::Beginning)]);
    assert_eq!(consumer.resolved_position("seek", 0).await.unwrap(), 0);
    for expected in 0..10 {
        assert_eq!(recv(&mut consumer).await.offset, expected);
    }
    assert_eq!(consumer.position("seek", 0), Some(10));

    // Into the middle of an lz4 batch: the records before it in that batch are skipped.
    consumer.seek("seek", 0, Offset::Exact(123)).unwrap();
    let r = recv(&mut consumer).await;
    assert_eq!((r.offset, Rec::from(&r)), (123, rec("early", 123)));
    let batch = tokio::time::timeout(WAIT, consumer.poll_batch())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        batch.first_offset(),
        124,
        "poll_batch after recv hands out the rest of the batch"
    );
    assert_eq!(batch.records().next().unwrap().unwrap().offset(), 124);

    consumer.seek("seek", 0, Offset::Beginning).unwrap();
    assert_eq!(recv(&mut consumer).await.offset, 0);

    consumer.seek("seek", 0, Offset::Timestamp(middle)).unwrap();
    assert_eq!(
        consumer.resolved_position("seek", 0).await.unwrap(),
        late_start
    );
    assert_eq!(Rec::from(&recv(&mut consumer).await), rec("late", 0));

    consumer.seek("seek", 0, Offset::End).unwrap();
    assert_eq!(consumer.resolved_position("seek", 0).await.unwrap(), end);
    assert_quiet(&mut consumer).await;
    let after = send(&producer, "seek", vec![(0, rec("after", 0))]).await;
    let r = recv(&mut consumer).await;
    assert_eq!((r.offset, Rec::from(&r)), (after[0].0 .1, rec("after", 0)));

    // A time after every record: the end.
    consumer
        .seek("seek", 0, Offset::Timestamp(middle + 3_600_000))
        .unwrap();
    assert_eq!(
        consumer.resolved_position("seek", 0).await.unwrap(),
        end + 1
    );

    assert!(
        consumer.seek("seek", 1, Offset::Beginning).is_err(),
        "partition 1 is not assigned"
    );
    assert!(consumer.seek("seek", 0, Offset::Exact(-5)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_partition_hands_out_nothing_until_resumed() {
    let broker = TestBroker::start();
    create_topic_with_rdkafka(&broker.bootstrap(), "pause", PARTITIONS).await;
    let producer = producer(&broker, "snappy");
    let records = (0..600)
        .map(|i| (i32::try_from(i).unwrap() % PARTITIONS, rec("p", i)))
        .collect();
    send(&producer, "pause", records).await;

    let mut consumer = consumer(config(&broker)).await;
    consumer.assign_with_offsets(&all_partitions("pause"));
    // Read a little of partition 0 first, so resuming has a position to go on from.
    let mut from_zero = Vec::new();
    let mut others = 0;
    while from_zero.len() < 5 {
        let r = recv(&mut consumer).await;
        if r.partition == 0 {
            from_zero.push(r.offset);
        } else {
            others += 1;
        }
    }
    let position = consumer.position("pause", 0).unwrap();
    consumer.pause(&[("pause", 0)]);
    assert!(consumer.is_paused("pause", 0));
    while others < 400 {
        let r = recv(&mut consumer).await;
        assert_ne!(r.partition, 0, "a paused partition handed out {r:?}");
        others += 1;
    }
    assert_quiet(&mut consumer).await;
    assert_eq!(consumer.position("pause", 0), Some(position));

    consumer.resume(&[("pause", 0)]);
    let mut next = position;
    while next < 200 {
        let r = recv(&mut consumer).await;
        assert_eq!((r.partition, r.offset), (0, next));
        next += 1;
    }
    assert_quiet(&mut consumer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_started_at_the_end_sees_only_new_records() {
    let broker = TestBroker::start();
    create_topic_with_rdkafka(&broker.bootstrap(), "latest", PARTITIONS).await;
    let producer = producer(&broker, "gzip");
    let old = (0..300)
        .map(|i| (i32::try_from(i).unwrap() % PARTITIONS, rec("old", i)))
        .collect();
    send(&producer, "latest", old).await;
    let ends = end_with_single_record_batches(&broker, "latest", PARTITIONS).await;

    // auto.offset.reset=latest (the default) for partitions assigned without an offset.
    let mut consumer = consumer(config(&broker).auto_offset_reset(OffsetReset::Latest)).await;
    let partitions: Vec<(&str, i32)> = (0..PARTITIONS).map(|p| ("latest", p)).collect();
    consumer.assign(&partitions);
    for (partition, end) in &ends {
        assert_eq!(
            consumer
                .resolved_position("latest", *partition)
                .await
                .unwrap(),
            *end
        );
    }
    assert_eq!(
        consumer.assignment(),
        partitions
            .iter()
            .map(|(t, p)| (t.to_string(), *p))
            .collect::<Vec<_>>()
    );
    let new = (0..90)
        .map(|i| (i32::try_from(i).unwrap() % PARTITIONS, rec("new", i)))
        .collect();
    let written: BTreeMap<(i32, i64), Rec> =
        send(&producer, "latest", new).await.into_iter().collect();
    let mut read = BTreeMap::new();
    while read.len() < written.len() {
        let r = recv(&mut consumer).await;
        assert!(
            r.offset >= ends[&r.partition],
            "an old record came back: {r:?}"
        );
        read.insert((r.partition, r.offset), Rec::from(&r));
    }
    assert_eq!(read, written);
    assert_quiet(&mut consumer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetching_stops_at_the_buffer_bound() {
    const MAX_BUFFERED: usize = 256 * 1024;
    // rdkafka's batch.size above bounds a batch; its overhead is well under 1 KiB.
    const ONE_BATCH: usize = 16 * 1024 + 1024;
    let broker = TestBroker::start();
    create_topic_with_rdkafka(&broker.bootstrap(), "bound", PARTITIONS).await;
    let producer = producer(&broker, "none");
    let value = vec![b'x'; 1000];
    let records = (0..4_000)
        .map(|i| {
            (
                i % PARTITIONS,
                Rec {
                    key: None,
                    value: Some(value.clone()),
                    headers: Vec::new(),
                },
            )
        })
        .collect();
    let written = send(&producer, "bound", records).await.len();

    let mut consumer = consumer(
        config(&broker)
            .max_buffered_bytes(MAX_BUFFERED)
            .fetch_max_bytes(64 * 1024)
            .max_partition_fetch_bytes(32 * 1024),
    )
    .await;
    consumer.assign_with_offsets(&all_partitions("bound"));
    // Nobody reads: the fetchers fill the buffer, then stop.
    let mut stats = consumer.buffer_stats();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stats = consumer.buffer_stats();
        if stats.bytes > MAX_BUFFERED / 2 {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let full = consumer.buffer_stats();
    assert!(
        full.bytes > MAX_BUFFERED / 2,
        "the buffer did not fill: {stats:?}"
    );
    assert!(
        full.bytes <= MAX_BUFFERED + ONE_BATCH,
        "over the bound: {full:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        consumer.buffer_stats().bytes,
        full.bytes,
        "fetching went on with a full buffer"
    );

    let mut read = 0;
    while read < written {
        let batch = tokio::time::timeout(WAIT, consumer.poll_batch())
            .await
            .unwrap()
            .unwrap();
        read += batch.records().count();
        let stats = consumer.buffer_stats();
        assert!(
            stats.bytes <= MAX_BUFFERED + ONE_BATCH,
            "over the bound: {stats:?}"
        );
    }
    assert_eq!(read, written);
    let stats = consumer.buffer_stats();
    assert!(
        stats.peak_bytes <= MAX_BUFFERED + ONE_BATCH,
        "peak over the bound: {stats:?}"
    );
    assert_eq!(stats.max_bytes, MAX_BUFFERED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_markers_are_never_handed_out() {
    let broker = TestBroker::start();
    create_topic_with_rdkafka(&broker.bootstrap(), "txn", 1).await;
    let producer: FutureProducer = rdkafka_config(&broker.bootstrap())
        .set("transactional.id", "sluice-consume-txn")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    let txn = tokio::task::spawn_blocking(move || {
        producer.init_transactions(WAIT).unwrap();
        producer.begin_transaction().unwrap();
        producer
    });
    let producer = txn.await.unwrap();
    let records: Vec<(i32, Rec)> = (0..20).map(|i| (0, rec("txn", i))).collect();
    let written = send(&producer, "txn", records).await;
    let producer = tokio::task::spawn_blocking(move || {
        producer.commit_transaction(WAIT).unwrap();
        producer
    })
    .await
    .unwrap();
    // After the commit marker, one plain record: its offset is past the marker's.
    let plain = rdkafka_config(&broker.bootstrap())
        .create::<FutureProducer>()
        .unwrap();
    let after = send(&plain, "txn", vec![(0, rec("plain", 0))]).await;
    drop(producer);

    for isolation in [
        IsolationLevel::ReadUncommitted,
        IsolationLevel::ReadCommitted,
    ] {
        let mut consumer = consumer(config(&broker).isolation_level(isolation)).await;
        consumer.assign_with_offsets(&[("txn", 0, Offset::Beginning)]);
        let mut read = Vec::new();
        for _ in 0..=written.len() {
            let r = recv(&mut consumer).await;
            read.push(((r.partition, r.offset), Rec::from(&r)));
        }
        let mut expected = written.clone();
        expected.extend(after.clone());
        assert_eq!(read, expected, "{isolation:?}");
        assert!(
            after[0].0 .1 > written.last().unwrap().0 .1 + 1,
            "no marker between them"
        );
        assert_quiet(&mut consumer).await;
        assert_eq!(consumer.position("txn", 0), Some(after[0].0 .1 + 1));
    }
}
