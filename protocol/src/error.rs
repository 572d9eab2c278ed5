//! The one error type of the protocol crate.
//!
//! Every decoder returns these instead of panicking on bad bytes. Each variant says what was
//! wrong and where: `offset` is a byte position in the input the caller handed over (for a log
//! segment, the position in the file), so a user can find the damage with a hex editor.

use crate::compression::Compression;

/// Errors from framing, message and record-batch encoding and decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended before a field could be read in full.
    #[error(
        "truncated input: {field} at byte {offset} needs {needed} bytes, only {available} left"
    )]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Where the field starts.
        offset: usize,
        /// How many bytes the field needs.
        needed: usize,
        /// How many bytes were left.
        available: usize,
    },
    /// A field holds a value the format does not allow.
    #[error("invalid {field} at byte {offset}: {reason}")]
    Invalid {
        /// The field that is wrong.
        field: &'static str,
        /// Where the field starts.
        offset: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The stored CRC32C of a record batch does not match its bytes.
    #[error("CRC32C mismatch in the record batch at byte {offset}: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// Where the batch starts.
        offset: usize,
        /// The CRC the batch header holds.
        stored: u32,
        /// The CRC of the bytes that follow it.
        computed: u32,
    },
    /// A message set of magic 0 or 1 (or an unknown magic): only magic 2 record batches exist
    /// since Kafka 4.
    #[error("unsupported record batch magic {magic} at byte {offset}: only magic 2 is supported (magic 0/1 message sets were removed in Kafka 4)")]
    UnsupportedMagic {
        /// The magic byte found.
        magic: i8,
        /// Where the batch starts.
        offset: usize,
    },
    /// The batch attributes name a compression codec id that does not exist.
    #[error("unknown compression codec id {codec} in the attributes at byte {offset}")]
    UnknownCompression {
        /// The codec id (attribute bits 0-2).
        codec: u8,
        /// Where the attributes field is.
        offset: usize,
    },
    /// Compressed data is malformed.
    #[error("{codec} data is corrupt: {reason}")]
    Decompress {
        /// The codec.
        codec: Compression,
        /// What the decoder found.
        reason: String,
    },
    /// Decompressed output would exceed the configured cap (a decompression bomb, or a cap set
    /// too low for the data).
    #[error("{codec} output exceeds the cap of {limit} bytes")]
    DecompressLimit {
        /// The codec.
        codec: Compression,
        /// The cap in bytes.
        limit: usize,
    },
    /// Compression failed.
    #[error("{codec} compression failed: {reason}")]
    Compress {
        /// The codec.
        codec: Compression,
        /// Why.
        reason: String,
    },
    /// A frame's size prefix is negative or larger than the configured maximum.
    #[error("frame size {size} is outside 0..={max} bytes")]
    FrameSize {
        /// The size the prefix claims.
        size: i64,
        /// The configured maximum.
        max: usize,
    },
    /// A request or response body could not be encoded or decoded.
    #[error("{direction} of {api} v{version} failed: {reason}")]
    Message {
        /// `"encoding"` or `"decoding"`.
        direction: &'static str,
        /// The API name.
        api: &'static str,
        /// The API version used.
        version: i16,
        /// The underlying reason.
        reason: String,
    },
    /// A response's correlation id does not match the request it should answer.
    #[error("response correlation id {got} does not match the request's {expected}")]
    CorrelationMismatch {
        /// The id the request carried.
        expected: i32,
        /// The id the response carried.
        got: i32,
    },
    /// sluice and the broker share no version of an API.
    #[error("the broker supports {api} versions {broker_min}..={broker_max}, sluice needs {ours_min}..={ours_max}")]
    UnsupportedVersion {
        /// The API name.
        api: &'static str,
        /// Lowest version sluice implements.
        ours_min: i16,
        /// Highest version sluice implements.
        ours_max: i16,
        /// Lowest version the broker offers.
        broker_min: i16,
        /// Highest version the broker offers.
        broker_max: i16,
    },
    /// The broker does not offer an API at all.
    #[error("the broker does not support {api}")]
    UnsupportedApi {
        /// The API name.
        api: &'static str,
    },
    /// A record inside a compressed batch is malformed. The offsets in `source` count from
    /// the start of the decompressed records, which exist nowhere in the input.
    #[error("in the compressed batch at byte {batch_offset}: {source} (offset within its decompressed records)")]
    InCompressedBatch {
        /// Where the compressed batch starts in the input.
        batch_offset: usize,
        /// The error in the decompressed records.
        source: Box<Error>,
    },
    /// sluice has no implementation of this API (it is not in the version table): a bug in
    /// the caller, not a broker problem.
    #[error("sluice does not implement {api}")]
    NotImplemented {
        /// The API name.
        api: &'static str,
    },
    /// A record batch or record is too large for its length fields.
    #[error("{what} of {size} bytes is too large to encode")]
    TooLarge {
        /// What was being encoded.
        what: &'static str,
        /// Its size.
        size: usize,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The same error with every byte offset moved by `by`: used when a decoder that saw a
    /// slice reports into the coordinates of the larger input it came from.
    #[must_use]
    pub fn shifted(self, by: usize) -> Self {
        match self {
            Error::Truncated {
                field,
                offset,
                needed,
                available,
            } => Error::Truncated {
                field,
                offset: offset + by,
                needed,
                available,
            },
            Error::Invalid {
                field,
                offset,
                reason,
            } => Error::Invalid {
                field,
                offset: offset + by,
                reason,
            },
            Error::CrcMismatch {
                offset,
                stored,
                computed,
            } => Error::CrcMismatch {
                offset: offset + by,
                stored,
                computed,
            },
            Error::UnsupportedMagic { magic, offset } => Error::UnsupportedMagic {
                magic,
                offset: offset + by,
            },
            Error::UnknownCompression { codec, offset } => Error::UnknownCompression {
                codec,
                offset: offset + by,
            },
            Error::InCompressedBatch {
                batch_offset,
                source,
            } => Error::InCompressedBatch {
                batch_offset: batch_offset + by,
                source,
            },
            other => other,
        }
    }

    /// The byte offset the error points at, where it has one.
    pub fn offset(&self) -> Option<usize> {
        match self {
            Error::Truncated { offset, .. }
            | Error::Invalid { offset, .. }
            | Error::CrcMismatch { offset, .. }
            | Error::UnsupportedMagic { offset, .. }
            | Error::UnknownCompression { offset, .. }
            | Error::InCompressedBatch {
                batch_offset: offset,
                ..
            } => Some(*offset),
            _ => None,
        }
    }
}
