//! `sluice dump` on real segment bytes (written by kafka-python) and on damaged copies.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../protocol/tests/fixtures/kafka-python")
        .join(name)
}

fn dump(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("dump")
        .args(args)
        .arg(file)
        .output()
        .unwrap()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn expected_records() -> Vec<Value> {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("sample.json")).unwrap()).unwrap();
    expected["batches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["records"].as_array().unwrap().clone())
        .collect()
}

#[test]
fn dumps_every_record_of_the_sample_segment_as_json() {
    let out = dump(&[], &fixture("sample.log"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = lines(&out);
    let expected = expected_records();
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g["offset"], e["offset"]);
        assert_eq!(g["timestamp"], e["timestamp"]);
        assert_eq!(g["control"], e["control"]);
    }
    // Text prints as text, binary as base64, null as null; headers keep order and duplicates.
    let first = &got[0];
    assert_eq!(first["key"], Value::Null);
    assert_eq!(
        first["headers"],
        serde_json::json!([
            ["trace", "t-0"],
            ["trace", "second"],
            ["empty", ""],
            ["null", null]
        ])
    );
    assert_eq!(got[1]["key"], "");
    assert!(
        got[3]["value"]["base64"].is_string(),
        "binary value: {}",
        got[3]
    );
    let codecs: Vec<&str> = got
        .iter()
        .map(|l| l["compression"].as_str().unwrap())
        .collect();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        assert!(codecs.contains(&codec), "{codec} batch in the sample");
    }
    let txn = got.iter().find(|l| l["transactional"] == true).unwrap();
    assert!(txn["producer_id"].as_i64().unwrap() >= 0);
    assert!(got.iter().any(|l| l["control"] == "commit"));
    for field in ["base_offset", "producer_epoch", "base_sequence"] {
        assert!(first.get(field).is_some(), "{field}");
    }
}

#[test]
fn truncated_file_prints_records_before_the_damage_then_the_offset() {
    let data = std::fs::read(fixture("sample.log")).unwrap();
    let first_batch_len = 12 + i32::from_be_bytes(data[8..12].try_into().unwrap()) as usize;
    let dir = tempdir();
    let cut = dir.join("cut.log");
    std::fs::write(&cut, &data[..first_batch_len + 30]).unwrap();
    let out = dump(&[], &cut);
    assert!(!out.status.success());
    assert_eq!(lines(&out).len(), 40, "the whole first batch is printed");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one line of error: {err}");
    assert!(err.contains(&format!("byte {first_batch_len}")), "{err}");
}

#[test]
fn bad_crc_fails_unless_told_not_to_check() {
    let mut data = std::fs::read(fixture("none.bin")).unwrap();
    // lastOffsetDelta's low byte: covered by the CRC, but no record depends on it.
    data[26] ^= 0x40;
    let dir = tempdir();
    let bad = dir.join("bad.log");
    std::fs::write(&bad, &data).unwrap();
    let out = dump(&[], &bad);
    assert!(!out.status.success());
    assert!(lines(&out).is_empty());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("CRC32C mismatch"));
    let out = dump(&["--no-verify-crc"], &bad);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&out).len(), 40);
}

#[test]
fn missing_file_is_a_one_line_error() {
    let out = dump(&[], Path::new("/nonexistent/segment.log"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("sluice: error: cannot read /nonexistent/segment.log"),
        "{err}"
    );
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sluice-dump-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
