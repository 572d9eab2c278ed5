//! Interop with kafka-python, a Kafka implementation nobody here wrote.
//!
//! One way: `tests/fixtures/kafka-python/*.bin` were built by kafka-python's record-batch
//! builder (and python-snappy / python-lz4 for raw snappy and linked lz4 blocks) by
//! `scripts/interop/kafka_python_batches.py generate`; each `.json` holds exactly what went in.
//! We must decode every one to exactly that.
//!
//! The other way: this test writes batches of ours for every codec (and transactional and
//! control batches) with the records that went in, and `scripts/test.sh` then runs the same
//! script's `verify` step, which decodes them with kafka-python and compares.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};
use sluice_protocol::record::{
    BatchBuilder, BatchHeader, ControlRecord, ControlType, RecordBatch, RecordBatches,
};
use sluice_protocol::{Compression, Compressor, Decompressor};

fn hex(b: Option<&[u8]>) -> Value {
    match b {
        None => Value::Null,
        Some(b) => Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
    }
}

/// Our decoding of one batch in the script's JSON layout.
fn describe(batch: &RecordBatch, decompressor: &mut Decompressor) -> Value {
    batch.verify_crc().unwrap();
    let records = batch.decode(decompressor).unwrap();
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            let r = r.unwrap();
            let control =
                batch
                    .is_control()
                    .then(|| match ControlRecord::parse(&r).unwrap().kind {
                        ControlType::Commit => "commit",
                        ControlType::Abort => "abort",
                        ControlType::Other(_) => "other",
                    });
            let headers: Vec<Value> = r
                .headers()
                .map(|h| json!([hex(Some(h.key)), hex(h.value)]))
                .collect();
            json!({"offset": r.offset(), "timestamp": r.timestamp(), "key": hex(r.key()),
                   "value": hex(r.value()), "headers": headers, "control": control})
        })
        .collect();
    json!({"base_offset": batch.base_offset(), "producer_id": batch.producer_id(),
           "producer_epoch": batch.producer_epoch(), "base_sequence": batch.base_sequence(),
           "transactional": batch.is_transactional(), "control": batch.is_control(),
           "compression": batch.compression().name(), "records": records})
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka-python")
}

#[test]
fn batches_built_by_kafka_python_decode_to_what_went_in() {
    let mut decompressor = Decompressor::new();
    let mut checked = Vec::new();
    let mut paths: Vec<PathBuf> = fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin" || e == "log"))
        .collect();
    paths.sort();
    for path in paths {
        let expected: Value =
            serde_json::from_str(&fs::read_to_string(path.with_extension("json")).unwrap())
                .unwrap();
        let data = Bytes::from(fs::read(&path).unwrap());
        let got: Vec<Value> = RecordBatches::new(data)
            .map(|b| describe(&b.unwrap(), &mut decompressor))
            .collect();
        assert_eq!(Value::Array(got), expected["batches"], "{}", path.display());
        checked.push(path.file_stem().unwrap().to_string_lossy().into_owned());
    }
    for name in [
        "none",
        "gzip",
        "snappy",
        "snappy-raw",
        "lz4",
        "lz4-linked-blocks",
        "zstd",
        "transactional-lz4",
        "control-commit",
        "control-abort",
        "sample",
    ] {
        assert!(
            checked.iter().any(|c| c == name),
            "fixture {name} missing: {checked:?}"
        );
    }
}

/// Timestamp, key, value and headers of a record, as plain data.
type PlainRecord = (
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
);

