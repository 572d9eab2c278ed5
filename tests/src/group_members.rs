//! Consumer-group members for tests: sluice's [`GroupConsumer`] and librdkafka's consumer,
//! each in a task or thread of its own, recording what it read and which partitions it owns, so
//! a test can put either kind (or both) in one group and check the hand-overs.
//!
//! Both commit the offsets of partitions before giving them up, so across clean rebalances no
//! record is read twice.
#![allow(clippy::unwrap_used)] // A harness: a failure here is the test's failure.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use sluice_client::config::ConsumerConfig;
use sluice_client::group::{GroupConsumer, GroupEvent};
use sluice_client::KafkaCode;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::rdkafka_config;

/// How long a member may take to stop.
const STOP: Duration = Duration::from_secs(60);

/// The group settings both kinds use: short sessions (Tansu holds JoinGroup for half the
/// session timeout), manual commits, reading from the start.
fn group_properties<'a>(
    bootstrap: &'a str,
    group: &'a str,
    assignor: &'a str,
) -> Vec<(&'static str, &'a str)> {
    vec![
        ("bootstrap.servers", bootstrap),
        ("group.id", group),
        ("partition.assignment.strategy", assignor),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "false"),
    ]
}

/// What a member saw: records (partition, offset, value) and the partitions it owns now.
#[derive(Debug, Default)]
pub struct Seen {
    /// (partition, offset, value) of every record read.
    pub records: Vec<(i32, i64, String)>,
    /// The partitions owned now.
    pub owned: BTreeSet<i32>,
    /// Every partition change a sluice member handled, numbered in one order shared by all
    /// members of the process ([`next_seq`]), so the changes of several members can be
    /// replayed as one history.
    pub changes: Vec<(u64, Change)>,
}

/// A partition change a member handled (the partitions of a [`GroupEvent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `Assigned`: records of these follow.
    Assigned(Vec<i32>),
    /// `Revoked`: handled (offsets committed); the member reads none of them after this.
    Revoked(Vec<i32>),
    /// `Lost`: taken away without a commit.
    Lost(Vec<i32>),
}

/// The next number of the process-wide order of partition changes.
pub fn next_seq() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::SeqCst)
}

/// A sluice group member in a task.
#[derive(Debug)]
pub struct SluiceMember {
    seen: Arc<Mutex<Seen>>,
    stop: watch::Sender<bool>,
    stall: mpsc::UnboundedSender<Duration>,
    task: JoinHandle<()>,
}

impl SluiceMember {
    /// Joins `group` subscribed to `topic`.
    pub fn start(bootstrap: &str, group: &str, topic: &str, assignor: &str) -> SluiceMember {
        Self::start_with(bootstrap, group, topic, assignor, &[])
    }

