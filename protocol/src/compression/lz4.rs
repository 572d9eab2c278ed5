//! LZ4 (codec 3): the LZ4 frame format, parsed here and decoded block by block.
//!
//! lz4 is the codec consumers pick for speed, so decode is a thin loop: a first pass walks the
//! frame (header, header checksum, block lengths, optional block checksums) without decoding,
//! which rejects truncated input before any allocation and gives an upper bound on the output;
//! then one zeroed buffer of that size (at most the cap) is allocated and each block is decoded
//! by `lz4_flex::block` straight into its place. Creating an `lz4_flex::frame::FrameDecoder` per
//! batch cost ~40% of decode throughput and copies every block once more.
//!
//! Linked blocks (block-independence flag clear; python's `lz4.frame` writes them by default, so
//! kafka-python batches may have them) are decoded the same way with the previous 64 KiB of
//! output as the dictionary. The Java client itself rejects such frames. Content and block
//! checksums are verified when present; Kafka's writers set neither. Dictionary-id frames are
//! refused (no Kafka client writes them); skippable frames are skipped; several frames in one
//! input are decoded in turn.
//!
//! Encoding matches Java's `Lz4BlockOutputStream`: one frame of independent 64 KiB blocks, no
//! content size, no checksums but the header's, incompressible blocks stored raw.
//!
//! References: <https://github.com/lz4/lz4/blob/dev/doc/lz4_Frame_format.md>, KIP-57 (Kafka
//! writes a correct header checksum since 0.10), Java's `Lz4BlockOutputStream`.

use std::fmt;

use bytes::BytesMut;
use lz4_flex::block::{self as lz4_block, CompressTable, DecompressError};

use super::{corrupt, over_limit, zero_extend, Compression};
use crate::error::{Error, Result};
use twox_hash::XxHash32;

const CODEC: Compression = Compression::Lz4;
const MAGIC: u32 = 0x184D_2204;
/// Skippable frames have magics 0x184D2A50..=0x184D2A5F.
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE: u32 = 0x184D_2A50;
const FLG_VERSION_MASK: u8 = 0xC0;
const FLG_VERSION_01: u8 = 0x40;
const FLG_INDEPENDENT: u8 = 0x20;
const FLG_BLOCK_CHECKSUM: u8 = 0x10;
const FLG_CONTENT_SIZE: u8 = 0x08;
const FLG_CONTENT_CHECKSUM: u8 = 0x04;
const FLG_RESERVED: u8 = 0x02;
const FLG_DICT_ID: u8 = 0x01;
const BD_RESERVED: u8 = 0x8F;
/// High bit of a block length: the block is stored uncompressed.
const STORED: u32 = 0x8000_0000;
/// How far back a linked block may reach.
const WINDOW: usize = 64 * 1024;
/// LZ4's largest expansion: each extra match-length byte adds at most 255 bytes.
const MAX_RATIO: usize = 255;
/// The frame header we write: version 01, independent blocks, 64 KiB maximum block size.
const FLG_OUT: u8 = FLG_VERSION_01 | FLG_INDEPENDENT;
const BD_64K: u8 = 4 << 4;
const BLOCK_OUT: usize = 64 * 1024;

/// One data block of a frame.
#[derive(Debug, Clone, Copy)]
struct Block {
    start: usize,
    len: usize,
    stored: bool,
}

/// Walks a frame's data blocks, from the first block size to the end mark. The first pass
/// validates (lengths, bounds, block checksums); the decoding pass walks the same bytes again,
/// which is cheaper than keeping a list of blocks whose size a hostile input would control.
struct Blocks<'a> {
    input: &'a [u8],
    pos: usize,
    block_max: usize,
    checksums: bool,
    /// Whether to verify block checksums (the first pass does, the second need not).
    verify: bool,
    done: bool,
}

impl Iterator for Blocks<'_> {
    type Item = Result<Block>;

    fn next(&mut self) -> Option<Result<Block>> {
        if self.done {
            return None;
        }
        let step = self.step();
        self.done = !matches!(step, Ok(Some(_)));
        step.transpose()
    }
}

impl Blocks<'_> {
    fn step(&mut self) -> Result<Option<Block>> {
        let at = self.pos;
        let word = read_u32(self.input, at, "block size")?;
        self.pos += 4;
        if word == 0 {
            return Ok(None);
        }
        let len = (word & !STORED) as usize;
        if len > self.block_max {
            bail!(
                CODEC,
                "block of {len} bytes at byte {at} exceeds the maximum {}",
                self.block_max
            );
        }
        let start = self.pos;
        let Some(data) = self.input.get(start..start + len) else {
            bail!(
                CODEC,
                "block of {len} bytes at byte {at} runs past the end of the input"
            );
        };
        self.pos += len;
        if self.checksums {
            let sum = read_u32(self.input, self.pos, "block checksum")?;
            if self.verify && sum != XxHash32::oneshot(0, data) {
                bail!(CODEC, "block checksum mismatch at byte {}", self.pos);
            }
            self.pos += 4;
        }
        Ok(Some(Block {
            start,
            len,
            stored: word & STORED != 0,
        }))
    }
}

