//! sluice's producer against the real broker, checked by librdkafka reading back what it wrote:
//! every codec with acks 1 and all, keys (null, empty, repeated), values (null, empty) and
//! headers; acks=0; flush; back-pressure with a tiny buffer; the records `send` hands back.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};
use sluice_client::cluster::{Cluster, ClusterOptions};
use sluice_client::config::{Acks, Compression, ProducerConfig, ProducerConfigBuilder};
use sluice_client::producer::partitioner::{murmur2, to_positive};
use sluice_client::producer::{Producer, ProducerRecord, RecordMetadata};
use sluice_client::{Error, KafkaCode};
use sluice_tests::{create_topic_with_rdkafka, rdkafka_config, TestBroker};

const PARTITIONS: i32 = 3;
const CONSUME_TIMEOUT: Duration = Duration::from_secs(60);

/// A record as written, or as read back.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Record number `i`: null, empty and repeated keys, null and empty values, and headers
/// (duplicate keys, a null value) whose first one is the record's number.
fn record(i: usize) -> Record {
    let key = match i % 10 {
        0 => None,
        1 => Some(Vec::new()),
        _ => Some(format!("key-{}", i % 500).into_bytes()),
    };
    let value = match i % 7 {
        0 => None,
        1 => Some(Vec::new()),
        _ => Some(format!("value {i}; ").repeat(1 + i % 5).into_bytes()),
    };
    let mut headers = vec![("i".to_owned(), Some(i.to_string().into_bytes()))];
    if i.is_multiple_of(3) {
        headers.push(("dup".to_owned(), Some(b"first".to_vec())));
        headers.push(("dup".to_owned(), Some(b"second".to_vec())));
        headers.push(("null".to_owned(), None));
        headers.push(("empty".to_owned(), Some(Vec::new())));
    }
    Record {
        key,
        value,
        headers,
    }
}

fn to_producer_record(topic: &str, r: &Record) -> ProducerRecord {
    let mut out = ProducerRecord::new(topic);
    out.key = r.key.clone().map(Into::into);
    out.value = r.value.clone().map(Into::into);
    out.headers = r
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().map(Into::into)))
        .collect();
    out
}

fn config(broker: &TestBroker) -> ProducerConfigBuilder {
    ProducerConfig::builder()
        .bootstrap(&broker.bootstrap())
        .request_timeout(Duration::from_secs(10))
}

async fn producer(builder: ProducerConfigBuilder) -> Producer {
    Producer::new(builder.build().unwrap()).await.unwrap()
}

/// A read-back record with where it was.
#[derive(Debug)]
struct Read {
    partition: i32,
    offset: i64,
    record: Record,
}

/// Reads `count` records from every partition of `topic` from the start (assign, no group).
async fn consume(broker: &TestBroker, topic: &str, count: usize) -> Vec<Read> {
    let consumer: StreamConsumer = rdkafka_config(&broker.bootstrap())
        // librdkafka refuses `assign` without a group id, although it never contacts it here.
        .set("group.id", "sluice-produce-unused")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut read = Vec::with_capacity(count);
    while read.len() < count {
        let message = tokio::time::timeout(CONSUME_TIMEOUT, consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{topic}: only {} of {count} records came back within {CONSUME_TIMEOUT:?}; broker log {}:\n{}",
                    read.len(),
                    broker.log_path().display(),
                    broker.log_tail()
                )
            })
            .unwrap();
        let headers = message.headers().map_or_else(Vec::new, |headers| {
            headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        });
        read.push(Read {
            partition: message.partition(),
            offset: message.offset(),
            record: Record {
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
                headers,
            },
        });
    }
    // Anything more would be a duplicate: give it a moment to show up.
    if let Ok(Ok(extra)) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
        panic!(
            "{topic}: more than {count} records: {}-{}",
            extra.partition(),
            extra.offset()
        );
    }
    read
}

fn index_of(record: &Record) -> usize {
    let (_, value) = &record.headers[0];
    std::str::from_utf8(value.as_deref().unwrap())
        .unwrap()
        .parse()
        .unwrap()
}

