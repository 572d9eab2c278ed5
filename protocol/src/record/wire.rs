//! Primitive reads and writes of the record format: big-endian integers and zigzag varints.
//!
//! The reader works on a plain `&[u8]` with an index, and every failure carries the field name
//! and the byte offset in the caller's coordinates (`origin` + index), so errors point at the
//! damage. Varints follow the protobuf zigzag encoding the record format uses (KIP-98).

#[cfg(test)]
use bytes::BufMut;

use crate::error::{Error, Result};

/// A bounds-checked cursor over a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of `data[0]` in the caller's input, added to every reported position.
    origin: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8], origin: usize) -> Self {
        Reader {
            data,
            pos: 0,
            origin,
        }
    }

    /// The index of the next byte in `data`.
    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The whole slice the reader walks.
    #[inline]
    pub(crate) fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Moves to index `pos` (at most the slice length).
    #[inline]
    pub(crate) fn set_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.data.len());
    }

    /// The absolute offset of the next byte, for error messages.
    #[inline]
    pub(crate) fn offset(&self) -> usize {
        self.origin + self.pos
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn truncated(&self, field: &'static str, needed: usize) -> Error {
        Error::Truncated {
            field,
            offset: self.offset(),
            needed,
            available: self.remaining(),
        }
    }

    pub(crate) fn invalid(&self, field: &'static str, at: usize, reason: String) -> Error {
        Error::Invalid {
            field,
            offset: self.origin + at,
            reason,
        }
    }

    /// Takes the next `len` bytes.
    #[inline]
    pub(crate) fn bytes(&mut self, len: usize, field: &'static str) -> Result<&'a [u8]> {
        let slice = self
            .pos
            .checked_add(len)
            .and_then(|end| self.data.get(self.pos..end));
        match slice {
            Some(s) => {
                self.pos += len;
                Ok(s)
            }
            None => Err(self.truncated(field, len)),
        }
    }

    #[inline]
    pub(crate) fn i8(&mut self, field: &'static str) -> Result<i8> {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b as i8)
            }
            None => Err(self.truncated(field, 1)),
        }
    }

    #[inline]
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let s = self.bytes(N, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    #[inline]
    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16> {
        self.array::<2>(field).map(i16::from_be_bytes)
    }

    #[inline]
    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32> {
        self.array::<4>(field).map(i32::from_be_bytes)
    }

    /// A zigzag varint that must fit in 32 bits (at most 5 bytes).
    #[inline]
    pub(crate) fn varint(&mut self, field: &'static str) -> Result<i32> {
        // Fast path: most lengths and deltas in a batch are below 64 and fit in one byte.
        if let Some(&b) = self.data.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(((b >> 1) as i32) ^ -((b & 1) as i32));
            }
        }
        let raw = self.unsigned_varint(field, 5)?;
        let v = u32::try_from(raw).map_err(|_| {
            self.invalid(
                field,
                self.pos,
                format!("varint {raw} does not fit in 32 bits"),
            )
        })?;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }

    /// A zigzag varlong (at most 10 bytes).
    #[inline]
    pub(crate) fn varlong(&mut self, field: &'static str) -> Result<i64> {
        if let Some(&b) = self.data.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(((b >> 1) as i64) ^ -((b & 1) as i64));
            }
        }
        let v = self.unsigned_varint(field, 10)?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// An unsigned base-128 varint of at most `max_bytes` bytes.
    fn unsigned_varint(&mut self, field: &'static str, max_bytes: usize) -> Result<u64> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let Some(&b) = self.data.get(self.pos) else {
                self.pos = start;
                return Err(self.truncated(field, i + 1));
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(self.invalid(
            field,
            start,
            format!("varint longer than {max_bytes} bytes"),
        ))
    }

    /// A varint-prefixed byte string where -1 means null.
    #[inline]
    pub(crate) fn nullable_bytes(
        &mut self,
        len_field: &'static str,
        field: &'static str,
    ) -> Result<Option<&'a [u8]>> {
        let at = self.pos;
        match self.varint(len_field)? {
            -1 => Ok(None),
            len if len >= 0 => self.bytes(len as usize, field).map(Some),
            len => Err(self.invalid(len_field, at, format!("negative length {len}"))),
        }
    }
}

