//! librdkafka judges the mock cluster's group coordinator: consumers in a group split a
//! topic's partitions, hand them over when one leaves or joins (eager `range` and
//! `cooperative-sticky`), resume from committed offsets, ride out a coordinator move and
//! injected heartbeat errors, and a static member (KIP-345) that restarts gets its partitions
//! back without a rebalance.
//!
//! Every phase produces fresh records and checks that the consumers received exactly those,
//! each from a partition it owned: a lost record, a record read twice (a handover that ignored
//! the committed offsets) or two owners of one partition fail the test.
//!
//! The scenarios that the local broker supports run on it too, with the same code and
//! assertions (`on_mock_and_tansu!`). The group is observed as a client sees it, through
//! DescribeGroups and OffsetFetch, on both; the generation, which DescribeGroups does not
//! report, is the mock's own view. Tansu's DescribeGroups names members by member id only (no
//! client id, instance id or protocol), so those checks run on the mock only.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::{ClientContext, Message};
use sluice_client::admin::{Admin, GroupDescription};
use sluice_client::config::AdminConfig;
use sluice_mock::{ApiKey, Fault, GroupState, ResponseError};
use sluice_tests::{on_mock_and_tansu, rdkafka_config, Target};
use tokio::runtime::Handle;

const WAIT: Duration = Duration::from_secs(30);
const TOPIC: &str = "orders";
const PARTITIONS: i32 = 6;

/// Counts the rebalance callbacks a consumer saw, and prints librdkafka's log when
/// `MOCK_GROUPS_DEBUG` names debug contexts (e.g. `cgrp,protocol`).
#[derive(Default)]
struct Recorder {
    assigned: AtomicUsize,
    revoked: AtomicUsize,
    verbose: bool,
}

impl ClientContext for Recorder {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if self.verbose || (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            eprintln!("{fac} {log_message}");
        }
    }
}

impl ConsumerContext for Recorder {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(_) => self.assigned.fetch_add(1, Ordering::SeqCst),
            Rebalance::Revoke(_) => self.revoked.fetch_add(1, Ordering::SeqCst),
            Rebalance::Error(_) => 0,
        };
    }
}

/// One consumer of the group under test and the records it received.
struct Member {
    name: String,
    consumer: BaseConsumer<Recorder>,
    /// (partition, value) of every record received.
    received: Vec<(i32, String)>,
}

impl Member {
    fn owned(&self) -> BTreeSet<i32> {
        self.consumer
            .assignment()
            .unwrap()
            .elements()
            .iter()
            .filter(|e| e.topic() == TOPIC)
            .map(|e| e.partition())
            .collect()
    }

    fn revoked(&self) -> usize {
        self.consumer.context().revoked.load(Ordering::SeqCst)
    }

    /// Commits the position of every partition it consumed from.
    fn commit(&self) {
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            // Nothing consumed since the last commit.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => panic!("{} could not commit: {e}", self.name),
        }
    }
}

/// A group of consumers driven from one thread: every wait polls them all, so that each
/// serves its rebalance callbacks while the others change the group.
struct Harness {
    target: Arc<Target>,
    /// Observes the group as any client can.
    admin: Admin,
    runtime: Handle,
    bootstrap: String,
    group: String,
    strategy: &'static str,
    members: Vec<Member>,
    producer: BaseProducer,
    /// How many records each partition has had so far, for unique values.
    produced: BTreeMap<i32, usize>,
}

impl Harness {
    /// Runs on a blocking thread of the tokio runtime.
    fn new(target: Arc<Target>, group: &str, strategy: &'static str) -> Harness {
        let bootstrap = target.bootstrap();
        let producer = rdkafka_config(&bootstrap)
            .set("linger.ms", "5")
            .create()
            .unwrap();
        let runtime = Handle::current();
        let config = AdminConfig::from_properties([("bootstrap.servers", bootstrap.as_str())]);
        let admin = runtime.block_on(Admin::new(config.unwrap())).unwrap();
        Harness {
            target,
            admin,
            runtime,
            bootstrap,
            group: group.to_owned(),
            strategy,
            members: Vec::new(),
            producer,
            produced: BTreeMap::new(),
        }
    }

