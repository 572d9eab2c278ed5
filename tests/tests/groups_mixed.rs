//! Mixed groups: sluice members and librdkafka members in one consumer group share the
//! partitions, because both speak the same consumer protocol and the same assignors (range,
//! cooperative-sticky). Whichever client leads computes an assignment the other one reads; when
//! one leaves the other takes over from its committed offsets, so nothing is read twice.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sluice_client::config::ProducerConfig;
use sluice_client::producer::Producer;
use sluice_tests::{
    create_topic_with_rdkafka, produce_values, read_counts, settle, RdkafkaMember, SluiceMember,
    TestBroker,
};

const PARTITIONS: i32 = 6;

async fn mixed_group(bootstrap: &str, assignor: &str) {
    let topic = format!("mixed-{assignor}");
    let group = format!("mixed-{assignor}");
    let producer = Producer::new(
        ProducerConfig::from_properties([("bootstrap.servers", bootstrap), ("linger.ms", "2")])
            .unwrap(),
    )
    .await
    .unwrap();
    produce_values(&producer, &topic, PARTITIONS, 0..600).await;

    // librdkafka joins first, so it leads the first generation; then sluice joins.
    let rd = RdkafkaMember::start(bootstrap, &group, &topic, assignor);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sl = SluiceMember::start(bootstrap, &group, &topic, assignor);
    settle(
        PARTITIONS,
        || vec![rd.owned(), sl.owned()],
        || [rd.records(), sl.records()].concat(),
        600,
    )
    .await;

    // librdkafka leaves: sluice takes everything over (and leads).
    let rd_read = tokio::task::spawn_blocking(move || rd.leave())
        .await
        .unwrap();
    produce_values(&producer, &topic, PARTITIONS, 600..1200).await;
    settle(
        PARTITIONS,
        || vec![sl.owned()],
        || [rd_read.clone(), sl.records()].concat(),
        1200,
    )
    .await;

    // A librdkafka member joins a group sluice leads.
    let rd2 = RdkafkaMember::start(bootstrap, &group, &topic, assignor);
    produce_values(&producer, &topic, PARTITIONS, 1200..1800).await;
    settle(
        PARTITIONS,
        || vec![rd2.owned(), sl.owned()],
        || [rd_read.clone(), rd2.records(), sl.records()].concat(),
        1800,
    )
    .await;

    let sl_read = sl.leave().await;
    let rd2_read = tokio::task::spawn_blocking(move || rd2.leave())
        .await
        .unwrap();
    let count = read_counts([&rd_read, &sl_read, &rd2_read]);
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
