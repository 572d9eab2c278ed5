//! Allocation bounds: iterating an uncompressed batch allocates nothing per record, and a
//! decompression bomb cannot make us allocate much past the cap.
//!
//! A counting global allocator (from `allocation-counter`) sees every allocation of this test
//! binary, which is why this test lives in a file of its own.
#![allow(clippy::unwrap_used)]

use sluice_protocol::record::{BatchBuilder, BatchHeader, RecordBatch};
use sluice_protocol::Compressor;

fn batch_of(n: usize) -> RecordBatch {
    let mut b = BatchBuilder::new(BatchHeader::default());
    let value = [b'x'; 100];
    for i in 0..n {
        let key = format!("key-{i}");
        let headers = [
            (b"h".as_slice(), Some(b"v".as_slice())),
            (b"h".as_slice(), None),
        ];
        b.push(i as i64, Some(key.as_bytes()), Some(&value), headers)
            .unwrap();
    }
    RecordBatch::from_bytes(b.finish(&mut Compressor::new()).unwrap()).unwrap()
}

/// Reads every field of every record, including `Bytes` views of keys and values.
fn walk(batch: &RecordBatch) -> usize {
    batch.verify_crc().unwrap();
    let records = batch.records().unwrap();
    let mut touched = 0;
    for r in records.iter() {
        let r = r.unwrap();
        touched += r.key().map_or(0, <[u8]>::len) + r.value().map_or(0, <[u8]>::len);
        touched += r.key_bytes().map_or(0, |b| b.len());
        touched += r.value_bytes().map_or(0, |b| b.len());
        for h in r.headers() {
            touched += h.key.len() + h.value.map_or(0, <[u8]>::len);
        }
        touched += r.offset() as usize & 1;
    }
    touched
}

#[test]
fn iterating_an_uncompressed_batch_does_not_allocate_per_record() {
    let small = batch_of(10);
    let large = batch_of(1_000);
    // The first `Bytes::slice_ref` of a buffer built from a Vec may promote it to a shared
    // buffer once; warm that up so only per-record work is measured.
    walk(&small);
    walk(&large);
    let mut touched = 0;
    let for_small = allocation_counter::measure(|| touched += walk(&small));
    let for_large = allocation_counter::measure(|| touched += walk(&large));
    assert!(
        touched > 100_000,
        "the walk must read the records ({touched} bytes)"
    );
    assert_eq!(for_small.count_total, 0, "allocations iterating 10 records");
    assert_eq!(
        for_large.count_total, 0,
        "allocations iterating 1,000 records"
    );
}

/// A small hostile batch must not make us allocate much more than the cap, whatever its
/// compressed data claims or holds.
#[test]
fn decompression_bombs_stay_near_the_cap() {
    use sluice_protocol::{Compression, Decompressor};
    const CAP: usize = 1 << 20;
    let zeros = vec![0u8; 32 << 20];
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut bomb = bytes::BytesMut::new();
        Compressor::new()
            .compress(codec, &zeros, &mut bomb)
            .unwrap();
        assert!(
            bomb.len() < zeros.len() / 16,
            "{codec} bomb is {} bytes",
            bomb.len()
        );
        let mut decompressor = Decompressor::with_max_output(CAP);
        let mut result = None;
        let info =
            allocation_counter::measure(|| result = Some(decompressor.decompress(codec, &bomb)));
        let err = result.unwrap().unwrap_err();
        assert!(
            matches!(
                err,
                sluice_protocol::Error::DecompressLimit { limit: CAP, .. }
            ),
            "{codec}: {err}"
        );
        // zstd may hold its window (up to 8 MiB) besides the output; nothing may approach 32 MiB.
        assert!(
            info.bytes_max < 12 << 20,
            "{codec} peaked at {} bytes for a {CAP}-byte cap",
            info.bytes_max
        );
    }
}
