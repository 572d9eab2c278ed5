//! `BatchBuilder`: encodes records straight into a `BytesMut` as a magic-2 batch.
//!
//! Records are written behind a reserved header. Finishing is two steps, so a producer can do
//! the costly one anywhere and the cheap one late: [`BatchBuilder::seal`] makes the records
//! final (compressing them once, into a buffer the caller may supply), and
//! [`SealedBatch::finish`] fills the header and the CRC, with the producer id, epoch and base
//! sequence set last ([`SealedBatch::set_producer`]): an idempotent producer only knows the
//! sequence when the batch is sent, and the CRC is computed once. [`BatchBuilder::finish`]
//! does both.
//!
//! A record's framing (length, attributes, deltas, key length) is put together on the stack
//! and copied in at once, next to its key and value: writing it a byte at a time through
//! `BufMut` made encoding the largest cost of a producer's `send` after copying the value.
//!
//! Field rules follow the Java client's `MemoryRecordsBuilder`: `baseTimestamp` is the first
//! record's timestamp, offset deltas count from zero, and an empty batch has timestamps of -1.

use bytes::{BufMut, Bytes, BytesMut};

use super::batch::{field, Attributes, TimestampType, BATCH_HEADER_LEN, LOG_OVERHEAD};
use super::control::ControlRecord;
use super::wire::varint_len;
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

/// Room for one varint at its widest.
const VARINT: usize = 10;
/// A record's framing before its key bytes: length, attributes, timestamp delta, offset delta
/// and key length.
const PREFIX: usize = 4 * VARINT + 1;

/// Builds one record batch.
#[derive(Debug)]
pub struct BatchBuilder {
    header: BatchHeader,
    /// The header's room, then the records (uncompressed).
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
        Self::with_buffer(header, BytesMut::with_capacity(capacity + BATCH_HEADER_LEN))
    }

    /// A builder writing into `buf` (emptied first), so a caller can reuse buffers.
    pub fn with_buffer(header: BatchHeader, mut buf: BytesMut) -> Self {
        buf.clear();
        buf.put_bytes(0, BATCH_HEADER_LEN);
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
        self.buf.len()
    }

    /// Whether [`seal`](Self::seal) has compressing to do.
    pub fn is_compressed(&self) -> bool {
        self.header.compression != Compression::None
    }

    /// The buffer, for reuse (the records are dropped).
    pub fn into_buffer(self) -> BytesMut {
        self.buf
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
        let mut count = 0i64;
        let mut headers_len = 0;
        for (k, v) in headers {
            count += 1;
            headers_len +=
                nullable_len(Some(k.as_ref())) + nullable_len(v.as_ref().map(AsRef::as_ref));
        }
        let body = 1
            + varint_len(timestamp.wrapping_sub(self.base_for(timestamp)))
            + varint_len(i64::from(self.count))
            + nullable_len(key)
            + nullable_len(value)
            + varint_len(count)
            + headers_len;
        (body, count)
    }

    /// The base timestamp a record with `timestamp` is written against.
    fn base_for(&self, timestamp: i64) -> i64 {
        if self.count == 0 {
            timestamp
        } else {
            self.base_timestamp
        }
    }

    /// Appends a record. Headers are `(key, value)` pairs; a `None` value is a null header
    /// value. Fails only if the batch would outgrow Kafka's i32 length fields; the batch is
    /// unchanged then.
    #[inline]
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
                size: self.buf.len().saturating_add(record_len),
            });
        }
        if self.count == i32::MAX {
            return Err(Error::TooLarge {
                what: "record count",
                size: self.count as usize,
            });
        }
        let timestamp_delta = timestamp.wrapping_sub(self.base_for(timestamp));
        let out = &mut self.buf;
        out.reserve(record_len);
        let mut prefix = Scratch::<PREFIX>::new();
        prefix.varint(body as i64);
        prefix.byte(0);
        prefix.varint(timestamp_delta);
        prefix.varint(i64::from(self.count));
        prefix.len_of(key);
        out.extend_from_slice(prefix.bytes());
        if let Some(key) = key {
            out.extend_from_slice(key);
        }
        let mut middle = Scratch::<{ 2 * VARINT }>::new();
        middle.len_of(value);
        if value.is_none() {
            middle.varint(header_count);
        }
        out.extend_from_slice(middle.bytes());
        if let Some(value) = value {
            out.extend_from_slice(value);
            let mut count = Scratch::<VARINT>::new();
            count.varint(header_count);
            out.extend_from_slice(count.bytes());
        }
        for (k, v) in headers {
            let (k, v) = (k.as_ref(), v.as_ref().map(AsRef::as_ref));
            let mut len = Scratch::<VARINT>::new();
            len.len_of(Some(k));
            out.extend_from_slice(len.bytes());
            out.extend_from_slice(k);
            let mut len = Scratch::<VARINT>::new();
            len.len_of(v);
            out.extend_from_slice(len.bytes());
            if let Some(v) = v {
                out.extend_from_slice(v);
            }
        }
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
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

    /// Makes the records final: compressed, if the header asks for a codec, into the buffer
    /// `output(capacity)` returns (then the records' own buffer is handed back for reuse).
    /// The costly half of finishing a batch, and it needs nothing but the batch: it can run
    /// on any thread.
    pub fn seal(
        self,
        compressor: &mut Compressor,
        output: impl FnOnce(usize) -> BytesMut,
    ) -> Result<(SealedBatch, Option<BytesMut>)> {
        let BatchBuilder {
            header,
            buf,
            count,
            base_timestamp,
            max_timestamp,
        } = self;
        let (buf, spent) = match header.compression {
            Compression::None => (buf, None),
            codec => {
                let records = &buf[BATCH_HEADER_LEN..];
                // Room for what no codec exceeds on these sizes, so the output never grows.
                let mut out = output(BATCH_HEADER_LEN + records.len() + records.len() / 64 + 1024);
                out.clear();
                out.put_bytes(0, BATCH_HEADER_LEN);
                compressor.compress(codec, records, &mut out)?;
                (out, Some(buf))
            }
        };
        let sealed = SealedBatch {
            header,
            buf,
            count,
            base_timestamp,
            max_timestamp,
        };
        Ok((sealed, spent))
    }

    /// Finishes the batch: [`seal`](Self::seal), then [`SealedBatch::finish`].
    pub fn finish(self, compressor: &mut Compressor) -> Result<Bytes> {
        let (sealed, _) = self.seal(compressor, BytesMut::with_capacity)?;
        sealed.finish()
    }
}

