//! Record-batch codec benchmarks: sluice side by side with `kafka-protocol`'s own
//! `RecordBatchDecoder` / `RecordBatchEncoder` on the same bytes.
//!
//! One batch of 1,000 records with 100-byte values, uncompressed and with each codec.
//! `decode` = split the batch, check the CRC, decompress, and read every record's key, value
//! and headers. Run: `cargo bench -p sluice-benches --bench codec`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kafka_protocol::records::{
    Compression as KpCompression, Record as KpRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType as KpTimestampType,
};
use sluice_protocol::record::{BatchBuilder, BatchHeader, RecordBatch};
use sluice_protocol::{Compression, Compressor, Decompressor};

const RECORDS: usize = 1_000;

/// A 100-byte JSON click event. Ids, sessions and timestamps vary from record to record, so
/// it compresses about as well as real event streams (lz4 ~3-4x, the ratio perf-notes measured
/// on click events), not like padding.
fn value(i: usize) -> Vec<u8> {
    let h = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    const PAGES: [&str; 6] = ["home", "item", "search", "cart", "checkout", "account"];
    let mut v = format!(
        "{{\"user\":{},\"session\":\"{:08x}\",\"page\":\"/{}/{}\",\"ts\":{},\"dwell\":{}}}",
        h % 100_000,
        h >> 32,
        PAGES[(h >> 8) as usize % PAGES.len()],
        (h >> 16) % 5000,
        1_700_000_000_000u64 + (i as u64) * 37 + (h % 29),
        (h >> 40) % 60_000,
    )
    .into_bytes();
    v.resize(100, b' ');
    v
}

fn keys_values() -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..RECORDS)
        .map(|i| (format!("key-{i}").into_bytes(), value(i)))
        .collect()
}

fn sluice_encode(
    kv: &[(Vec<u8>, Vec<u8>)],
    codec: Compression,
    compressor: &mut Compressor,
) -> Bytes {
    let header = BatchHeader {
        compression: codec,
        ..BatchHeader::default()
    };
    let mut b = BatchBuilder::with_capacity(header, 128 * RECORDS);
    for (i, (k, v)) in kv.iter().enumerate() {
        b.push(
            1_700_000_000_000 + i as i64,
            Some(k),
            Some(v),
            std::iter::empty::<(&[u8], Option<&[u8]>)>(),
        )
        .unwrap();
    }
    b.finish(compressor).unwrap()
}

fn sluice_decode(bytes: &Bytes, decompressor: &mut Decompressor) -> usize {
    let (batch, _) = RecordBatch::read(bytes, 0).unwrap();
    batch.verify_crc().unwrap();
    let records = batch.decode(decompressor).unwrap();
    let mut sum = 0;
    for r in records.iter() {
        let r = r.unwrap();
        sum += r.key().map_or(0, <[u8]>::len)
            + r.value().map_or(0, <[u8]>::len)
            + r.headers().remaining();
    }
    sum
}

fn kp_codec(codec: Compression) -> KpCompression {
    match codec {
        Compression::None => KpCompression::None,
        Compression::Gzip => KpCompression::Gzip,
        Compression::Snappy => KpCompression::Snappy,
        Compression::Lz4 => KpCompression::Lz4,
        Compression::Zstd => KpCompression::Zstd,
    }
}

fn kp_records(kv: &[(Vec<u8>, Vec<u8>)]) -> Vec<KpRecord> {
    kv.iter()
        .enumerate()
        .map(|(i, (k, v))| KpRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: KpTimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::copy_from_slice(k)),
            value: Some(Bytes::copy_from_slice(v)),
            headers: Default::default(),
        })
        .collect()
}

fn kp_decode(bytes: &Bytes) -> usize {
    let mut buf = bytes.clone();
    let set = RecordBatchDecoder::decode(&mut buf).unwrap();
    set.records
        .iter()
        .map(|r| {
            r.key.as_ref().map_or(0, Bytes::len)
                + r.value.as_ref().map_or(0, Bytes::len)
                + r.headers.len()
        })
        .sum()
}

