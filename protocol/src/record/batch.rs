//! `RecordBatch`: a zero-copy view of one magic-2 record batch.
//!
//! The batch keeps the `Bytes` it was cut from; header fields are read in place on each call,
//! and records are handed out as slices of the same buffer (see [`super::records`]). Only a
//! compressed batch copies, once, when it is decompressed.
//!
//! Layout (KIP-98, <https://kafka.apache.org/documentation/#recordbatch>):
//! ```text
//! baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
//! attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
//! producerId i64 | producerEpoch i16 | baseSequence i32 | recordsCount i32 | records...
//! ```
//! The CRC32C covers everything from `attributes` to the end of the batch.

use bytes::Bytes;

use super::records::DecodedRecords;
use crate::compression::{Compression, Decompressor};
use crate::error::{Error, Result};

/// Byte offsets of the header fields.
pub(crate) mod field {
    pub(crate) const BASE_OFFSET: usize = 0;
    pub(crate) const BATCH_LENGTH: usize = 8;
    pub(crate) const PARTITION_LEADER_EPOCH: usize = 12;
    pub(crate) const MAGIC: usize = 16;
    pub(crate) const CRC: usize = 17;
    pub(crate) const ATTRIBUTES: usize = 21;
    pub(crate) const LAST_OFFSET_DELTA: usize = 23;
    pub(crate) const BASE_TIMESTAMP: usize = 27;
    pub(crate) const MAX_TIMESTAMP: usize = 35;
    pub(crate) const PRODUCER_ID: usize = 43;
    pub(crate) const PRODUCER_EPOCH: usize = 51;
    pub(crate) const BASE_SEQUENCE: usize = 53;
    pub(crate) const RECORDS_COUNT: usize = 57;
    pub(crate) const RECORDS: usize = 61;
}

/// Size of the fixed batch header.
pub const BATCH_HEADER_LEN: usize = field::RECORDS;
/// Bytes before `batchLength`'s count starts (baseOffset and batchLength itself).
pub const LOG_OVERHEAD: usize = 12;
/// The smallest possible encoded record: seven one-byte varints and fields.
pub(crate) const MIN_RECORD_LEN: usize = 7;

/// How a batch's timestamps were assigned (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// Set by the producer.
    #[default]
    CreateTime,
    /// Set by the broker when it appended the batch; every record carries `maxTimestamp`.
    LogAppendTime,
}

/// The batch attributes field, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attributes(pub i16);

impl Attributes {
    const COMPRESSION_MASK: i16 = 0x07;
    const TIMESTAMP_TYPE: i16 = 0x08;
    const TRANSACTIONAL: i16 = 0x10;
    const CONTROL: i16 = 0x20;
    const DELETE_HORIZON: i16 = 0x40;

    /// Builds the field from its parts.
    pub fn new(
        compression: Compression,
        timestamp_type: TimestampType,
        transactional: bool,
        control: bool,
    ) -> Self {
        let mut bits = i16::from(compression.id());
        if timestamp_type == TimestampType::LogAppendTime {
            bits |= Self::TIMESTAMP_TYPE;
        }
        if transactional {
            bits |= Self::TRANSACTIONAL;
        }
        if control {
            bits |= Self::CONTROL;
        }
        Attributes(bits)
    }

    /// The codec id in bits 0-2 (may name no codec in a corrupt batch).
    pub fn compression_id(self) -> u8 {
        (self.0 & Self::COMPRESSION_MASK) as u8
    }

