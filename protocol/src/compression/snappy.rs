//! Snappy (codec 2): raw snappy, or the xerial framing the Java client writes.
//!
//! Kafka never specified a snappy container, so two exist on the wire: librdkafka (and so most
//! non-Java clients) writes one raw snappy block, while the Java client writes snappy-java's
//! `SnappyOutputStream` framing: the magic `\x82SNAPPY\0`, an i32 version and an i32
//! minimum-compatible version (both big-endian), then blocks of a big-endian i32 length and a
//! raw snappy block. We read both, telling them apart by the magic (a raw block cannot start
//! with it: its first element would be a copy with nothing to copy from). We write the xerial
//! framing with 32 KiB blocks, which the Java client, librdkafka and kafka-python all read.
//!
//! Every raw block starts with its exact decompressed length, so all lengths are summed and
//! checked against the cap (and against snappy's largest possible expansion) before one
//! allocation of exactly the right size; nothing grows or copies afterwards.
//!
//! References: <https://github.com/google/snappy/blob/main/format_description.txt>,
//! snappy-java's `SnappyOutputStream` / `SnappyCodec` (xerial framing).

use bytes::{BufMut, BytesMut};

use super::{corrupt, over_limit, Compression};
use crate::error::{Error, Result};

const CODEC: Compression = Compression::Snappy;
/// Start of a xerial stream.
const XERIAL_MAGIC: [u8; 8] = *b"\x82SNAPPY\0";
/// Magic, version, minimum compatible version.
const XERIAL_HEADER_LEN: usize = 16;
/// What snappy-java writes for both version fields.
const XERIAL_VERSION: i32 = 1;
/// `SnappyOutputStream`'s default block size, used by the Java client.
const XERIAL_BLOCK: usize = 32 * 1024;
/// Snappy's largest expansion: a 3-byte copy element emits 64 bytes.
const MAX_RATIO: usize = 22;

/// Reusable snappy decoding state.
#[derive(Debug, Default)]
pub(super) struct Decoder {
    raw: snap::raw::Decoder,
    /// Xerial blocks found by the first pass: (start, compressed length, decompressed length).
    blocks: Vec<(usize, usize, usize)>,
}

impl Decoder {
    /// Decodes raw or xerial-framed snappy, producing at most `cap` bytes.
    pub(super) fn decompress(&mut self, input: &[u8], cap: usize) -> Result<Vec<u8>> {
        if input.starts_with(&XERIAL_MAGIC) {
            self.decompress_xerial(input, cap)
        } else {
            let n = claimed_len(input, 0)?;
            if n > cap {
                return Err(over_limit(CODEC, cap));
            }
            let mut out = vec![0; n];
            self.raw
                .decompress(input, &mut out)
                .map_err(|e| snap_error(e, 0))?;
            Ok(out)
        }
    }

    fn decompress_xerial(&mut self, input: &[u8], cap: usize) -> Result<Vec<u8>> {
        // First pass: walk the framing and add up the lengths; reject before allocating.
        self.blocks.clear();
        let mut total = 0usize;
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            // snappy-java reads concatenated streams: a header may follow any block. Its
            // first byte would make a negative block length, so this cannot misfire.
            if rest.starts_with(&XERIAL_MAGIC[..rest.len().min(XERIAL_MAGIC.len())]) {
                if rest.len() < XERIAL_HEADER_LEN {
                    bail!(CODEC, "input ends inside the xerial header at byte {pos}");
                }
                pos += XERIAL_HEADER_LEN;
                continue;
            }
            let len = rest
                .get(..4)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| {
                    corrupt(
                        CODEC,
                        format!("input ends inside a block length at byte {pos}"),
                    )
                })?;
            let start = pos + 4;
            let len = usize::try_from(len).map_err(|_| {
                corrupt(CODEC, format!("negative block length {len} at byte {pos}"))
            })?;
            let block = input.get(start..start.saturating_add(len)).ok_or_else(|| {
                corrupt(
                    CODEC,
                    format!("block of {len} bytes at byte {pos} runs past the end of the input"),
                )
            })?;
            let n = claimed_len(block, start)?;
            total = total.saturating_add(n);
            if total > cap {
                return Err(over_limit(CODEC, cap));
            }
            self.blocks.push((start, len, n));
            pos = start + len;
        }

        let mut out = vec![0; total];
        let mut at = 0;
        for &(start, len, n) in &self.blocks {
            self.raw
                .decompress(&input[start..start + len], &mut out[at..at + n])
                .map_err(|e| snap_error(e, start))?;
            at += n;
        }
        Ok(out)
    }
}

/// The decompressed length a raw block's preamble claims, if snappy could produce it from a
/// block this size.
fn claimed_len(block: &[u8], offset: usize) -> Result<usize> {
    let n = snap::raw::decompress_len(block).map_err(|e| snap_error(e, offset))?;
    let len = block.len();
    if n > len.saturating_mul(MAX_RATIO) {
        bail!(
            CODEC,
            "block at byte {offset} claims {n} bytes from {len}, past snappy's ratio"
        );
    }
    Ok(n)
}

fn snap_error(e: snap::Error, offset: usize) -> Error {
    corrupt(CODEC, format!("{e} (block at byte {offset})"))
}

/// Reusable snappy encoding state.
#[derive(Debug)]
pub(super) struct Encoder {
    raw: snap::raw::Encoder,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            raw: snap::raw::Encoder::new(),
        }
    }
}

impl Encoder {
    /// Appends `input` in xerial framing with 32 KiB blocks.
    pub(super) fn compress(&mut self, input: &[u8], out: &mut BytesMut) -> Result<()> {
        out.reserve(
            XERIAL_HEADER_LEN + snap::raw::max_compress_len(input.len()) + input.len() / 4096,
        );
        out.extend_from_slice(&XERIAL_MAGIC);
        out.put_i32(XERIAL_VERSION);
        out.put_i32(XERIAL_VERSION);
        for chunk in input.chunks(XERIAL_BLOCK) {
            let start = out.len();
            out.resize(start + 4 + snap::raw::max_compress_len(chunk.len()), 0);
            let n = self
                .raw
                .compress(chunk, &mut out[start + 4..])
                .map_err(|e| Error::Compress {
                    codec: CODEC,
                    reason: e.to_string(),
                })?;
            // n <= max_compress_len(32 KiB), far below i32::MAX.
            out[start..start + 4].copy_from_slice(&(n as u32).to_be_bytes());
            out.truncate(start + 4 + n);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn raw_claim_beyond_ratio_is_corrupt() {
        // Preamble says 1000 bytes; 3 bytes of input cannot hold that.
        let block = [0xe8, 0x07, 0x00];
        let err = Decoder::default().decompress(&block, 1 << 20).unwrap_err();
        assert!(matches!(err, Error::Decompress { .. }), "{err}");
    }

    #[test]
    fn header_only_xerial_is_empty() {
        let mut out = BytesMut::new();
        Encoder::default().compress(&[], &mut out).unwrap();
        assert_eq!(out.len(), XERIAL_HEADER_LEN);
        assert!(Decoder::default().decompress(&out, 10).unwrap().is_empty());
    }
}