fn codecs(c: &mut Criterion) {
    let kv = keys_values();
    let kp = kp_records(&kv);
    let mut compressor = Compressor::new();
    for codec in Compression::ALL {
        let bytes = sluice_encode(&kv, codec, &mut compressor);
        eprintln!(
            "{codec}: the 1,000-record batch takes {} bytes",
            bytes.len()
        );
        let mut group = c.benchmark_group(format!("batch/{codec}"));
        group.throughput(Throughput::Elements(RECORDS as u64));
        let mut decompressor = Decompressor::new();
        assert_eq!(
            sluice_decode(&bytes, &mut decompressor),
            kp_decode(&bytes),
            "both read the same records"
        );
        group.bench_function("decode/sluice", |b| {
            b.iter(|| black_box(sluice_decode(&bytes, &mut decompressor)))
        });
        group.bench_function("decode/kafka-protocol", |b| {
            b.iter(|| black_box(kp_decode(&bytes)))
        });
        group.bench_function("encode/sluice", |b| {
            b.iter(|| black_box(sluice_encode(&kv, codec, &mut compressor)))
        });
        let options = RecordEncodeOptions {
            version: 2,
            compression: kp_codec(codec),
        };
        group.bench_function("encode/kafka-protocol", |b| {
            b.iter_batched_ref(
                || BytesMut::with_capacity(128 * RECORDS),
                |buf| RecordBatchEncoder::encode(buf, kp.iter(), &options).unwrap(),
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

/// The floor for lz4 decode: lz4_flex decompressing the same records section with nothing
/// else (no frame parsing by us, no record walk).
fn lz4_floor(c: &mut Criterion) {
    let kv = keys_values();
    let bytes = sluice_encode(&kv, Compression::Lz4, &mut Compressor::new());
    let batch = RecordBatch::from_bytes(bytes.clone()).unwrap();
    let section = batch.records_section();
    let raw = sluice_encode(&kv, Compression::None, &mut Compressor::new());
    let raw_len = raw.len() - sluice_protocol::record::BATCH_HEADER_LEN;
    let mut group = c.benchmark_group("batch/lz4");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("raw lz4_flex frame decompress", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(raw_len);
            let mut d = lz4_flex::frame::FrameDecoder::new(&section[..]);
            std::io::copy(&mut d, &mut out).unwrap();
            black_box(out.len())
        })
    });
    // The same compressed blocks our frame holds, for lz4_flex to decode with nothing else.
    let blocks = frame_blocks(&section);
    group.bench_function("raw lz4_flex block decompress of the frame's blocks", |b| {
        b.iter(|| {
            let mut out = vec![0u8; raw_len];
            let mut at = 0;
            for block in &blocks {
                at += lz4_flex::block::decompress_into(block, &mut out[at..]).unwrap();
            }
            black_box(at)
        })
    });
    let mut decompressor = Decompressor::new();
    group.bench_function("sluice decompress only", |b| {
        b.iter(|| {
            black_box(
                decompressor
                    .decompress(Compression::Lz4, &section)
                    .unwrap()
                    .len(),
            )
        })
    });
    group.finish();
}

/// The data blocks of an LZ4 frame as our encoder writes it: a 7-byte header (magic, FLG, BD,
/// header checksum; no content size), then `u32` little-endian sized blocks up to a zero end
/// mark. Stored (uncompressed) blocks do not occur in this compressible payload.
fn frame_blocks(frame: &[u8]) -> Vec<&[u8]> {
    let mut blocks = Vec::new();
    let mut at = 7;
    loop {
        let len = u32::from_le_bytes(frame[at..at + 4].try_into().unwrap());
        at += 4;
        if len == 0 {
            return blocks;
        }
        assert_eq!(len & 0x8000_0000, 0, "a stored block");
        blocks.push(&frame[at..at + len as usize]);
        at += len as usize;
    }
}

fn crc(c: &mut Criterion) {
    let data = vec![0x5au8; 1 << 20];
    let mut group = c.benchmark_group("crc32c");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("1 MiB", |b| b.iter(|| black_box(crc32c::crc32c(&data))));
    group.finish();
}

criterion_group!(benches, codecs, lz4_floor, crc);
criterion_main!(benches);
