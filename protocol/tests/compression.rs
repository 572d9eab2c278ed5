//! Integration tests of the record-batch codecs through the public API: round trips, input
//! written by the reference encoders of each format, bombs, truncation and garbage.
#![allow(clippy::unwrap_used)]

use std::io::Write;

use bytes::BytesMut;
use sluice_protocol::compression::{
    Compression, Compressor, Decompressor, DEFAULT_MAX_DECOMPRESSED,
};
use sluice_protocol::Error;

const CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];
const MIB: usize = 1024 * 1024;

/// xorshift64*: deterministic bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// JSON-ish text from a small vocabulary: compresses like real click events.
    fn text(&mut self, n: usize) -> Vec<u8> {
        const WORDS: [&str; 12] = [
            "{\"user\":",
            "\"click\"",
            "\"view\"",
            ",\"ts\":",
            "1732190000",
            "\"page\":\"/home\"",
            "},",
            "\"item\":",
            "42",
            "\"checkout\"",
            " ",
            "\"session\":\"a1b2c3\"",
        ];
        let mut out = Vec::with_capacity(n + 32);
        while out.len() < n {
            out.extend_from_slice(WORDS[(self.next() % WORDS.len() as u64) as usize].as_bytes());
        }
        out.truncate(n);
        out
    }
}

fn compress(codec: Compression, input: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    Compressor::new().compress(codec, input, &mut out).unwrap();
    out.to_vec()
}

fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(0x5EED);
    let mut v = vec![
        ("empty".to_owned(), Vec::new()),
        ("1 byte".to_owned(), vec![b'x']),
        ("100 KB text".to_owned(), rng.text(100_000)),
        ("1 MiB random".to_owned(), rng.bytes(MIB)),
    ];
    // Around snappy's 32 KiB and lz4's 64 KiB blocks, and several of each.
    for n in [
        32 * 1024 - 1,
        32 * 1024,
        32 * 1024 + 1,
        64 * 1024 - 1,
        64 * 1024,
        64 * 1024 + 1,
        3 * 64 * 1024 + 5,
    ] {
        v.push((format!("{n} text"), rng.text(n)));
    }
    v.push(("300 KiB zeros".to_owned(), vec![0; 300 * 1024]));
    v
}

fn assert_corrupt(result: sluice_protocol::Result<bytes::Bytes>, what: &str) {
    match result {
        Err(Error::Decompress { .. }) => {}
        other => panic!(
            "{what}: expected a Decompress error, got {:?}",
            other.map(|b| b.len())
        ),
    }
}

fn assert_limit(result: sluice_protocol::Result<bytes::Bytes>, what: &str) {
    match result {
        Err(Error::DecompressLimit { .. }) => {}
        other => panic!(
            "{what}: expected DecompressLimit, got {:?}",
            other.map(|b| b.len())
        ),
    }
}

#[test]
fn round_trip_every_codec() {
    let mut d = Decompressor::new();
    let mut c = Compressor::new();
    for codec in Compression::ALL {
        for (name, input) in inputs() {
            let mut out = BytesMut::from(&b"prefix"[..]);
            c.compress(codec, &input, &mut out).unwrap();
            assert_eq!(&out[..6], b"prefix", "{codec} {name}: compress must append");
            let back = d.decompress(codec, &out[6..]).unwrap();
            assert!(back == input, "{codec} {name}: round trip differs");
        }
    }
}

#[test]
fn gzip_levels_round_trip() {
    let input = Rng(1).text(200_000);
    let mut sizes = Vec::new();
    for level in [0, 1, 6, 9, 42] {
        let mut out = BytesMut::new();
        Compressor::with_gzip_level(level)
            .compress(Compression::Gzip, &input, &mut out)
            .unwrap();
        assert_eq!(
            Decompressor::new()
                .decompress(Compression::Gzip, &out)
                .unwrap(),
            input
        );
        sizes.push(out.len());
    }
    assert!(sizes[0] > input.len() && sizes[1] > sizes[2], "{sizes:?}");
    assert_eq!(sizes[3], sizes[4], "levels over 9 are 9");
}