    /// Joins `group` subscribed to `topic`, with `extra` consumer properties on top of the
    /// harness's (a later value of a property wins).
    pub fn start_with(
        bootstrap: &str,
        group: &str,
        topic: &str,
        assignor: &str,
        extra: &[(&'static str, &str)],
    ) -> SluiceMember {
        let mut properties = group_properties(bootstrap, group, assignor);
        properties.extend_from_slice(extra);
        let config =
            ConsumerConfig::from_properties(properties).expect("valid consumer properties");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (stop, mut stopped) = watch::channel(false);
        let (stall, mut stalls) = mpsc::unbounded_channel::<Duration>();
        let topic = topic.to_owned();
        let task = tokio::spawn({
            let seen = Arc::clone(&seen);
            async move {
                let mut consumer = GroupConsumer::new(config).await.unwrap();
                consumer.subscribe(&[topic]);
                loop {
                    tokio::select! {
                        event = consumer.poll() => handle(&mut consumer, &seen, event.unwrap()).await,
                        Some(pause) = stalls.recv() => tokio::time::sleep(pause).await,
                        _ = stopped.changed() => break,
                    }
                }
                // A commit refused because a rebalance is under way (a poll was cut short
                // mid-join) asks for the rebalance to finish first, as in Java.
                for _ in 0..100 {
                    match consumer.commit().await {
                        Ok(()) => break,
                        Err(e)
                            if e.code().is_some_and(|c| {
                                [
                                    KafkaCode::REBALANCE_IN_PROGRESS,
                                    KafkaCode::ILLEGAL_GENERATION,
                                    KafkaCode::UNKNOWN_MEMBER_ID,
                                ]
                                .contains(&c)
                            }) =>
                        {
                            let event = consumer.poll().await.unwrap();
                            handle(&mut consumer, &seen, event).await;
                        }
                        Err(e) => panic!("final commit failed: {e}"),
                    }
                }
                consumer.close().await.unwrap();
                seen.lock().unwrap().owned.clear();
            }
        });
        SluiceMember {
            seen,
            stop,
            stall,
            task,
        }
    }

    /// The partitions it owns now.
    pub fn owned(&self) -> BTreeSet<i32> {
        self.seen.lock().unwrap().owned.clone()
    }

    /// The partition changes it handled so far, numbered in the process-wide order.
    pub fn changes(&self) -> Vec<(u64, Change)> {
        self.seen.lock().unwrap().changes.clone()
    }

    /// Makes the member's task stop calling `poll` for `pause` (as an application stuck in
    /// its processing would), from the moment it is between two events.
    pub fn stall(&self, pause: Duration) {
        self.stall.send(pause).unwrap();
    }

    /// What it read so far.
    pub fn records(&self) -> Vec<(i32, i64, String)> {
        self.seen.lock().unwrap().records.clone()
    }

    /// Commits, leaves the group and returns what it read.
    pub async fn leave(self) -> Vec<(i32, i64, String)> {
        self.stop.send_replace(true);
        tokio::time::timeout(STOP, self.task)
            .await
            .unwrap()
            .unwrap();
        let records = self.seen.lock().unwrap().records.clone();
        records
    }

    /// Kills the member without leaving or committing, like `kill -9`; returns what it read.
    pub fn kill(self) -> Vec<(i32, i64, String)> {
        self.task.abort();
        let records = self.seen.lock().unwrap().records.clone();
        records
    }
}

/// Records a sluice member's event; commits before revoked partitions go.
async fn handle(consumer: &mut GroupConsumer, seen: &Mutex<Seen>, event: GroupEvent) {
    match event {
        GroupEvent::Batch(batch) => {
            let mut seen = seen.lock().unwrap();
            for r in batch.to_records().unwrap() {
                let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                seen.records.push((r.partition, r.offset, value));
            }
        }
        GroupEvent::Assigned(added) => {
            let added: Vec<i32> = added.iter().map(|(_, p)| *p).collect();
            let mut seen = seen.lock().unwrap();
            seen.owned.extend(added.iter().copied());
            seen.changes.push((next_seq(), Change::Assigned(added)));
        }
        GroupEvent::Revoked(gone) => {
            // Commit before the partitions go: the next owner starts here.
            consumer.commit().await.unwrap();
            let gone: Vec<i32> = gone.iter().map(|(_, p)| *p).collect();
            let mut seen = seen.lock().unwrap();
            for p in &gone {
                seen.owned.remove(p);
            }
            seen.changes.push((next_seq(), Change::Revoked(gone)));
        }
        GroupEvent::Lost(gone) => {
            let gone: Vec<i32> = gone.iter().map(|(_, p)| *p).collect();
            let mut seen = seen.lock().unwrap();
            for p in &gone {
                seen.owned.remove(p);
            }
            seen.changes.push((next_seq(), Change::Lost(gone)));
        }
    }
}

/// Commits the consumed offsets of partitions before librdkafka revokes them.
struct CommitOnRevoke {
    seen: Arc<Mutex<Seen>>,
}

impl ClientContext for CommitOnRevoke {
    /// librdkafka's log (with `RDKAFKA_DEBUG` naming debug contexts, e.g. `cgrp`) on stderr.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        if std::env::var_os("RDKAFKA_DEBUG").is_some() {
            eprintln!("{level:?} {fac} {log_message}");
        }
    }
}

impl ConsumerContext for CommitOnRevoke {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(gone) = rebalance {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(())
                | Err(rdkafka::error::KafkaError::ConsumerCommit(
                    rdkafka::types::RDKafkaErrorCode::NoOffset,
                )) => {}
                Err(e) => panic!("librdkafka member could not commit before revocation: {e}"),
            }
            let mut seen = self.seen.lock().unwrap();
            for e in gone.elements() {
                seen.owned.remove(&e.partition());
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            let owned: BTreeSet<i32> = consumer
                .assignment()
                .map(|a| a.elements().iter().map(|e| e.partition()).collect())
                .unwrap_or_default();
            self.seen.lock().unwrap().owned = owned;
        }
    }
}

/// A librdkafka group member in a thread of its own.
#[derive(Debug)]
pub struct RdkafkaMember {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    /// Stop as if killed: no commit, no leave.
    abandon: Arc<AtomicBool>,
    thread: thread::JoinHandle<()>,
}

impl RdkafkaMember {
    /// Joins `group` subscribed to `topic`.
    pub fn start(bootstrap: &str, group: &str, topic: &str, assignor: &str) -> RdkafkaMember {
        let mut config = rdkafka_config(bootstrap);
        for (k, v) in group_properties(bootstrap, group, assignor) {
            config.set(k, v);
        }
        Self::run(config, topic)
    }

    /// Joins `group` subscribed to `topic` with the KIP-848 protocol
    /// (`group.protocol=consumer`), the coordinator assigning with `assignor` (its default if
    /// `None`). Session and heartbeat timing are the broker's under KIP-848: librdkafka refuses
    /// `session.timeout.ms`, `heartbeat.interval.ms` and `partition.assignment.strategy` then.
    /// `name` is its `client.id` (so a fault can single it out).
    pub fn start_kip848(
        bootstrap: &str,
        group: &str,
        name: &str,
        topic: &str,
        assignor: Option<&str>,
    ) -> RdkafkaMember {
        let mut config = rdkafka_config(bootstrap);
        config
            .set("group.id", group)
            .set("client.id", name)
            .set("group.protocol", "consumer")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false");
        if let Some(assignor) = assignor {
            config.set("group.remote.assignor", assignor);
        }
        Self::run(config, topic)
    }

