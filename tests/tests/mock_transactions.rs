//! librdkafka judges the mock's transaction coordinator: its transactional producer and
//! read_committed consumer, run against `sluice-mock`, see what they would see on a real
//! broker. Commits are visible and aborts are not, an open transaction holds readers at the
//! last stable offset, a second producer with the same transactional id fences the first, a
//! transaction past its timeout is aborted and its producer fenced, consumed offsets are
//! committed inside a transaction, and a producer follows its coordinator when it moves.
//!
//! The scenarios that the local broker supports run on it too, with the same code and
//! assertions (`on_mock_and_tansu!`); the others say which of its gaps keeps them on the mock.
//!
//! librdkafka's transactional calls block, so each test runs them on a blocking thread while
//! the cluster serves on the tokio runtime.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};
use sluice_mock::{ApiKey, Fault, MockCluster, ResponseError};
use sluice_tests::{on_mock_and_tansu, rdkafka_config, Target};

const WAIT: Duration = Duration::from_secs(30);
/// How long a reader must stay quiet to show it is held back (several fetch long-polls).
const QUIET: Duration = Duration::from_millis(1500);

type TxnProducer = ThreadedProducer<DefaultProducerContext>;

/// Creates `topics` (name, partitions) on `target`, then runs `test` with it on a blocking
/// thread.
async fn with_target(
    target: Target,
    topics: &[(&str, i32)],
    test: impl FnOnce(&Target) + Send + 'static,
) {
    for (topic, partitions) in topics {
        target.create_topic(topic, *partitions).await;
    }
    tokio::task::spawn_blocking(move || test(&target))
        .await
        .unwrap();
}

/// Starts a 3-broker mock cluster and runs `test` with it on a blocking thread.
async fn with_cluster(test: impl FnOnce(&MockCluster) + Send + 'static) {
    with_target(Target::mock().await, &[], |target| {
        test(target.mock_cluster().unwrap());
    })
    .await;
}

fn txn_producer(bootstrap: &str, transactional_id: &str, extra: &[(&str, &str)]) -> TxnProducer {
    let mut config = rdkafka_config(bootstrap);
    config
        .set("transactional.id", transactional_id)
        .set("linger.ms", "5")
        .set("retry.backoff.ms", "20");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config.create().unwrap()
}

