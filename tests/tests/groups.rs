//! sluice's consumer groups on the local broker: members split a topic's partitions, take
//! over from a member that leaves cleanly and from one that is killed, and, committing before
//! partitions are revoked, consume every record exactly once across clean hand-overs.
//!
//! Tansu holds JoinGroup for half the session timeout (tansu-notes.md, gap 6), so sessions
//! are short here. The same scenario runs on the mock cluster in `mock_groups_sluice.rs`.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sluice_client::config::ProducerConfig;
use sluice_client::producer::{Producer, ProducerRecord};
use sluice_tests::{create_topic_with_rdkafka, SluiceMember, TestBroker};

const PARTITIONS: i32 = 6;
const WAIT: Duration = Duration::from_secs(60);

/// Waits until `members` own every partition exactly once between them and have read
/// `expected` distinct records.
async fn settle(members: &[&SluiceMember], expected: usize, dead: &[Vec<(i32, i64, String)>]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let owned: Vec<BTreeSet<i32>> = members.iter().map(|m| m.owned()).collect();
        let total: usize = owned.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<i32> = owned.iter().flatten().copied().collect();
        let distinct: BTreeSet<(i32, i64)> = members
            .iter()
            .flat_map(|m| m.records())
            .chain(dead.iter().flatten().cloned())
            .map(|(p, o, _)| (p, o))
            .collect();
        let split = total == PARTITIONS as usize && union.len() == PARTITIONS as usize;
        if split && distinct.len() >= expected && owned.iter().all(|o| !o.is_empty()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: ownership {owned:?}, {} of {expected} records",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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
    produce(&producer, &topic, 0..600).await;
    let a = SluiceMember::start(bootstrap, &group, &topic, assignor);
    let b = SluiceMember::start(bootstrap, &group, &topic, assignor);
    settle(&[&a, &b], 600, &[]).await;

    let c = SluiceMember::start(bootstrap, &group, &topic, assignor);
    produce(&producer, &topic, 600..1200).await;
    settle(&[&a, &b, &c], 1200, &[]).await;

    let left = a.leave().await;
    produce(&producer, &topic, 1200..1800).await;
    settle(&[&b, &c], 1800, std::slice::from_ref(&left)).await;

    // Clean hand-overs so far: every record read exactly once.
    let mut count: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for (p, o, _) in left.iter().chain(&b.records()).chain(&c.records()) {
        *count.entry((*p, *o)).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "read twice across clean rebalances: {twice:?}"
    );
    assert_eq!(count.len(), 1800);

    let killed = c.kill();
    produce(&producer, &topic, 1800..2400).await;
    // The killed member's partitions come back after its session times out; what it read
    // after its last commit may be read again, nothing may be missing.
    settle(&[&b], 2400, &[left, killed]).await;
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