    /// Whether timestamps are log-append times.
    pub fn timestamp_type(self) -> TimestampType {
        if self.0 & Self::TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(self) -> bool {
        self.0 & Self::TRANSACTIONAL != 0
    }

    /// Whether the batch holds control records (transaction markers).
    pub fn is_control(self) -> bool {
        self.0 & Self::CONTROL != 0
    }

    /// Whether `baseTimestamp` holds a delete horizon (KIP-534, set by log compaction).
    pub fn has_delete_horizon(self) -> bool {
        self.0 & Self::DELETE_HORIZON != 0
    }
}

/// A view of one record batch: the header is read in place, records lazily.
#[derive(Debug, Clone)]
pub struct RecordBatch {
    /// The whole batch, from `baseOffset` to its last byte.
    bytes: Bytes,
    /// Where the batch starts in the input it was read from, for error offsets.
    position: usize,
}

macro_rules! be {
    ($self:ident, $ty:ty, $at:expr) => {{
        const N: usize = std::mem::size_of::<$ty>();
        let mut a = [0u8; N];
        // The constructor checked that the whole header is present.
        a.copy_from_slice(&$self.bytes[$at..$at + N]);
        <$ty>::from_be_bytes(a)
    }};
}

impl RecordBatch {
    /// Reads the batch at the start of `input`, which may hold more after it. Returns the batch
    /// and the number of bytes it takes. `position` is where `input` starts in the caller's
    /// coordinates; errors report offsets from there.
    ///
    /// Checks the magic, the length fields and the codec id; it does not check the CRC (see
    /// [`RecordBatch::verify_crc`]) or the records.
    pub fn read(input: &Bytes, position: usize) -> Result<(RecordBatch, usize)> {
        let truncated = |field, at: usize, needed| Error::Truncated {
            field,
            offset: position + at,
            needed,
            available: input.len().saturating_sub(at),
        };
        if input.len() < field::MAGIC + 1 {
            return Err(truncated("batch header", 0, field::MAGIC + 1));
        }
        let magic = input[field::MAGIC] as i8;
        if magic != 2 {
            return Err(Error::UnsupportedMagic {
                magic,
                offset: position,
            });
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&input[field::BATCH_LENGTH..field::BATCH_LENGTH + 4]);
        let batch_length = i32::from_be_bytes(len);
        let min = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
        if batch_length < min {
            return Err(Error::Invalid {
                field: "batchLength",
                offset: position + field::BATCH_LENGTH,
                reason: format!("{batch_length} is below the header size {min}"),
            });
        }
        let total = LOG_OVERHEAD + batch_length as usize;
        if input.len() < total {
            return Err(truncated("record batch", 0, total));
        }
        let batch = RecordBatch {
            bytes: input.slice(..total),
            position,
        };
        let codec = batch.attributes().compression_id();
        if Compression::from_id(codec).is_none() {
            return Err(Error::UnknownCompression {
                codec,
                offset: position + field::ATTRIBUTES,
            });
        }
        let count = batch.records_count();
        if count < 0 {
            return Err(Error::Invalid {
                field: "recordsCount",
                offset: position + field::RECORDS_COUNT,
                reason: format!("negative count {count}"),
            });
        }
        Ok((batch, total))
    }

    /// Reads a buffer that holds exactly one batch.
    pub fn from_bytes(bytes: Bytes) -> Result<RecordBatch> {
        let (batch, len) = RecordBatch::read(&bytes, 0)?;
        if len != bytes.len() {
            return Err(Error::Invalid {
                field: "batchLength",
                offset: field::BATCH_LENGTH,
                reason: format!("batch takes {len} bytes but {} were given", bytes.len()),
            });
        }
        Ok(batch)
    }

    /// The encoded batch, header included.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Where the batch starts in the input it was read from.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> i64 {
        be!(self, i64, field::BASE_OFFSET)
    }