#[test]
fn output_exactly_at_cap_is_fine_one_more_is_not() {
    let input = Rng(2).text(150_000);
    for codec in Compression::ALL {
        let data = if codec == Compression::None {
            input.clone()
        } else {
            compress(codec, &input)
        };
        let ok = Decompressor::with_max_output(input.len())
            .decompress(codec, &data)
            .unwrap();
        assert_eq!(ok, input, "{codec}");
        assert_limit(
            Decompressor::with_max_output(input.len() - 1).decompress(codec, &data),
            codec.name(),
        );
    }
}

#[test]
fn decompressor_defaults() {
    assert_eq!(Decompressor::new().max_output(), DEFAULT_MAX_DECOMPRESSED);
    assert_eq!(Decompressor::default().max_output(), 128 * MIB);
    assert_eq!(Decompressor::with_max_output(7).max_output(), 7);
    let mut out = BytesMut::new();
    Compressor::default()
        .compress(Compression::None, b"abc", &mut out)
        .unwrap();
    assert_eq!(&out[..], b"abc");
    assert_eq!(
        Decompressor::new()
            .decompress(Compression::None, b"abc")
            .unwrap(),
        &b"abc"[..]
    );
}

#[test]
fn reused_decompressor_across_codecs_and_sizes() {
    let mut rng = Rng(3);
    let mut d = Decompressor::with_max_output(4 * MIB);
    let mut c = Compressor::new();
    let cases: Vec<(Compression, Vec<u8>, Vec<u8>)> = (0..60)
        .map(|i| {
            let codec = CODECS[i % 4];
            let n = [10, 70_000, 1, 300_000, 5_000, 0][i % 6] + i;
            let input = if i % 5 == 0 {
                rng.bytes(n)
            } else {
                rng.text(n)
            };
            let mut out = BytesMut::new();
            c.compress(codec, &input, &mut out).unwrap();
            (codec, input, out.to_vec())
        })
        .collect();
    for round in 0..2 {
        for (i, (codec, input, data)) in cases.iter().enumerate() {
            // Errors in between must not poison the state for the next call.
            if i % 7 == 0 {
                assert!(d.decompress(*codec, &data[..data.len() / 2]).is_err());
            }
            let out = d.decompress(*codec, data).unwrap();
            assert!(out == *input, "round {round} case {i} ({codec}) differs");
        }
    }
}

// ---- input made by the formats' reference encoders ----

#[test]
fn gzip_from_flate2_including_concatenated_members() {
    let a = Rng(4).text(90_000);
    let b = Rng(5).bytes(3_000);
    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let named = {
        let mut e = flate2::GzBuilder::new()
            .filename("batch.json")
            .comment("a comment")
            .extra(&b"xyz"[..])
            .write(Vec::new(), flate2::Compression::fast());
        e.write_all(&a).unwrap();
        e.finish().unwrap()
    };
    let mut d = Decompressor::new();
    assert_eq!(d.decompress(Compression::Gzip, &gz(&a)).unwrap(), a);
    assert_eq!(d.decompress(Compression::Gzip, &named).unwrap(), a);
    let two = [gz(&a), gz(&b), gz(b"")].concat();
    assert_eq!(
        d.decompress(Compression::Gzip, &two).unwrap(),
        [&a[..], &b[..]].concat()
    );
    // Trailing bytes that are not a member.
    assert_corrupt(
        d.decompress(Compression::Gzip, &[gz(&a), vec![0, 0, 0]].concat()),
        "trailing zeros",
    );
    // A damaged CRC.
    let mut bad = gz(&a);
    let n = bad.len();
    bad[n - 6] ^= 1;
    assert_corrupt(d.decompress(Compression::Gzip, &bad), "bad crc");
}

