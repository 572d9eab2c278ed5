//! `sluice produce` and `sluice consume` against a real broker: keys, headers and every codec
//! round trip; `-o`, `-c` and `-e` behave as in kcat.
//!
//! Where a test needs ListOffsets LATEST to be right it writes one record per batch
//! (`-X batch.size=1`): Tansu answers LATEST with the last batch's base offset + 1
//! (tansu-notes.md, gap 3), which is the end of the log only then. Kafka needs no such care.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use sluice_client::producer::partitioner::{murmur2, to_positive};
use sluice_tests::TestBroker;
use support::{create_topic, json_lines, lines, sluice_ok, spawn, wait};

const PARTITIONS: i32 = 3;

/// Input lines for `-K :`, and the (key, value) each must come back as.
fn keyed_input() -> (Vec<u8>, Vec<(Value, Value)>) {
    let mut input = Vec::new();
    let mut expected = Vec::new();
    for i in 0..30 {
        input.extend_from_slice(format!("key-{i}:value {i}: with a colon\n").as_bytes());
        expected.push((
            json!(format!("key-{i}")),
            json!(format!("value {i}: with a colon")),
        ));
    }
    // Empty lines are skipped; no delimiter: all value, null key; empty key and empty value.
    input.extend_from_slice(b"\nno delimiter here\n:empty key\nempty value:\n");
    expected.push((Value::Null, json!("no delimiter here")));
    expected.push((json!(""), json!("empty key")));
    expected.push((json!("empty value"), json!("")));
    // Not UTF-8: printed as base64. No newline at the end of input: still a record.
    input.extend_from_slice(b"\xff\xfe:\x00\xff");
    expected.push((json!({"base64": "//4="}), json!({"base64": "AP8="})));
    (input, expected)
}

#[test]
fn keys_headers_and_every_codec_round_trip_as_json() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    let (input, expected) = keyed_input();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&broker, &topic, PARTITIONS);
        let out = sluice_ok(
            &[
                "produce",
                "-b",
                &b,
                "-t",
                &topic,
                "-K",
                ":",
                "-z",
                codec,
                "-H",
                "trace=t-1",
                "-H",
                "flag",
                "-H",
                "trace=again",
            ],
            &input,
        );
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "quiet");
        let read = json_lines(&sluice_ok(
            &["consume", "-b", &b, "-t", &topic, "-e", "--format", "json"],
            b"",
        ));
        assert_eq!(read.len(), expected.len(), "{codec}");
        for (key, value) in &expected {
            let line = read
                .iter()
                .find(|l| &l["key"] == key && &l["value"] == value)
                .unwrap_or_else(|| panic!("{codec}: {key}/{value} not read back"));
            assert_eq!(line["topic"], json!(topic));
            assert_eq!(line["compression"], json!(codec), "{line}");
            assert_eq!(
                line["headers"],
                json!([["trace", "t-1"], ["flag", null], ["trace", "again"]])
            );
            if let Some(k) = key.as_str() {
                let partition = to_positive(murmur2(k.as_bytes()) as i32) % PARTITIONS;
                assert_eq!(line["partition"], json!(partition), "{line}");
            }
        }
    }
}

#[test]
fn partition_flag_writes_and_reads_one_partition() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&broker, "one", PARTITIONS);
    sluice_ok(
        &["produce", "-b", &b, "-t", "one", "-p", "2", "-K", "\\t"],
        b"a\t1\nb\t2\nc\t3\n",
    );
    let all = json_lines(&sluice_ok(
        &["consume", "-b", &b, "-t", "one", "-e", "--format", "json"],
        b"",
    ));
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|l| l["partition"] == 2), "{all:?}");
    // Text output, kcat's -K: key DELIM value.
    let text = sluice_ok(
        &["consume", "-b", &b, "-t", "one", "-p", "2", "-e", "-K", "="],
        b"",
    );
    assert_eq!(lines(&text), ["a=1", "b=2", "c=3"]);
    let empty = sluice_ok(&["consume", "-b", &b, "-t", "one", "-p", "0", "-e"], b"");
    assert!(empty.stdout.is_empty());
    // Quiet unless asked: -v counts the deliveries on stderr.
    let verbose = sluice_ok(&["produce", "-b", &b, "-t", "one", "-v"], b"d\ne\n");
    assert!(verbose.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&verbose.stderr),
        "sluice: 2 records delivered to one\n"
    );
}

