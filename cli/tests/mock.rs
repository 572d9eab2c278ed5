//! `sluice mock` runs a cluster that `sluice produce` and `sluice consume` (and so any client)
//! can use with nothing installed.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};

use support::{json_lines, sluice_ok, spawn};

#[test]
fn mock_prints_its_bootstrap_and_serves_produce_and_consume() {
    let mut mock = spawn(&["mock", "--brokers", "2", "-t", "demo:3"], b"");
    let stdout = mock.stdout.take().unwrap();
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let bootstrap = first.trim().to_owned();
    assert_eq!(bootstrap.split(',').count(), 2, "two brokers: {bootstrap}");

    let input: String = (0..100).map(|i| format!("k{i}:v{i}\n")).collect();
    sluice_ok(
        &["produce", "-b", &bootstrap, "-t", "demo", "-K", ":"],
        input.as_bytes(),
    );
    let out = sluice_ok(
        &[
            "consume", "-b", &bootstrap, "-t", "demo", "-e", "--format", "json",
        ],
        b"",
    );
    let mut values: Vec<String> = json_lines(&out)
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect();
    values.sort_by_key(|v| v[1..].parse::<u32>().unwrap());
    let expected: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
    assert_eq!(values, expected);
    // The topic has the three partitions asked for, each with some of the records.
    let partitions: std::collections::BTreeSet<u64> = json_lines(&out)
        .iter()
        .map(|r| r["partition"].as_u64().unwrap())
        .collect();
    assert_eq!(partitions.len(), 3);
    mock.kill().unwrap();
    mock.wait().unwrap();
}
