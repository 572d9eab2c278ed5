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

/// Largest frame under fuzzing: big enough for any input libFuzzer makes.
const FUZZ_MAX_FRAME: usize = 1 << 16;

/// Feeds `data[1..]` to a frame decoder in chunks of `data[0]` bytes (at least one), taking
/// every complete frame, until the input ends or a frame size is refused.
pub fn frames(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut decoder = crate::frame::FrameDecoder::new(FUZZ_MAX_FRAME);
    let mut buf = bytes::BytesMut::new();
    let mut taken = 0;
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    taken += crate::frame::SIZE_PREFIX_LEN + frame.len();
                    let _ = crate::messages::peek_correlation_id(&frame);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    assert_eq!(
        taken + buf.len(),
        stream.len(),
        "frames and leftovers must account for every byte"
    );
}

/// Decodes `data[2..]` as a response frame of the API `data[0]` picks from the version table,
/// at the version `data[1]` picks from that API's range.
pub fn response(data: &[u8]) {
    let [pick_api, pick_version, frame @ ..] = data else {
        return;
    };
    let table = crate::versions::SUPPORTED;
    let row = table[usize::from(*pick_api) % table.len()];
    let span = u8::try_from(row.max - row.min + 1).unwrap_or(u8::MAX);
    let version = row.min + i16::from(*pick_version % span);
    let _ = crate::messages::decode_response_kind(row.api, version, Bytes::copy_from_slice(frame));
}
