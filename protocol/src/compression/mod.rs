//! Record-batch compression codecs, all pure Rust.
//!
//! Kafka compresses the records section of a v2 batch as one blob (KIP-98 batch format; the
//! codec id sits in attribute bits 0-2). Decompression always has an output cap, so a small
//! hostile batch cannot make us allocate gigabytes.

use std::fmt;
use std::str::FromStr;

use bytes::{Bytes, BytesMut};

use crate::error::{Error, Result};

/// A record-batch compression codec (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression.
    #[default]
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// Snappy: raw, or the xerial framing the Java client writes.
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// All codecs, in id order.
    pub const ALL: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    /// The codec id Kafka stores in the batch attributes.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec for an attribute id, or `None` for an id Kafka does not define.
    pub fn from_id(id: u8) -> Option<Compression> {
        Compression::ALL.get(usize::from(id)).copied()
    }

    /// The name Kafka configs use (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing a codec name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compression codec {0:?}: expected none, gzip, snappy, lz4 or zstd")]
pub struct UnknownCodecName(pub String);

impl FromStr for Compression {
    type Err = UnknownCodecName;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownCodecName(s.to_owned()))
    }
}

/// Decompresses record sections (being written).
#[derive(Debug, Default)]
pub struct Decompressor {}

/// Compresses record sections (being written).
#[derive(Debug, Default)]
pub struct Compressor {}