/// A batch whose records are final (compressed if asked); only its header is left to write.
#[derive(Debug)]
pub struct SealedBatch {
    header: BatchHeader,
    /// The header's room, then the records.
    buf: BytesMut,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl SealedBatch {
    /// Sets the producer fields the header will carry (an idempotent or transactional
    /// producer knows them only when it sends the batch).
    pub fn set_producer(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
        transactional: bool,
    ) {
        self.header.producer_id = producer_id;
        self.header.producer_epoch = producer_epoch;
        self.header.base_sequence = base_sequence;
        self.header.transactional = transactional;
    }

    /// The buffer, for reuse (the batch is dropped).
    pub fn into_buffer(self) -> BytesMut {
        self.buf
    }

    /// The finished batch: the header filled in and its CRC.
    pub fn finish(self) -> Result<Bytes> {
        let SealedBatch {
            header,
            buf: mut out,
            count,
            base_timestamp,
            max_timestamp,
        } = self;
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
        h[field::RECORDS_COUNT..][..4].copy_from_slice(&count.to_be_bytes());
        set_producer_fields(
            out,
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
        )
    }
}

/// Rewrites an encoded batch's producer id, epoch and base sequence, and its CRC (a batch
/// re-sent under a new producer identity). The buffer is not copied unless it is shared.
pub fn restamp(
    batch: Bytes,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Result<Bytes> {
    if batch.len() < BATCH_HEADER_LEN {
        return Err(Error::Truncated {
            field: "record batch header",
            offset: 0,
            needed: BATCH_HEADER_LEN,
            available: batch.len(),
        });
    }
    let buf = batch
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    set_producer_fields(buf, producer_id, producer_epoch, base_sequence)
}

/// Writes the producer fields into a whole batch's header, then its CRC.
fn set_producer_fields(
    mut buf: BytesMut,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Result<Bytes> {
    buf[field::PRODUCER_ID..][..8].copy_from_slice(&producer_id.to_be_bytes());
    buf[field::PRODUCER_EPOCH..][..2].copy_from_slice(&producer_epoch.to_be_bytes());
    buf[field::BASE_SEQUENCE..][..4].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&buf[field::ATTRIBUTES..]);
    buf[field::CRC..][..4].copy_from_slice(&crc.to_be_bytes());
    Ok(buf.freeze())
}

/// Bytes of nullable bytes with their length.
fn nullable_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        Some(b) => varint_len(b.len() as i64) + b.len(),
        None => 1,
    }
}

