//! Mixed groups: sluice members and librdkafka members in one consumer group share the
//! partitions, because both speak the same consumer protocol and the same assignors (range,
//! cooperative-sticky). Whichever client leads computes an assignment the other one reads; when
//! one leaves the other takes over from its committed offsets, so nothing is read twice.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sluice_client::config::ProducerConfig;
use sluice_client::producer::{Producer, ProducerRecord};
use sluice_tests::{create_topic_with_rdkafka, RdkafkaMember, SluiceMember, TestBroker};

const PARTITIONS: i32 = 6;
const WAIT: Duration = Duration::from_secs(60);

async fn produce(producer: &Producer, topic: &str, range: std::ops::Range<usize>) {
    let mut pending = Vec::new();
    for i in range {
        let record = ProducerRecord::new(topic)
            .value(format!("v{i}"))
            .partition(i as i32 % PARTITIONS);
        pending.push(producer.send(record).await.unwrap());
    }
    for delivery in pending {
        delivery.await.unwrap();
    }
}

/// Waits until the owners split all partitions between them (each owning some) and
/// `expected` distinct records were read.
async fn settle(
    owned: &dyn Fn() -> Vec<BTreeSet<i32>>,
    read: &dyn Fn() -> Vec<(i32, i64, String)>,
    expected: usize,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let owned = owned();
        let total: usize = owned.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<i32> = owned.iter().flatten().copied().collect();
        let distinct: BTreeSet<(i32, i64)> = read().into_iter().map(|(p, o, _)| (p, o)).collect();
        if total == PARTITIONS as usize
            && union.len() == PARTITIONS as usize
            && owned.iter().all(|o| !o.is_empty())
            && distinct.len() >= expected
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {owned:?}, {} of {expected} records",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn mixed_group(bootstrap: &str, assignor: &str) {
    let topic = format!("mixed-{assignor}");
    let group = format!("mixed-{assignor}");
    let producer = Producer::new(
        ProducerConfig::from_properties([("bootstrap.servers", bootstrap), ("linger.ms", "2")])
            .unwrap(),
    )
    .await
    .unwrap();
    produce(&producer, &topic, 0..600).await;

    // librdkafka joins first, so it leads the first generation; then sluice joins.
    let rd = RdkafkaMember::start(bootstrap, &group, &topic, assignor);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sl = SluiceMember::start(bootstrap, &group, &topic, assignor);
    settle(
        &|| vec![rd.owned(), sl.owned()],
        &|| [rd.records(), sl.records()].concat(),
        600,
    )
    .await;

    // librdkafka leaves: sluice takes everything over (and leads).
    let rd_read = tokio::task::spawn_blocking(move || rd.leave())
        .await
        .unwrap();
    produce(&producer, &topic, 600..1200).await;
    settle(
        &|| vec![sl.owned()],
        &|| [rd_read.clone(), sl.records()].concat(),
        1200,
    )
    .await;

    // A librdkafka member joins a group sluice leads.
    let rd2 = RdkafkaMember::start(bootstrap, &group, &topic, assignor);
    produce(&producer, &topic, 1200..1800).await;
    settle(
        &|| vec![rd2.owned(), sl.owned()],
        &|| [rd_read.clone(), rd2.records(), sl.records()].concat(),
        1800,
    )
    .await;

    let sl_read = sl.leave().await;
    let rd2_read = tokio::task::spawn_blocking(move || rd2.leave())
        .await
        .unwrap();
    let mut count: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for (p, o, _) in rd_read.iter().chain(&sl_read).chain(&rd2_read) {
        *count.entry((*p, *o)).or_default() += 1;
    }
    assert_eq!(count.len(), 1800, "every record read");
    let twice: Vec<_> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| *k)
        .collect();
    assert!(twice.is_empty(), "read twice across hand-overs: {twice:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_sluice_and_librdkafka_share_a_group_on_the_local_broker() {
    let broker = TestBroker::start();
    create_topic_with_rdkafka(&broker.bootstrap(), "mixed-range", PARTITIONS).await;
    mixed_group(&broker.bootstrap(), "range").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_sluice_and_librdkafka_share_a_group_on_the_local_broker() {
    let broker = TestBroker::start();
    create_topic_with_rdkafka(&broker.bootstrap(), "mixed-cooperative-sticky", PARTITIONS).await;
    mixed_group(&broker.bootstrap(), "cooperative-sticky").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_sluice_and_librdkafka_share_a_group_on_the_mock_cluster() {
    let cluster = sluice_mock::MockCluster::start(sluice_mock::MockConfig::with_brokers(3))
        .await
        .unwrap();
    cluster.create_topic("mixed-cooperative-sticky", PARTITIONS);
    mixed_group(&cluster.bootstrap(), "cooperative-sticky").await;
}