/// Checks what came back against what was written: each record exactly once and unchanged,
/// in send order within each partition, keyed records where Java puts them, and at the
/// offsets the deliveries reported.
fn check(
    topic: &str,
    written: &[Record],
    delivered: &[RecordMetadata],
    read: Vec<Read>,
    offsets_known: bool,
) {
    let mut seen: HashMap<usize, (i32, i64)> = HashMap::new();
    let mut by_partition: BTreeMap<i32, Vec<(i64, usize)>> = BTreeMap::new();
    for r in read {
        let i = index_of(&r.record);
        assert_eq!(r.record, written[i], "{topic}: record {i} changed");
        if let Some(first) = seen.insert(i, (r.partition, r.offset)) {
            panic!(
                "{topic}: record {i} read twice, at {first:?} and {}-{}",
                r.partition, r.offset
            );
        }
        by_partition
            .entry(r.partition)
            .or_default()
            .push((r.offset, i));
        if let Some(key) = &written[i].key {
            let expected = to_positive(murmur2(key) as i32) % PARTITIONS;
            assert_eq!(
                r.partition, expected,
                "{topic}: keyed record {i} in the wrong partition"
            );
        }
        let metadata = &delivered[i];
        assert_eq!(
            metadata.partition, r.partition,
            "{topic}: record {i} delivered to another partition"
        );
        if offsets_known {
            assert_eq!(
                metadata.offset, r.offset,
                "{topic}: record {i} reported at another offset"
            );
        } else {
            assert_eq!(metadata.offset, -1, "{topic}: acks=0 offsets are unknown");
        }
    }
    assert_eq!(seen.len(), written.len(), "{topic}: records missing");
    for (partition, mut records) in by_partition {
        records.sort_unstable();
        let order: Vec<usize> = records.iter().map(|&(_, i)| i).collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "{topic}: partition {partition} out of send order"
        );
    }
}

/// Sends `count` records, awaiting deliveries only at the end, then reads them back.
async fn produce_and_check(
    broker: &TestBroker,
    topic: &str,
    producer: &Producer,
    count: usize,
    acks: Acks,
) {
    create_topic_with_rdkafka(&broker.bootstrap(), topic, PARTITIONS).await;
    let written: Vec<Record> = (0..count).map(record).collect();
    let mut pending = Vec::with_capacity(count);
    for r in &written {
        pending.push(producer.send(to_producer_record(topic, r)).await.unwrap());
    }
    let mut delivered = Vec::with_capacity(count);
    for delivery in pending {
        let metadata = delivery
            .await
            .unwrap_or_else(|e| panic!("{topic}: delivery failed: {e}"));
        assert_eq!(&*metadata.topic, topic);
        delivered.push(metadata);
    }
    let read = consume(broker, topic, count).await;
    check(topic, &written, &delivered, read, acks != Acks::None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_records_in_every_codec_with_acks_1_and_all() {
    let broker = TestBroker::start();
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        for acks in [Acks::Leader, Acks::All] {
            // acks=all leaves idempotence on (the default); acks=1 turns it off quietly.
            let producer = producer(config(&broker).compression(codec).acks(acks)).await;
            let topic = format!("produce-{codec}-acks{}", acks.wire());
            let started = Instant::now();
            produce_and_check(&broker, &topic, &producer, 10_000, acks).await;
            eprintln!(
                "{topic}: 10000 records written and read back in {:?}",
                started.elapsed()
            );
            producer.close().await;
        }
    }
}

#[tokio::test]
async fn acks_0_writes_without_offsets() {
    let broker = TestBroker::start();
    let producer = producer(config(&broker).acks(Acks::None)).await;
    produce_and_check(&broker, "produce-acks0", &producer, 1_000, Acks::None).await;
}

#[tokio::test]
async fn flush_sends_without_waiting_for_linger() {
    let broker = TestBroker::start();
    let topic = "produce-flush";
    create_topic_with_rdkafka(&broker.bootstrap(), topic, PARTITIONS).await;
    let linger = Duration::from_secs(30);
    let producer = producer(
        config(&broker)
            .linger(linger)
            .delivery_timeout(Duration::from_secs(60)),
    )
    .await;
    let written: Vec<Record> = (0..100).map(record).collect();
    let mut pending = Vec::new();
    for r in &written {
        pending.push(producer.send(to_producer_record(topic, r)).await.unwrap());
    }
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), producer.flush())
        .await
        .expect("flush took too long");
    assert!(started.elapsed() < linger);
    let mut delivered = Vec::new();
    for delivery in pending {
        // Flush returned: every delivery is decided already.
        let metadata = tokio::time::timeout(Duration::from_millis(100), delivery)
            .await
            .unwrap()
            .unwrap();
        delivered.push(metadata);
    }
    let read = consume(&broker, topic, written.len()).await;
    check(topic, &written, &delivered, read, true);
}