#[test]
fn snappy_raw_and_xerial() {
    let input = Rng(6).text(100_000);
    let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
    let mut d = Decompressor::new();
    assert_eq!(d.decompress(Compression::Snappy, &raw).unwrap(), input);

    // Xerial with 8 KiB blocks, as an older snappy-java might, then two streams back to back.
    let xerial = |data: &[u8], block: usize| {
        let mut out = b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01".to_vec();
        for chunk in data.chunks(block) {
            let c = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            out.extend_from_slice(&(c.len() as i32).to_be_bytes());
            out.extend_from_slice(&c);
        }
        out
    };
    assert_eq!(
        d.decompress(Compression::Snappy, &xerial(&input, 8192))
            .unwrap(),
        input
    );
    let ours = compress(Compression::Snappy, &input);
    assert_eq!(
        ours,
        xerial(&input, 32 * 1024),
        "our framing is snappy-java's with 32 KiB blocks"
    );
    let both = [xerial(&input, 8192), xerial(b"tail", 8192)].concat();
    assert_eq!(
        d.decompress(Compression::Snappy, &both).unwrap(),
        [&input[..], b"tail"].concat()
    );
    // Raw snappy of nothing is one zero byte.
    assert!(d.decompress(Compression::Snappy, &[0]).unwrap().is_empty());
}

#[test]
fn lz4_frames_from_lz4_flex_linked_and_independent() {
    use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
    let mut rng = Rng(7);
    // Repetitive across block boundaries, so linked blocks really reference earlier blocks.
    let phrase = rng.text(3_000);
    let mut input = Vec::new();
    while input.len() < 700_000 {
        input.extend_from_slice(&phrase);
        input.extend_from_slice(&rng.bytes(500));
    }
    let mut d = Decompressor::new();
    for mode in [BlockMode::Linked, BlockMode::Independent] {
        for size in [
            BlockSize::Max64KB,
            BlockSize::Max256KB,
            BlockSize::Max1MB,
            BlockSize::Max4MB,
        ] {
            for checks in [false, true] {
                for data in [&input[..], b"", b"z"] {
                    let info = FrameInfo::new()
                        .block_mode(mode)
                        .block_size(size)
                        .content_checksum(checks)
                        .block_checksums(checks)
                        .content_size(checks.then_some(data.len() as u64));
                    let mut e = FrameEncoder::with_frame_info(info, Vec::new());
                    e.write_all(data).unwrap();
                    let frame = e.finish().unwrap();
                    let out = d.decompress(Compression::Lz4, &frame).unwrap();
                    assert!(
                        out == data,
                        "{mode:?} {size:?} checks={checks} len={}",
                        data.len()
                    );
                    if checks && !data.is_empty() {
                        // Flip a content byte: some checksum must catch it.
                        let mut bad = frame.clone();
                        let at = bad.len() / 2;
                        bad[at] ^= 0x40;
                        assert!(
                            d.decompress(Compression::Lz4, &bad).is_err(),
                            "{mode:?} {size:?} flipped"
                        );
                    }
                }
            }
        }
    }
    // Linked blocks really reach into earlier blocks here (or the linked frame would not be
    // smaller), and damaged linked frames fail cleanly.
    let frame = |mode| {
        let info = FrameInfo::new()
            .block_mode(mode)
            .block_size(BlockSize::Max64KB);
        let mut e = FrameEncoder::with_frame_info(info, Vec::new());
        e.write_all(&input).unwrap();
        e.finish().unwrap()
    };
    let linked = frame(BlockMode::Linked);
    assert!(linked.len() < frame(BlockMode::Independent).len());
    for cut in (0..linked.len()).step_by(331) {
        assert_corrupt(d.decompress(Compression::Lz4, &linked[..cut]), "linked cut");
    }
    for at in (7..linked.len()).step_by(97) {
        let mut bad = linked.clone();
        bad[at] ^= 0x55;
        check_no_panic(&mut d, Compression::Lz4, &bad);
    }
    // Our frames are read by lz4_flex's reference decoder.
    let ours = compress(Compression::Lz4, &input);
    let mut back = Vec::new();
    std::io::Read::read_to_end(
        &mut lz4_flex::frame::FrameDecoder::new(&ours[..]),
        &mut back,
    )
    .unwrap();
    assert!(back == input);
    // Two frames and a skippable frame in one input.
    let skippable = [
        &0x184D_2A53u32.to_le_bytes()[..],
        &3u32.to_le_bytes(),
        b"abc",
    ]
    .concat();
    let joined = [
        compress(Compression::Lz4, b"one "),
        skippable,
        compress(Compression::Lz4, b"two"),
    ]
    .concat();
    assert_eq!(
        d.decompress(Compression::Lz4, &joined).unwrap(),
        &b"one two"[..]
    );
}

