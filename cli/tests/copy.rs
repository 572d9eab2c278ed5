//! `sluice copy` is exactly once through `kill -9`: it copies 100,000 keyed records while it is
//! killed 20 times at chosen bad moments (while EndTxn is in flight, right after it, while the
//! offsets are being added or committed, and at random points) and restarted each time. The
//! read_committed output then holds exactly the input, upper-cased, each record once, keys and
//! headers kept, in per-key order.
//!
//! On the mock cluster, which filters aborted transactions (Tansu does not, tansu-notes.md
//! gap 1, so the local broker cannot show that a killed copy's open transaction left nothing
//! visible). A bad moment is hit by holding back the mock's answer to a request
//! (`Fault::delay`) and killing the copy once the mock has received it.
//!
//! Twice: with transactions v1 (partitions and offsets added with AddPartitionsToTxn and
//! AddOffsetsToTxn, which are bad moments then) and v2 (KIP-890 part 2: the first Produce
//! adds a partition, and every EndTxn bumps the epoch, so a kill while EndTxn is held leaves
//! the restarted copy to fence a producer whose epoch already moved).
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_client::config::{ConsumerConfig, ProducerConfig};
use sluice_client::consumer::{Consumer, Offset};
use sluice_client::producer::{Producer, ProducerRecord};
use sluice_mock::{ApiKey, Fault, MockCluster, MockConfig};

const RECORDS: usize = 100_000;
const KEYS: usize = 64;
const PARTITIONS: i32 = 6;
const KILLS: usize = 20;

fn copy(bootstrap: &str, idle_exit: Option<&str>) -> Child {
    let mut args = vec![
        "copy",
        "-b",
        bootstrap,
        "--from",
        "in",
        "--to",
        "out",
        "-g",
        "copier",
        "--transactional-id",
        "copier-1",
        "--map",
        "upper",
        "--commit-interval-ms",
        "100",
        // A static member: a restarted copy takes over at once instead of waiting for the
        // killed one's session to expire.
        "-X",
        "group.instance.id=copier-a",
        "-X",
        "session.timeout.ms=6000",
    ];
    if let Some(ms) = idle_exit {
        args.extend(["--idle-exit-ms", ms]);
    }
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Waits until the mock has received one more `api` request than `before`.
fn wait_for_request(cluster: &MockCluster, api: ApiKey, before: u64, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.requests_seen(api) <= before {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

#[test]
fn copy_is_exactly_once_through_kill_9_with_transactions_v1() {
    copy_is_exactly_once_through_kill_9(1);
}

#[test]
fn copy_is_exactly_once_through_kill_9_with_transactions_v2() {
    copy_is_exactly_once_through_kill_9(2);
}

fn copy_is_exactly_once_through_kill_9(transaction_version: i16) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cluster = rt
        .block_on(MockCluster::start(MockConfig {
            transaction_version,
            ..MockConfig::with_brokers(3)
        }))
        .unwrap();
    cluster.create_topic("in", PARTITIONS);
    cluster.create_topic("out", PARTITIONS);
    let b = cluster.bootstrap();

    // Input: key k{i % KEYS}, value "value-{i}" (i grows per key), one header; written in
    // chunks, one before each run of the copy, so that every run has work to be killed in.
    let producer = rt.block_on(async {
        Producer::new(
            ProducerConfig::from_properties([
                ("bootstrap.servers", b.as_str()),
                ("linger.ms", "5"),
            ])
            .unwrap(),
        )
        .await
        .unwrap()
    });
    let chunk = RECORDS / (KILLS + 1);
    let produce = |range: std::ops::Range<usize>| {
        rt.block_on(async {
            let mut pending = Vec::with_capacity(range.len());
            for i in range {
                let record = ProducerRecord::new("in")
                    .key(format!("k{}", i % KEYS))
                    .value(format!("value-{i}"))
                    .header("n", i.to_string());
                pending.push(producer.send(record).await.unwrap());
            }
            for p in pending {
                p.await.unwrap();
            }
        })
    };

    // Kill the copy at chosen moments, then at random ones.
    let moments = if transaction_version >= 2 {
        [
            ApiKey::EndTxn,
            ApiKey::TxnOffsetCommit,
            ApiKey::Produce,
            ApiKey::InitProducerId,
        ]
    } else {
        [
            ApiKey::EndTxn,
            ApiKey::TxnOffsetCommit,
            ApiKey::AddOffsetsToTxn,
            ApiKey::AddPartitionsToTxn,
        ]
    };
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    for kill in 0..KILLS {
        produce(kill * chunk..(kill + 1) * chunk);
        let mut child = copy(&b, None);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if kill < 12 {
            let api = moments[kill % moments.len()];
            // Every other time hold the answer back, so the kill lands while the request is
            // in flight (the mock has applied it but the copy does not know).
            let held = kill % 2 == 0;
            if held {
                cluster.inject(Fault::delay(Duration::from_secs(5)).api(api));
            }
            let before = cluster.requests_seen(api);
            let reached = wait_for_request(&cluster, api, before, &mut child);
            assert!(reached, "kill {kill}: the copy never sent {api:?}");
            if !held {
                std::thread::sleep(Duration::from_millis(rng % 20));
            }
            cluster.clear_faults();
        } else {
            std::thread::sleep(Duration::from_millis(300 + rng % 1200));
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // The last run copies the rest and exits once the input has been idle.
    produce(KILLS * chunk..RECORDS);
    let mut last = copy(&b, Some("3000"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = last.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the last copy did not finish");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "the last copy failed: {status}");

    // The committed output: every input record once, upper-cased, keys, headers and per-key
    // order kept.
    let read = rt.block_on(async {
        let config = ConsumerConfig::from_properties([
            ("bootstrap.servers", b.as_str()),
            ("isolation.level", "read_committed"),
        ])
        .unwrap();
        let mut consumer = Consumer::new(config).await.unwrap();
        let all: Vec<(&str, i32, Offset)> = (0..PARTITIONS)
            .map(|p| ("out", p, Offset::Beginning))
            .collect();
        consumer.assign_with_offsets(&all);
        let mut read = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while read.len() < RECORDS {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(batch) =
                tokio::time::timeout(left.max(Duration::from_millis(1)), consumer.poll_batch())
                    .await
            else {
                break;
            };
            read.extend(batch.unwrap().to_records().unwrap());
        }
        // Nothing more may follow (a duplicate would come after the expected count).
        if let Ok(extra) = tokio::time::timeout(Duration::from_secs(1), consumer.poll_batch()).await
        {
            read.extend(extra.unwrap().to_records().unwrap());
        }
        read
    });
    assert_eq!(read.len(), RECORDS, "records in the committed output");
    let mut per_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for r in &read {
        let key = String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap();
        let value = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
        let i: usize = value.strip_prefix("VALUE-").unwrap().parse().unwrap();
        assert_eq!(key, format!("k{}", i % KEYS));
        assert_eq!(r.headers.len(), 1);
        assert_eq!(
            r.headers[0].value.as_deref(),
            Some(i.to_string().as_bytes())
        );
        per_key.entry(key).or_default().push(i);
    }
    for (key, seq) in &per_key {
        let expected: Vec<usize> = (0..RECORDS)
            .filter(|i| format!("k{}", i % KEYS) == *key)
            .collect();
        assert_eq!(seq, &expected, "key {key}: each once, in order");
    }
}
