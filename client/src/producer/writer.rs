//! The producer's batch writer: records encoded straight into one buffer behind a reserved
//! header, and the header written once, when the batch is first sent, with the producer id
//! and sequence it goes out with.
//!
//! Why not [`BatchBuilder`](sluice_protocol::record::BatchBuilder), which writes the same
//! format: it writes a varint a byte at a time (a `BytesMut::put_u8`, so a bounds check and a
//! copy call per byte), which made encoding the largest cost of `send` after the copy of the
//! value itself, and its header is fixed when the batch is opened, before the sequence is
//! known, so every idempotent batch was checksummed twice (once with producer id -1, again
//! after the restamp). Here a record's framing is put together on the stack and copied in
//! once, next to its key and value. The output is byte for byte BatchBuilder's (tested).
//!
//! Format: KIP-98 record batch v2, <https://kafka.apache.org/documentation/#recordbatch>. Field
//! rules follow the Java client's `MemoryRecordsBuilder`: the base timestamp is the first
//! record's, offset deltas count from zero.

use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::{BufMut, Bytes, BytesMut};
use sluice_protocol::record::{
    Attributes, RecordBatch, TimestampType, BATCH_HEADER_LEN, LOG_OVERHEAD,
};
use sluice_protocol::{Compression, Compressor};

use super::idempotence::Stamp;
use super::record::ProducerRecord;
use crate::error::{Error, Result};

/// Header field offsets of the v2 batch format.
pub(crate) mod field {
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
}

/// Room for one varint at its widest.
const VARINT: usize = 10;
/// A record's framing before its key bytes: length, attributes, timestamp delta, offset delta
/// and key length.
const PREFIX: usize = 4 * VARINT + 1;

/// Batch buffers kept for reuse.
///
/// Why: a batch buffer is large (up to `batch.size`, 1 MB in the benchmark), lives a few
/// milliseconds and is then freed; allocating each anew cost a page fault per 4 KiB touched
/// and, grown from a smaller first guess, a copy per doubling. A few are kept instead: a
/// batch's buffer comes back when the batch completes (and a compressed batch's record
/// buffer as soon as it is compressed).
///
/// Buffers are kept in two stacks. Record buffers given back right after compression were
/// just read, so they are still in the caches: the next batch's records are written into one
/// of those first (writing records into buffers out of the caches showed up as stalls in
/// `send`). Buffers of completed batches were last touched when sent and are colder; they are
/// what compressed output goes into first. Each stack is last in, first out.
#[derive(Debug)]
pub(crate) struct BufferPool {
    free: Mutex<Stacks>,
    /// Buffers kept at most.
    keep: usize,
    /// Larger buffers (a batch of one huge record) are not kept.
    max_capacity: usize,
}

#[derive(Debug, Default)]
struct Stacks {
    /// Given back right after their records were read.
    warm: Vec<BytesMut>,
    /// Given back when their batch completed.
    cold: Vec<BytesMut>,
}

impl BufferPool {
    /// A pool keeping `keep` buffers of at most `max_capacity` bytes.
    pub(crate) fn new(keep: usize, max_capacity: usize) -> Self {
        BufferPool {
            free: Mutex::new(Stacks::default()),
            keep,
            max_capacity,
        }
    }

    /// An empty buffer with room for `capacity` bytes, to write records into.
    pub(crate) fn take(&self, capacity: usize) -> BytesMut {
        let reused = {
            let mut free = self.lock();
            free.warm.pop().or_else(|| free.cold.pop())
        };
        Self::ready(reused, capacity)
    }

    /// An empty buffer with room for `capacity` bytes, for compressed output.
    fn take_cold(&self, capacity: usize) -> BytesMut {
        let reused = {
            let mut free = self.lock();
            free.cold.pop().or_else(|| free.warm.pop())
        };
        Self::ready(reused, capacity)
    }

    fn ready(reused: Option<BytesMut>, capacity: usize) -> BytesMut {
        match reused {
            Some(mut buf) => {
                buf.reserve(capacity);
                buf
            }
            None => BytesMut::with_capacity(capacity),
        }
    }

    /// Keeps `buf`, whose contents were just read, for a later batch if there is room.
    pub(crate) fn give(&self, buf: BytesMut) {
        self.keep_buffer(buf, true);
    }

    /// Keeps the buffer of a batch that ended, if there is room.
    pub(crate) fn give_cold(&self, buf: BytesMut) {
        self.keep_buffer(buf, false);
    }

    /// Keeps the buffer behind `bytes` (a completed batch) if nothing else refers to it.
    pub(crate) fn give_bytes(&self, bytes: Bytes) {
        if let Ok(buf) = bytes.try_into_mut() {
            self.keep_buffer(buf, false);
        }
    }