    fn join(&mut self, name: &str, instance: Option<&str>) {
        let mut config = rdkafka_config(&self.bootstrap);
        config
            .set("group.id", &self.group)
            .set("client.id", name)
            .set("partition.assignment.strategy", self.strategy)
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "50");
        if let Some(instance) = instance {
            config.set("group.instance.id", instance);
        }
        let debug = std::env::var("MOCK_GROUPS_DEBUG").ok();
        if let Some(debug) = &debug {
            // Without the level, the `rdkafka` crate drops librdkafka's debug lines.
            config
                .set("debug", debug)
                .set_log_level(RDKafkaLogLevel::Debug);
        }
        let recorder = Recorder {
            verbose: debug.is_some(),
            ..Recorder::default()
        };
        let consumer: BaseConsumer<Recorder> = config.create_with_context(recorder).unwrap();
        consumer.subscribe(&[TOPIC]).unwrap();
        self.members.push(Member {
            name: name.to_owned(),
            consumer,
            received: Vec::new(),
        });
    }

    /// Drops a member: librdkafka closes it (a dynamic member sends LeaveGroup, a static one
    /// does not).
    fn drop_member(&mut self, name: &str) -> Member {
        let index = self.members.iter().position(|m| m.name == name).unwrap();
        self.members.remove(index)
    }

    fn member(&self, name: &str) -> &Member {
        self.members.iter().find(|m| m.name == name).unwrap()
    }

    /// The group as DescribeGroups reports it, `None` if that failed.
    fn group(&self) -> Option<GroupDescription> {
        self.runtime
            .block_on(self.admin.describe_group(&self.group))
            .ok()
    }

    /// The group's generation on the mock cluster; `None` on Tansu (DescribeGroups does not
    /// report it).
    fn mock_generation(&self) -> Option<i32> {
        let cluster = self.target.mock_cluster()?;
        Some(cluster.describe_group(&self.group).unwrap().generation)
    }

    /// The offset the group committed for `partition`, through OffsetFetch.
    fn committed(&self, partition: i32) -> Option<i64> {
        let key = [(TOPIC.to_owned(), partition)];
        let found = self.admin.list_group_offsets(&self.group, Some(&key));
        let found = self.runtime.block_on(found).unwrap();
        found.get(&key[0]).map(|c| c.offset)
    }

    /// Polls every member once, keeping what they receive.
    fn poll_all(&mut self) {
        for member in &mut self.members {
            while let Some(message) = member.consumer.poll(Duration::from_millis(10)) {
                let message = message.unwrap();
                let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
                member.received.push((message.partition(), value));
            }
        }
    }

    fn poll_until(&mut self, what: &str, mut done: impl FnMut(&Harness) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.poll_all();
            if done(self) {
                return;
            }
            let owners: Vec<(String, BTreeSet<i32>)> = self
                .members
                .iter()
                .map(|m| (m.name.clone(), m.owned()))
                .collect();
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; owners {owners:?}, group {:?}",
                self.group()
            );
        }
    }

    /// Waits until every member owns some partitions, no partition has two owners, every
    /// partition has one, and the coordinator sees a stable group of exactly these members.
    fn settle(&mut self) {
        let expected = self.members.len();
        self.poll_until("the group to settle", |h| {
            let owned: Vec<BTreeSet<i32>> = h.members.iter().map(Member::owned).collect();
            let total: usize = owned.iter().map(BTreeSet::len).sum();
            let union: BTreeSet<i32> = owned.iter().flatten().copied().collect();
            let stable = h
                .group()
                .is_some_and(|g| g.state == "Stable" && g.members.len() == expected);
            stable
                && owned.iter().all(|o| !o.is_empty())
                && total == PARTITIONS as usize
                && union == (0..PARTITIONS).collect()
        });
    }

    /// Produces `per_partition` records to every partition; returns (partition, value) of
    /// each.
    fn produce(&mut self, per_partition: usize) -> BTreeSet<(i32, String)> {
        let mut records = BTreeSet::new();
        for partition in 0..PARTITIONS {
            let next = self.produced.entry(partition).or_default();
            for _ in 0..per_partition {
                let value = format!("p{partition}-{next}");
                *next += 1;
                self.producer
                    .send(
                        BaseRecord::<(), String>::to(TOPIC)
                            .partition(partition)
                            .payload(&value),
                    )
                    .map_err(|(e, _)| e)
                    .unwrap();
                records.insert((partition, value));
            }
        }
        self.producer.flush(WAIT).unwrap();
        records
    }

    /// Produces a batch and checks that the members receive exactly it, each member only
    /// from the partitions it owns; then every member commits.
    fn produce_and_check(&mut self, per_partition: usize) {
        for member in &mut self.members {
            member.received.clear();
        }
        let expected = self.produce(per_partition);
        self.poll_until("every record", |h| {
            h.members.iter().map(|m| m.received.len()).sum::<usize>() >= expected.len()
        });
        // Anything read twice would arrive now.
        let linger = Instant::now() + Duration::from_millis(300);
        while Instant::now() < linger {
            self.poll_all();
        }
        let mut all: Vec<(i32, String)> = Vec::new();
        for member in &self.members {
            let owned = member.owned();
            for (partition, value) in &member.received {
                assert!(
                    owned.contains(partition),
                    "{} received {value} from partition {partition} it does not own ({owned:?})",
                    member.name
                );
            }
            all.extend(member.received.iter().cloned());
        }
        let distinct: BTreeSet<(i32, String)> = all.iter().cloned().collect();
        assert_eq!(
            distinct.len(),
            all.len(),
            "some records were received twice"
        );
        assert_eq!(
            distinct, expected,
            "the records received are the records produced"
        );
        for member in &self.members {
            member.commit();
        }
    }
}

