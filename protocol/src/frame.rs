//! Size-prefixed frames: the unit every Kafka request and response travels in.
//!
//! On the wire each request and response is a big-endian `i32` byte count followed by that
//! many bytes (header and body). [`FrameDecoder`] cuts complete payloads off the front of a
//! read buffer without copying them, and refuses a size prefix that is negative or above a
//! configured maximum before anything is allocated for it: a peer (or a corrupted stream) that
//! claims a 2 GiB frame must not make us reserve 2 GiB. [`encode_frame`] writes a frame in place:
//! it reserves the prefix, lets the caller encode straight into the buffer, then patches the
//! length in, so a request is never built in one buffer and copied into another.
//!
//! Reference: the protocol guide, "Common Request and Response Structure"
//! (<https://kafka.apache.org/protocol#protocol_common>).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};

/// The default largest frame accepted: 100 MiB, the default of the Java broker's
/// `socket.request.max.bytes`.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 100 * 1024 * 1024;

/// Bytes taken by the size prefix.
pub const SIZE_PREFIX_LEN: usize = 4;

/// Splits complete frames off the front of a read buffer.
///
/// Feed it whatever the socket produced, as often as it likes; each call returns at most one
/// frame. The payload is split off `buf` and frozen, so it shares `buf`'s allocation.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

impl FrameDecoder {
    /// A decoder that accepts payloads of up to `max` bytes (the prefix not counted).
    pub fn new(max: usize) -> Self {
        Self { max }
    }

    /// The largest payload this decoder accepts.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Takes one complete frame payload (without its size prefix) off the front of `buf`.
    ///
    /// Returns `Ok(None)` while the frame is incomplete; capacity for the rest of it is reserved
    /// so the next read can land in place (never more than the maximum frame size). A negative
    /// size, or one above the maximum, is a [`Error::FrameSize`]: the stream cannot be
    /// resynchronised after that and the connection should be closed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>> {
        let Some(prefix) = buf.first_chunk::<SIZE_PREFIX_LEN>() else {
            buf.reserve(SIZE_PREFIX_LEN - buf.len());
            return Ok(None);
        };
        let size = i32::from_be_bytes(*prefix);
        let len = usize::try_from(size)
            .ok()
            .filter(|len| *len <= self.max)
            .ok_or(Error::FrameSize {
                size: i64::from(size),
                max: self.max,
            })?;
        let total = SIZE_PREFIX_LEN + len;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        buf.advance(SIZE_PREFIX_LEN);
        Ok(Some(buf.split_to(len).freeze()))
    }
}

/// Appends one frame to `out`: a size prefix, then whatever `body` writes.
///
/// The prefix is reserved first and patched once `body` is done, so the payload is encoded in
/// place. If `body` fails, or writes more than `i32::MAX` bytes, `out` is truncated back to its
/// length before the call, so a shared write buffer never holds half a frame.
pub fn encode_frame<F>(out: &mut BytesMut, body: F) -> Result<()>
where
    F: FnOnce(&mut BytesMut) -> Result<()>,
{
    let start = out.len();
    out.put_i32(0);
    let written = body(out).and_then(|()| {
        let len = out.len() - start - SIZE_PREFIX_LEN;
        i32::try_from(len).map_err(|_| Error::TooLarge {
            what: "frame",
            size: len,
        })
    });
    match written {
        Ok(len) => {
            out[start..start + SIZE_PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Appends `payload` to `out` as one frame (this copies `payload`; prefer [`encode_frame`] to
/// encode in place).
pub fn write_frame(out: &mut BytesMut, payload: &[u8]) -> Result<()> {
    out.reserve(SIZE_PREFIX_LEN + payload.len());
    encode_frame(out, |buf| {
        buf.put_slice(payload);
        Ok(())
    })
}