    fn keep_buffer(&self, mut buf: BytesMut, warm: bool) {
        if buf.capacity() > self.max_capacity {
            return;
        }
        buf.clear();
        let mut free = self.lock();
        if free.warm.len() + free.cold.len() < self.keep {
            if warm {
                free.warm.push(buf);
            } else {
                free.cold.push(buf);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Stacks> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One batch being written.
#[derive(Debug)]
pub(crate) struct BatchWriter {
    compression: Compression,
    /// The header's room, then the records.
    buf: BytesMut,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl BatchWriter {
    #[cfg(test)]
    /// An empty batch with room for `capacity` bytes of records.
    pub(crate) fn new(compression: Compression, capacity: usize) -> Self {
        Self::with_buffer(
            compression,
            BytesMut::with_capacity(BATCH_HEADER_LEN + capacity),
        )
    }

    /// An empty batch written into `buf` (emptied first).
    pub(crate) fn with_buffer(compression: Compression, mut buf: BytesMut) -> Self {
        buf.clear();
        buf.put_bytes(0, BATCH_HEADER_LEN);
        BatchWriter {
            compression,
            buf,
            count: 0,
            base_timestamp: -1,
            max_timestamp: -1,
        }
    }

    /// The buffer, for reuse.
    pub(crate) fn into_buffer(self) -> BytesMut {
        self.buf
    }

    /// The batch size so far before compression, header included: what `batch.size` limits.
    pub(crate) fn uncompressed_len(&self) -> usize {
        self.buf.len()
    }

    /// Appends `record` with `timestamp`. Fails only if the batch would outgrow Kafka's i32
    /// length fields; the batch is unchanged then.
    pub(crate) fn push(&mut self, record: &ProducerRecord, timestamp: i64) -> Result<()> {
        let base = if self.count == 0 {
            timestamp
        } else {
            self.base_timestamp
        };
        let timestamp_delta = timestamp.wrapping_sub(base);
        let offset_delta = i64::from(self.count);
        let key = record.key.as_deref();
        let value = record.value.as_deref();
        let headers_len: usize = record
            .headers
            .iter()
            .map(|(k, v)| nullable_len(Some(k.as_bytes())) + nullable_len(v.as_deref()))
            .sum();
        let header_count = record.headers.len() as i64;
        let body = 1
            + varint_len(timestamp_delta)
            + varint_len(offset_delta)
            + nullable_len(key)
            + nullable_len(value)
            + varint_len(header_count)
            + headers_len;
        let record_len = varint_len(body as i64) + body;
        if self.count == i32::MAX
            || self.buf.len().saturating_add(record_len) > i32::MAX as usize - BATCH_HEADER_LEN
        {
            return Err(Error::Protocol(sluice_protocol::Error::TooLarge {
                what: "record batch",
                size: self.buf.len().saturating_add(record_len),
            }));
        }
        self.buf.reserve(record_len);
        let mut prefix = Scratch::<PREFIX>::new();
        prefix.varint(body as i64);
        prefix.byte(0);
        prefix.varint(timestamp_delta);
        prefix.varint(offset_delta);
        prefix.len_of(key);
        self.buf.extend_from_slice(prefix.bytes());
        if let Some(key) = key {
            self.buf.extend_from_slice(key);
        }
        let mut middle = Scratch::<{ 2 * VARINT }>::new();
        middle.len_of(value);
        if value.is_none() {
            middle.varint(header_count);
        }
        self.buf.extend_from_slice(middle.bytes());
        if let Some(value) = value {
            self.buf.extend_from_slice(value);
            let mut count = Scratch::<VARINT>::new();
            count.varint(header_count);
            self.buf.extend_from_slice(count.bytes());
        }
        for (k, v) in &record.headers {
            let mut len = Scratch::<VARINT>::new();
            len.varint(k.len() as i64);
            self.buf.extend_from_slice(len.bytes());
            self.buf.extend_from_slice(k.as_bytes());
            let mut len = Scratch::<VARINT>::new();
            len.len_of(v.as_deref());
            self.buf.extend_from_slice(len.bytes());
            if let Some(v) = v {
                self.buf.extend_from_slice(v);
            }
        }
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.count += 1;
        Ok(())
    }

    /// Whether `compress` has work to do (the batch has a codec).
    pub(crate) fn is_compressed(&self) -> bool {
        self.compression != Compression::None
    }

    /// The records in their final form: compressed if asked, into a buffer from `pool` (and
    /// the records' buffer goes back). The costly half of finishing a batch, which needs
    /// nothing but the batch: it can run on any thread.
    pub(crate) fn compress(
        self,
        compressor: &mut Compressor,
        pool: &BufferPool,
    ) -> Result<SealedBatch> {
        let BatchWriter {
            compression,
            buf,
            count,
            base_timestamp,
            max_timestamp,
        } = self;
        let buf = match compression {
            Compression::None => buf,
            codec => {
                let records = &buf[BATCH_HEADER_LEN..];
                // Room for what no codec exceeds on these sizes, so the output never grows.
                let mut out =
                    pool.take_cold(BATCH_HEADER_LEN + records.len() + records.len() / 64 + 1024);
                out.put_bytes(0, BATCH_HEADER_LEN);
                let compressed = compressor.compress(codec, records, &mut out);
                pool.give(buf);
                compressed?;
                out
            }
        };
        Ok(SealedBatch {
            compression,
            buf,
            count,
            base_timestamp,
            max_timestamp,
        })
    }

    /// The finished batch: [`compress`](Self::compress), then
    /// [`SealedBatch::finish`].
    pub(crate) fn finish(
        self,
        stamp: Option<&Stamp>,
        compressor: &mut Compressor,
        pool: &BufferPool,
    ) -> Result<Bytes> {
        self.compress(compressor, pool)?.finish(stamp)
    }
}

/// A batch whose records are final (compressed if asked); only its header is left to write.
#[derive(Debug)]
pub(crate) struct SealedBatch {
    compression: Compression,
    /// The header's room, then the records.
    buf: BytesMut,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl SealedBatch {
    /// The buffer, for reuse.
    pub(crate) fn into_buffer(self) -> BytesMut {
        self.buf
    }

    /// The finished batch: the header filled in with `stamp`'s producer id, epoch and base
    /// sequence (or -1s), and its CRC.
    pub(crate) fn finish(self, stamp: Option<&Stamp>) -> Result<Bytes> {
        let SealedBatch {
            compression,
            buf: mut out,
            count,
            base_timestamp,
            max_timestamp,
        } = self;
        let batch_length = i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| {
            Error::Protocol(sluice_protocol::Error::TooLarge {
                what: "record batch",
                size: out.len(),
            })
        })?;
        let transactional = stamp.is_some_and(|s| s.transactional);
        let attributes =
            Attributes::new(compression, TimestampType::CreateTime, transactional, false);
        let (producer_id, producer_epoch, base_sequence) = stamp.map_or((-1, -1, -1), |s| {
            (s.producer.id, s.producer.epoch, s.base_sequence)
        });
        let h = &mut out[..BATCH_HEADER_LEN];
        // Base offset 0: the broker assigns offsets.
        h[field::BATCH_LENGTH..][..4].copy_from_slice(&batch_length.to_be_bytes());
        h[field::PARTITION_LEADER_EPOCH..][..4].copy_from_slice(&(-1i32).to_be_bytes());
        h[field::MAGIC] = 2;
        h[field::ATTRIBUTES..][..2].copy_from_slice(&attributes.0.to_be_bytes());
        h[field::LAST_OFFSET_DELTA..][..4].copy_from_slice(&(count - 1).max(0).to_be_bytes());
        h[field::BASE_TIMESTAMP..][..8].copy_from_slice(&base_timestamp.to_be_bytes());
        h[field::MAX_TIMESTAMP..][..8].copy_from_slice(&max_timestamp.to_be_bytes());
        h[field::PRODUCER_ID..][..8].copy_from_slice(&producer_id.to_be_bytes());
        h[field::PRODUCER_EPOCH..][..2].copy_from_slice(&producer_epoch.to_be_bytes());
        h[field::BASE_SEQUENCE..][..4].copy_from_slice(&base_sequence.to_be_bytes());
        h[field::RECORDS_COUNT..][..4].copy_from_slice(&count.to_be_bytes());
        set_crc(out.freeze())
    }
}

/// Computes and writes the batch's CRC (the buffer is not copied unless `batch` is shared).
pub(crate) fn set_crc(batch: Bytes) -> Result<Bytes> {
    let crc = RecordBatch::from_bytes(batch.clone())?.computed_crc();
    let mut buf = batch
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    buf[field::CRC..][..4].copy_from_slice(&crc.to_be_bytes());
    Ok(buf.freeze())
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

/// Bytes of a zigzag varint.
fn varint_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    // 7 bits per byte; 0 still takes one.
    (64 - (z | 1).leading_zeros() as usize).div_ceil(7)
}

/// Bytes of nullable bytes with their length.
fn nullable_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        Some(b) => varint_len(b.len() as i64) + b.len(),
        None => 1,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::producer::idempotence::{Gate, Head, ProducerIdentity, Sequencer};
    use sluice_protocol::record::{BatchBuilder, BatchHeader};

    fn records() -> Vec<(ProducerRecord, i64)> {
        vec![
            (ProducerRecord::new("t"), 1_700_000_000_000),
            (
                ProducerRecord::new("t").key("k").value(vec![7u8; 300]),
                1_700_000_000_005,
            ),
            (
                ProducerRecord::new("t")
                    .value(bytes::Bytes::new())
                    .header("a", "b")
                    .null_header("n"),
                1_699_999_999_000,
            ),
            (
                ProducerRecord::new("t")
                    .key(vec![1u8; 200])
                    .header("h", vec![2u8; 150]),
                i64::MAX,
            ),
        ]
    }

    /// Producer 42, epoch 3, sequences from 0.
    fn stamp() -> Stamp {
        let mut sequencer = Sequencer::new(true, 5);
        sequencer.set_producer(ProducerIdentity { id: 42, epoch: 3 });
        let head = Head {
            stamp: None,
            count: 4,
            possibly_written: false,
        };
        match sequencer.gate(&0, head) {
            Gate::Send(Some(stamp)) => stamp,
            _ => panic!("not stamped"),
        }
    }

    #[test]
    fn the_output_is_batch_builders_byte_for_byte() {
        for codec in [Compression::None, Compression::Lz4, Compression::Gzip] {
            for stamp in [None, Some(stamp())] {
                let mut writer = BatchWriter::new(codec, 0);
                let mut builder = BatchBuilder::new(BatchHeader {
                    compression: codec,
                    producer_id: stamp.map_or(-1, |s| s.producer.id),
                    producer_epoch: stamp.map_or(-1, |s| s.producer.epoch),
                    base_sequence: stamp.map_or(-1, |s| s.base_sequence),
                    ..BatchHeader::default()
                });
                for (record, timestamp) in records() {
                    writer.push(&record, timestamp).unwrap();
                    let headers = record
                        .headers
                        .iter()
                        .map(|(k, v)| (k.as_bytes(), v.as_deref()));
                    builder
                        .push(
                            timestamp,
                            record.key.as_deref(),
                            record.value.as_deref(),
                            headers,
                        )
                        .unwrap();
                    assert_eq!(writer.uncompressed_len(), builder.uncompressed_len());
                }
                let mut compressor = Compressor::new();
                let pool = BufferPool::new(1, usize::MAX);
                let ours = writer
                    .finish(stamp.as_ref(), &mut compressor, &pool)
                    .unwrap();
                let theirs = builder.finish(&mut compressor).unwrap();
                assert_eq!(ours, theirs, "{codec:?} {stamp:?}");
                let batch = RecordBatch::from_bytes(ours).unwrap();
                batch.verify_crc().unwrap();
                assert_eq!(batch.records_count(), 4);
            }
        }
    }

    #[test]
    fn an_empty_batch_matches_too() {
        let ours = BatchWriter::new(Compression::None, 0)
            .finish(None, &mut Compressor::new(), &BufferPool::new(0, 0))
            .unwrap();
        let theirs = BatchBuilder::new(BatchHeader::default())
            .finish(&mut Compressor::new())
            .unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn the_pool_hands_warm_buffers_to_records_and_cold_ones_to_output() {
        let pool = BufferPool::new(2, 1 << 20);
        let mut warm = BytesMut::with_capacity(1000);
        warm.extend_from_slice(b"records");
        let warm_ptr = warm.as_ptr();
        pool.give(warm);
        let cold = BytesMut::with_capacity(2000);
        let cold_ptr = cold.as_ptr();
        pool.give_bytes(cold.freeze());
        // Full: a third is not kept; too large ones never are.
        pool.give(BytesMut::with_capacity(10));
        let out = pool.take_cold(100);
        assert_eq!((out.as_ptr(), out.len()), (cold_ptr, 0));
        let records = pool.take(100);
        assert_eq!((records.as_ptr(), records.len()), (warm_ptr, 0));
        pool.give(BytesMut::with_capacity(2 << 20));
        assert!(pool.lock().warm.is_empty());
    }

    #[test]
    fn varint_lengths() {
        for (v, len) in [
            (0i64, 1),
            (-1, 1),
            (63, 1),
            (64, 2),
            (-65, 2),
            (i64::from(i32::MAX), 5),
            (i64::MAX, 10),
            (i64::MIN, 10),
        ] {
            assert_eq!(varint_len(v), len, "{v}");
            let mut s = Scratch::<VARINT>::new();
            s.varint(v);
            assert_eq!(s.bytes().len(), len, "{v}");
        }
    }
}
