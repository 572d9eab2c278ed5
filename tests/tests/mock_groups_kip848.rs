//! The KIP-848 consumer group protocol on the mock: librdkafka judges the mock's coordinator,
//! then sluice's KIP-848 member runs the same scenarios, alone and in a group with librdkafka
//! members. Consumers with `group.protocol=consumer` split a topic's partitions two then three
//! ways, hand them over when one leaves cleanly and when one is killed (its session times out
//! at the mock), resume from committed offsets, and the server-side `range` assignor gives
//! contiguous ranges.
//!
//! Members commit before a revocation, so across clean hand-overs no record is read twice; a
//! killed member's uncommitted records may be read again by the next owner, never lost.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use sluice_client::config::ProducerConfig;
use sluice_client::producer::Producer;
use sluice_mock::{
    ApiKey, ConsumerGroupDescription, Fault, MockCluster, MockConfig, ResponseError,
};
use sluice_tests::{produce_values, read_counts, settle, Change, RdkafkaMember, SluiceMember};

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 6;

/// A 3-broker cluster with KIP-848 timing short enough for tests (Kafka: 45 s and 5 s).
async fn cluster() -> MockCluster {
    let config = MockConfig {
        consumer_group_session_timeout: Duration::from_secs(3),
        consumer_group_heartbeat_interval: Duration::from_millis(200),
        ..MockConfig::with_brokers(3)
    };
    let cluster = MockCluster::start(config).await.unwrap();
    cluster.create_topic(TOPIC, PARTITIONS);
    cluster
}

async fn producer(bootstrap: &str) -> Producer {
    let config =
        ProducerConfig::from_properties([("bootstrap.servers", bootstrap), ("linger.ms", "2")])
            .unwrap();
    Producer::new(config).await.unwrap()
}

