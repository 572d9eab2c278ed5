//! The frame codec: partial input, several frames per read, bad and boundary sizes.
#![allow(clippy::unwrap_used)]

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use sluice_protocol::frame::{encode_frame, write_frame, FrameDecoder, DEFAULT_MAX_FRAME_SIZE};
use sluice_protocol::Error;

fn framed(payloads: &[&[u8]]) -> BytesMut {
    let mut out = BytesMut::new();
    for p in payloads {
        write_frame(&mut out, p).unwrap();
    }
    out
}

/// Feeds `wire` to a decoder in the given chunk sizes, decoding after every chunk.
fn decode_in_chunks(wire: &[u8], chunks: &[usize], max: usize) -> Vec<Bytes> {
    let mut decoder = FrameDecoder::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = wire;
    let mut sizes = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(1).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frames
}

#[test]
fn default_max_is_100_mib() {
    assert_eq!(DEFAULT_MAX_FRAME_SIZE, 104_857_600);
    assert_eq!(FrameDecoder::default().max(), DEFAULT_MAX_FRAME_SIZE);
}

#[test]
fn byte_by_byte() {
    let payloads: [&[u8]; 4] = [b"hello", b"", b"x", &[0xff; 300]];
    let wire = framed(&payloads);
    let frames = decode_in_chunks(&wire, &[1], 1000);
    assert_eq!(frames.len(), payloads.len());
    for (frame, payload) in frames.iter().zip(payloads) {
        assert_eq!(&frame[..], payload);
    }
}

#[test]
fn several_frames_in_one_read() {
    let wire = framed(&[b"one", b"two", b"three"]);
    let mut decoder = FrameDecoder::new(100);
    let mut buf = wire;
    buf.extend_from_slice(&[0, 0, 0, 9, b'p']); // the start of a fourth frame
    assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), &b"one"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), &b"two"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), &b"three"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert_eq!(&buf[..], &[0, 0, 0, 9, b'p']);
    // The decoder reserved room for the rest of the fourth frame.
    assert!(buf.capacity() >= 4 + 9);
}

#[test]
fn payload_shares_the_read_buffer() {
    let mut buf = framed(&[b"zero-copy"]);
    let start = buf.as_ptr() as usize;
    let frame = FrameDecoder::new(100).decode(&mut buf).unwrap().unwrap();
    assert_eq!(frame.as_ptr() as usize, start + 4);
}

#[test]
fn negative_size_is_an_error() {
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 1, 2][..]);
    let err = FrameDecoder::new(100).decode(&mut buf).unwrap_err();
    assert_eq!(err, Error::FrameSize { size: -1, max: 100 });
    let mut buf = BytesMut::from(&i32::MIN.to_be_bytes()[..]);
    let err = FrameDecoder::new(100).decode(&mut buf).unwrap_err();
    assert_eq!(
        err,
        Error::FrameSize {
            size: i64::from(i32::MIN),
            max: 100
        }
    );
}

#[test]
fn oversize_is_refused_before_reserving() {
    let mut buf = BytesMut::with_capacity(8);
    buf.put_i32(i32::MAX);
    let err = FrameDecoder::new(1024).decode(&mut buf).unwrap_err();
    assert_eq!(
        err,
        Error::FrameSize {
            size: i64::from(i32::MAX),
            max: 1024
        }
    );
    assert!(
        buf.capacity() < 1024,
        "reserved {} bytes for a refused frame",
        buf.capacity()
    );

    let mut buf = BytesMut::new();
    buf.put_i32(11);
    assert!(matches!(
        FrameDecoder::new(10).decode(&mut buf),
        Err(Error::FrameSize { size: 11, max: 10 })
    ));
}

#[test]
fn exactly_max_is_accepted() {
    let payload = vec![7u8; 10];
    let wire = framed(&[&payload]);
    let frames = decode_in_chunks(&wire, &[3], 10);
    assert_eq!(frames, vec![Bytes::from(payload)]);
}

#[test]
fn empty_and_short_buffers_wait() {
    let mut decoder = FrameDecoder::new(10);
    let mut buf = BytesMut::new();
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(&[0, 0]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(&[0, 0]);
    assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), Bytes::new());
}

#[test]
fn encode_frame_patches_the_length() {
    let mut out = BytesMut::from(&b"before"[..]);
    encode_frame(&mut out, |buf| {
        buf.put_slice(b"abc");
        buf.put_u8(b'd');
        Ok(())
    })
    .unwrap();
    assert_eq!(&out[..], b"before\x00\x00\x00\x04abcd");
}

#[test]
fn encode_frame_rolls_back_on_error() {
    let mut out = BytesMut::from(&b"kept"[..]);
    let err = encode_frame(&mut out, |buf| {
        buf.put_slice(b"half a frame");
        Err(Error::TooLarge {
            what: "test",
            size: 1,
        })
    })
    .unwrap_err();
    assert_eq!(
        err,
        Error::TooLarge {
            what: "test",
            size: 1
        }
    );
    assert_eq!(&out[..], b"kept");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_chunking_gives_back_the_frames(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8),
        chunks in prop::collection::vec(1usize..40, 1..8),
    ) {
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let wire = framed(&refs);
        let frames = decode_in_chunks(&wire, &chunks, 64);
        prop_assert_eq!(frames.len(), payloads.len());
        for (frame, payload) in frames.iter().zip(&payloads) {
            prop_assert_eq!(&frame[..], &payload[..]);
        }
    }

    #[test]
    fn random_bytes_never_panic(wire in prop::collection::vec(any::<u8>(), 0..64), max in 0usize..32) {
        let mut buf = BytesMut::from(&wire[..]);
        let mut decoder = FrameDecoder::new(max);
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            prop_assert!(frame.len() <= max);
        }
    }
}