/// The records our side writes: the same shapes the Python side uses.
fn our_records(seed: usize) -> Vec<PlainRecord> {
    (0..50)
        .map(|i| {
            let key = match i % 3 {
                0 => None,
                1 => Some(Vec::new()),
                _ => Some(format!("user-{}", (i * 7 + seed) % 13).into_bytes()),
            };
            let value = match i % 4 {
                0 => None,
                1 => Some(Vec::new()),
                2 => Some(
                    format!("{{\"page\":\"/item/{}\",\"n\":{i}}}", i % 17)
                        .repeat(4)
                        .into_bytes(),
                ),
                _ => Some((0..40).map(|j| ((i * 31 + j + seed) % 256) as u8).collect()),
            };
            let headers = if i % 2 == 0 {
                vec![
                    (b"trace".to_vec(), Some(format!("t-{i}").into_bytes())),
                    (b"trace".to_vec(), Some(b"second".to_vec())),
                    (b"empty".to_vec(), Some(Vec::new())),
                    (b"null".to_vec(), None),
                ]
            } else {
                Vec::new()
            };
            (
                1_700_000_000_000 + (i as i64) * 3 - (i as i64 % 5),
                key,
                value,
                headers,
            )
        })
        .collect()
}

#[test]
fn batches_we_write_are_left_for_kafka_python_to_verify() {
    let out = std::env::var_os("SLUICE_INTEROP_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop/sluice-written"));
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).unwrap();
    let mut compressor = Compressor::new();
    let mut decompressor = Decompressor::new();
    let mut cases: Vec<(String, BatchHeader, bool)> = Compression::ALL
        .iter()
        .map(|&c| {
            (
                c.name().to_owned(),
                BatchHeader {
                    compression: c,
                    ..BatchHeader::default()
                },
                false,
            )
        })
        .collect();
    let txn = BatchHeader {
        producer_id: 77,
        producer_epoch: 2,
        base_sequence: 500,
        transactional: true,
        ..BatchHeader::default()
    };
    cases.push((
        "transactional-zstd".into(),
        BatchHeader {
            compression: Compression::Zstd,
            ..txn
        },
        false,
    ));
    cases.push((
        "control".into(),
        BatchHeader {
            control: true,
            ..txn
        },
        true,
    ));
    for (seed, (name, header, control)) in cases.into_iter().enumerate() {
        // Two batches per file, the second at a later base offset, as in a segment.
        let mut file = BytesMut::new();
        let mut expected = Vec::new();
        for base_offset in [0i64, 1000] {
            let header = BatchHeader {
                base_offset,
                ..header
            };
            let mut b = BatchBuilder::new(header);
            if control {
                let kind = if base_offset == 0 {
                    ControlType::Commit
                } else {
                    ControlType::Abort
                };
                b.push_control(1_700_000_000_000, &ControlRecord::marker(kind, 9))
                    .unwrap();
            } else {
                for (ts, key, value, headers) in our_records(seed) {
                    let headers = headers.iter().map(|(k, v)| (k.as_slice(), v.as_deref()));
                    b.push(ts, key.as_deref(), value.as_deref(), headers)
                        .unwrap();
                }
            }
            let bytes = b.finish(&mut compressor).unwrap();
            // What we wrote must describe what went in: build the expectation from the inputs,
            // not from our own decoder, for the data records.
            let batch = RecordBatch::from_bytes(bytes.clone()).unwrap();
            let mut described = describe(&batch, &mut decompressor);
            if !control {
                let records: Vec<Value> = our_records(seed)
                    .iter()
                    .enumerate()
                    .map(|(i, (ts, key, value, headers))| {
                        let headers: Vec<Value> = headers.iter().map(|(k, v)| json!([hex(Some(k)), hex(v.as_deref())])).collect();
                        json!({"offset": base_offset + i as i64, "timestamp": ts, "key": hex(key.as_deref()),
                               "value": hex(value.as_deref()), "headers": headers, "control": null})
                    })
                    .collect();
                assert_eq!(
                    described["records"],
                    Value::Array(records.clone()),
                    "{name}: our own reader"
                );
                described["records"] = Value::Array(records);
            }
            expected.push(described);
            file.put_slice(&bytes);
        }
        fs::write(out.join(format!("{name}.bin")), &file).unwrap();
        fs::write(
            out.join(format!("{name}.json")),
            json!({"batches": expected}).to_string(),
        )
        .unwrap();
    }
    let written = fs::read_dir(&out).unwrap().count();
    assert_eq!(
        written,
        14,
        "7 cases, a .bin and a .json each, in {}",
        out.display()
    );
}
