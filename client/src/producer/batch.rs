//! A producer batch: the records of one partition encoded into a [`BatchBuilder`], the
//! waiters of those records, the buffer memory they hold, and their retry state.
//!
//! Why it carries so much: a batch is the unit the whole producer moves around (accumulator
//! queue, request, retry queue) and everything that must happen when it ends (answer each
//! record, give memory back, wake `flush`) happens in one place, `complete` or `fail`, or on
//! drop if the sender task dies: a dropped batch still releases its memory and its flush
//! waiters, and its records' futures report `Closed`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use sluice_protocol::record::{BatchBuilder, BatchHeader, RecordBatch};
use sluice_protocol::{Compression, Compressor};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

use super::idempotence::{Head, Stamp};
use super::memory::Reservation;
use super::record::{DeliveryFuture, ProducerRecord, RecordMetadata};
use crate::error::{Error, Result};

/// A topic and partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TopicPartition {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// How the broker acknowledged a batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ack {
    /// The first record's offset, or -1 when unknown.
    pub(crate) base_offset: i64,
    /// The broker's append time when the topic uses `LogAppendTime`, else -1.
    pub(crate) log_append_time: i64,
}

#[derive(Debug)]
struct RecordSlot {
    reply: oneshot::Sender<Result<RecordMetadata>>,
    timestamp: i64,
}

/// A batch, open or sealed, with the waiters of its records.
#[derive(Debug)]
pub(crate) struct ProducerBatch {
    pub(crate) tp: TopicPartition,
    /// When its first record was appended.
    pub(crate) created: Instant,
    /// When it fails with a timeout if not delivered (`created + delivery_timeout`).
    pub(crate) deadline: Instant,
    /// Records encoded so far; taken when the batch is first encoded.
    builder: Option<BatchBuilder>,
    /// The encoded batch, once it was sent, and the stamp its header carries.
    encoded: Option<(Bytes, Option<Stamp>)>,
    records: Vec<RecordSlot>,
    memory: Reservation,
    _done: DoneSignal,
    /// Retries so far.
    pub(crate) attempts: u32,
    /// Not before this instant (retry backoff).
    pub(crate) retry_at: Option<Instant>,
    /// Producer id, epoch and sequence it is sent with (idempotence), once gated.
    pub(crate) stamp: Option<Stamp>,
    /// Whether an attempt ended without a definite answer (the batch may be in the log).
    pub(crate) possibly_written: bool,
    /// The error of its last attempt, while it waits for a retry.
    pub(crate) last_error: Option<Error>,
}

impl ProducerBatch {
    /// An empty batch for `tp`, registered in `incomplete` under `id` until it ends.
    pub(crate) fn new(
        tp: TopicPartition,
        compression: Compression,
        capacity: usize,
        now: Instant,
        delivery_timeout: Duration,
        incomplete: &Arc<Incomplete>,
        id: u64,
    ) -> Self {
        let header = BatchHeader {
            compression,
            ..BatchHeader::default()
        };
        ProducerBatch {
            tp,
            created: now,
            deadline: now + delivery_timeout,
            builder: Some(BatchBuilder::with_capacity(header, capacity)),
            encoded: None,
            records: Vec::new(),
            memory: Reservation::default(),
            _done: DoneSignal::new(id, incomplete),
            attempts: 0,
            retry_at: None,
            stamp: None,
            possibly_written: false,
            last_error: None,
        }
    }

