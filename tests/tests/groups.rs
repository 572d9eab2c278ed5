//! sluice's consumer groups on the local broker: members split a topic's partitions, take
//! over from a member that leaves cleanly and from one that is killed, and, committing before
//! partitions are revoked, consume every record exactly once across clean hand-overs.
//!
//! Tansu holds JoinGroup for half the session timeout (tansu-notes.md, gap 6), so sessions
//! are short here. The same scenario runs on the mock cluster in `mock_groups_sluice.rs`.
#![allow(clippy::unwrap_used)]

use sluice_client::config::ProducerConfig;
use sluice_client::producer::Producer;
use sluice_tests::{
    create_topic_with_rdkafka, produce_values, read_counts, settle, SluiceMember, TestBroker,
};

const PARTITIONS: i32 = 6;

/// Two, then three members; one leaves cleanly, one is killed. Returns every record read
/// before the kill and after it, per (partition, offset): how many times it was read.
pub async fn members_share_and_hand_over(bootstrap: &str, assignor: &str) {
    let topic = format!("groups-{assignor}");
    let group = format!("g-{assignor}");
    let producer = Producer::new(
        ProducerConfig::from_properties([("bootstrap.servers", bootstrap), ("linger.ms", "2")])
            .unwrap(),
    )
    .await
    .unwrap();
    produce_values(&producer, &topic, PARTITIONS, 0..600).await;
    let a = SluiceMember::start(bootstrap, &group, &topic, assignor);
    let b = SluiceMember::start(bootstrap, &group, &topic, assignor);
    settle(
        PARTITIONS,
        || vec![a.owned(), b.owned()],
        || [a.records(), b.records()].concat(),
        600,
    )
    .await;

    let c = SluiceMember::start(bootstrap, &group, &topic, assignor);
    produce_values(&producer, &topic, PARTITIONS, 600..1200).await;
    settle(
        PARTITIONS,
        || vec![a.owned(), b.owned(), c.owned()],
        || [a.records(), b.records(), c.records()].concat(),
        1200,
    )
    .await;

    let left = a.leave().await;
    produce_values(&producer, &topic, PARTITIONS, 1200..1800).await;
    settle(
        PARTITIONS,
        || vec![b.owned(), c.owned()],
        || [left.clone(), b.records(), c.records()].concat(),
        1800,
    )
    .await;

    // Clean hand-overs so far: every record read exactly once.
    let count = read_counts([&left, &b.records(), &c.records()]);
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "read twice across clean rebalances: {twice:?}"
    );
    assert_eq!(count.len(), 1800);

    let killed = c.kill();
    produce_values(&producer, &topic, PARTITIONS, 1800..2400).await;
    // The killed member's partitions come back after its session times out; what it read
    // after its last commit may be read again, nothing may be missing.
    settle(
        PARTITIONS,
        || vec![b.owned()],
        || [left.clone(), killed.clone(), b.records()].concat(),
        2400,
    )
    .await;
    b.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_members_share_and_hand_over_on_the_local_broker() {
    let broker = TestBroker::start();
    create_topic_with_rdkafka(&broker.bootstrap(), "groups-range", PARTITIONS).await;
    members_share_and_hand_over(&broker.bootstrap(), "range").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_members_share_and_hand_over_on_the_local_broker() {
    let broker = TestBroker::start();
    create_topic_with_rdkafka(&broker.bootstrap(), "groups-cooperative-sticky", PARTITIONS).await;
    members_share_and_hand_over(&broker.bootstrap(), "cooperative-sticky").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_members_share_and_hand_over_on_the_mock_cluster() {
    let cluster = sluice_mock::MockCluster::start(sluice_mock::MockConfig::with_brokers(3))
        .await
        .unwrap();
    cluster.create_topic("groups-range", PARTITIONS);
    members_share_and_hand_over(&cluster.bootstrap(), "range").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_members_share_and_hand_over_on_the_mock_cluster() {
    let cluster = sluice_mock::MockCluster::start(sluice_mock::MockConfig::with_brokers(3))
        .await
        .unwrap();
    cluster.create_topic("groups-cooperative-sticky", PARTITIONS);
    members_share_and_hand_over(&cluster.bootstrap(), "cooperative-sticky").await;
}

/// `group.protocol=consumer` against a broker without KIP-848 (Tansu offers no
/// ConsumerGroupHeartbeat): the members fall back to the classic protocol and still split the
/// topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_falls_back_to_classic_where_the_broker_lacks_it() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    create_topic_with_rdkafka(&bootstrap, "groups-fallback", PARTITIONS).await;
    let producer = Producer::new(
        ProducerConfig::from_properties([("bootstrap.servers", bootstrap.as_str())]).unwrap(),
    )
    .await
    .unwrap();
    produce_values(&producer, "groups-fallback", PARTITIONS, 0..300).await;
    let extra = [("group.protocol", "consumer")];
    let a = SluiceMember::start_with(&bootstrap, "g-fallback", "groups-fallback", "range", &extra);
    let b = SluiceMember::start_with(&bootstrap, "g-fallback", "groups-fallback", "range", &extra);
    settle(
        PARTITIONS,
        || vec![a.owned(), b.owned()],
        || [a.records(), b.records()].concat(),
        300,
    )
    .await;
    let count = read_counts([&a.leave().await, &b.leave().await]);
    assert_eq!(count.len(), 300);
    assert!(count.values().all(|n| *n == 1), "a record was read twice");
}
