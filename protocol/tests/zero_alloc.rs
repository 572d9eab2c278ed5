//! Iterating an uncompressed batch allocates nothing per record.
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
        let headers = [(b"h".as_slice(), Some(b"v".as_slice())), (b"h".as_slice(), None)];
        b.push(i as i64, Some(key.as_bytes()), Some(&value), headers).unwrap();
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
    assert!(touched > 100_000, "the walk must read the records ({touched} bytes)");
    assert_eq!(for_small.count_total, 0, "allocations iterating 10 records");
    assert_eq!(for_large.count_total, 0, "allocations iterating 1,000 records");
}
