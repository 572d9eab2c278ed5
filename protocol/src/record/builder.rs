//! `BatchBuilder`: encodes records straight into a `BytesMut` as a magic-2 batch.
//!
//! An uncompressed batch is written in place behind a reserved header, so finishing it only
//! fills the header and the CRC. A compressed batch writes its records into a scratch buffer,
//! then compresses them once behind the header. Field rules follow the Java client's
//! `MemoryRecordsBuilder`: `baseTimestamp` is the first record's timestamp, offset deltas count
//! from zero, and an empty batch has timestamps of -1.

use bytes::{BufMut, Bytes, BytesMut};

use super::batch::{field, Attributes, TimestampType, BATCH_HEADER_LEN, LOG_OVERHEAD};
use super::control::ControlRecord;
use super::wire::{put_varint, varint_len};
use crate::compression::{Compression, Compressor};
use crate::error::{Error, Result};

/// The header fields a producer chooses; the rest are derived from the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (0 from a producer; the broker assigns real offsets).
    pub base_offset: i64,
    /// Leader epoch (-1 from a producer).
    pub partition_leader_epoch: i32,
    /// Producer id for idempotence/transactions, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Whether the batch belongs to a transaction.
    pub transactional: bool,
    /// Whether the batch holds control records.
    pub control: bool,
    /// Codec of the records section.
    pub compression: Compression,
    /// How timestamps were assigned.
    pub timestamp_type: TimestampType,
}

impl Default for BatchHeader {
    fn default() -> Self {
        BatchHeader {
            base_offset: 0,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            control: false,
            compression: Compression::None,
            timestamp_type: TimestampType::CreateTime,
        }
    }
}

/// Builds one record batch.
#[derive(Debug)]
pub struct BatchBuilder {
    header: BatchHeader,
    /// Uncompressed: the whole batch, header reserved. Compressed: the records only.
    buf: BytesMut,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl BatchBuilder {
    /// A builder for a batch with `header`.
    pub fn new(header: BatchHeader) -> Self {
        Self::with_capacity(header, 0)
    }

    /// A builder that reserves `capacity` bytes of records up front.
    pub fn with_capacity(header: BatchHeader, capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(capacity + BATCH_HEADER_LEN);
        if header.compression == Compression::None {
            buf.put_bytes(0, BATCH_HEADER_LEN);
        }
        BatchBuilder {
            header,
            buf,
            count: 0,
            base_timestamp: -1,
            max_timestamp: -1,
        }
    }

    /// Number of records added.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The batch size so far before compression, header included: what `batch.size` limits.
    pub fn uncompressed_len(&self) -> usize {
        match self.header.compression {
            Compression::None => self.buf.len(),
            _ => self.buf.len() + BATCH_HEADER_LEN,
        }
    }

    /// Bytes `push` would add for a record with these fields.
    pub fn record_len<H, K, V>(
        &self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: H,
    ) -> usize
    where
        H: IntoIterator<Item = (K, Option<V>)>,
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let (body, _) = self.body_len(timestamp, key, value, headers);
        varint_len(body as i64) + body
    }