#[test]
fn zstd_from_ruzstd() {
    use ruzstd::encoding::{compress_to_vec, CompressionLevel};
    let input = Rng(8).text(400_000);
    let mut d = Decompressor::new();
    for level in [CompressionLevel::Uncompressed, CompressionLevel::Fastest] {
        let frame = compress_to_vec(&input[..], level);
        assert_eq!(d.decompress(Compression::Zstd, &frame).unwrap(), input);
    }
    let two = [
        compress_to_vec(&b"one "[..], CompressionLevel::Fastest),
        zstd_skippable(),
        compress_to_vec(&b"two"[..], CompressionLevel::Fastest),
    ]
    .concat();
    assert_eq!(
        d.decompress(Compression::Zstd, &two).unwrap(),
        &b"one two"[..]
    );
    // A flipped byte in the content is caught by the checksum ruzstd writes (or the decoder).
    let mut bad = compress_to_vec(&input[..], CompressionLevel::Uncompressed);
    let at = bad.len() / 2;
    bad[at] ^= 1;
    assert_corrupt(d.decompress(Compression::Zstd, &bad), "zstd flipped byte");
}

fn zstd_skippable() -> Vec<u8> {
    [
        &0x184D_2A5Fu32.to_le_bytes()[..],
        &2u32.to_le_bytes(),
        b"hi",
    ]
    .concat()
}

/// A zstd frame of `blocks` RLE blocks of 128 KiB zeros each, from a header with `fhd` and the
/// given extra header bytes: a bomb that costs 4 bytes per 128 KiB.
fn zstd_rle_frame(fhd_and_rest: &[u8], blocks: usize) -> Vec<u8> {
    let mut out = [&0xFD2F_B528u32.to_le_bytes()[..], fhd_and_rest].concat();
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let header = last | (1 << 1) | ((128 * 1024) << 3);
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.push(0);
    }
    out
}

#[test]
fn zstd_handmade_rle_frame_decodes() {
    let frame = zstd_rle_frame(&[0x00, 0x38], 5);
    let out = Decompressor::new()
        .decompress(Compression::Zstd, &frame)
        .unwrap();
    assert_eq!(out.len(), 5 * 128 * 1024);
    assert!(out.iter().all(|&b| b == 0));
}

// ---- bombs and lying headers ----

/// 100 MiB of zeros in each codec, built without compressing 100 MiB in a debug build.
fn bombs() -> Vec<(Compression, Vec<u8>)> {
    let zeros = vec![0u8; MIB];
    let mut v = Vec::new();

    // gzip: 1 MiB of zeros deflated with a full flush is self-contained, so repeating it gives
    // a valid stream; the trailer is never reached.
    let mut deflate = flate2::Compress::new(flate2::Compression::fast(), false);
    let mut chunk = vec![0; 64 * 1024];
    deflate
        .compress(&zeros, &mut chunk, flate2::FlushCompress::Full)
        .unwrap();
    chunk.truncate(deflate.total_out() as usize);
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for _ in 0..100 {
        gz.extend_from_slice(&chunk);
    }
    gz.extend_from_slice(&[3, 0]); // final empty fixed-Huffman block
    gz.extend_from_slice(&[0; 8]);
    v.push((Compression::Gzip, gz));

    // snappy, xerial: 3200 blocks of 32 KiB zeros.
    let block = snap::raw::Encoder::new()
        .compress_vec(&zeros[..32 * 1024])
        .unwrap();
    let mut xerial = b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01".to_vec();
    for _ in 0..3200 {
        xerial.extend_from_slice(&(block.len() as i32).to_be_bytes());
        xerial.extend_from_slice(&block);
    }
    v.push((Compression::Snappy, xerial));

    // snappy, raw: one literal zero then 64-byte copies of it, 100 MiB + 1 in all.
    let mut raw = Vec::new();
    let mut n = 100 * MIB as u64 + 1;
    while n >= 0x80 {
        raw.push((n as u8) | 0x80);
        n >>= 7;
    }
    raw.push(n as u8);
    raw.extend_from_slice(&[0x00, 0x00]);
    for _ in 0..(100 * MIB / 64) {
        raw.extend_from_slice(&[(63 << 2) | 2, 1, 0]);
    }
    v.push((Compression::Snappy, raw));

    // lz4: 1600 copies of one independent 64 KiB block of zeros.
    let block = lz4_flex::block::compress(&zeros[..64 * 1024]);
    let mut lz4 = vec![0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82];
    for _ in 0..1600 {
        lz4.extend_from_slice(&(block.len() as u32).to_le_bytes());
        lz4.extend_from_slice(&block);
    }
    lz4.extend_from_slice(&[0; 4]);
    v.push((Compression::Lz4, lz4));

    // zstd: 800 RLE blocks of 128 KiB, window 128 KiB.
    v.push((Compression::Zstd, zstd_rle_frame(&[0x00, 0x38], 800)));
    // zstd with a 2 MiB window, as zstd-jni declares: more than the cap is held back.
    v.push((Compression::Zstd, zstd_rle_frame(&[0x00, 0x58], 800)));
    v
}