/// `target` with the topic under test.
async fn with_topic(target: Target) -> Arc<Target> {
    target.create_topic(TOPIC, PARTITIONS).await;
    Arc::new(target)
}

on_mock_and_tansu!(
    range_consumers_split_hand_over_and_rebalance,
    cooperative_sticky_consumers_split_hand_over_and_rebalance,
    a_new_consumer_resumes_from_committed_offsets,
    a_static_member_restarts_without_a_rebalance,
);

async fn range_consumers_split_hand_over_and_rebalance(target: Target) {
    split_leave_and_join(target, "range").await;
}

async fn cooperative_sticky_consumers_split_hand_over_and_rebalance(target: Target) {
    split_leave_and_join(target, "cooperative-sticky").await;
}

/// Two consumers split the partitions; one leaves and the other takes all of them; a third
/// joins and they split again. No record is lost or read twice across the handovers.
async fn split_leave_and_join(target: Target, strategy: &'static str) {
    let target = with_topic(target).await;
    tokio::task::spawn_blocking(move || {
        let group = format!("split-{strategy}");
        let mut h = Harness::new(target, &group, strategy);
        h.join("c1", None);
        h.join("c2", None);
        h.settle();
        if strategy == "range" {
            assert_eq!(h.member("c1").owned().len(), 3);
            assert_eq!(h.member("c2").owned().len(), 3);
        }
        h.produce_and_check(40);

        let before = h.mock_generation();
        drop(h.drop_member("c2"));
        h.settle();
        assert_eq!(h.member("c1").owned(), (0..PARTITIONS).collect());
        assert!(
            before.is_none() || h.mock_generation() > before,
            "leaving rebalanced the group"
        );
        assert_eq!(h.group().unwrap().members.len(), 1);
        h.produce_and_check(40);

        h.join("c3", None);
        h.settle();
        h.produce_and_check(40);
        let description = h.group().unwrap();
        let expected_protocol = if strategy == "range" {
            "range"
        } else {
            "cooperative-sticky"
        };
        assert_eq!(description.protocol_type, "consumer");
        // Tansu's DescribeGroups leaves the protocol empty and names members by member id
        // only; the members' rebalance protocol (from their JoinGroup answers) shows which
        // one the group chose, on both.
        if h.target.mock_cluster().is_some() {
            assert_eq!(description.assignor, expected_protocol);
            let clients: BTreeSet<String> = description
                .members
                .iter()
                .map(|m| m.client_id.clone())
                .collect();
            assert_eq!(clients, ["c1".to_owned(), "c3".to_owned()].into());
        }
        for member in &h.members {
            let protocol = member.consumer.rebalance_protocol();
            assert!(
                matches!(
                    (strategy, protocol),
                    ("range", RebalanceProtocol::Eager)
                        | ("cooperative-sticky", RebalanceProtocol::Cooperative)
                ),
                "{} uses the {strategy} protocol",
                member.name
            );
        }
        for p in 0..PARTITIONS {
            assert_eq!(
                h.committed(p),
                Some(120),
                "partition {p}: every record consumed was committed"
            );
        }
    })
    .await
    .unwrap();
}

async fn a_new_consumer_resumes_from_committed_offsets(target: Target) {
    let target = with_topic(target).await;
    tokio::task::spawn_blocking(move || {
        let group = "resume";
        let mut h = Harness::new(target, group, "range");
        h.join("first", None);
        h.settle();
        let expected = h.produce(100);
        // Stop part way: the first consumer reads 250 of 600 records and commits those.
        h.poll_until("250 records", |h| h.members[0].received.len() >= 250);
        let first = h.drop_member("first");
        first.commit();
        let committed: i64 = (0..PARTITIONS).map(|p| h.committed(p).unwrap_or(0)).sum();
        assert_eq!(committed as usize, first.received.len());
        let read_first = first.received.clone();
        drop(first);

        h.join("second", None);
        h.settle();
        h.poll_until("the rest of the records", |h| {
            read_first.len() + h.members[0].received.len() >= expected.len()
        });
        let linger = Instant::now() + Duration::from_millis(300);
        while Instant::now() < linger {
            h.poll_all();
        }
        let mut all = read_first.clone();
        all.extend(h.members[0].received.iter().cloned());
        let distinct: BTreeSet<(i32, String)> = all.iter().cloned().collect();
        assert_eq!(distinct.len(), all.len(), "no record read twice");
        assert_eq!(distinct, expected, "no record lost");
    })
    .await
    .unwrap();
}

