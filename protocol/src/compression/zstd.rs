//! Zstandard (codec 4): ruzstd's pure-Rust decoder and encoder.
//!
//! ruzstd decodes into its own ring buffer and hands out only bytes older than the frame's
//! window, so the size of our output buffer alone cannot enforce the cap. We decode one block
//! (at most 128 KiB of output) at a time and after each count what is already ours, what is
//! ready to collect and, once more than a window is buffered, the window held back; decoding
//! stops with `DecompressLimit` as soon as that passes the cap. The frame header is read first:
//! a content size over the cap fails before any work, and a window (which ruzstd allocates up
//! front) must fit the cap clamped to 8..=128 MiB. zstd-jni declares 2 MiB at level 3 when it
//! streams a batch of unknown size and 8 MiB at level 19; 128 MiB is libzstd's default limit.
//! A single-segment frame's window is its content size, already checked against the cap.
//! A stated content size must match the output; a content checksum is verified. Several frames
//! in one input are decoded in turn; skippable frames are skipped. The `FrameDecoder` and its
//! buffers are kept across calls, unless a frame's window was over 8 MiB.
//!
//! Encoding writes one frame at ruzstd's `Fastest` level, the only fast level it has (the Java
//! client defaults to zstd level 3). A compressor is created per call: reusing its matcher
//! re-zeroes the matcher's largest tables on every reset, which costs small batches more than
//! the allocation it saves.
//!
//! References: RFC 8878 (Zstandard), KIP-110 (zstd in Kafka), KIP-390 (levels).

use std::fmt;

use bytes::{BufMut, BytesMut};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use ruzstd::encoding::{CompressionLevel, FrameCompressor};

use super::{corrupt, over_limit, Compression};
use crate::error::Result;

const CODEC: Compression = Compression::Zstd;
const MAGIC: u32 = 0xFD2F_B528;
/// Skippable frames have magics 0x184D2A50..=0x184D2A5F.
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE: u32 = 0x184D_2A50;
/// Windows up to this size are accepted even when larger than the cap.
const MIN_WINDOW_LIMIT: usize = 8 << 20;
/// Larger windows are refused whatever the cap, like libzstd's default `windowLogMax` of 27.
const MAX_WINDOW_LIMIT: usize = 128 << 20;
/// A decoder whose window passed this size is dropped after the call instead of kept.
const RETAIN_WINDOW: u64 = 8 << 20;

/// What we need from a frame header.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    window: u64,
    content_size: Option<u64>,
    single_segment: bool,
}

/// Reusable zstd decoding state.
#[derive(Default)]
pub(super) struct Decoder {
    /// Created on first use; dropped after a frame with a large window.
    frame: Option<FrameDecoder>,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("zstd::Decoder")
            .field("initialized", &self.frame.is_some())
            .finish()
    }
}

impl Decoder {
    /// Decodes every frame of `input`, producing at most `cap` bytes.
    pub(super) fn decompress(&mut self, input: &[u8], cap: usize) -> Result<Vec<u8>> {
        if input.is_empty() {
            return Err(corrupt(CODEC, "empty input"));
        }
        let mut out = Vec::new();
        let mut big = false;
        let result = self.decode_frames(input, cap, &mut out, &mut big);
        if big {
            self.frame = None;
        }
        result.map(|()| out)
    }

