//! gzip (codec 1): RFC 1952 members around raw deflate, on flate2's pure-Rust backend.
//!
//! We parse the member header and trailer ourselves and drive one reused raw-deflate state, so
//! the output cap is checked chunk by chunk as output appears and the inflate state is not
//! reallocated per batch. Concatenated members are decoded one after another and their output
//! joined, as Java's `GZIPInputStream` does; unlike it, bytes after the last member that are not
//! another member are an error rather than silently ignored (they can only be damage, and the
//! batch CRC has already vouched for them). The CRC-32 and length in each trailer are checked.
//!
//! Encoding writes one member at level 6 by default: the Java client's `Deflater` default and
//! librdkafka's `-1`.
//!
//! References: RFC 1952 (gzip), RFC 1951 (deflate), KIP-390 (`compression.gzip.level`).

use std::fmt;

use bytes::BytesMut;
use flate2::{Compress, Crc, Decompress, FlushCompress, FlushDecompress, Status};

use super::{corrupt, over_limit, zero_extend, Compression};
use crate::error::{Error, Result};

/// The level the Java client uses unless `compression.gzip.level` says otherwise.
pub(super) const DEFAULT_LEVEL: u32 = 6;

const CODEC: Compression = Compression::Gzip;
const MAGIC: [u8; 2] = [0x1f, 0x8b];
const METHOD_DEFLATE: u8 = 8;
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xe0;
/// Deflate's largest expansion (a 258-byte match per ~2 bits).
const MAX_RATIO: usize = 1032;
/// The smallest step when output outgrows the trailer's size hint.
const MIN_CHUNK: usize = 32 * 1024;
/// Header of the members we write: no name, no mtime, OS "unknown".
const HEADER: [u8; 10] = [0x1f, 0x8b, METHOD_DEFLATE, 0, 0, 0, 0, 0, 0, 0xff];

/// Reusable gzip decoding state.
#[derive(Default)]
pub(super) struct Decoder {
    /// Created on first use: a consumer that never sees gzip never pays for it.
    inflate: Option<Decompress>,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("gzip::Decoder")
            .field("initialized", &self.inflate.is_some())
            .finish()
    }
}

impl Decoder {
    /// Decodes every member of `input`, producing at most `cap` bytes.
    pub(super) fn decompress(&mut self, input: &[u8], cap: usize) -> Result<Vec<u8>> {
        let inflate = self.inflate.get_or_insert_with(|| Decompress::new(false));
        // One byte past the cap lets us tell "exactly cap" from "more than cap".
        let limit = cap.saturating_add(1);
        // The last trailer's ISIZE is the exact size of the usual single member; bounded by
        // deflate's ratio and the cap so a forged one costs nothing. The +1 leaves room for the
        // inflater to report the end without another grow.
        let hint = match input.len().checked_sub(4) {
            Some(at) => read_u32(input, at).map_or(0, |n| n as usize),
            None => 0,
        };
        let first = hint
            .min(input.len().saturating_mul(MAX_RATIO))
            .saturating_add(1);
        let mut out = Vec::new();
        zero_extend(&mut out, first.min(limit));

        let mut len = 0;
        let mut pos = 0;
        loop {
            pos += header_len(&input[pos..]).map_err(|e| at_member(e, pos))?;
            inflate.reset(false);
            let start = len;
            let (read, end) = inflate_member(inflate, &input[pos..], &mut out, len, cap)?;
            pos += read;
            len = end;
            let trailer = input.get(pos..pos + 8).ok_or_else(|| {
                corrupt(
                    CODEC,
                    format!("input ends inside the trailer at byte {pos}"),
                )
            })?;
            let mut crc = Crc::new();
            crc.update(&out[start..len]);
            let (stored_crc, stored_len) = (read_u32(trailer, 0), read_u32(trailer, 4));
            if stored_crc != Some(crc.sum()) {
                bail!(CODEC, "CRC-32 mismatch in the trailer at byte {pos}");
            }
            // ISIZE is the length modulo 2^32.
            if stored_len != Some((len - start) as u32) {
                bail!(CODEC, "length mismatch in the trailer at byte {pos}");
            }
            pos += 8;
            if pos == input.len() {
                break;
            }
            if !input[pos..].starts_with(&MAGIC) {
                bail!(
                    CODEC,
                    "{} bytes after the gzip member ending at byte {pos}",
                    input.len() - pos
                );
            }
        }
        out.truncate(len);
        Ok(out)
    }
}

/// Inflates one raw deflate stream from `input` into `out[len..]`, growing `out` as output
/// appears but never past `cap + 1` bytes. Returns the input consumed and the new output length.
fn inflate_member(
    inflate: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    mut len: usize,
    cap: usize,
) -> Result<(usize, usize)> {
    let limit = cap.saturating_add(1);
    let mut read = 0;
    loop {
        if len == out.len() {
            // Full: grow geometrically, bounded by the cap (+1 to detect overflow).
            let want = out.len().saturating_mul(2).max(MIN_CHUNK).min(limit);
            if want <= out.len() {
                return Err(over_limit(CODEC, cap));
            }
            zero_extend(out, want);
        }
        let (in_before, out_before) = (inflate.total_in(), inflate.total_out());
        let status = inflate
            .decompress(&input[read..], &mut out[len..], FlushDecompress::None)
            .map_err(|e| corrupt(CODEC, format!("bad deflate data: {e}")))?;
        let consumed = (inflate.total_in() - in_before) as usize;
        let produced = (inflate.total_out() - out_before) as usize;
        read += consumed;
        len += produced;
        if len > cap {
            return Err(over_limit(CODEC, cap));
        }
        match status {
            Status::StreamEnd => return Ok((read, len)),
            // No progress with room left in `out`: the input ran out mid-stream.
            Status::Ok | Status::BufError if consumed == 0 && produced == 0 && len < out.len() => {
                return Err(corrupt(CODEC, "input ends inside the deflate stream"));
            }
            Status::Ok | Status::BufError => {}
        }
    }
}