/// What the first pass learned about a frame.
struct Frame {
    independent: bool,
    block_max: usize,
    block_checksums: bool,
    content_size: Option<u64>,
    content_checksum: Option<u32>,
    /// Position of the first block size in the input.
    blocks_start: usize,
    /// Upper bound on the decoded size: the sum of each block's bound.
    bound: usize,
    /// Position just past the frame in the input.
    end: usize,
    /// Where this frame's output starts (linked blocks must not reach into an earlier frame).
    out_start: usize,
    /// Whether the output buffer was cut to the cap below `bound`.
    capped: bool,
}

impl Frame {
    fn blocks<'a>(&self, input: &'a [u8], verify: bool) -> Blocks<'a> {
        Blocks {
            input,
            pos: self.blocks_start,
            block_max: self.block_max,
            checksums: self.block_checksums,
            verify,
            done: false,
        }
    }
}

/// Decodes every frame of `input` into `out`, producing at most `cap` bytes, and returns how
/// many. `out` may arrive holding stale bytes from an earlier batch (a pooled buffer): they
/// count as initialized space to decode into, so reuse costs no zeroing; bytes past the
/// returned length are not output. Stateless otherwise: the frame is walked in place, twice.
pub(super) fn decompress(input: &[u8], cap: usize, out: &mut Vec<u8>) -> Result<usize> {
    if input.is_empty() {
        bail!(CODEC, "empty input");
    }
    let mut len = 0;
    let mut pos = 0;
    while pos < input.len() {
        let magic = read_u32(input, pos, "frame magic")?;
        if magic & SKIPPABLE_MASK == SKIPPABLE {
            let size = read_u32(input, pos + 4, "skippable frame size")? as usize;
            match (pos + 8)
                .checked_add(size)
                .filter(|&end| end <= input.len())
            {
                Some(end) => pos = end,
                None => bail!(CODEC, "skippable frame at byte {pos} runs past the input"),
            }
            continue;
        }
        if magic != MAGIC {
            bail!(CODEC, "bad frame magic {magic:#010x} at byte {pos}");
        }
        let mut frame = scan(input, pos + 4)?;
        let room = cap - len;
        if frame.content_size.is_some_and(|size| size > room as u64) {
            return Err(over_limit(CODEC, cap));
        }
        // Never more than the cap; if the bound is over it, running out of room means the
        // frame really is too big for the cap.
        frame.capped = frame.bound > room;
        frame.out_start = len;
        // Decode into exactly this much room: the buffer may be longer (stale pooled bytes),
        // and the cap check below relies on the slice ending where the room does.
        let limit = len + frame.bound.min(room);
        zero_extend(out, limit);
        for block in frame.blocks(input, false) {
            len = decode_block(input, block?, &frame, &mut out[..limit], len, cap)?;
        }
        let content = &out[frame.out_start..len];
        if frame
            .content_size
            .is_some_and(|size| size != content.len() as u64)
        {
            bail!(
                CODEC,
                "frame at byte {pos} decodes to another size than it states"
            );
        }
        if frame
            .content_checksum
            .is_some_and(|sum| sum != XxHash32::oneshot(0, content))
        {
            bail!(
                CODEC,
                "content checksum mismatch in the frame at byte {pos}"
            );
        }
        pos = frame.end;
    }
    Ok(len)
}

/// The first pass over the frame whose descriptor starts at `pos`: header, header checksum,
/// block framing and block checksums, and the bound on the output.
fn scan(input: &[u8], mut pos: usize) -> Result<Frame> {
    let desc = pos;
    let flg = read_u8(input, pos, "frame descriptor")?;
    let bd = read_u8(input, pos + 1, "frame descriptor")?;
    if flg & FLG_VERSION_MASK != FLG_VERSION_01 {
        bail!(
            CODEC,
            "unsupported frame version in FLG {flg:#04x} at byte {pos}"
        );
    }
    if flg & FLG_RESERVED != 0 || bd & BD_RESERVED != 0 {
        bail!(CODEC, "reserved bits set in FLG/BD at byte {pos}");
    }
    let block_max = match bd >> 4 {
        n @ 4..=7 => 1usize << (2 * n + 8),
        n => bail!(
            CODEC,
            "invalid block maximum size code {n} at byte {}",
            pos + 1
        ),
    };
    if flg & FLG_DICT_ID != 0 {
        bail!(CODEC, "frame at byte {pos} needs a dictionary");
    }
    pos += 2;
    let content_size = if flg & FLG_CONTENT_SIZE != 0 {
        let lo = read_u32(input, pos, "content size")?;
        let hi = read_u32(input, pos + 4, "content size")?;
        pos += 8;
        Some((u64::from(hi) << 32) | u64::from(lo))
    } else {
        None
    };
    let stored_hc = read_u8(input, pos, "header checksum")?;
    let hc = (XxHash32::oneshot(0, &input[desc..pos]) >> 8) as u8;
    if stored_hc != hc {
        bail!(
            CODEC,
            "header checksum {stored_hc:#04x} at byte {pos}, computed {hc:#04x}"
        );
    }
    let mut frame = Frame {
        independent: flg & FLG_INDEPENDENT != 0,
        block_max,
        block_checksums: flg & FLG_BLOCK_CHECKSUM != 0,
        content_size,
        content_checksum: None,
        blocks_start: pos + 1,
        bound: 0,
        end: 0,
        out_start: 0,
        capped: false,
    };
    let mut blocks = frame.blocks(input, true);
    for block in &mut blocks {
        let block = block?;
        let most = if block.stored {
            block.len
        } else {
            block.len.saturating_mul(MAX_RATIO)
        };
        frame.bound = frame.bound.saturating_add(most.min(block_max));
    }
    pos = blocks.pos;
    if flg & FLG_CONTENT_CHECKSUM != 0 {
        frame.content_checksum = Some(read_u32(input, pos, "content checksum")?);
        pos += 4;
    }
    frame.end = pos;
    Ok(frame)
}