/// A record's framing, put together on the stack and copied into the batch at once.
struct Scratch<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Scratch<N> {
    fn new() -> Self {
        Scratch {
            bytes: [0; N],
            len: 0,
        }
    }

    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    /// A zigzag varint. Each caller sizes `N` for the widest varints it writes.
    fn varint(&mut self, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            self.byte((z as u8) | 0x80);
            z >>= 7;
        }
        self.byte(z as u8);
    }

    /// The length of nullable bytes (-1 for null).
    fn len_of(&mut self, bytes: Option<&[u8]>) {
        self.varint(bytes.map_or(-1, |b| b.len() as i64));
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::record::wire::put_varint;
    use bytes::BufMut;

    #[test]
    fn scratch_varints_match_the_wire_encoder() {
        for v in [
            0i64,
            -1,
            63,
            64,
            -65,
            i64::from(i32::MAX),
            i64::MAX,
            i64::MIN,
        ] {
            let mut s = Scratch::<VARINT>::new();
            s.varint(v);
            let mut wire = BytesMut::new();
            put_varint(&mut wire, v);
            assert_eq!(s.bytes(), &wire[..], "{v}");
            assert_eq!(s.bytes().len(), varint_len(v), "{v}");
        }
    }

    /// The records section as a byte-at-a-time encoder writes it (the format's definition).
    fn reference(records: &[Rec]) -> Vec<u8> {
        let mut out = BytesMut::new();
        let base = records.first().map_or(0, |r| r.0);
        let nullable = |out: &mut BytesMut, b: Option<&[u8]>| match b {
            Some(b) => {
                put_varint(out, b.len() as i64);
                out.extend_from_slice(b);
            }
            None => put_varint(out, -1),
        };
        for (i, (ts, key, value, headers)) in records.iter().enumerate() {
            let mut body = BytesMut::new();
            body.put_u8(0);
            put_varint(&mut body, ts.wrapping_sub(base));
            put_varint(&mut body, i as i64);
            nullable(&mut body, key.as_deref());
            nullable(&mut body, value.as_deref());
            put_varint(&mut body, headers.len() as i64);
            for (k, v) in headers {
                nullable(&mut body, Some(k));
                nullable(&mut body, v.as_deref());
            }
            put_varint(&mut out, body.len() as i64);
            out.extend_from_slice(&body);
        }
        out.to_vec()
    }

    type Rec = (
        i64,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Vec<(Vec<u8>, Option<Vec<u8>>)>,
    );

    #[test]
    fn records_are_encoded_as_the_format_defines() {
        let records: Vec<Rec> = vec![
            (1_700_000_000_000, None, None, vec![]),
            (
                1_700_000_000_005,
                Some(b"k".to_vec()),
                Some(vec![7; 300]),
                vec![],
            ),
            (
                1_699_999_999_000,
                None,
                Some(vec![]),
                vec![(b"a".to_vec(), Some(b"b".to_vec())), (b"n".to_vec(), None)],
            ),
            (
                i64::MAX,
                Some(vec![1; 200]),
                None,
                vec![(b"h".to_vec(), Some(vec![2; 150]))],
            ),
            (i64::MIN, Some(vec![]), Some(vec![3; 70_000]), vec![]),
        ];
        let mut b = BatchBuilder::new(BatchHeader::default());
        for (ts, key, value, headers) in &records {
            let hs = headers.iter().map(|(k, v)| (k.as_slice(), v.as_deref()));
            let before = b.uncompressed_len();
            let expected = b.record_len(*ts, key.as_deref(), value.as_deref(), hs.clone());
            b.push(*ts, key.as_deref(), value.as_deref(), hs).unwrap();
            assert_eq!(b.uncompressed_len() - before, expected);
        }
        assert_eq!(&b.buf[BATCH_HEADER_LEN..], &reference(&records)[..]);
    }

    #[test]
    fn restamp_rewrites_the_producer_fields_and_the_crc() {
        let mut b = BatchBuilder::new(BatchHeader::default());
        b.push(
            5,
            Some(b"k".as_slice()),
            Some(b"v".as_slice()),
            Vec::<(&[u8], Option<&[u8]>)>::new(),
        )
        .unwrap();
        let batch = b.finish(&mut Compressor::new()).unwrap();
        let again = restamp(batch, 42, 3, 7).unwrap();
        let parsed = crate::record::RecordBatch::from_bytes(again).unwrap();
        parsed.verify_crc().unwrap();
        assert_eq!(
            (
                parsed.producer_id(),
                parsed.producer_epoch(),
                parsed.base_sequence()
            ),
            (42, 3, 7)
        );
        assert!(restamp(Bytes::from_static(b"short"), 1, 1, 1).is_err());
    }
}
