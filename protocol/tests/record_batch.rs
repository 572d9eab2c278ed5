//! Record batches: builder/reader round trips, field semantics and hostile input.
#![allow(clippy::unwrap_used)]

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use sluice_protocol::record::{
    BatchBuilder, BatchHeader, ControlRecord, ControlType, RecordBatch, RecordBatches,
    TimestampType, BATCH_HEADER_LEN,
};
use sluice_protocol::{Compression, Compressor, Decompressor, Error};

type OwnedHeader = (Vec<u8>, Option<Vec<u8>>);

/// A record as plain data, for comparing what went in with what came out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plain {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<OwnedHeader>,
}

fn build(header: BatchHeader, records: &[Plain]) -> Bytes {
    let mut b = BatchBuilder::new(header);
    for r in records {
        let headers = r.headers.iter().map(|(k, v)| (k.as_slice(), v.as_deref()));
        b.push(r.timestamp, r.key.as_deref(), r.value.as_deref(), headers)
            .unwrap();
    }
    b.finish(&mut Compressor::new()).unwrap()
}

fn read_all(bytes: Bytes) -> (RecordBatch, Vec<(i64, Plain)>) {
    let batch = RecordBatch::from_bytes(bytes).unwrap();
    batch.verify_crc().unwrap();
    let records = batch.decode(&mut Decompressor::new()).unwrap();
    let out = records
        .iter()
        .map(|r| {
            let r = r.unwrap();
            let headers = r
                .headers()
                .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
                .collect();
            (
                r.offset(),
                Plain {
                    timestamp: r.timestamp(),
                    key: r.key().map(<[u8]>::to_vec),
                    value: r.value().map(<[u8]>::to_vec),
                    headers,
                },
            )
        })
        .collect();
    (batch, out)
}

fn sample() -> Vec<Plain> {
    vec![
        Plain {
            timestamp: 1_700_000_000_000,
            key: None,
            value: None,
            headers: vec![],
        },
        Plain {
            timestamp: 1_700_000_000_005,
            key: Some(vec![]),
            value: Some(vec![]),
            headers: vec![],
        },
        Plain {
            timestamp: 1_699_999_999_990,
            key: Some(b"user-1".to_vec()),
            value: Some(vec![0xff, 0x00, 0x80]),
            headers: vec![
                (b"trace".to_vec(), Some(b"a".to_vec())),
                (b"trace".to_vec(), Some(b"b".to_vec())),
                (b"empty".to_vec(), Some(vec![])),
                (b"null".to_vec(), None),
            ],
        },
    ]
}

#[test]
fn every_codec_round_trips_fields_and_records() {
    for codec in Compression::ALL {
        let header = BatchHeader {
            base_offset: 42,
            partition_leader_epoch: 7,
            producer_id: 1234,
            producer_epoch: 5,
            base_sequence: 99,
            transactional: true,
            compression: codec,
            ..BatchHeader::default()
        };
        let (batch, records) = read_all(build(header, &sample()));
        assert_eq!(batch.base_offset(), 42);
        assert_eq!(batch.partition_leader_epoch(), 7);
        assert_eq!(batch.producer_id(), 1234);
        assert_eq!(batch.producer_epoch(), 5);
        assert_eq!(batch.base_sequence(), 99);
        assert!(batch.is_transactional());
        assert!(!batch.is_control());
        assert_eq!(batch.compression(), codec);
        assert_eq!(batch.records_count(), 3);
        assert_eq!(batch.last_offset_delta(), 2);
        assert_eq!(batch.last_offset(), 44);
        assert_eq!(batch.base_timestamp(), 1_700_000_000_000);
        assert_eq!(batch.max_timestamp(), 1_700_000_000_005);
        let offsets: Vec<i64> = records.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, vec![42, 43, 44], "{codec}");
        let plain: Vec<Plain> = records.into_iter().map(|(_, p)| p).collect();
        assert_eq!(plain, sample(), "{codec}");
    }
}

#[test]
fn log_append_time_gives_every_record_the_max_timestamp() {
    let header = BatchHeader {
        timestamp_type: TimestampType::LogAppendTime,
        ..BatchHeader::default()
    };
    let (batch, records) = read_all(build(header, &sample()));
    assert_eq!(
        batch.attributes().timestamp_type(),
        TimestampType::LogAppendTime
    );
    assert!(records
        .iter()
        .all(|(_, r)| r.timestamp == 1_700_000_000_005));
}

#[test]
fn empty_batch_is_valid_and_has_no_records() {
    let (batch, records) = read_all(build(BatchHeader::default(), &[]));
    assert_eq!(batch.records_count(), 0);
    assert_eq!(batch.max_timestamp(), -1);
    assert!(records.is_empty());
}