/// The length of the member header at the start of `data` (RFC 1952 section 2.3).
fn header_len(data: &[u8]) -> Result<usize, String> {
    if data.len() < HEADER.len() {
        return Err("input ends inside the header".into());
    }
    if data[..2] != MAGIC {
        return Err(format!("bad magic {:#04x} {:#04x}", data[0], data[1]));
    }
    if data[2] != METHOD_DEFLATE {
        return Err(format!("compression method {} is not deflate", data[2]));
    }
    let flags = data[3];
    if flags & FRESERVED != 0 {
        return Err(format!("reserved flag bits set in {flags:#04x}"));
    }
    let mut pos = HEADER.len();
    if flags & FEXTRA != 0 {
        let xlen = data
            .get(pos..pos + 2)
            .ok_or("input ends inside the extra field")?;
        pos += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
    }
    for (flag, what) in [(FNAME, "file name"), (FCOMMENT, "comment")] {
        if flags & flag != 0 {
            let rest = data
                .get(pos..)
                .ok_or_else(|| format!("input ends inside the {what}"))?;
            let nul = rest.iter().position(|&b| b == 0);
            pos += nul.ok_or_else(|| format!("input ends inside the {what}"))? + 1;
        }
    }
    if flags & FHCRC != 0 {
        let stored = data
            .get(pos..pos + 2)
            .ok_or("input ends inside the header CRC")?;
        let mut crc = Crc::new();
        crc.update(&data[..pos]);
        if u16::from_le_bytes([stored[0], stored[1]]) != crc.sum() as u16 {
            return Err("header CRC mismatch".into());
        }
        pos += 2;
    }
    if pos > data.len() {
        return Err("input ends inside the header".into());
    }
    Ok(pos)
}

fn at_member(reason: String, pos: usize) -> Error {
    corrupt(CODEC, format!("{reason} (member at byte {pos})"))
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reusable gzip encoding state.
pub(super) struct Encoder {
    level: u32,
    /// Created on first use (the deflate state is a few hundred KiB).
    deflate: Option<Compress>,
}

impl fmt::Debug for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("gzip::Encoder")
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    pub(super) fn new(level: u32) -> Self {
        Encoder {
            level: level.min(9),
            deflate: None,
        }
    }

    /// Appends one gzip member holding `input` to `out`.
    pub(super) fn compress(&mut self, input: &[u8], out: &mut BytesMut) -> Result<()> {
        let level = self.level;
        let deflate = self
            .deflate
            .get_or_insert_with(|| Compress::new(flate2::Compression::new(level), false));
        deflate.reset();
        out.extend_from_slice(&HEADER);
        let mut read = 0;
        loop {
            let start = out.len();
            // Deflate's worst case is stored blocks: 5 bytes per 64 KiB, plus the final block.
            let rest = input.len() - read;
            out.resize(start + rest + rest / 1024 + 64, 0);
            let (in_before, out_before) = (deflate.total_in(), deflate.total_out());
            let status = deflate
                .compress(&input[read..], &mut out[start..], FlushCompress::Finish)
                .map_err(|e| Error::Compress {
                    codec: CODEC,
                    reason: e.to_string(),
                })?;
            let consumed = (deflate.total_in() - in_before) as usize;
            let produced = (deflate.total_out() - out_before) as usize;
            read += consumed;
            out.truncate(start + produced);
            match status {
                Status::StreamEnd => break,
                _ if consumed == 0 && produced == 0 => {
                    return Err(Error::Compress {
                        codec: CODEC,
                        reason: "deflate made no progress".into(),
                    });
                }
                _ => {}
            }
        }
        let mut crc = Crc::new();
        crc.update(input);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(input.len() as u32).to_le_bytes());
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A member with every optional header field, FHCRC included (flate2 never writes one).
    #[test]
    fn header_with_all_optional_fields() {
        let mut member = vec![
            0x1f,
            0x8b,
            8,
            FHCRC | FEXTRA | FNAME | FCOMMENT,
            0,
            0,
            0,
            0,
            0,
            3,
        ];
        member.extend_from_slice(&[3, 0, b'a', b'b', b'c']);
        member.extend_from_slice(b"name\0comment\0");
        let mut crc = Crc::new();
        crc.update(&member);
        member.extend_from_slice(&(crc.sum() as u16).to_le_bytes());
        let header = member.len();
        let mut compressed = BytesMut::new();
        Encoder::new(6)
            .compress(b"hello hello hello", &mut compressed)
            .unwrap();
        member.extend_from_slice(&compressed[HEADER.len()..]);
        assert_eq!(header_len(&member), Ok(header));
        let out = Decoder::default().decompress(&member, 1 << 20).unwrap();
        assert_eq!(out, b"hello hello hello");

        member[header - 1] ^= 1;
        assert!(header_len(&member).unwrap_err().contains("header CRC"));
    }

    #[test]
    fn header_errors() {
        assert!(header_len(&[0x1f, 0x8b, 8]).is_err());
        assert!(header_len(&[0x1f, 0x8c, 8, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(header_len(&[0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(header_len(&[0x1f, 0x8b, 8, 0x20, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(header_len(&[0x1f, 0x8b, 8, FEXTRA, 0, 0, 0, 0, 0, 0, 9, 0, 1]).is_err());
        assert!(header_len(&[0x1f, 0x8b, 8, FNAME, 0, 0, 0, 0, 0, 0, b'a']).is_err());
    }
}
