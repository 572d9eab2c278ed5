//! Fuzz entry points: each cargo-fuzz target in `fuzz/` is a one-line call into this module.
//!
//! They live in the crate so that ordinary tests can run the same code over fixtures, and so
//! that a target cannot drift from the API it exercises. Each one drives a decoder as a real
//! caller would and discards the results: the fuzzer looks for panics, hangs and unbounded
//! allocations, none of which may happen on any input.

use bytes::Bytes;

use crate::compression::{Compression, Decompressor};
use crate::record::{ControlRecord, RecordBatches};

/// Cap for decompressed output under fuzzing: small, so a bomb is found quickly.
const FUZZ_MAX_DECOMPRESSED: usize = 1 << 20;

/// Splits `data` into batches, checks CRCs, decompresses and walks every record.
pub fn record_batches(data: &[u8]) {
    let mut decompressor = Decompressor::with_max_output(FUZZ_MAX_DECOMPRESSED);
    let mut batches = RecordBatches::new(Bytes::copy_from_slice(data));
    for batch in batches.by_ref() {
        let Ok(batch) = batch else { break };
        let _ = batch.verify_crc();
        let _ = (
            batch.last_offset(),
            batch.max_timestamp(),
            batch.producer_id(),
        );
        let Ok(records) = batch.decode(&mut decompressor) else {
            continue;
        };
        for record in records.iter() {
            let Ok(record) = record else { break };
            let _ = (record.key_bytes(), record.value_bytes(), record.timestamp());
            for header in record.headers() {
                let _ = (header.key.len(), header.value.map(<[u8]>::len));
            }
            if batch.is_control() {
                let _ = ControlRecord::parse(&record);
            }
        }
    }
    let _ = batches.rest_is_partial_batch();
}

/// Decompresses `data[1..]` with the codec `data[0]` picks.
pub fn decompress(data: &[u8]) {
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let codecs = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let codec = codecs[usize::from(pick) % codecs.len()];
    let mut decompressor = Decompressor::with_max_output(FUZZ_MAX_DECOMPRESSED);
    if let Ok(out) = decompressor.decompress(codec, input) {
        assert!(
            out.len() <= FUZZ_MAX_DECOMPRESSED,
            "{codec} output passed its cap"
        );
    }
}