#[test]
fn bombs_fail_fast_with_decompress_limit() {
    let mut d = Decompressor::with_max_output(MIB);
    for (codec, bomb) in bombs() {
        assert_limit(d.decompress(codec, &bomb), codec.name());
    }
    // The same bombs under the default cap decode (sanity check that they are valid), except
    // gzip whose trailer is fake.
    for (codec, bomb) in bombs().into_iter().skip(1).take(3) {
        let len = Decompressor::new().decompress(codec, &bomb).unwrap().len();
        assert!(len == 100 * MIB || len == 100 * MIB + 1, "{codec}");
    }
}

#[test]
fn headers_claiming_4_gib_fail_without_allocating_it() {
    let mut d = Decompressor::with_max_output(MIB);
    // snappy raw: preamble 0xffffffff, then almost nothing.
    let r = d.decompress(
        Compression::Snappy,
        &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00],
    );
    assert!(r.is_err());
    // snappy raw under a huge cap: the ratio check refuses it.
    let r = Decompressor::with_max_output(usize::MAX).decompress(
        Compression::Snappy,
        &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00],
    );
    assert_corrupt(r, "snappy 4 GiB preamble, no cap");
    // xerial block length of 2 GiB.
    let mut x = b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01".to_vec();
    x.extend_from_slice(&i32::MAX.to_be_bytes());
    x.extend_from_slice(&[0; 10]);
    assert_corrupt(d.decompress(Compression::Snappy, &x), "xerial 2 GiB block");
    // lz4 with a content size of 4 GiB and one byte of data.
    let lz4 = lz4_frame_claiming(4 << 30);
    assert_limit(
        d.decompress(Compression::Lz4, &lz4),
        "lz4 4 GiB content size",
    );
    // ...and under a huge cap: the content size does not match the data.
    assert_corrupt(
        Decompressor::with_max_output(usize::MAX).decompress(Compression::Lz4, &lz4),
        "lz4 4 GiB, no cap",
    );
    // zstd with a 4-byte content size of 4 GiB - 1, and with a 2 TiB window.
    assert_limit(
        d.decompress(
            Compression::Zstd,
            &zstd_rle_frame(&[0x80, 0x38, 0xff, 0xff, 0xff, 0xff], 1),
        ),
        "zstd fcs",
    );
    assert_corrupt(
        d.decompress(Compression::Zstd, &zstd_rle_frame(&[0x00, 0xf8], 1)),
        "zstd huge window",
    );
    assert_corrupt(
        Decompressor::with_max_output(usize::MAX)
            .decompress(Compression::Zstd, &zstd_rle_frame(&[0x00, 0xf8], 1)),
        "zstd huge window, no cap",
    );
    // gzip whose ISIZE claims 4 GiB.
    let mut gz = compress(Compression::Gzip, b"small");
    let n = gz.len();
    gz[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_corrupt(
        Decompressor::with_max_output(usize::MAX).decompress(Compression::Gzip, &gz),
        "gzip isize",
    );
}

/// An lz4_flex frame holding one byte whose header claims `size` bytes of content.
fn lz4_frame_claiming(size: u64) -> Vec<u8> {
    use lz4_flex::frame::{FrameEncoder, FrameInfo};
    let mut e =
        FrameEncoder::with_frame_info(FrameInfo::new().content_size(Some(size)), Vec::new());
    e.write_all(b"x").unwrap();
    // lz4_flex refuses to end a frame whose size is a lie, after writing all but the end mark.
    assert!(e.try_finish().is_err());
    [&e.get_ref()[..], &[0; 4]].concat()
}