    fn run(mut config: rdkafka::ClientConfig, topic: &str) -> RdkafkaMember {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let abandon = Arc::new(AtomicBool::new(false));
        config.set("fetch.wait.max.ms", "50");
        if let Ok(debug) = std::env::var("RDKAFKA_DEBUG") {
            config.set("debug", &debug);
            config.set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
        }
        let consumer: BaseConsumer<CommitOnRevoke> = config
            .create_with_context(CommitOnRevoke {
                seen: Arc::clone(&seen),
            })
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let thread = thread::spawn({
            let (seen, stop, abandon) =
                (Arc::clone(&seen), Arc::clone(&stop), Arc::clone(&abandon));
            move || {
                while !stop.load(Ordering::SeqCst) {
                    let Some(message) = consumer.poll(Duration::from_millis(50)) else {
                        continue;
                    };
                    // librdkafka reports transient errors (a connection cut) through poll
                    // and recovers by itself; they are not the member's failure.
                    let message = match message {
                        Ok(message) => message,
                        Err(e) => {
                            eprintln!("librdkafka member: {e}");
                            continue;
                        }
                    };
                    let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
                    seen.lock().unwrap().records.push((
                        message.partition(),
                        message.offset(),
                        value,
                    ));
                    // Store the position so a revocation's commit covers what was read.
                    let mut position = TopicPartitionList::new();
                    position
                        .add_partition_offset(
                            message.topic(),
                            message.partition(),
                            Offset::Offset(message.offset() + 1),
                        )
                        .unwrap();
                    let _ = consumer.commit(&position, CommitMode::Async);
                }
                if abandon.load(Ordering::SeqCst) {
                    // Killed: no commit, no leave, nothing closed (dropping would close).
                    std::mem::forget(consumer);
                } else {
                    // Closing commits and leaves (rdkafka closes on drop).
                    let _ = consumer.commit_consumer_state(CommitMode::Sync);
                    drop(consumer);
                }
                seen.lock().unwrap().owned.clear();
            }
        });
        RdkafkaMember {
            seen,
            stop,
            abandon,
            thread,
        }
    }

    /// The partitions it owns now.
    pub fn owned(&self) -> BTreeSet<i32> {
        self.seen.lock().unwrap().owned.clone()
    }

    /// What it read so far.
    pub fn records(&self) -> Vec<(i32, i64, String)> {
        self.seen.lock().unwrap().records.clone()
    }

    /// Commits, leaves the group and returns what it read.
    pub fn leave(self) -> Vec<(i32, i64, String)> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        let records = self.seen.lock().unwrap().records.clone();
        records
    }

    /// Stops reading without committing or leaving, and leaks librdkafka's handle (whose
    /// threads keep heartbeating: the test must also cut the member off, e.g. with a mock
    /// fault on its client id); returns what it read.
    pub fn kill(self) -> Vec<(i32, i64, String)> {
        self.abandon.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        let records = self.seen.lock().unwrap().records.clone();
        records
    }
}

/// Sends values `v{i}` for `i` in `range` round robin over `partitions` partitions of `topic`
/// and waits for every acknowledgement.
pub async fn produce_values(
    producer: &sluice_client::producer::Producer,
    topic: &str,
    partitions: i32,
    range: std::ops::Range<usize>,
) {
    let mut pending = Vec::new();
    for i in range {
        let record = sluice_client::producer::ProducerRecord::new(topic)
            .value(format!("v{i}"))
            .partition(i as i32 % partitions);
        pending.push(producer.send(record).await.unwrap());
    }
    for delivery in pending {
        delivery.await.unwrap();
    }
}

/// Waits until the members' `owned` sets split all `partitions` between them (each owning
/// some) and `read` holds `expected` distinct records; fails the test after a minute.
pub async fn settle(
    partitions: i32,
    owned: impl Fn() -> Vec<BTreeSet<i32>>,
    read: impl Fn() -> Vec<(i32, i64, String)>,
    expected: usize,
) {
    let deadline = std::time::Instant::now() + STOP;
    loop {
        let owned = owned();
        let total: usize = owned.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<i32> = owned.iter().flatten().copied().collect();
        let distinct: BTreeSet<(i32, i64)> = read().into_iter().map(|(p, o, _)| (p, o)).collect();
        if total == partitions as usize
            && union.len() == partitions as usize
            && owned.iter().all(|o| !o.is_empty())
            && distinct.len() >= expected
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not settled: ownership {owned:?}, {} of {expected} records",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many times each (partition, offset) was read, over every member's records.
pub fn read_counts<'a>(
    reads: impl IntoIterator<Item = &'a Vec<(i32, i64, String)>>,
) -> std::collections::BTreeMap<(i32, i64), usize> {
    let mut count = std::collections::BTreeMap::new();
    for (p, o, _) in reads.into_iter().flatten() {
        *count.entry((*p, *o)).or_default() += 1;
    }
    count
}
