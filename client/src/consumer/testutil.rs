//! Constructed record batches for the consumer's unit tests.
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use sluice_protocol::record::{BatchBuilder, BatchHeader, ControlRecord, ControlType};
use sluice_protocol::{Compression, Compressor};

/// A batch of `count` records from offset `base`.
pub(crate) fn batch(base: i64, count: usize, compression: Compression) -> Bytes {
    let mut builder = BatchBuilder::new(BatchHeader {
        base_offset: base,
        compression,
        ..BatchHeader::default()
    });
    for i in 0..count {
        let value = format!("value {}", base + i as i64);
        builder
            .push(
                1,
                None,
                Some(value.as_bytes()),
                std::iter::empty::<(&[u8], Option<&[u8]>)>(),
            )
            .unwrap();
    }
    builder.finish(&mut Compressor::new()).unwrap()
}

/// A transaction marker of producer `pid` at `offset`.
pub(crate) fn marker(offset: i64, pid: i64, kind: ControlType) -> Bytes {
    let header = BatchHeader {
        base_offset: offset,
        producer_id: pid,
        producer_epoch: 0,
        transactional: true,
        control: true,
        ..BatchHeader::default()
    };
    let mut builder = BatchBuilder::new(header);
    builder
        .push_control(1, &ControlRecord::marker(kind, 0))
        .unwrap();
    builder.finish(&mut Compressor::new()).unwrap()
}

/// Batches back to back, as a fetch response's records field holds them.
pub(crate) fn concat(batches: &[Bytes]) -> Bytes {
    let mut out = BytesMut::new();
    for b in batches {
        out.extend_from_slice(b);
    }
    out.freeze()
}