// ---- truncation and garbage ----

#[test]
fn truncated_input_is_a_decompress_error() {
    let mut d = Decompressor::new();
    let input = Rng(9).text(100_000);
    for codec in CODECS {
        for data in [
            compress(codec, &input),
            compress(codec, b"a"),
            compress(codec, b""),
        ] {
            let cuts = (0..data.len().min(80))
                .chain((80..data.len()).step_by(97))
                .chain(data.len().saturating_sub(16)..data.len());
            for cut in cuts {
                let r = d.decompress(codec, &data[..cut]);
                if codec == Compression::Snappy && cut >= 16 {
                    // Xerial has no end mark: a cut at a block boundary is a shorter valid stream.
                    if let Ok(out) = &r {
                        assert!(
                            input.starts_with(out) || out.is_empty() || out == &b"a"[..],
                            "snappy cut {cut}"
                        );
                        continue;
                    }
                }
                assert_corrupt(r, &format!("{codec} cut at {cut} of {}", data.len()));
            }
        }
    }
    // Raw snappy has a length preamble, so any cut is an error.
    let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
    for cut in (0..raw.len()).step_by(61) {
        assert_corrupt(
            d.decompress(Compression::Snappy, &raw[..cut]),
            &format!("raw snappy cut at {cut}"),
        );
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(10);
    let mut d = Decompressor::with_max_output(4 * MIB);
    let valid: Vec<(Compression, Vec<u8>)> = CODECS
        .iter()
        .map(|&c| (c, compress(c, &Rng(11).text(70_000))))
        .collect();
    for round in 0..400 {
        let len = (rng.next() % 300) as usize;
        let garbage = rng.bytes(len);
        for (codec, data) in &valid {
            check_no_panic(&mut d, *codec, &garbage);
            // The real header, then garbage: gets past the magic checks.
            let keep = (rng.next() as usize % data.len().min(40)).max(1);
            check_no_panic(&mut d, *codec, &[&data[..keep], &garbage[..]].concat());
            // A valid stream with a few bytes flipped.
            let mut flipped = data.clone();
            for _ in 0..1 + round % 4 {
                let at = rng.next() as usize % flipped.len();
                flipped[at] ^= rng.next() as u8 | 1;
            }
            check_no_panic(&mut d, *codec, &flipped);
        }
    }
}

fn check_no_panic(d: &mut Decompressor, codec: Compression, data: &[u8]) {
    if let Ok(out) = d.decompress(codec, data) {
        assert!(out.len() <= d.max_output());
    }
}

/// lz4 output buffers are recycled once a batch's `Bytes` is dropped: a smaller batch decoded
/// into a recycled buffer must not show the stale tail of a larger one, and the cap still
/// holds in a buffer that arrives already larger than the new output.
#[test]
fn recycled_lz4_buffers_never_leak_stale_bytes_or_pass_the_cap() {
    let mut rng = Rng(99);
    let mut d = Decompressor::with_max_output(MIB);
    for size in [900 * 1024, 10, 70 * 1024, 0, 300 * 1024, 1] {
        let input = rng.text(size);
        let out = d
            .decompress(Compression::Lz4, &compress(Compression::Lz4, &input))
            .unwrap();
        assert_eq!(&out[..], &input[..], "{size} bytes after a larger batch");
        drop(out);
    }
    let big = compress(Compression::Lz4, &vec![b'x'; MIB + 1]);
    assert_limit(
        d.decompress(Compression::Lz4, &big),
        "lz4 into a recycled buffer",
    );
    // Outputs still alive keep their buffers: every one stays intact.
    let inputs: Vec<Vec<u8>> = (0..6).map(|i| rng.text(1000 * (i + 1))).collect();
    let outs: Vec<_> = inputs
        .iter()
        .map(|i| {
            d.decompress(Compression::Lz4, &compress(Compression::Lz4, i))
                .unwrap()
        })
        .collect();
    for (i, o) in inputs.iter().zip(&outs) {
        assert_eq!(&o[..], &i[..]);
    }
}