/// Waits until the coordinator sees exactly `members` members, all reconciled (Stable), and
/// returns the group.
async fn stable(cluster: &MockCluster, group: &str, members: usize) -> ConsumerGroupDescription {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let described = cluster.describe_consumer_group(group);
        if let Some(d) = described.as_ref() {
            if d.state == "Stable" && d.members.len() == members {
                return d.clone();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "group {group} not stable with {members} members: {described:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every partition is owned by exactly one member, as the coordinator sees it.
fn assert_one_owner_each(group: &ConsumerGroupDescription) {
    let mut owners: Vec<(String, i32)> = group
        .members
        .iter()
        .flat_map(|m| m.assigned.iter().cloned())
        .collect();
    owners.sort();
    let distinct: BTreeSet<(String, i32)> = owners.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        owners.len(),
        "a partition has two owners: {group:?}"
    );
    assert_eq!(
        distinct.len(),
        PARTITIONS as usize,
        "a partition has no owner: {group:?}"
    );
}

/// Which client a member runs.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Librdkafka,
    Sluice,
}

/// A group member of either kind, with `group.protocol=consumer`.
enum Peer {
    Rd(RdkafkaMember),
    Sl(SluiceMember),
}

impl Peer {
    /// Joins `group`; `name` is its client id.
    fn start(kind: Kind, bootstrap: &str, group: &str, name: &str) -> Peer {
        match kind {
            Kind::Librdkafka => Peer::Rd(RdkafkaMember::start_kip848(
                bootstrap, group, name, TOPIC, None,
            )),
            Kind::Sluice => Peer::Sl(SluiceMember::start_with(
                bootstrap,
                group,
                TOPIC,
                "range",
                &[("group.protocol", "consumer"), ("client.id", name)],
            )),
        }
    }

    fn owned(&self) -> BTreeSet<i32> {
        match self {
            Peer::Rd(m) => m.owned(),
            Peer::Sl(m) => m.owned(),
        }
    }

    fn records(&self) -> Vec<(i32, i64, String)> {
        match self {
            Peer::Rd(m) => m.records(),
            Peer::Sl(m) => m.records(),
        }
    }

    /// Commits and leaves the group (heartbeat with epoch -1).
    async fn leave(self) -> Vec<(i32, i64, String)> {
        match self {
            Peer::Rd(m) => tokio::task::spawn_blocking(move || m.leave())
                .await
                .unwrap(),
            Peer::Sl(m) => m.leave().await,
        }
    }

    /// Stops without committing or leaving; `cluster` cuts the member's connections (a
    /// librdkafka handle keeps heartbeating from its own threads otherwise).
    async fn kill(self, cluster: &MockCluster, name: &str) -> Vec<(i32, i64, String)> {
        let read = match self {
            Peer::Rd(m) => tokio::task::spawn_blocking(move || m.kill()).await.unwrap(),
            Peer::Sl(m) => m.kill(),
        };
        cluster.inject(Fault::disconnect().client_id(name).times(u64::MAX));
        read
    }
}

/// Two members split the topic, a third joins, it leaves cleanly, then the second is killed:
/// after each step every partition has one owner and every record was read, exactly once
/// until the kill (whose uncommitted records may be read again, never lost).
async fn split_leave_and_kill(group: &str, kinds: [Kind; 3]) {
    let cluster = cluster().await;
    let bootstrap = cluster.bootstrap();
    let producer = producer(&bootstrap).await;
    produce_values(&producer, TOPIC, PARTITIONS, 0..600).await;

    let m1 = Peer::start(kinds[0], &bootstrap, group, "m1");
    let m2 = Peer::start(kinds[1], &bootstrap, group, "m2");
    settle(
        PARTITIONS,
        || vec![m1.owned(), m2.owned()],
        || [m1.records(), m2.records()].concat(),
        600,
    )
    .await;
    let two = stable(&cluster, group, 2).await;
    assert_one_owner_each(&two);
    assert!(two.members.iter().all(|m| m.assigned.len() == 3), "{two:?}");
    assert_eq!(two.assignor, "uniform");

    // A third joins: the others give up one partition each, first.
    let m3 = Peer::start(kinds[2], &bootstrap, group, "m3");
    produce_values(&producer, TOPIC, PARTITIONS, 600..1200).await;
    settle(
        PARTITIONS,
        || vec![m1.owned(), m2.owned(), m3.owned()],
        || [m1.records(), m2.records(), m3.records()].concat(),
        1200,
    )
    .await;
    let three = stable(&cluster, group, 3).await;
    assert_one_owner_each(&three);
    assert!(
        three.members.iter().all(|m| m.assigned.len() == 2),
        "{three:?}"
    );
    assert!(three.group_epoch > two.group_epoch);

    // m3 leaves cleanly (commits, then heartbeats epoch -1): the coordinator knows at once,
    // well before its session would end.
    let m3_read = m3.leave().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while cluster
        .describe_consumer_group(group)
        .unwrap()
        .members
        .len()
        != 2
    {
        assert!(tokio::time::Instant::now() < deadline, "m3 did not leave");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    produce_values(&producer, TOPIC, PARTITIONS, 1200..1800).await;
    settle(
        PARTITIONS,
        || vec![m1.owned(), m2.owned()],
        || [m1.records(), m2.records(), m3_read.clone()].concat(),
        1800,
    )
    .await;
    assert_one_owner_each(&stable(&cluster, group, 2).await);
    let count = read_counts([&m1.records(), &m2.records(), &m3_read]);
    assert_eq!(count.len(), 1800);
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "read twice across clean hand-overs: {twice:?}"
    );

    // m2 is killed: it stops heartbeating without leaving; the coordinator removes it after
    // the session timeout and m1 takes everything.
    let m2_read = m2.kill(&cluster, "m2").await;
    produce_values(&producer, TOPIC, PARTITIONS, 1800..2400).await;
    settle(
        PARTITIONS,
        || vec![m1.owned()],
        || [m1.records(), m2_read.clone(), m3_read.clone()].concat(),
        2400,
    )
    .await;
    assert_one_owner_each(&stable(&cluster, group, 1).await);
    let m1_read = m1.leave().await;
    let count = read_counts([&m1_read, &m2_read, &m3_read]);
    assert_eq!(count.len(), 2400, "every record read");
    // m1 committed on leaving: the group's offsets cover everything.
    let committed: i64 = (0..PARTITIONS)
        .map(|p| cluster.committed_offset(group, TOPIC, p).unwrap_or(0))
        .sum();
    assert_eq!(committed, 2400);
    assert_eq!(
        cluster.describe_consumer_group(group).unwrap().state,
        "Empty"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_members_split_leave_and_are_killed() {
    split_leave_and_kill("kip848-rd", [Kind::Librdkafka; 3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_members_split_leave_and_are_killed() {
    split_leave_and_kill("kip848-sl", [Kind::Sluice; 3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_and_librdkafka_share_a_kip848_group() {
    // A sluice member first, a librdkafka one killed, a sluice one leaving cleanly.
    split_leave_and_kill(
        "kip848-mixed",
        [Kind::Sluice, Kind::Librdkafka, Kind::Sluice],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_resumes_from_committed_offsets_with_the_range_assignor() {
    let cluster = cluster().await;
    let bootstrap = cluster.bootstrap();
    let group = "kip848-range";
    let producer = producer(&bootstrap).await;
    produce_values(&producer, TOPIC, PARTITIONS, 0..300).await;

    let a = RdkafkaMember::start_kip848(&bootstrap, group, "a", TOPIC, Some("range"));
    let b = RdkafkaMember::start_kip848(&bootstrap, group, "b", TOPIC, Some("range"));
    settle(
        PARTITIONS,
        || vec![a.owned(), b.owned()],
        || [a.records(), b.records()].concat(),
        300,
    )
    .await;
    let described = stable(&cluster, group, 2).await;
    assert_eq!(described.assignor, "range");
    let mut ranges: Vec<BTreeSet<i32>> = described
        .members
        .iter()
        .map(|m| m.assigned.iter().map(|(_, p)| *p).collect())
        .collect();
    ranges.sort();
    assert_eq!(ranges, vec![(0..3).collect(), (3..6).collect()]);
    let a_read = tokio::task::spawn_blocking(move || a.leave())
        .await
        .unwrap();
    let b_read = tokio::task::spawn_blocking(move || b.leave())
        .await
        .unwrap();

    // A new member of the same group starts where the others committed: it reads only the
    // records produced after they left.
    produce_values(&producer, TOPIC, PARTITIONS, 300..420).await;
    let c = RdkafkaMember::start_kip848(&bootstrap, group, "c", TOPIC, None);
    settle(PARTITIONS, || vec![c.owned()], || c.records(), 120).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c_read = tokio::task::spawn_blocking(move || c.leave())
        .await
        .unwrap();
    assert_eq!(c_read.len(), 120, "only the new records");
    let count = read_counts([&a_read, &b_read, &c_read]);
    assert_eq!(count.len(), 420);
    assert!(count.values().all(|n| *n == 1), "a record was read twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_sluice_member_loses_its_partitions_and_rejoins() {
    let cluster = cluster().await;
    let bootstrap = cluster.bootstrap();
    let group = "kip848-fenced";
    let producer = producer(&bootstrap).await;
    produce_values(&producer, TOPIC, PARTITIONS, 0..120).await;
    let a = Peer::start(Kind::Sluice, &bootstrap, group, "a");
    let Peer::Sl(b) = Peer::start(Kind::Sluice, &bootstrap, group, "b") else {
        unreachable!()
    };
    settle(
        PARTITIONS,
        || vec![a.owned(), b.owned()],
        || [a.records(), b.records()].concat(),
        120,
    )
    .await;
    let before = stable(&cluster, group, 2).await;
    // The next heartbeat of b is answered FENCED_MEMBER_EPOCH: b drops its partitions as
    // lost and joins again with epoch 0 under the same member id.
    cluster.inject(
        Fault::error(
            ApiKey::ConsumerGroupHeartbeat,
            ResponseError::FencedMemberEpoch,
        )
        .client_id("b"),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !b
        .changes()
        .iter()
        .any(|(_, c)| matches!(c, Change::Lost(_)))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "b never lost its partitions"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    produce_values(&producer, TOPIC, PARTITIONS, 120..240).await;
    settle(
        PARTITIONS,
        || vec![a.owned(), b.owned()],
        || [a.records(), b.records()].concat(),
        240,
    )
    .await;
    let after = stable(&cluster, group, 2).await;
    let ids = |g: &ConsumerGroupDescription| -> BTreeSet<String> {
        g.members.iter().map(|m| m.member_id.clone()).collect()
    };
    assert_eq!(ids(&before), ids(&after), "b rejoined under its member id");
    assert_eq!(cluster.pending_faults(), 0);
    let count = read_counts([&a.leave().await, &b.leave().await]);
    assert_eq!(count.len(), 240, "every record read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sluice_member_that_stops_polling_leaves_and_comes_back() {
    let cluster = cluster().await;
    let bootstrap = cluster.bootstrap();
    let group = "kip848-stall";
    let extra = |name| {
        [
            ("group.protocol", "consumer"),
            ("client.id", name),
            ("max.poll.interval.ms", "1500"),
        ]
    };
    let a = SluiceMember::start_with(&bootstrap, group, TOPIC, "range", &extra("a"));
    let b = SluiceMember::start_with(&bootstrap, group, TOPIC, "range", &extra("b"));
    settle(PARTITIONS, || vec![a.owned(), b.owned()], Vec::new, 0).await;
    // a stalls past max.poll.interval.ms: its heartbeat task leaves the group, b takes all.
    a.stall(Duration::from_secs(4));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let group = cluster.describe_consumer_group(group).unwrap();
        if group.members.len() == 1 && group.state == "Stable" {
            assert_one_owner_each(&group);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a never left: {group:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Polling again (once its stall is over), a reports the partitions lost and joins again.
    // Wait for that first: until then a's stale view and b's old one can look settled.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !a
        .changes()
        .iter()
        .any(|(_, c)| matches!(c, Change::Lost(_)))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a never reported its partitions lost"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    settle(PARTITIONS, || vec![a.owned(), b.owned()], Vec::new, 0).await;
    assert_one_owner_each(&stable(&cluster, group, 2).await);
    a.leave().await;
    b.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_follow_a_coordinator_move() {
    let cluster = cluster().await;
    let bootstrap = cluster.bootstrap();
    let group = "kip848-move";
    let producer = producer(&bootstrap).await;
    produce_values(&producer, TOPIC, PARTITIONS, 0..120).await;
    let sl = Peer::start(Kind::Sluice, &bootstrap, group, "sl");
    let rd = Peer::start(Kind::Librdkafka, &bootstrap, group, "rd");
    settle(
        PARTITIONS,
        || vec![sl.owned(), rd.owned()],
        || [sl.records(), rd.records()].concat(),
        120,
    )
    .await;
    let before = stable(&cluster, group, 2).await;
    // The coordinator moves: heartbeats answer NOT_COORDINATOR until the members find the
    // new one, where the group (epochs, members, offsets) carries on.
    let home = cluster.group_coordinator(group);
    cluster.move_group_coordinator(group, home % 3 + 1);
    produce_values(&producer, TOPIC, PARTITIONS, 120..240).await;
    settle(
        PARTITIONS,
        || vec![sl.owned(), rd.owned()],
        || [sl.records(), rd.records()].concat(),
        240,
    )
    .await;
    // Past a session timeout: both still members, so their heartbeats reach the new one.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = stable(&cluster, group, 2).await;
    assert_eq!(after.group_epoch, before.group_epoch, "nobody was dropped");
    let count = read_counts([&sl.leave().await, &rd.leave().await]);
    assert_eq!(count.len(), 240);
    assert!(count.values().all(|n| *n == 1), "a record was read twice");
}