    fn decode_frames(
        &mut self,
        input: &[u8],
        cap: usize,
        out: &mut Vec<u8>,
        big: &mut bool,
    ) -> Result<()> {
        let window_limit = cap.clamp(MIN_WINDOW_LIMIT, MAX_WINDOW_LIMIT) as u64;
        let decoder = self.frame.get_or_insert_with(FrameDecoder::new);
        let mut src = input;
        while !src.is_empty() {
            let pos = input.len() - src.len();
            let magic = read_u32(src, 0).ok_or_else(|| {
                corrupt(CODEC, format!("{} stray bytes at byte {pos}", src.len()))
            })?;
            if magic & SKIPPABLE_MASK == SKIPPABLE {
                let size = read_u32(src, 4).map(|n| n as usize);
                src = size
                    .and_then(|n| src.get(8usize.saturating_add(n)..))
                    .ok_or_else(|| {
                        corrupt(
                            CODEC,
                            format!("skippable frame at byte {pos} runs past the end of the input"),
                        )
                    })?;
                continue;
            }
            if magic != MAGIC {
                bail!(CODEC, "bad frame magic {magic:#010x} at byte {pos}");
            }
            let header = parse_header(src)
                .map_err(|e| corrupt(CODEC, format!("{e} (frame at byte {pos})")))?;
            let room = cap - out.len();
            if header.content_size.is_some_and(|size| size > room as u64) {
                return Err(over_limit(CODEC, cap));
            }
            let window = header.window;
            if !header.single_segment && window > window_limit {
                // The limit is the cap, clamped to 8..=128 MiB.
                bail!(
                    CODEC,
                    "frame at byte {pos} has a {window}-byte window, over {window_limit}"
                );
            }
            *big |= header.window > RETAIN_WINDOW;
            // ruzstd must not accept a window other than the one we checked.
            decoder.set_max_window_size(header.window);
            decoder
                .reset(&mut src)
                .map_err(|e| corrupt(CODEC, format!("{e} (frame at byte {pos})")))?;
            if let Some(size) = header.content_size {
                // At most the room left under the cap, checked above.
                out.reserve_exact(size as usize);
            }
            let frame_start = out.len();
            loop {
                decoder
                    .decode_blocks(&mut src, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(|e| corrupt(CODEC, format!("{e} (frame at byte {pos})")))?;
                let finished = decoder.is_finished();
                let ready = decoder.can_collect();
                // Everything decoded so far is in `out`, ready to collect, or held back as the
                // window (exactly a window once more than a window is buffered).
                let held = if !finished && ready > 0 {
                    header.window as usize
                } else {
                    0
                };
                if out.len().saturating_add(ready).saturating_add(held) > cap {
                    return Err(over_limit(CODEC, cap));
                }
                if ready > out.capacity() - out.len() {
                    // Geometric growth, but never past the cap.
                    let want = (out.len() + ready)
                        .max(out.capacity().saturating_mul(2))
                        .min(cap);
                    out.reserve_exact(want - out.len());
                }
                decoder
                    .collect_to_writer(&mut *out)
                    .map_err(|e| corrupt(CODEC, format!("{e} (frame at byte {pos})")))?;
                if finished {
                    break;
                }
            }
            if let (Some(stored), Some(computed)) = (
                decoder.get_checksum_from_data(),
                decoder.get_calculated_checksum(),
            ) {
                if stored != computed {
                    bail!(
                        CODEC,
                        "content checksum mismatch in the frame at byte {pos}"
                    );
                }
            }
            if header
                .content_size
                .is_some_and(|size| size != (out.len() - frame_start) as u64)
            {
                bail!(
                    CODEC,
                    "frame at byte {pos} decodes to a size its header does not state"
                );
            }
        }
        Ok(())
    }
}

/// Reads the window size and content size from the frame header at the start of `src` (RFC 8878
/// section 3.1.1.1). ruzstd parses the header again and does all the other checks.
fn parse_header(src: &[u8]) -> Result<Header, String> {
    let truncated = || "input ends inside the frame header".to_owned();
    let fhd = *src.get(4).ok_or_else(truncated)?;
    let single_segment = fhd & 0x20 != 0;
    let mut pos = 5;
    let window_descriptor = if single_segment {
        None
    } else {
        pos += 1;
        Some(*src.get(5).ok_or_else(truncated)?)
    };
    pos += [0, 1, 2, 4][usize::from(fhd & 0x03)];
    let fcs_len = match fhd >> 6 {
        0 if single_segment => 1,
        0 => 0,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let fcs = src.get(pos..pos + fcs_len).ok_or_else(truncated)?;
    let content_size = (fcs_len > 0).then(|| {
        let mut le = [0u8; 8];
        le[..fcs_len].copy_from_slice(fcs);
        let n = u64::from_le_bytes(le);
        if fcs_len == 2 {
            n + 256
        } else {
            n
        }
    });
    let window = match (window_descriptor, content_size) {
        (Some(desc), _) => {
            let base = 1u64 << (10 + (desc >> 3));
            base + (base / 8) * u64::from(desc & 0x07)
        }
        (None, size) => size.unwrap_or(0),
    };
    Ok(Header {
        window,
        content_size,
        single_segment,
    })
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Appends one zstd frame holding `input`.
pub(super) fn compress(input: &[u8], out: &mut BytesMut) -> Result<()> {
    let mut compressor = FrameCompressor::new(CompressionLevel::Fastest);
    compressor.set_source(input);
    compressor.set_drain((&mut *out).writer());
    compressor.compress();
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let magic = MAGIC.to_le_bytes();
        let frame = |rest: &[u8]| [&magic[..], rest].concat();
        // Window descriptor 0x38: 128 KiB; no content size.
        let header = parse_header(&frame(&[0x00, 0x38])).unwrap();
        assert_eq!(
            header,
            Header {
                window: 128 << 10,
                content_size: None,
                single_segment: false
            }
        );
        // Mantissa 3 on a 1 MiB base.
        assert_eq!(
            parse_header(&frame(&[0x00, 0x53])).unwrap().window,
            (1 << 20) + 3 * (1 << 17)
        );
        // Single segment with a 1-byte content size: the window is the content size.
        let header = parse_header(&frame(&[0x20, 200])).unwrap();
        assert_eq!(
            header,
            Header {
                window: 200,
                content_size: Some(200),
                single_segment: true
            }
        );
        // 2-byte content size is offset by 256; a 1-byte dictionary id comes first.
        assert_eq!(
            parse_header(&frame(&[0x41, 0x38, 7, 1, 0]))
                .unwrap()
                .content_size,
            Some(257)
        );
        // 4-byte content size of 4 GiB - 1.
        assert_eq!(
            parse_header(&frame(&[0x80, 0x38, 0xff, 0xff, 0xff, 0xff]))
                .unwrap()
                .content_size,
            Some(u32::MAX.into())
        );
        assert!(parse_header(&frame(&[0x80, 0x38, 0xff])).is_err());
        assert!(parse_header(&frame(&[])).is_err());
    }
}