#[test]
fn control_markers_round_trip() {
    for kind in [ControlType::Commit, ControlType::Abort] {
        let header = BatchHeader {
            producer_id: 9,
            producer_epoch: 1,
            transactional: true,
            control: true,
            ..BatchHeader::default()
        };
        let mut b = BatchBuilder::new(header);
        b.push_control(10, &ControlRecord::marker(kind, 3)).unwrap();
        let batch = RecordBatch::from_bytes(b.finish(&mut Compressor::new()).unwrap()).unwrap();
        assert!(batch.is_control() && batch.is_transactional());
        let records = batch.records().unwrap();
        let record = records.iter().next().unwrap().unwrap();
        let control = ControlRecord::parse(&record).unwrap();
        assert_eq!(control.kind, kind);
        assert_eq!(control.coordinator_epoch, Some(3));
    }
}

#[test]
fn key_and_value_bytes_share_the_batch_buffer() {
    let bytes = build(BatchHeader::default(), &sample());
    let batch = RecordBatch::from_bytes(bytes.clone()).unwrap();
    let records = batch.records().unwrap();
    let third = records.iter().nth(2).unwrap().unwrap();
    let key = third.key_bytes().unwrap();
    let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
    assert!(
        range.contains(&(key.as_ptr() as usize)),
        "key must point into the fetched bytes"
    );
    assert_eq!(&key[..], b"user-1");
}

#[test]
fn segment_of_batches_iterates_in_order_and_reports_positions() {
    let mut segment = BytesMut::new();
    let a = build(
        BatchHeader {
            base_offset: 0,
            ..BatchHeader::default()
        },
        &sample(),
    );
    let b = build(
        BatchHeader {
            base_offset: 3,
            compression: Compression::Lz4,
            ..BatchHeader::default()
        },
        &sample(),
    );
    segment.put_slice(&a);
    segment.put_slice(&b);
    let batches: Vec<RecordBatch> = RecordBatches::new(segment.freeze())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[1].position(), a.len());
    assert_eq!(batches[1].base_offset(), 3);
}

#[test]
fn truncated_segment_reports_the_offset_of_the_cut_batch() {
    let a = build(BatchHeader::default(), &sample());
    let mut segment = BytesMut::new();
    segment.put_slice(&a);
    segment.put_slice(&a[..a.len() - 5]);
    let mut it = RecordBatches::new(segment.freeze());
    assert!(it.next().unwrap().is_ok());
    assert!(it.rest_is_partial_batch());
    let err = it.next().unwrap().unwrap_err();
    assert!(
        matches!(err, Error::Truncated { offset, .. } if offset == a.len()),
        "{err}"
    );
    assert!(it.next().is_none(), "iteration stops after the damage");
}

#[test]
fn corrupt_crc_is_reported_with_both_values() {
    let mut bytes = BytesMut::from(&build(BatchHeader::default(), &sample())[..]);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let batch = RecordBatch::from_bytes(bytes.freeze()).unwrap();
    let err = batch.verify_crc().unwrap_err();
    assert!(
        matches!(err, Error::CrcMismatch { offset: 0, stored, computed } if stored != computed)
    );
}

#[test]
fn magic_0_and_1_are_unsupported_not_a_panic() {
    for magic in [0u8, 1] {
        let mut bytes = BytesMut::from(&build(BatchHeader::default(), &sample())[..]);
        bytes[16] = magic;
        let err = RecordBatch::from_bytes(bytes.freeze()).unwrap_err();
        assert_eq!(
            err,
            Error::UnsupportedMagic {
                magic: magic as i8,
                offset: 0
            }
        );
        assert!(err.to_string().contains("magic"));
    }
}

/// A hand-made uncompressed batch with one record whose body is `record`.
fn raw_batch(count: i32, records: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i64(0);
    b.put_i32((BATCH_HEADER_LEN - 12 + records.len()) as i32);
    b.put_i32(-1);
    b.put_i8(2);
    b.put_u32(0);
    b.put_i16(0);
    b.put_i32(count - 1);
    b.put_i64(0);
    b.put_i64(0);
    b.put_i64(-1);
    b.put_i16(-1);
    b.put_i32(-1);
    b.put_i32(count);
    b.put_slice(records);
    b.freeze()
}

fn first_record_error(bytes: Bytes) -> Error {
    let batch = match RecordBatch::from_bytes(bytes) {
        Ok(b) => b,
        Err(e) => return e,
    };
    match batch.records() {
        Ok(records) => records.iter().find_map(Result::err).expect("an error"),
        Err(e) => e,
    }
}