/// Queues `count` records "{prefix}-{i}", record i to partition i % `partitions`.
fn send(producer: &TxnProducer, topic: &str, partitions: i32, prefix: &str, count: usize) {
    for i in 0..count {
        let value = format!("{prefix}-{i}");
        let partition = i as i32 % partitions;
        producer
            .send(
                BaseRecord::<(), _>::to(topic)
                    .payload(&value)
                    .partition(partition),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

/// A reader of every partition of `topic` from the beginning, outside any group's
/// membership (offsets assigned, not subscribed).
fn reader(bootstrap: &str, topic: &str, partitions: i32, isolation: &str) -> BaseConsumer {
    let consumer: BaseConsumer = rdkafka_config(bootstrap)
        .set("group.id", "readers")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("fetch.wait.max.ms", "100")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    consumer
}

/// Polls until `count` more values arrived (failing after [`WAIT`]), then returns them.
fn read(consumer: &BaseConsumer, count: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut values = Vec::with_capacity(count);
    while values.len() < count {
        assert!(
            Instant::now() < deadline,
            "read {} of {count} records: {values:?}",
            values.len()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            values.push(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
        }
    }
    values
}

/// What arrives within [`QUIET`].
fn read_for_a_while(consumer: &BaseConsumer) -> Vec<String> {
    let deadline = Instant::now() + QUIET;
    let mut values = Vec::new();
    while Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(50)) {
            let message = message.unwrap();
            values.push(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
        }
    }
    values
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

fn expected(prefix: &str, count: usize) -> Vec<String> {
    sorted((0..count).map(|i| format!("{prefix}-{i}")).collect())
}

/// Whether every partition of `topic` has no open transaction (LSO = HW).
fn all_stable(cluster: &MockCluster, topic: &str, partitions: i32) -> bool {
    (0..partitions).all(|p| {
        let offsets = cluster.offsets(topic, p).unwrap();
        offsets.last_stable_offset == offsets.high_watermark
    })
}

/// Asserts that `result` is librdkafka's fatal error (a fenced producer).
fn assert_fatal(result: Result<(), KafkaError>, what: &str) {
    match result {
        Err(KafkaError::Transaction(e)) => assert!(e.is_fatal(), "{what}: not fatal: {e}"),
        other => panic!("{what}: expected a fatal transaction error, got {other:?}"),
    }
}

on_mock_and_tansu!(
    read_committed_sees_commits_not_aborts_and_waits_at_the_lso,
    a_second_producer_with_the_same_id_fences_the_first,
    consumed_offsets_commit_with_the_transaction,
    a_group_member_commits_its_position_with_its_output,
);

/// On Tansu in part: its read_committed readers also get the aborted records (tansu-notes.md
/// gap 1); the rest holds there too: commits are visible, readers wait at the LSO and are not
/// stuck once the transaction ends.
async fn read_committed_sees_commits_not_aborts_and_waits_at_the_lso(target: Target) {
    let topic = "eos";
    with_target(target, &[(topic, 2)], move |target| {
        let bootstrap = target.bootstrap();
        let producer = txn_producer(&bootstrap, "eos-producer", &[]);
        producer.init_transactions(WAIT).unwrap();

        producer.begin_transaction().unwrap();
        send(&producer, topic, 2, "committed", 10);
        producer.commit_transaction(WAIT).unwrap();

        producer.begin_transaction().unwrap();
        send(&producer, topic, 2, "aborted", 10);
        producer.flush(WAIT).unwrap();
        producer.abort_transaction(WAIT).unwrap();

        producer.begin_transaction().unwrap();
        send(&producer, topic, 2, "open", 10);
        producer.flush(WAIT).unwrap();
        // The offsets are the mock's own view; on Tansu the readers below observe the LSO.
        if let Some(cluster) = target.mock_cluster() {
            for p in 0..2 {
                // Per partition: 5 committed, a commit marker, 5 aborted, an abort marker,
                // then the open transaction's 5 records from offset 12.
                let offsets = cluster.offsets(topic, p).unwrap();
                assert_eq!(offsets.high_watermark, 17, "partition {p}");
                assert_eq!(offsets.last_stable_offset, 12, "partition {p}");
            }
        }
        // What a read_committed reader gets besides the committed records: nothing, or on
        // Tansu the aborted ones too.
        let unfiltered = if target.filters_aborted_records() {
            Vec::new()
        } else {
            expected("aborted", 10)
        };

        let committed_reader = reader(&bootstrap, topic, 2, "read_committed");
        let uncommitted_reader = reader(&bootstrap, topic, 2, "read_uncommitted");
        let mut stable = expected("committed", 10);
        stable.extend(unfiltered.clone());
        assert_eq!(
            sorted(read(&committed_reader, stable.len())),
            sorted(stable)
        );
        assert_eq!(
            read_for_a_while(&committed_reader),
            Vec::<String>::new(),
            "nothing past the last stable offset while the transaction is open"
        );
        let everything = sorted(read(&uncommitted_reader, 30));
        let mut all = expected("aborted", 10);
        all.extend(expected("committed", 10));
        all.extend(expected("open", 10));
        assert_eq!(everything, sorted(all), "read_uncommitted reads to the HW");

        producer.commit_transaction(WAIT).unwrap();
        if let Some(cluster) = target.mock_cluster() {
            assert!(all_stable(cluster, topic, 2));
        }
        assert_eq!(sorted(read(&committed_reader, 10)), expected("open", 10));
        assert_eq!(read_for_a_while(&committed_reader), Vec::<String>::new());

        // A reader starting now skips the aborted transaction by the aborted list.
        let late_reader = reader(&bootstrap, topic, 2, "read_committed");
        let mut committed = expected("committed", 10);
        committed.extend(expected("open", 10));
        committed.extend(unfiltered);
        assert_eq!(
            sorted(read(&late_reader, committed.len())),
            sorted(committed)
        );
        assert_eq!(read_for_a_while(&late_reader), Vec::<String>::new());

        // Transactions that touched nothing end without EndTxn (an Empty transaction would
        // answer INVALID_TXN_STATE, which librdkafka treats as fatal), and write nothing.
        producer.begin_transaction().unwrap();
        producer.commit_transaction(WAIT).unwrap();
        producer.begin_transaction().unwrap();
        producer.abort_transaction(WAIT).unwrap();
        if let Some(cluster) = target.mock_cluster() {
            assert_eq!(cluster.offsets(topic, 0).unwrap().high_watermark, 18);
        }
    })
    .await;
}

/// On Tansu in part: its read_committed reader also gets the aborted records of the fenced
/// producer (tansu-notes.md gap 1), and the fenced producer's commit fails without a fatal
/// error (see below).
async fn a_second_producer_with_the_same_id_fences_the_first(target: Target) {
    let topic = "fencing";
    with_target(target, &[(topic, 2)], move |target| {
        let bootstrap = target.bootstrap();
        let first = txn_producer(&bootstrap, "fenced-id", &[]);
        first.init_transactions(WAIT).unwrap();
        first.begin_transaction().unwrap();
        send(&first, topic, 2, "zombie", 4);
        first.flush(WAIT).unwrap();
        let cluster = target.mock_cluster();
        assert!(cluster.is_none_or(|c| !all_stable(c, topic, 2)));

        // Initialising the second aborts the first's open transaction.
        let second = txn_producer(&bootstrap, "fenced-id", &[]);
        second.init_transactions(WAIT).unwrap();
        assert!(cluster.is_none_or(|c| all_stable(c, topic, 2)));
        second.begin_transaction().unwrap();
        send(&second, topic, 2, "successor", 4);
        second.commit_transaction(WAIT).unwrap();

        match target {
            Target::Mock(_) => assert_fatal(
                first.commit_transaction(WAIT),
                "the fenced producer's commit",
            ),
            // Tansu answers a fenced producer's EndTxn by closing the connection, not with
            // PRODUCER_FENCED, and librdkafka retries it until its timeout: the commit still
            // does not go through, but is not reported as fatal.
            Target::Tansu(_) => assert!(
                first.commit_transaction(QUIET).is_err(),
                "the fenced producer's commit"
            ),
        }

        let committed_reader = reader(&bootstrap, topic, 2, "read_committed");
        let mut visible = expected("successor", 4);
        if !target.filters_aborted_records() {
            visible.extend(expected("zombie", 4));
        }
        assert_eq!(
            sorted(read(&committed_reader, visible.len())),
            sorted(visible)
        );
        assert_eq!(read_for_a_while(&committed_reader), Vec::<String>::new());
    })
    .await;
}

// Mock only: Tansu has no transaction timeout (tansu-notes.md gap 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    with_cluster(|cluster| {
        let bootstrap = cluster.bootstrap();
        let topic = "timeouts";
        cluster.create_topic(topic, 2);
        // librdkafka's smallest transaction timeout; it lowers message.timeout.ms and
        // socket.timeout.ms to fit.
        let zombie = txn_producer(&bootstrap, "slow", &[("transaction.timeout.ms", "1000")]);
        zombie.init_transactions(WAIT).unwrap();
        zombie.begin_transaction().unwrap();
        send(&zombie, topic, 2, "abandoned", 4);
        zombie.flush(WAIT).unwrap();
        let flushed = Instant::now();
        assert!(!all_stable(cluster, topic, 2));

        let deadline = Instant::now() + WAIT;
        while !all_stable(cluster, topic, 2) {
            assert!(Instant::now() < deadline, "the transaction never timed out");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            flushed.elapsed() >= Duration::from_millis(500),
            "aborted after {:?}, before its 1 s timeout",
            flushed.elapsed()
        );

        let next = txn_producer(&bootstrap, "prompt", &[]);
        next.init_transactions(WAIT).unwrap();
        next.begin_transaction().unwrap();
        send(&next, topic, 2, "later", 4);
        next.commit_transaction(WAIT).unwrap();
        let committed_reader = reader(&bootstrap, topic, 2, "read_committed");
        assert_eq!(sorted(read(&committed_reader, 4)), expected("later", 4));
        assert_eq!(read_for_a_while(&committed_reader), Vec::<String>::new());

        // The abort bumped the epoch: the producer that timed out is fenced.
        assert_fatal(
            zombie.commit_transaction(WAIT),
            "the timed-out producer's commit",
        );
    })
    .await;
}

// Mock only: Tansu is one broker and cannot move a transaction coordinator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_follows_its_coordinator_when_it_moves() {
    with_cluster(|cluster| {
        let bootstrap = cluster.bootstrap();
        let topic = "moving";
        cluster.create_topic(topic, 2);
        let id = "mover";
        let producer = txn_producer(&bootstrap, id, &[]);
        producer.init_transactions(WAIT).unwrap();
        producer.begin_transaction().unwrap();
        send(&producer, topic, 1, "before", 3);
        producer.flush(WAIT).unwrap();

        // AddPartitionsToTxn for partition 1 reaches the old coordinator first.
        let first = cluster.transaction_coordinator(id);
        let second = first % 3 + 1;
        cluster.move_transaction_coordinator(id, second);
        producer
            .send(BaseRecord::<(), _>::to(topic).payload("after").partition(1))
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(WAIT).unwrap();

        // And EndTxn too.
        let third = second % 3 + 1;
        cluster.move_transaction_coordinator(id, third);
        producer.commit_transaction(WAIT).unwrap();
        assert_eq!(cluster.transaction_coordinator(id), third);
        assert!(all_stable(cluster, topic, 2));

        let committed_reader = reader(&bootstrap, topic, 2, "read_committed");
        let mut all = expected("before", 3);
        all.push("after".to_owned());
        assert_eq!(sorted(read(&committed_reader, 4)), sorted(all));

        // The next transaction runs at the new coordinator from the start.
        producer.begin_transaction().unwrap();
        send(&producer, topic, 2, "next", 2);
        producer.commit_transaction(WAIT).unwrap();
        assert_eq!(sorted(read(&committed_reader, 2)), expected("next", 2));
    })
    .await;
}