    /// Offset of the last record (`baseOffset + lastOffsetDelta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .wrapping_add(i64::from(self.last_offset_delta()))
    }

    /// The `batchLength` field: bytes after it.
    pub fn batch_length(&self) -> i32 {
        be!(self, i32, field::BATCH_LENGTH)
    }

    /// The partition leader epoch the broker stamped.
    pub fn partition_leader_epoch(&self) -> i32 {
        be!(self, i32, field::PARTITION_LEADER_EPOCH)
    }

    /// The stored CRC32C.
    pub fn crc(&self) -> u32 {
        be!(self, u32, field::CRC)
    }

    /// The attributes field.
    pub fn attributes(&self) -> Attributes {
        Attributes(be!(self, i16, field::ATTRIBUTES))
    }

    /// The codec of the records section.
    pub fn compression(&self) -> Compression {
        // `read` rejected ids with no codec.
        Compression::from_id(self.attributes().compression_id()).unwrap_or_default()
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes().is_transactional()
    }

    /// Whether the batch holds control records.
    pub fn is_control(&self) -> bool {
        self.attributes().is_control()
    }

    /// Offset delta of the last record.
    pub fn last_offset_delta(&self) -> i32 {
        be!(self, i32, field::LAST_OFFSET_DELTA)
    }

    /// Timestamp of the first record (or the delete horizon, see [`Attributes`]).
    pub fn base_timestamp(&self) -> i64 {
        be!(self, i64, field::BASE_TIMESTAMP)
    }

    /// The largest timestamp in the batch.
    pub fn max_timestamp(&self) -> i64 {
        be!(self, i64, field::MAX_TIMESTAMP)
    }

    /// Producer id, or -1.
    pub fn producer_id(&self) -> i64 {
        be!(self, i64, field::PRODUCER_ID)
    }

    /// Producer epoch, or -1.
    pub fn producer_epoch(&self) -> i16 {
        be!(self, i16, field::PRODUCER_EPOCH)
    }

    /// Sequence number of the first record, or -1.
    pub fn base_sequence(&self) -> i32 {
        be!(self, i32, field::BASE_SEQUENCE)
    }

    /// Number of records the header claims (checked against the bytes while iterating).
    pub fn records_count(&self) -> i32 {
        be!(self, i32, field::RECORDS_COUNT)
    }

    /// The CRC32C of the bytes the `crc` field covers.
    pub fn computed_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[field::ATTRIBUTES..])
    }

    /// Checks the stored CRC32C against the batch's bytes.
    pub fn verify_crc(&self) -> Result<()> {
        let (stored, computed) = (self.crc(), self.computed_crc());
        if stored == computed {
            Ok(())
        } else {
            Err(Error::CrcMismatch {
                offset: self.position,
                stored,
                computed,
            })
        }
    }

    /// The records section as stored (compressed if the batch is).
    pub fn records_section(&self) -> Bytes {
        self.bytes.slice(field::RECORDS..)
    }

    /// The records, decompressed with `decompressor` if needed; an uncompressed batch is not
    /// copied. Iterate them with [`DecodedRecords::iter`].
    pub fn decode(&self, decompressor: &mut Decompressor) -> Result<DecodedRecords> {
        match self.compression() {
            Compression::None => self.uncompressed_records(),
            codec => {
                let data = decompressor.decompress(codec, &self.bytes[field::RECORDS..])?;
                // Offsets inside decompressed data have no place in the input: errors there
                // name the batch instead.
                DecodedRecords::new(self, data, 0, true)
            }
        }
    }

    /// Like [`RecordBatch::decode`], with a fresh decompressor for compressed batches. Prefer
    /// `decode` with a long-lived [`Decompressor`] when reading many compressed batches.
    pub fn records(&self) -> Result<DecodedRecords> {
        match self.compression() {
            Compression::None => self.uncompressed_records(),
            _ => self.decode(&mut Decompressor::new()),
        }
    }

    fn uncompressed_records(&self) -> Result<DecodedRecords> {
        DecodedRecords::new(
            self,
            self.records_section(),
            self.position + field::RECORDS,
            false,
        )
    }
}

/// Iterates the batches of a buffer that holds them back to back, such as a Kafka `.log`
/// segment file or the records field of a fetch response.
///
/// After an error it stops: the position of the damage is in the error.
#[derive(Debug, Clone)]
pub struct RecordBatches {
    input: Bytes,
    pos: usize,
    failed: bool,
}

impl RecordBatches {
    /// Batches of `input`, whose first byte is a batch header.
    pub fn new(input: Bytes) -> Self {
        RecordBatches {
            input,
            pos: 0,
            failed: false,
        }
    }

    /// Bytes consumed by the batches returned so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether the rest of the input is a batch cut short. A fetch response may end with a
    /// partial batch when the broker hit a size limit; that is not an error there.
    pub fn rest_is_partial_batch(&self) -> bool {
        let rest = &self.input[self.pos..];
        if rest.len() < LOG_OVERHEAD {
            return !rest.is_empty();
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&rest[field::BATCH_LENGTH..LOG_OVERHEAD]);
        let batch_length = i32::from_be_bytes(len);
        batch_length >= 0 && rest.len() < LOG_OVERHEAD + batch_length as usize
    }
}

impl Iterator for RecordBatches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.input.len() {
            return None;
        }
        let rest = self.input.slice(self.pos..);
        match RecordBatch::read(&rest, self.pos) {
            Ok((batch, len)) => {
                self.pos += len;
                Some(Ok(batch))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