/// Decodes the zigzag varint at `*pos` of at most `max_bytes` bytes and moves `*pos` past it;
/// `None` if it is truncated or too long. The hot path of record iteration: failures are then
/// re-read with [`Reader`] to say exactly what was wrong.
///
/// One- and two-byte varints (every length and delta below 8192, nearly all of a batch) are
/// decoded inline with no loop; longer ones go to a cold loop. A loop at every call site let
/// the compiler merge the sites into one spilling state machine whose continuation branch was
/// the most mispredicted instruction of a batch walk.
#[inline(always)]
pub(crate) fn fast_varint(data: &[u8], pos: &mut usize, max_bytes: u32) -> Option<i64> {
    let raw = fast_raw_varint(data, pos, max_bytes)?;
    Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// Like [`fast_varint`] for a length, where only -1 (null) of the negative values is valid:
/// `Some(Some(len))`, `Some(None)` for null, `None` for anything else. Lengths skip the zigzag
/// decode: on the path from one length to the next field's position, it cost more than
/// testing the sign bit.
#[inline(always)]
pub(crate) fn fast_length(data: &[u8], pos: &mut usize) -> Option<Option<usize>> {
    let start = *pos;
    let b0 = *data.get(start)?;
    // Zigzag: bit 0 is the sign, so a valid length is even and -1 is 1.
    if b0 < 0x80 {
        *pos = start + 1;
        return match b0 {
            1 => Some(None),
            b if b & 1 == 0 => Some(Some(usize::from(b >> 1))),
            _ => None,
        };
    }
    let b1 = *data.get(start + 1)?;
    if b1 < 0x80 && b0 & 1 == 0 {
        *pos = start + 2;
        // The length itself, shifted into place without decoding the zigzag first.
        return Some(Some(usize::from((b0 & 0x7f) >> 1) | (usize::from(b1) << 6)));
    }
    let raw = fast_raw_varint(data, pos, 5)?;
    match raw {
        1 => Some(None),
        r if r & 1 == 0 => Some(Some((r >> 1) as usize)),
        _ => None,
    }
}

/// The unsigned base-128 varint at `*pos`, not zigzag-decoded.
#[inline(always)]
fn fast_raw_varint(data: &[u8], pos: &mut usize, max_bytes: u32) -> Option<u64> {
    let start = *pos;
    let b0 = *data.get(start)?;
    if b0 < 0x80 {
        *pos = start + 1;
        return Some(u64::from(b0));
    }
    let b1 = *data.get(start + 1)?;
    if b1 < 0x80 {
        *pos = start + 2;
        return Some(u64::from(b0 & 0x7f) | (u64::from(b1) << 7));
    }
    let (raw, end) = long_varint(data, start, max_bytes)?;
    *pos = end;
    Some(raw)
}

/// The loop for varints of three bytes or more. It takes and returns the position by value:
/// taking `&mut usize` made the caller keep its position in memory for the whole record walk,
/// a store and a reload around every field.
#[cold]
#[inline(never)]
fn long_varint(data: &[u8], start: usize, max_bytes: u32) -> Option<(u64, usize)> {
    let mut i = start;
    let mut value: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *data.get(i)?;
        i += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
        if shift >= 7 * max_bytes {
            return None;
        }
    }
    if max_bytes <= 5 && value > u64::from(u32::MAX) {
        return None;
    }
    Some((value, i))
}

/// Skips a varint-prefixed byte string at `*pos` (-1 is null when `nullable`), returning it.
#[inline(always)]
pub(crate) fn fast_bytes<'a>(
    data: &'a [u8],
    pos: &mut usize,
    nullable: bool,
) -> Option<Option<&'a [u8]>> {
    let Some(len) = fast_length(data, pos)? else {
        return nullable.then_some(None);
    };
    let start = *pos;
    let end = start.checked_add(len)?;
    let bytes = data.get(start..end)?;
    *pos = end;
    Some(Some(bytes))
}