async fn consumed_offsets_commit_with_the_transaction(target: Target) {
    with_target(target, &[("eos-in", 1), ("eos-out", 1)], |target| {
        let bootstrap = target.bootstrap();
        let feeder = txn_producer(&bootstrap, "feeder", &[]);
        feeder.init_transactions(WAIT).unwrap();
        feeder.begin_transaction().unwrap();
        send(&feeder, "eos-in", 1, "in", 10);
        feeder.commit_transaction(WAIT).unwrap();

        // Consume-transform-produce, with the consumer's group metadata. The consumer is
        // assigned its partition rather than subscribed, so it commits as generation -1.
        let consumer: BaseConsumer = rdkafka_config(&bootstrap)
            .set("group.id", "eos-group")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset("eos-in", 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&assignment).unwrap();
        let inputs = read(&consumer, 10);
        let group = consumer.group_metadata().unwrap();

        let app = txn_producer(&bootstrap, "transformer", &[]);
        app.init_transactions(WAIT).unwrap();
        app.begin_transaction().unwrap();
        for input in &inputs {
            let output = input.replace("in-", "out-");
            app.send(BaseRecord::<(), _>::to("eos-out").payload(&output))
                .map_err(|(e, _)| e)
                .unwrap();
        }
        let mut consumed = TopicPartitionList::new();
        consumed
            .add_partition_offset("eos-in", 0, Offset::Offset(10))
            .unwrap();
        app.send_offsets_to_transaction(&consumed, &group, WAIT)
            .unwrap();
        app.commit_transaction(WAIT).unwrap();

        let out_reader = reader(&bootstrap, "eos-out", 1, "read_committed");
        assert_eq!(sorted(read(&out_reader, 10)), expected("out", 10));

        // An aborted transaction's offsets are dropped with it.
        app.begin_transaction().unwrap();
        let mut later = TopicPartitionList::new();
        later
            .add_partition_offset("eos-in", 0, Offset::Offset(20))
            .unwrap();
        app.send_offsets_to_transaction(&later, &group, WAIT)
            .unwrap();
        app.abort_transaction(WAIT).unwrap();

        // Judged through the group coordinator's OffsetFetch: the committed offset is the
        // first transaction's, not the aborted one's.
        let mut ask = TopicPartitionList::new();
        ask.add_partition("eos-in", 0);
        let committed = consumer.committed_offsets(ask, WAIT).unwrap();
        assert_eq!(
            committed.find_partition("eos-in", 0).map(|e| e.offset()),
            Some(Offset::Offset(10))
        );
    })
    .await;
}

