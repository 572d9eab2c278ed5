//! `sluice consume -g` and `sluice group` on the local broker: a group member reads part of a
//! topic and commits exactly what it printed, the next member continues from there, and
//! `group list`, `group describe` (committed offsets and lag) and `group reset-offsets` show
//! and move the group's offsets.
//!
//! Tansu holds JoinGroup for half the session timeout (tansu-notes.md, gap 6): the members
//! here use a short session.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use sluice_tests::TestBroker;
use support::{create_topic, json_lines, lines, sluice_ok};

const SESSION: &str = "session.timeout.ms=6000";

fn values(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect()
}

/// (topic, partition, committed, end, lag) rows of `group describe`.
fn describe_rows(b: &str, group: &str) -> Vec<(String, i64, Option<i64>, i64, i64)> {
    let out = sluice_ok(&["group", "describe", "-b", b, group], b"");
    lines(&out)
        .iter()
        .skip_while(|l| !l.starts_with("TOPIC"))
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].to_owned(),
                f[1].parse().unwrap(),
                f[2].parse().ok(),
                f[3].parse().unwrap(),
                f[4].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn group_members_continue_where_the_last_one_stopped_and_offsets_can_be_reset() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&broker, "grouped", 3);
    let input: String = (0..100).map(|i| format!("v{i}\n")).collect();
    sluice_ok(
        &["produce", "-b", &b, "-t", "grouped", "-X", "batch.size=1"],
        input.as_bytes(),
    );

    let consume = |extra: &[&str]| {
        let mut args = vec![
            "consume", "-b", &b, "-g", "g1", "-t", "grouped", "-X", SESSION, "--format", "json",
        ];
        args.extend_from_slice(extra);
        json_lines(&sluice_ok(&args, b""))
    };
    let first = values(&consume(&["-c", "40"]));
    assert_eq!(first.len(), 40);

    // Only partitions with a committed offset are listed (the member may not have printed from
    // all three); each row's lag is its end minus its committed offset.
    let rows = describe_rows(&b, "g1");
    assert_eq!(
        rows.iter().map(|r| r.2.unwrap_or(0)).sum::<i64>(),
        40,
        "committed = printed: {rows:?}"
    );
    assert!(
        rows.iter().all(|r| r.4 == r.3 - r.2.unwrap_or(0)),
        "lag: {rows:?}"
    );
    let listed = lines(&sluice_ok(&["group", "list", "-b", &b], b""));
    assert!(
        listed.iter().any(|l| l.starts_with("g1\tconsumer")),
        "{listed:?}"
    );

    // The next member reads exactly the other 60.
    let rest = values(&consume(&["-e"]));
    let all: BTreeSet<String> = first.iter().chain(&rest).cloned().collect();
    assert_eq!(rest.len(), 60);
    assert_eq!(all.len(), 100, "no record twice, none missing");
    let rows = describe_rows(&b, "g1");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r.4 == 0), "{rows:?}");

    // Reset: to an offset, then to the beginning; the group reads from there again.
    let reset = lines(&sluice_ok(
        &[
            "group",
            "reset-offsets",
            "-b",
            &b,
            "g1",
            "-t",
            "grouped",
            "--to",
            "30",
        ],
        b"",
    ));
    assert_eq!(reset.len(), 3);
    let rows = describe_rows(&b, "g1");
    assert!(rows.iter().all(|r| r.2 == Some(30.min(r.3))), "{rows:?}");
    sluice_ok(
        &[
            "group",
            "reset-offsets",
            "-b",
            &b,
            "g1",
            "-t",
            "grouped",
            "--to",
            "earliest",
        ],
        b"",
    );
    assert_eq!(values(&consume(&["-e"])).len(), 100);
}