/// Decodes one block to `out[len..]` and returns the new output length.
///
/// Never inlined: inlined into the frame loop, lz4_flex's decoder loop had too few registers
/// and decoded ~25% slower than called on its own (the codec benchmark's floor).
#[inline(never)]
fn decode_block(
    input: &[u8],
    block: Block,
    frame: &Frame,
    out: &mut [u8],
    len: usize,
    cap: usize,
) -> Result<usize> {
    let src = &input[block.start..block.start + block.len];
    let end = (len + frame.block_max).min(out.len());
    let at_cap = frame.capped && end == out.len();
    let too_big = || {
        if at_cap {
            over_limit(CODEC, cap)
        } else {
            let at = block.start;
            corrupt(
                CODEC,
                format!("block at byte {at} decodes past the maximum block size"),
            )
        }
    };
    if block.stored {
        let dst = out.get_mut(len..len + block.len).ok_or_else(too_big)?;
        dst.copy_from_slice(src);
        return Ok(len + block.len);
    }
    let result = if frame.independent {
        lz4_block::decompress_into(src, &mut out[len..end])
    } else {
        let (done, rest) = out.split_at_mut(len);
        let dict = &done[len.saturating_sub(WINDOW).max(frame.out_start)..];
        lz4_block::decompress_into_with_dict(src, &mut rest[..end - len], dict)
    };
    match result {
        Ok(n) => Ok(len + n),
        Err(DecompressError::OutputTooSmall { .. }) => Err(too_big()),
        Err(e) => bail!(CODEC, "{e} (block at byte {})", block.start),
    }
}

fn read_u8(input: &[u8], at: usize, what: &str) -> Result<u8> {
    input
        .get(at)
        .copied()
        .ok_or_else(|| corrupt(CODEC, format!("input ends inside the {what} at byte {at}")))
}

fn read_u32(input: &[u8], at: usize, what: &str) -> Result<u32> {
    match input.get(at..at.saturating_add(4)) {
        Some(b) => Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(corrupt(
            CODEC,
            format!("input ends inside the {what} at byte {at}"),
        )),
    }
}

/// Reusable lz4 encoding state: the block compressor's hash table.
#[derive(Default)]
pub(super) struct Encoder {
    table: Option<CompressTable>,
}

impl fmt::Debug for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("lz4::Encoder").finish_non_exhaustive()
    }
}

impl Encoder {
    /// Appends one frame of independent 64 KiB blocks holding `input`.
    pub(super) fn compress(&mut self, input: &[u8], out: &mut BytesMut) -> Result<()> {
        let table = self.table.get_or_insert_with(CompressTable::large);
        let blocks = input.len().div_ceil(BLOCK_OUT);
        out.reserve(11 + blocks * (4 + lz4_block::get_maximum_output_size(BLOCK_OUT)));
        out.extend_from_slice(&MAGIC.to_le_bytes());
        let desc = [FLG_OUT, BD_64K];
        out.extend_from_slice(&desc);
        out.extend_from_slice(&[(XxHash32::oneshot(0, &desc) >> 8) as u8]);
        for chunk in input.chunks(BLOCK_OUT) {
            let start = out.len();
            out.resize(
                start + 4 + lz4_block::get_maximum_output_size(chunk.len()),
                0,
            );
            let n = lz4_block::compress_into_with_table(chunk, &mut out[start + 4..], table)
                .map_err(|e| Error::Compress {
                    codec: CODEC,
                    reason: e.to_string(),
                })?;
            // Chunks are at most 64 KiB, so the lengths fit the 31-bit field.
            let word = if n >= chunk.len() {
                out[start + 4..start + 4 + chunk.len()].copy_from_slice(chunk);
                out.truncate(start + 4 + chunk.len());
                chunk.len() as u32 | STORED
            } else {
                out.truncate(start + 4 + n);
                n as u32
            };
            out[start..start + 4].copy_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The header Java's `Lz4BlockOutputStream` writes: FLG 0x60, BD 0x40, HC 0x82.
    #[test]
    fn header_matches_java() {
        let mut out = BytesMut::new();
        Encoder::default().compress(b"", &mut out).unwrap();
        assert_eq!(
            &out[..],
            &[0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82, 0, 0, 0, 0]
        );
    }
}
