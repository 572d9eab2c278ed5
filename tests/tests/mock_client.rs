//! sluice's client on the mock cluster, where faults Tansu cannot produce are injected: a
//! consumer fetching from several brokers at once, leader moves while producing and
//! consuming, retriable errors and cut connections under the idempotent producer, and
//! OFFSET_OUT_OF_RANGE with each reset policy.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sluice_client::admin::Admin;
use sluice_client::config::{AdminConfig, ConsumerConfig, ProducerConfig};
use sluice_client::consumer::{Consumer, Offset};
use sluice_client::producer::{Producer, ProducerRecord};
use sluice_client::KafkaCode;
use sluice_mock::{ApiKey, Fault, MockCluster, MockConfig, ResponseError};

const WAIT: Duration = Duration::from_secs(30);

fn props(bootstrap: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut props = vec![("bootstrap.servers".to_owned(), bootstrap.to_owned())];
    props.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    props
}

async fn producer(bootstrap: &str) -> Producer {
    let config = ProducerConfig::from_properties(props(
        bootstrap,
        &[("linger.ms", "2"), ("retry.backoff.ms", "10")],
    ))
    .unwrap();
    Producer::new(config).await.unwrap()
}

async fn consumer(bootstrap: &str, extra: &[(&str, &str)]) -> Consumer {
    let config = ConsumerConfig::from_properties(props(bootstrap, extra)).unwrap();
    Consumer::new(config).await.unwrap()
}

/// Sends values `from..to` round-robin over `partitions` partitions of `topic` and returns
/// partition -> (offset, value) as acknowledged.
async fn produce(
    producer: &Producer,
    topic: &str,
    partitions: i32,
    range: std::ops::Range<usize>,
) -> BTreeMap<i32, Vec<(i64, String)>> {
    let mut pending = Vec::new();
    for i in range {
        let value = format!("v{i}");
        let record = ProducerRecord::new(topic)
            .value(value.clone())
            .partition(i as i32 % partitions);
        pending.push((value, producer.send(record).await.unwrap()));
    }
    let mut acked: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for (value, delivery) in pending {
        let meta = delivery.await.unwrap();
        acked
            .entry(meta.partition)
            .or_default()
            .push((meta.offset, value));
    }
    for records in acked.values_mut() {
        records.sort();
    }
    acked
}

/// Reads until `expected` records arrived (or fails after [`WAIT`]).
async fn consume(consumer: &mut Consumer, expected: usize) -> BTreeMap<i32, Vec<(i64, String)>> {
    let mut read: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let deadline = Instant::now() + WAIT;
    let mut total = 0;
    while total < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let batch = tokio::time::timeout(left, consumer.poll_batch())
            .await
            .unwrap_or_else(|_| panic!("read {total} of {expected} records"))
            .unwrap();
        for record in batch.to_records().unwrap() {
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            read.entry(record.partition)
                .or_default()
                .push((record.offset, value));
            total += 1;
        }
    }
    read
}