    /// The length of a record's body (after its length prefix) and its header count.
    fn body_len<H, K, V>(
        &self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: H,
    ) -> (usize, i64)
    where
        H: IntoIterator<Item = (K, Option<V>)>,
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let base = if self.count == 0 {
            timestamp
        } else {
            self.base_timestamp
        };
        let bytes_len = |b: Option<&[u8]>| match b {
            Some(b) => varint_len(b.len() as i64) + b.len(),
            None => 1,
        };
        let mut count = 0i64;
        let mut headers_len = 0;
        for (k, v) in headers {
            count += 1;
            headers_len += bytes_len(Some(k.as_ref())) + bytes_len(v.as_ref().map(AsRef::as_ref));
        }
        let body = 1
            + varint_len(timestamp.wrapping_sub(base))
            + varint_len(i64::from(self.count))
            + bytes_len(key)
            + bytes_len(value)
            + varint_len(count)
            + headers_len;
        (body, count)
    }

    /// Appends a record. Headers are `(key, value)` pairs; a `None` value is a null header
    /// value. Fails only if the batch would outgrow Kafka's i32 length fields.
    pub fn push<H, K, V>(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: H,
    ) -> Result<()>
    where
        H: IntoIterator<Item = (K, Option<V>)> + Clone,
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let (body, header_count) = self.body_len(timestamp, key, value, headers.clone());
        let record_len = varint_len(body as i64) + body;
        if self.buf.len().saturating_add(record_len) > i32::MAX as usize - BATCH_HEADER_LEN {
            return Err(Error::TooLarge {
                what: "record batch",
                size: self.buf.len() + record_len,
            });
        }
        if self.count == i32::MAX {
            return Err(Error::TooLarge {
                what: "record count",
                size: self.count as usize,
            });
        }
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
        let out = &mut self.buf;
        out.reserve(record_len);
        put_varint(out, body as i64);
        out.put_i8(0);
        put_varint(out, timestamp.wrapping_sub(self.base_timestamp));
        put_varint(out, i64::from(self.count));
        put_nullable(out, key);
        put_nullable(out, value);
        put_varint(out, header_count);
        for (k, v) in headers {
            put_nullable(out, Some(k.as_ref()));
            put_nullable(out, v.as_ref().map(AsRef::as_ref));
        }
        self.count += 1;
        Ok(())
    }

    /// Appends a control record (a transaction marker) to a control batch.
    pub fn push_control(&mut self, timestamp: i64, control: &ControlRecord) -> Result<()> {
        let key = control.key();
        let value = control.value();
        self.push(
            timestamp,
            Some(&key),
            Some(&value),
            std::iter::empty::<(&[u8], Option<&[u8]>)>(),
        )
    }

    /// Finishes the batch: compresses the records if asked, fills the header and the CRC.
    pub fn finish(self, compressor: &mut Compressor) -> Result<Bytes> {
        let BatchBuilder {
            header,
            buf,
            count,
            base_timestamp,
            max_timestamp,
        } = self;
        let mut out = match header.compression {
            Compression::None => buf,
            codec => {
                let mut out = BytesMut::with_capacity(BATCH_HEADER_LEN + buf.len() / 2);
                out.put_bytes(0, BATCH_HEADER_LEN);
                compressor.compress(codec, &buf, &mut out)?;
                out
            }
        };
        let batch_length =
            i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| Error::TooLarge {
                what: "record batch",
                size: out.len(),
            })?;
        let attributes = Attributes::new(
            header.compression,
            header.timestamp_type,
            header.transactional,
            header.control,
        );
        let h = &mut out[..BATCH_HEADER_LEN];
        h[field::BASE_OFFSET..][..8].copy_from_slice(&header.base_offset.to_be_bytes());
        h[field::BATCH_LENGTH..][..4].copy_from_slice(&batch_length.to_be_bytes());
        h[field::PARTITION_LEADER_EPOCH..][..4]
            .copy_from_slice(&header.partition_leader_epoch.to_be_bytes());
        h[field::MAGIC] = 2;
        h[field::ATTRIBUTES..][..2].copy_from_slice(&attributes.0.to_be_bytes());
        h[field::LAST_OFFSET_DELTA..][..4].copy_from_slice(&(count - 1).max(0).to_be_bytes());
        h[field::BASE_TIMESTAMP..][..8].copy_from_slice(&base_timestamp.to_be_bytes());
        h[field::MAX_TIMESTAMP..][..8].copy_from_slice(&max_timestamp.to_be_bytes());
        h[field::PRODUCER_ID..][..8].copy_from_slice(&header.producer_id.to_be_bytes());
        h[field::PRODUCER_EPOCH..][..2].copy_from_slice(&header.producer_epoch.to_be_bytes());
        h[field::BASE_SEQUENCE..][..4].copy_from_slice(&header.base_sequence.to_be_bytes());
        h[field::RECORDS_COUNT..][..4].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&out[field::ATTRIBUTES..]);
        out[field::CRC..][..4].copy_from_slice(&crc.to_be_bytes());
        Ok(out.freeze())
    }
}

#[inline]
fn put_nullable(out: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.put_slice(b);
        }
        None => put_varint(out, -1),
    }
}