async fn a_group_member_commits_its_position_with_its_output(target: Target) {
    with_target(target, &[("loop-in", 2), ("loop-out", 2)], |target| {
        let bootstrap = target.bootstrap();
        let feeder = txn_producer(&bootstrap, "loop-feeder", &[]);
        feeder.init_transactions(WAIT).unwrap();
        feeder.begin_transaction().unwrap();
        send(&feeder, "loop-in", 2, "in", 20);
        feeder.commit_transaction(WAIT).unwrap();

        // A subscribed member: its TxnOffsetCommit (v3) carries its member id and generation,
        // which the group coordinator checks.
        let consumer: BaseConsumer = rdkafka_config(&bootstrap)
            .set("group.id", "loop-group")
            // Tansu holds a JoinGroup for half of it (tansu-notes.md gap 6).
            .set("session.timeout.ms", "6000")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .create()
            .unwrap();
        consumer.subscribe(&["loop-in"]).unwrap();
        let inputs = read(&consumer, 20);
        let group = consumer.group_metadata().unwrap();
        let position = consumer.position().unwrap();

        let app = txn_producer(&bootstrap, "loop-app", &[]);
        app.init_transactions(WAIT).unwrap();
        app.begin_transaction().unwrap();
        for input in &inputs {
            let output = input.replace("in-", "out-");
            app.send(BaseRecord::<(), _>::to("loop-out").payload(&output))
                .map_err(|(e, _)| e)
                .unwrap();
        }
        app.send_offsets_to_transaction(&position, &group, WAIT)
            .unwrap();
        app.commit_transaction(WAIT).unwrap();

        // The position is past the 10 records of each partition, and past the commit marker
        // after them once librdkafka has read it.
        let committed = consumer.committed(WAIT).unwrap();
        for p in 0..2 {
            let sent = position.find_partition("loop-in", p).unwrap().offset();
            assert!(
                matches!(sent, Offset::Offset(10 | 11)),
                "partition {p} at {sent:?}"
            );
            assert_eq!(
                committed.find_partition("loop-in", p).map(|e| e.offset()),
                Some(sent),
                "partition {p}"
            );
        }
        let out_reader = reader(&bootstrap, "loop-out", 2, "read_committed");
        assert_eq!(sorted(read(&out_reader, 20)), expected("out", 20));
    })
    .await;
}