fn from_beginning(topic: &str, partitions: i32) -> Vec<(&str, i32, Offset)> {
    (0..partitions)
        .map(|p| (topic, p, Offset::Beginning))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_fetches_from_every_broker_at_once() {
    // Regression: with the default buffer bound (64 MiB) and fetch.max.bytes (50 MiB) the
    // first fetcher's reservation left too little room for the others, so partitions led by
    // the other brokers were never fetched. Tansu has one broker, so only a cluster shows it.
    let cluster = MockCluster::start(MockConfig::with_brokers(3))
        .await
        .unwrap();
    cluster.create_topic("spread", 6);
    let leaders: std::collections::BTreeSet<i32> =
        (0..6).filter_map(|p| cluster.leader("spread", p)).collect();
    assert_eq!(leaders.len(), 3, "partitions spread over all brokers");
    let bootstrap = cluster.bootstrap();
    let written = produce(&producer(&bootstrap).await, "spread", 6, 0..600).await;
    let mut consumer = consumer(&bootstrap, &[]).await;
    consumer.assign_with_offsets(&from_beginning("spread", 6));
    assert_eq!(consume(&mut consumer, 600).await, written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_and_consumer_follow_leader_moves() {
    let cluster = MockCluster::start(MockConfig::with_brokers(3))
        .await
        .unwrap();
    cluster.create_topic("moving", 3);
    let bootstrap = cluster.bootstrap();
    let producer = producer(&bootstrap).await;
    let mut written = produce(&producer, "moving", 3, 0..300).await;
    let mut consumer = consumer(&bootstrap, &[]).await;
    consumer.assign_with_offsets(&from_beginning("moving", 3));
    let mut read = consume(&mut consumer, 300).await;

    for p in 0..3 {
        let leader = cluster.leader("moving", p).unwrap();
        assert!(cluster.move_leader("moving", p, leader % 3 + 1));
    }
    for (p, records) in produce(&producer, "moving", 3, 300..600).await {
        written.entry(p).or_default().extend(records);
    }
    for (p, records) in consume(&mut consumer, 300).await {
        read.entry(p).or_default().extend(records);
    }
    assert_eq!(read, written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_keeps_order_through_errors_and_cut_connections() {
    let cluster = MockCluster::start(MockConfig::with_brokers(2))
        .await
        .unwrap();
    cluster.create_topic("faulty", 2);
    let bootstrap = cluster.bootstrap();
    let producer = producer(&bootstrap).await;
    let mut written = produce(&producer, "faulty", 2, 0..100).await;
    cluster.inject(
        Fault::error(ApiKey::Produce, ResponseError::NotLeaderOrFollower)
            .partition("faulty", 0)
            .times(3),
    );
    cluster.inject(Fault::error(ApiKey::Produce, ResponseError::RequestTimedOut).times(2));
    // Cut after the broker appended: the retry must be recognised as a duplicate.
    cluster.inject(
        Fault::disconnect_mid_response()
            .api(ApiKey::Produce)
            .after(3)
            .times(2),
    );
    for (p, records) in produce(&producer, "faulty", 2, 100..400).await {
        written.entry(p).or_default().extend(records);
    }
    assert_eq!(cluster.pending_faults(), 0, "every injected fault fired");
    // Each partition holds exactly the acknowledged records, in send order, once.
    for p in 0..2 {
        let expected: Vec<String> = (0..400)
            .filter(|i| i % 2 == p as usize)
            .map(|i| format!("v{i}"))
            .collect();
        let values: Vec<String> = written[&p].iter().map(|(_, v)| v.clone()).collect();
        assert_eq!(values, expected, "partition {p}");
        assert_eq!(
            cluster.offsets("faulty", p).unwrap().high_watermark,
            expected.len() as i64,
            "no duplicates in partition {p}"
        );
    }
    let mut consumer = consumer(&bootstrap, &[]).await;
    consumer.assign_with_offsets(&from_beginning("faulty", 2));
    assert_eq!(consume(&mut consumer, 400).await, written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_out_of_range_follows_the_reset_policy() {
    let cluster = MockCluster::start(MockConfig::with_brokers(1))
        .await
        .unwrap();
    cluster.create_topic("trimmed", 1);
    let bootstrap = cluster.bootstrap();
    produce(&producer(&bootstrap).await, "trimmed", 1, 0..100).await;
    let admin = Admin::new(AdminConfig::from_properties(props(&bootstrap, &[])).unwrap())
        .await
        .unwrap();
    let low = admin
        .delete_records(&[("trimmed", 0, 60)])
        .await
        .into_result()
        .unwrap();
    assert_eq!(low[0].1, 60);

    // earliest: offset 10 is gone, so reading restarts at the log start.
    let mut earliest = consumer(&bootstrap, &[("auto.offset.reset", "earliest")]).await;
    earliest.assign_with_offsets(&[("trimmed", 0, Offset::Exact(10))]);
    let read = consume(&mut earliest, 40).await;
    assert_eq!(read[&0].first().unwrap(), &(60, "v60".to_owned()));
    assert_eq!(read[&0].len(), 40);

    // latest: past the end is out of range too; reading restarts at the end.
    let mut latest = consumer(&bootstrap, &[("auto.offset.reset", "latest")]).await;
    latest.assign_with_offsets(&[("trimmed", 0, Offset::Exact(500))]);
    let deadline = Instant::now() + WAIT;
    while latest.position("trimmed", 0) != Some(100) {
        assert!(
            Instant::now() < deadline,
            "position {:?}",
            latest.position("trimmed", 0)
        );
        let _ = tokio::time::timeout(Duration::from_millis(50), latest.poll_batch()).await;
    }

    // none: the error reaches the application.
    let mut none = consumer(&bootstrap, &[("auto.offset.reset", "none")]).await;
    none.assign_with_offsets(&[("trimmed", 0, Offset::Exact(10))]);
    let err = tokio::time::timeout(WAIT, none.poll_batch())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), Some(KafkaCode::OFFSET_OUT_OF_RANGE), "{err}");
}