#[test]
fn hostile_records_get_typed_errors() {
    // Record count far beyond what the bytes can hold.
    let err = first_record_error(raw_batch(1_000_000, &[0; 14]));
    assert!(
        matches!(
            err,
            Error::Invalid {
                field: "recordsCount",
                ..
            }
        ),
        "{err}"
    );
    // A key length past the end of the record.
    let err = first_record_error(raw_batch(1, &[14, 0, 0, 0, 100, 0, 0, 0]));
    assert!(matches!(err, Error::Truncated { .. }), "{err}");
    // A record length past the end of the batch.
    let err = first_record_error(raw_batch(1, &[0x7e, 0, 0, 0, 1, 1, 0, 0]));
    assert!(
        matches!(
            err,
            Error::Truncated {
                field: "record",
                ..
            }
        ),
        "{err}"
    );
    // Negative record length.
    let err = first_record_error(raw_batch(1, &[3, 0, 0, 0, 1, 1, 0, 0]));
    assert!(
        matches!(
            err,
            Error::Invalid {
                field: "record length",
                ..
            }
        ),
        "{err}"
    );
    // Huge varint (11 bytes of continuation).
    let mut huge = vec![14u8, 0];
    huge.extend([0xff; 11]);
    let err = first_record_error(raw_batch(1, &huge));
    assert!(
        matches!(err, Error::Invalid { .. } | Error::Truncated { .. }),
        "{err}"
    );
    // Negative key length other than -1.
    let err = first_record_error(raw_batch(1, &[12, 0, 0, 0, 5, 1, 0, 0, 0, 0, 0, 0, 0]));
    assert!(
        matches!(
            err,
            Error::Invalid {
                field: "keyLength",
                ..
            }
        ),
        "{err}"
    );
    // A record whose fields leave bytes unread inside its length.
    let err = first_record_error(raw_batch(1, &[16, 0, 0, 0, 1, 1, 0, 0, 0]));
    assert!(
        matches!(
            err,
            Error::Invalid {
                field: "record length",
                ..
            }
        ),
        "{err}"
    );
    // Bytes left after the counted records.
    let err = first_record_error(raw_batch(1, &[12, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]));
    assert!(
        matches!(
            err,
            Error::Invalid {
                field: "recordsCount",
                ..
            }
        ),
        "{err}"
    );
    // Negative header count and a null header key.
    let err = first_record_error(raw_batch(1, &[12, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]));
    assert!(
        matches!(
            err,
            Error::Invalid {
                field: "headersCount",
                ..
            }
        ),
        "{err}"
    );
    let err = first_record_error(raw_batch(1, &[14, 0, 0, 0, 1, 1, 2, 1, 1, 0, 0, 0, 0]));
    assert!(
        matches!(
            err,
            Error::Invalid {
                field: "headerKeyLength",
                ..
            }
        ),
        "{err}"
    );
    // batchLength below the header size, and an unknown codec id.
    let mut short = BytesMut::from(&raw_batch(0, &[])[..]);
    short[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert!(matches!(
        first_record_error(short.freeze()),
        Error::Invalid {
            field: "batchLength",
            ..
        }
    ));
    let mut codec = BytesMut::from(&raw_batch(0, &[])[..]);
    codec[22] = 7;
    assert!(matches!(
        first_record_error(codec.freeze()),
        Error::UnknownCompression { codec: 7, .. }
    ));
}

#[test]
fn a_compression_bomb_hits_the_cap() {
    let header = BatchHeader {
        compression: Compression::Gzip,
        ..BatchHeader::default()
    };
    let mut b = BatchBuilder::new(header);
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..8 {
        b.push(
            0,
            None,
            Some(&zeros),
            std::iter::empty::<(&[u8], Option<&[u8]>)>(),
        )
        .unwrap();
    }
    let bytes = b.finish(&mut Compressor::new()).unwrap();
    assert!(
        bytes.len() < 64 * 1024,
        "8 MiB of zeros compress to {} bytes",
        bytes.len()
    );
    let batch = RecordBatch::from_bytes(bytes).unwrap();
    let err = batch
        .decode(&mut Decompressor::with_max_output(1 << 20))
        .unwrap_err();
    assert!(
        matches!(err, Error::DecompressLimit { limit, .. } if limit == 1 << 20),
        "{err}"
    );
}

fn arb_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Some)
    ]
}

fn arb_record() -> impl Strategy<Value = Plain> {
    (
        any::<i64>(),
        arb_bytes(),
        arb_bytes(),
        proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..8), arb_bytes()),
            0..4,
        ),
    )
        .prop_map(|(timestamp, key, value, headers)| Plain {
            timestamp,
            key,
            value,
            headers,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_batches_round_trip(records in proptest::collection::vec(arb_record(), 0..20),
                                    codec in proptest::sample::select(Compression::ALL.to_vec())) {
        let header = BatchHeader { compression: codec, ..BatchHeader::default() };
        let (_, out) = read_all(build(header, &records));
        let plain: Vec<Plain> = out.into_iter().map(|(_, p)| p).collect();
        prop_assert_eq!(plain, records);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        for batch in RecordBatches::new(Bytes::from(data)) {
            let Ok(batch) = batch else { break };
            let _ = batch.verify_crc();
            if let Ok(records) = batch.records() {
                for r in records.iter() {
                    let Ok(r) = r else { break };
                    let _ = r.headers().count();
                }
            }
        }
    }

    #[test]
    fn mutated_batches_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
                                   codec in proptest::sample::select(Compression::ALL.to_vec())) {
        let header = BatchHeader { compression: codec, ..BatchHeader::default() };
        let mut bytes = BytesMut::from(&build(header, &sample())[..]);
        for (at, v) in flips {
            let at = at % bytes.len();
            bytes[at] = v;
        }
        if let Ok(batch) = RecordBatch::from_bytes(bytes.freeze()) {
            if let Ok(records) = batch.decode(&mut Decompressor::with_max_output(1 << 20)) {
                for r in records.iter() {
                    let Ok(r) = r else { break };
                    let _ = r.headers().count();
                }
            }
        }
    }
}