/// Ten records "0".."9" in partition 0 of a one-partition topic, one per batch.
fn ten_records(broker: &TestBroker, topic: &str) {
    create_topic(broker, topic, 1);
    let input: String = (0..10).map(|i| format!("{i}\n")).collect();
    sluice_ok(
        &[
            "produce",
            "-b",
            &broker.bootstrap(),
            "-t",
            topic,
            "-X",
            "batch.size=1",
        ],
        input.as_bytes(),
    );
}

fn consume_text(broker: &TestBroker, topic: &str, extra: &[&str]) -> Vec<String> {
    let b = broker.bootstrap();
    let mut args = vec!["consume", "-b", &b, "-t", topic];
    args.extend_from_slice(extra);
    lines(&sluice_ok(&args, b""))
}

fn numbers(range: std::ops::Range<i32>) -> Vec<String> {
    range.map(|i| i.to_string()).collect::<Vec<_>>()
}

#[test]
fn offsets_beginning_end_exact_and_from_end() {
    let broker = TestBroker::start();
    ten_records(&broker, "offsets");
    let read = |extra: &[&str]| consume_text(&broker, "offsets", extra);
    assert_eq!(read(&["-e"]), numbers(0..10), "beginning is the default");
    assert_eq!(read(&["-o", "beginning", "-e"]), numbers(0..10));
    assert_eq!(read(&["-o", "7", "-e"]), numbers(7..10));
    assert_eq!(read(&["-o", "-3", "-e"]), numbers(7..10));
    assert_eq!(read(&["-o-3", "-e"]), numbers(7..10));
    assert_eq!(
        read(&["-o", "-30", "-e"]),
        numbers(0..10),
        "clamped to the start"
    );
    assert_eq!(read(&["-o", "end", "-e"]), Vec::<String>::new());
    assert_eq!(read(&["-o", "10", "-e"]), Vec::<String>::new());
    assert_eq!(read(&["-o", "s@0", "-e"]), numbers(0..10));
}

#[test]
fn count_stops_after_n_records_with_or_without_exit() {
    let broker = TestBroker::start();
    ten_records(&broker, "count");
    let read = |extra: &[&str]| consume_text(&broker, "count", extra);
    assert_eq!(read(&["-c", "4"]), numbers(0..4));
    assert_eq!(read(&["-c", "4", "-e", "-o", "5"]), numbers(5..9));
    assert_eq!(read(&["-c", "40", "-e"]), numbers(0..10), "-e first");
}

#[test]
fn exit_at_end_with_empty_partitions_and_an_empty_topic() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&broker, "empty", PARTITIONS);
    let out = sluice_ok(&["consume", "-b", &b, "-t", "empty", "-e"], b"");
    assert!(out.stdout.is_empty());
    // One partition with data, two without.
    sluice_ok(&["produce", "-b", &b, "-t", "empty", "-p", "1"], b"x\ny\n");
    assert_eq!(consume_text(&broker, "empty", &["-e"]), ["x", "y"]);
}

#[test]
fn end_without_exit_waits_for_new_records() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    ten_records(&broker, "tail");
    let mut tail = spawn(
        &["consume", "-b", &b, "-t", "tail", "-o", "end", "-c", "1"],
        b"",
    );
    // The consumer looks the end up in the background: keep writing until it has read one.
    for i in 0..30 {
        let record = format!("new-{i}\n");
        sluice_ok(&["produce", "-b", &b, "-t", "tail"], record.as_bytes());
        std::thread::sleep(Duration::from_millis(300));
        if tail.try_wait().unwrap().is_some() {
            break;
        }
    }
    let out = wait(tail, Duration::from_secs(10), "consume -o end -c 1");
    assert!(out.status.success());
    let got = lines(&out);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("new-"),
        "only records written after the start: {got:?}"
    );
}