/// Bytes a zigzag varint of `v` takes.
#[inline]
pub(crate) fn varint_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    // One byte per started group of 7 bits; zero still takes one byte.
    (64 - (z | 1).leading_zeros() as usize).div_ceil(7)
}

/// Writes `v` as a zigzag varint (varlong when it needs more than 32 bits): the reference
/// the decoders and the builder's own encoder are tested against.
#[cfg(test)]
pub(crate) fn put_varint(out: &mut impl BufMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    out.put_u8(z as u8);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fast_varint_agrees_with_the_checked_reader() {
        let mut values: Vec<i64> = (-300..300).collect();
        for shift in 0..63 {
            values.extend([1i64 << shift, -(1i64 << shift), (1i64 << shift) - 1]);
        }
        values.extend([i64::MAX, i64::MIN, i32::MAX as i64 + 1, i32::MIN as i64 - 1]);
        for v in values {
            for pad in [0usize, 3, 12] {
                let mut buf = Vec::new();
                put_varint(&mut buf, v);
                let len = buf.len();
                buf.extend(std::iter::repeat_n(0x80, pad));
                for max in [5u32, 10] {
                    let mut pos = 0;
                    let fast = fast_varint(&buf, &mut pos, max);
                    let mut r = Reader::new(&buf, 0);
                    let checked = if max == 5 {
                        r.varint("v").map(i64::from)
                    } else {
                        r.varlong("v")
                    };
                    assert_eq!(fast, checked.ok(), "{v} max {max} pad {pad}");
                    if fast.is_some() {
                        assert_eq!(pos, len);
                    }
                }
            }
        }
        // Lengths: the checked reader's nullable_bytes rules (-1 null, other negatives bad).
        for v in (-300i64..300).chain([8191, 8192, i32::MAX as i64, i32::MIN as i64]) {
            for pad in [0usize, 3] {
                let mut buf = Vec::new();
                put_varint(&mut buf, v);
                let len = buf.len();
                buf.extend(std::iter::repeat_n(0x80, pad));
                let mut pos = 0;
                let fast = fast_length(&buf, &mut pos);
                let checked = Reader::new(&buf, 0).varint("v").ok().and_then(|n| match n {
                    -1 => Some(None),
                    n if n >= 0 => Some(Some(n as usize)),
                    _ => None,
                });
                assert_eq!(fast, checked, "length {v} pad {pad}");
                if fast.is_some() {
                    assert_eq!(pos, len, "length {v}");
                }
            }
        }
        // Overlong: eight continuation bytes then a terminator is 9 bytes, too long for 5.
        let mut pos = 0;
        assert_eq!(fast_varint(&[0xff; 16], &mut pos, 10), None);
        assert_eq!(pos, 0);
    }

    #[test]
    fn varint_round_trips_and_lengths_agree() {
        let samples = [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            -65,
            300,
            i32::MAX as i64,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ];
        for v in samples {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v), "length of {v}");
            let mut r = Reader::new(&buf, 0);
            assert_eq!(r.varlong("v").unwrap(), v);
            assert_eq!(r.remaining(), 0);
            if let Ok(small) = i32::try_from(v) {
                assert_eq!(Reader::new(&buf, 0).varint("v").unwrap(), small);
            } else {
                assert!(
                    Reader::new(&buf, 0).varint("v").is_err(),
                    "{v} must not fit a varint"
                );
            }
        }
    }

    #[test]
    fn overlong_and_truncated_varints_are_errors_with_offsets() {
        let overlong = [0xffu8; 11];
        let err = Reader::new(&overlong, 100)
            .varlong("timestampDelta")
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Invalid {
                    field: "timestampDelta",
                    offset: 100,
                    ..
                }
            ),
            "{err}"
        );
        let err = Reader::new(&overlong[..3], 7)
            .varint("offsetDelta")
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Truncated {
                    field: "offsetDelta",
                    offset: 7,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn bytes_past_the_end_is_truncated_not_a_panic() {
        let data = [1u8, 2, 3];
        let mut r = Reader::new(&data, 0);
        assert!(r.bytes(usize::MAX, "value").is_err());
        assert!(r.bytes(4, "value").is_err());
        assert_eq!(r.bytes(3, "value").unwrap(), &data);
    }
}