#[tokio::test]
async fn a_tiny_buffer_makes_send_wait_and_loses_nothing() {
    let broker = TestBroker::start();
    let topic = "produce-backpressure";
    create_topic_with_rdkafka(&broker.bootstrap(), topic, PARTITIONS).await;
    let buffer = 8 * 1024;
    let linger = Duration::from_millis(50);
    // Batches larger than the whole buffer never fill: they leave only when linger expires, so
    // each time ~8 KiB are queued `send` must wait until a batch completes.
    let producer = producer(
        config(&broker)
            .buffer_memory(buffer)
            .batch_size(64 * 1024)
            .linger(linger),
    )
    .await;
    let count = 1_000;
    let value = vec![b'x'; 500];
    let mut pending = Vec::new();
    let mut longest_wait = Duration::ZERO;
    for i in 0..count {
        let started = Instant::now();
        let record = ProducerRecord::new(topic)
            .key(format!("k{i}"))
            .value(value.clone())
            .header("i", i.to_string());
        pending.push(producer.send(record).await.unwrap());
        longest_wait = longest_wait.max(started.elapsed());
        assert!(producer.buffer_memory() - producer.available_memory() <= buffer);
    }
    assert!(
        longest_wait >= linger / 2,
        "send never waited for memory (longest {longest_wait:?})"
    );
    let mut delivered = Vec::new();
    for delivery in pending {
        delivered.push(delivery.await.unwrap());
    }
    assert_eq!(
        producer.available_memory(),
        buffer,
        "completed batches give their memory back"
    );
    let read = consume(&broker, topic, count).await;
    let mut indices: Vec<usize> = read.iter().map(|r| index_of(&r.record)).collect();
    indices.sort_unstable();
    assert_eq!(
        indices,
        (0..count).collect::<Vec<_>>(),
        "each record exactly once"
    );
    for r in &read {
        let i = index_of(&r.record);
        assert_eq!(
            (delivered[i].partition, delivered[i].offset),
            (r.partition, r.offset)
        );
    }
}

#[tokio::test]
async fn records_that_cannot_be_sent_are_handed_back() {
    let broker = TestBroker::start();
    let topic = "produce-refused";
    create_topic_with_rdkafka(&broker.bootstrap(), topic, PARTITIONS).await;
    let producer = producer(config(&broker).max_request_size(10_000)).await;

    // Larger than max.request.size: refused before anything is sent.
    let big = ProducerRecord::new(topic).key("k").value(vec![0u8; 20_000]);
    let err = producer.send(big.clone()).await.unwrap_err();
    assert_eq!(
        err.error.code(),
        Some(KafkaCode::MESSAGE_TOO_LARGE),
        "{}",
        err.error
    );
    assert_eq!(err.record, big);

    // A topic that does not exist. Tansu would answer a produce to it with success and drop
    // the records (tansu-notes.md gap 4), so `send` checks the metadata first, as Java does;
    // it fails at once rather than waiting max.block.ms for someone to create it. Like Java,
    // `Producer::new` lets Metadata requests create topics, and Tansu then creates it (as
    // Kafka with auto.create.topics.enable=true would): so this part uses a cluster handle
    // that does not ask for creation, which is what a broker with auto-creation off answers.
    let config = config(&broker).max_request_size(10_000).build().unwrap();
    let options = ClusterOptions {
        allow_auto_topic_creation: false,
        ..ClusterOptions::from_client(config.client())
    };
    let strict = Producer::with_cluster(Cluster::connect(options).await.unwrap(), &config).unwrap();
    let missing = ProducerRecord::new("produce-no-such-topic").value("v");
    let err = strict.send(missing.clone()).await.unwrap_err();
    assert_eq!(
        err.error.code(),
        Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION),
        "{}",
        err.error
    );
    assert_eq!(err.record, missing);
    strict.close().await;

    // A partition the topic does not have.
    let beyond = ProducerRecord::new(topic).partition(PARTITIONS).value("v");
    let err = producer.send(beyond.clone()).await.unwrap_err();
    assert_eq!(
        err.error.code(),
        Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION),
        "{}",
        err.error
    );
    assert_eq!(err.record, beyond);

    // The producer still works, and after close it refuses records.
    let ok = producer
        .send(ProducerRecord::new(topic).partition(1).value("fine"))
        .await
        .unwrap();
    assert_eq!(ok.await.unwrap().partition, 1);
    producer.close().await;
    let late = ProducerRecord::new(topic).value("late");
    let err = producer.send(late.clone()).await.unwrap_err();
    assert!(matches!(err.error, Error::Closed), "{}", err.error);
    assert_eq!(err.record, late);
}