// Mock only: Tansu is one broker (no coordinator to move to) and has no fault injection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_recovers_from_a_coordinator_move_and_heartbeat_errors() {
    let target = with_topic(Target::mock().await).await;
    tokio::task::spawn_blocking(move || {
        let cluster = target.mock_cluster().unwrap();
        let group = "moving";
        let mut h = Harness::new(target.clone(), group, "range");
        h.join("c1", None);
        h.join("c2", None);
        h.settle();
        h.produce_and_check(20);

        let old = cluster.group_coordinator(group);
        let new = old % 3 + 1;
        cluster.move_group_coordinator(group, new);
        assert_eq!(cluster.group_coordinator(group), new);
        // A member told to rejoin rejoins with its id; one told it is unknown rejoins as a
        // new member, and its old id must time out before the rebalance can end.
        cluster.inject(
            Fault::error(ApiKey::Heartbeat, ResponseError::RebalanceInProgress).broker(new),
        );
        cluster.inject(Fault::error(ApiKey::Heartbeat, ResponseError::UnknownMemberId).broker(new));
        h.poll_until("both injected heartbeat errors", |_| {
            cluster.pending_faults() == 0
        });
        h.settle();
        h.produce_and_check(20);
        assert_eq!(cluster.describe_group(group).unwrap().members.len(), 2);

        // Mid-rebalance: a third member joins and the coordinator moves back at once, while
        // the others' JoinGroups are parked at the one that was coordinator.
        h.join("c3", None);
        h.poll_until("the rebalance to start", |_| {
            cluster
                .describe_group(group)
                .is_some_and(|g| g.state != GroupState::Stable)
        });
        cluster.move_group_coordinator(group, old);
        h.settle();
        if let [a, b, c] = &h.members[..] {
            assert_eq!(
                [a.owned().len(), b.owned().len(), c.owned().len()],
                [2, 2, 2]
            );
        }
        h.produce_and_check(20);
    })
    .await
    .unwrap();
}

/// On Tansu in part: it rebalances when the static member comes back (see below).
async fn a_static_member_restarts_without_a_rebalance(target: Target) {
    let target = with_topic(target).await;
    tokio::task::spawn_blocking(move || {
        let group = "static";
        let mut h = Harness::new(target, group, "range");
        h.join("a", Some("instance-a"));
        h.join("b", Some("instance-b"));
        h.settle();
        h.produce_and_check(20);
        let before = h.group().unwrap();
        let generation = h.mock_generation();
        let owned_a = h.member("a").owned();
        let owned_b = h.member("b").owned();
        let revoked_b = h.member("b").revoked();

        // A static member sends no LeaveGroup: its place waits for it for a session timeout.
        drop(h.drop_member("a"));
        assert_eq!(h.group().unwrap().members.len(), 2);
        h.join("a", Some("instance-a"));
        h.settle();
        assert_eq!(h.member("a").owned(), owned_a);
        assert_eq!(h.member("b").owned(), owned_b);
        // Tansu rebalances the group when a static member rejoins (b's partitions are revoked
        // and given back) and gives it back its old member id, which KIP-345 does not; its
        // DescribeGroups reports no instance ids.
        if h.target.mock_cluster().is_some() {
            let after = h.group().unwrap();
            let instances: BTreeSet<Option<String>> = after
                .members
                .iter()
                .map(|m| m.group_instance_id.clone())
                .collect();
            assert_eq!(
                instances,
                [Some("instance-a".to_owned()), Some("instance-b".to_owned())].into()
            );
            assert_eq!(h.mock_generation(), generation, "no rebalance");
            assert_eq!(h.member("b").revoked(), revoked_b, "b kept its partitions");
            let old_a = before
                .members
                .iter()
                .find(|m| m.group_instance_id.as_deref() == Some("instance-a"))
                .unwrap();
            assert!(
                after.members.iter().all(|m| m.member_id != old_a.member_id),
                "the restarted member has a new member id"
            );
        }
        h.produce_and_check(20);
    })
    .await
    .unwrap();
}