    /// Whether it holds no record.
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Encodes `record` into the batch; `memory` is then held until the batch ends. On error
    /// the batch is unchanged.
    pub(crate) fn push(
        &mut self,
        record: &ProducerRecord,
        timestamp: i64,
        memory: Reservation,
    ) -> Result<DeliveryFuture> {
        let builder = self.builder.as_mut().ok_or(Error::Closed)?;
        let headers = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_deref()));
        builder.push(
            timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            headers,
        )?;
        let (reply, rx) = oneshot::channel();
        self.records.push(RecordSlot { reply, timestamp });
        self.memory.merge(memory);
        Ok(DeliveryFuture::new(rx))
    }

    /// Records in the batch.
    pub(crate) fn record_count(&self) -> i32 {
        i32::try_from(self.records.len()).unwrap_or(i32::MAX)
    }

    /// Bytes the batch takes: encoded, or uncompressed so far.
    pub(crate) fn size(&self) -> usize {
        match (&self.encoded, &self.builder) {
            (Some((bytes, _)), _) => bytes.len(),
            (None, Some(builder)) => builder.uncompressed_len(),
            (None, None) => 0,
        }
    }

    /// The batch as the sequence gate sees it.
    pub(crate) fn head(&self) -> Head {
        Head {
            stamp: self.stamp,
            count: self.record_count(),
            possibly_written: self.possibly_written,
        }
    }

    /// The encoded batch carrying its current stamp: compressed on first use, its header
    /// rewritten (producer id, epoch, base sequence and CRC) when the stamp changed.
    pub(crate) fn encode(&mut self, compressor: &mut Compressor) -> Result<Bytes> {
        let (bytes, stamped) = match (self.encoded.take(), self.builder.take()) {
            (Some(encoded), _) => encoded,
            (None, Some(builder)) => (builder.finish(compressor)?, None),
            (None, None) => return Err(Error::Closed),
        };
        let bytes = match self.stamp {
            Some(stamp) if stamped != Some(stamp) => restamp(bytes, &stamp)?,
            _ => bytes,
        };
        self.encoded = Some((bytes.clone(), self.stamp));
        Ok(bytes)
    }

    /// Reports success to every record.
    pub(crate) fn complete(self, ack: Ack) {
        let topic = self.tp.topic;
        for (i, slot) in self.records.into_iter().enumerate() {
            let offset = if ack.base_offset < 0 {
                -1
            } else {
                ack.base_offset + i as i64
            };
            let timestamp = if ack.log_append_time >= 0 {
                ack.log_append_time
            } else {
                slot.timestamp
            };
            let metadata = RecordMetadata {
                topic: Arc::clone(&topic),
                partition: self.tp.partition,
                offset,
                timestamp,
            };
            // The caller may have dropped its DeliveryFuture: nothing to tell then.
            let _ = slot.reply.send(Ok(metadata));
        }
    }

    /// Reports `error` to every record.
    pub(crate) fn fail(self, error: Error) {
        for slot in self.records {
            let _ = slot.reply.send(Err(error.clone()));
        }
    }
}

/// Rewrites a finished batch's producer fields and CRC.
fn restamp(bytes: Bytes, stamp: &Stamp) -> Result<Bytes> {
    // Header offsets of the v2 batch format (KIP-98).
    const CRC: usize = 17;
    const PRODUCER_ID: usize = 43;
    const PRODUCER_EPOCH: usize = 51;
    const BASE_SEQUENCE: usize = 53;
    let mut buf = bytes
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    buf[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&stamp.producer.id.to_be_bytes());
    buf[PRODUCER_EPOCH..PRODUCER_EPOCH + 2].copy_from_slice(&stamp.producer.epoch.to_be_bytes());
    buf[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&stamp.base_sequence.to_be_bytes());
    let frozen = buf.freeze();
    let crc = RecordBatch::from_bytes(frozen.clone())?.computed_crc();
    let mut buf = frozen
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    buf[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(buf.freeze())
}

/// Batches not complete, each with a semaphore closed when it completes (an event that any
/// number of `flush` calls can wait on).
#[derive(Debug, Default)]
pub(crate) struct Incomplete {
    batches: Mutex<HashMap<u64, Arc<Semaphore>>>,
}

impl Incomplete {
    pub(crate) fn snapshot(&self) -> Vec<Arc<Semaphore>> {
        self.batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Held by a batch; signals its completion when dropped, however the batch ends.
#[derive(Debug)]
struct DoneSignal {
    id: u64,
    done: Arc<Semaphore>,
    registry: Arc<Incomplete>,
}

impl DoneSignal {
    fn new(id: u64, registry: &Arc<Incomplete>) -> Self {
        let done = Arc::new(Semaphore::new(0));
        registry
            .batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::clone(&done));
        DoneSignal {
            id,
            done,
            registry: Arc::clone(registry),
        }
    }
}

impl Drop for DoneSignal {
    fn drop(&mut self) {
        self.registry
            .batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
        self.done.close();
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