#[tokio::test]
async fn a_broker_that_is_gone_fails_deliveries_with_a_timeout() {
    let broker = TestBroker::start();
    let topic = "produce-gone";
    create_topic_with_rdkafka(&broker.bootstrap(), topic, PARTITIONS).await;
    let producer = producer(
        config(&broker)
            .request_timeout(Duration::from_secs(1))
            .connect_timeout(Duration::from_secs(1))
            .delivery_timeout(Duration::from_secs(3)),
    )
    .await;
    producer
        .send(ProducerRecord::new(topic).value("first"))
        .await
        .unwrap()
        .await
        .unwrap();
    drop(broker);
    let started = Instant::now();
    // The topic's metadata is cached, so these are enqueued; their delivery cannot succeed.
    let mut pending = Vec::new();
    for i in 0..10 {
        pending.push(
            producer
                .send(ProducerRecord::new(topic).value(format!("lost {i}")))
                .await
                .unwrap(),
        );
    }
    for delivery in pending {
        let err = tokio::time::timeout(Duration::from_secs(10), delivery)
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    producer.close_timeout(Duration::ZERO).await;
}

/// The batches the idempotent producer wrote carry its producer id and sequences without gaps
/// per partition; with acks=1 (idempotence off) they carry none. Read with sluice's consumer,
/// which hands out whole batches (librdkafka does not show batch headers).
#[tokio::test]
async fn idempotent_batches_carry_a_producer_id_and_gap_free_sequences() {
    use sluice_client::config::ConsumerConfig;
    use sluice_client::consumer::{Consumer, Offset};

    let broker = TestBroker::start();
    let count = 3_000;
    for (acks, idempotent) in [(Acks::All, true), (Acks::Leader, false)] {
        let topic = format!("produce-sequences-acks{}", acks.wire());
        create_topic_with_rdkafka(&broker.bootstrap(), &topic, PARTITIONS).await;
        // Small batches, so that each partition gets many and several are in flight at once.
        let producer = producer(config(&broker).acks(acks).batch_size(1024)).await;
        let mut pending = Vec::new();
        for i in 0..count {
            pending.push(
                producer
                    .send(to_producer_record(&topic, &record(i)))
                    .await
                    .unwrap(),
            );
        }
        for delivery in pending {
            delivery.await.unwrap();
        }
        producer.close().await;

        let consumer_config = ConsumerConfig::builder()
            .bootstrap(&broker.bootstrap())
            .build()
            .unwrap();
        let mut consumer = Consumer::new(consumer_config).await.unwrap();
        let assignment: Vec<(&str, i32, Offset)> = (0..PARTITIONS)
            .map(|p| (topic.as_str(), p, Offset::Beginning))
            .collect();
        consumer.assign_with_offsets(&assignment);
        let mut next_sequence: HashMap<i32, i32> = HashMap::new();
        let mut producer_ids = std::collections::HashSet::new();
        let mut batches = 0;
        let mut records = 0;
        while records < count {
            let fetched = tokio::time::timeout(CONSUME_TIMEOUT, consumer.poll_batch())
                .await
                .unwrap()
                .unwrap();
            let batch = fetched.batch();
            batches += 1;
            records += usize::try_from(batch.records_count()).unwrap();
            if idempotent {
                assert!(
                    batch.producer_id() >= 0 && batch.producer_epoch() >= 0,
                    "{topic}: no producer id"
                );
                producer_ids.insert((batch.producer_id(), batch.producer_epoch()));
                let expected = next_sequence.entry(fetched.partition()).or_insert(0);
                assert_eq!(
                    batch.base_sequence(),
                    *expected,
                    "{topic}-{}: sequence gap",
                    fetched.partition()
                );
                *expected += batch.records_count();
            } else {
                assert_eq!(
                    (batch.producer_id(), batch.base_sequence()),
                    (-1, -1),
                    "{topic}"
                );
            }
        }
        assert_eq!(records, count, "{topic}");
        assert!(
            batches > 3 * PARTITIONS as usize,
            "{topic}: only {batches} batches"
        );
        if idempotent {
            assert_eq!(
                producer_ids.len(),
                1,
                "{topic}: one producer identity throughout"
            );
        }
    }
}