// Mock only: Tansu has no fault injection (injected errors, a connection cut mid-response).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_is_lost_is_retried_and_lands_once() {
    with_cluster(|cluster| {
        let bootstrap = cluster.bootstrap();
        let topic = "lost-answers";
        cluster.create_topic(topic, 2);
        let producer = txn_producer(&bootstrap, "unlucky", &[]);
        producer.init_transactions(WAIT).unwrap();
        producer.begin_transaction().unwrap();
        // Retriable: librdkafka backs off and adds the partitions again.
        cluster.inject(
            Fault::error(
                ApiKey::AddPartitionsToTxn,
                ResponseError::ConcurrentTransactions,
            )
            .times(2),
        );
        // The coordinator commits, then the connection drops halfway through its answer: the
        // retried EndTxn finds the transaction committed and answers success again.
        cluster.inject(Fault::disconnect_mid_response().api(ApiKey::EndTxn));
        send(&producer, topic, 2, "once", 6);
        producer.commit_transaction(WAIT).unwrap();
        assert_eq!(cluster.pending_faults(), 0, "every injected fault fired");
        for p in 0..2 {
            let offsets = cluster.offsets(topic, p).unwrap();
            assert_eq!(offsets.high_watermark, 4, "3 records and one commit marker");
            assert_eq!(offsets.last_stable_offset, 4);
        }
        let committed_reader = reader(&bootstrap, topic, 2, "read_committed");
        assert_eq!(sorted(read(&committed_reader, 6)), expected("once", 6));
        assert_eq!(read_for_a_while(&committed_reader), Vec::<String>::new());
    })
    .await;
}
