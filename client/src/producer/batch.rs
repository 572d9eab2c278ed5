//! A producer batch: the records of one partition encoded into a [`BatchBuilder`], the
//! completion its records' futures wait on, the buffer memory they hold, and its retry state.
//!
//! Why it carries so much: a batch is the unit the whole producer moves around (accumulator
//! queue, request, retry queue) and everything that must happen when it ends (answer each
//! record, give memory back, wake `flush`) happens in one place, `complete` or `fail`, or on
//! drop if the sender task dies: a dropped batch still releases its memory and its flush
//! waiters, and its records' futures report `Closed`. The order matters to callers: memory is
//! given back before the records' futures resolve, and those resolve before `flush` returns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sluice_protocol::record::{restamp, BatchBuilder, SealedBatch};
use sluice_protocol::Compressor;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::completion::{Completion, CompletionGuard};
use super::idempotence::{Head, Stamp};
use super::memory::Reservation;
use super::pool::BufferPool;
use super::record::{DeliveryFuture, ProducerRecord};
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

/// A batch's records, from the first `push` to the bytes that are sent.
#[derive(Debug)]
enum Body {
    /// Records are added (open), or it is sealed and not finished yet.
    Writing(BatchBuilder),
    /// Being compressed off the sender task.
    Compressing(Arc<Mutex<Option<Result<SealedBatch>>>>),
    /// Compressed; the header is left to write.
    Sealed(SealedBatch),
    /// Compressing failed.
    Failed(Error),
    /// Encoded, with the stamp its header carries.
    Encoded(Bytes, Option<Stamp>),
    /// Finishing it failed.
    Gone,
}

/// Where a batch compressed elsewhere is handed back to it.
#[derive(Debug)]
pub(crate) struct CompressionJob(Arc<Mutex<Option<Result<SealedBatch>>>>);

impl CompressionJob {
    /// Hands the compressed records to the batch (gone already if it failed meanwhile).
    pub(crate) fn deliver(self, result: Result<SealedBatch>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
    }
}

impl Drop for CompressionJob {
    /// A job dropped undelivered (its thread panicked, the runtime shut down) fails the batch
    /// rather than leaving it, and its partition behind it, waiting for ever.
    fn drop(&mut self) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(Err(Error::Closed));
        }
    }
}

/// A batch, open or sealed, with the waiters of its records.
///
/// Fields drop in declaration order; `memory`, `completion` and `_done` come last, in the order
/// the module doc gives.
#[derive(Debug)]
pub(crate) struct ProducerBatch {
    pub(crate) tp: TopicPartition,
    /// When its first record was appended.
    pub(crate) created: Instant,
    /// When it fails with a timeout if not delivered (`created + delivery_timeout`).
    pub(crate) deadline: Instant,
    /// Its records, in whichever form they are.
    body: Body,
    /// Where its buffers go back when it ends.
    pool: Arc<BufferPool>,
    /// Records in the batch.
    count: i32,
    /// Bytes of `memory` its records take (their upper bounds); the rest is credit for more.
    used: usize,
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
    memory: Reservation,
    completion: CompletionGuard,
    _done: DoneSignal,
}

impl ProducerBatch {
    /// An empty batch for `tp`, registered in `incomplete` under `id` until it ends.
    pub(crate) fn new(
        tp: TopicPartition,
        writer: BatchBuilder,
        now: Instant,
        delivery_timeout: Duration,
        incomplete: &Arc<Incomplete>,
        id: u64,
        pool: &Arc<BufferPool>,
    ) -> Self {
        ProducerBatch {
            completion: CompletionGuard(Completion::new(tp.clone())),
            tp,
            created: now,
            deadline: now + delivery_timeout,
            body: Body::Writing(writer),
            pool: Arc::clone(pool),
            count: 0,
            used: 0,
            attempts: 0,
            retry_at: None,
            stamp: None,
            possibly_written: false,
            last_error: None,
            memory: Reservation::default(),
            _done: DoneSignal::new(id, incomplete),
        }
    }

    /// Whether it holds no record.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of buffer memory it holds that no record uses yet.
    pub(crate) fn credit(&self) -> usize {
        self.memory.bytes().saturating_sub(self.used)
    }

    /// Adds `memory` to what the batch holds.
    pub(crate) fn add_memory(&mut self, memory: Reservation) {
        self.memory.merge(memory);
    }

    /// Gives back the memory no record uses (when it is sealed: no record comes any more).
    pub(crate) fn release_credit(&mut self) {
        self.memory.shrink_to(self.used);
    }

    /// Encodes `record` with `timestamp` into the batch, taking `size` bytes of its credit. On
    /// error the batch is unchanged.
    pub(crate) fn push(
        &mut self,
        record: &ProducerRecord,
        timestamp: i64,
        size: usize,
    ) -> Result<DeliveryFuture> {
        let Body::Writing(writer) = &mut self.body else {
            return Err(Error::Closed);
        };
        let headers = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_deref()));
        writer.push(
            timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            headers,
        )?;
        let index = self.count;
        self.count += 1;
        self.used += size;
        Ok(DeliveryFuture::new(
            Arc::clone(&self.completion.0),
            index,
            timestamp,
        ))
    }

    /// Records in the batch.
    pub(crate) fn record_count(&self) -> i32 {
        self.count
    }

    /// Bytes the batch takes before compression (what `batch.size` limits), or encoded once
    /// it is.
    pub(crate) fn size(&self) -> usize {
        match &self.body {
            Body::Writing(writer) => writer.uncompressed_len(),
            Body::Encoded(bytes, _) => bytes.len(),
            _ => 0,
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

    /// Takes the records out to be compressed elsewhere (see `sender.rs`), if the batch has a
    /// codec and was not compressed yet; `encode` waits for [`CompressionJob::deliver`] then.
    pub(crate) fn start_compression(&mut self) -> Option<(BatchBuilder, CompressionJob)> {
        if !self.awaits_compression() {
            return None;
        }
        let done = Arc::new(Mutex::new(None));
        match std::mem::replace(&mut self.body, Body::Compressing(Arc::clone(&done))) {
            Body::Writing(writer) => Some((writer, CompressionJob(done))),
            other => {
                self.body = other;
                None
            }
        }
    }

    /// Whether it is to be compressed and that has not started yet.
    pub(crate) fn awaits_compression(&self) -> bool {
        matches!(&self.body, Body::Writing(writer) if writer.is_compressed())
    }

    /// Whether `encode` can run now: not waiting for its compression.
    pub(crate) fn is_ready(&mut self) -> bool {
        let Body::Compressing(done) = &self.body else {
            return true;
        };
        let result = done.lock().unwrap_or_else(PoisonError::into_inner).take();
        match result {
            Some(Ok(sealed)) => self.body = Body::Sealed(sealed),
            Some(Err(error)) => self.body = Body::Failed(error),
            None => return false,
        }
        true
    }

    /// The encoded batch carrying its current stamp: finished on first use (compressed too,
    /// unless that was done already), its header rewritten (producer id, epoch, base sequence
    /// and CRC) when the stamp changed. Fails if it is still being compressed.
    pub(crate) fn encode(&mut self, compressor: &mut Compressor) -> Result<Bytes> {
        if !self.is_ready() {
            return Err(Error::Closed);
        }
        let stamp = self.stamp;
        let (bytes, stamped) = match std::mem::replace(&mut self.body, Body::Gone) {
            Body::Encoded(bytes, stamped) => (bytes, stamped),
            Body::Writing(writer) => (
                finish(seal(writer, compressor, &self.pool)?, stamp.as_ref())?,
                stamp,
            ),
            Body::Sealed(sealed) => (finish(sealed, stamp.as_ref())?, stamp),
            Body::Failed(error) => return Err(error),
            Body::Compressing(_) | Body::Gone => return Err(Error::Closed),
        };
        let bytes = match stamp {
            Some(s) if stamped != Some(s) => {
                restamp(bytes, s.producer.id, s.producer.epoch, s.base_sequence)?
            }
            _ => bytes,
        };
        self.body = Body::Encoded(bytes.clone(), stamp);
        Ok(bytes)
    }

    /// Reports success to every record.
    pub(crate) fn complete(self, ack: Ack) {
        self.settle(Ok(ack));
    }

    /// Reports `error` to every record.
    pub(crate) fn fail(self, error: Error) {
        self.settle(Err(error));
    }

    fn settle(self, outcome: Result<Ack>) {
        let ProducerBatch {
            memory,
            completion,
            _done,
            body,
            pool,
            ..
        } = self;
        // Memory first: a caller that saw its record delivered finds the memory free.
        drop(memory);
        completion.0.settle(outcome);
        drop(_done);
        match body {
            Body::Encoded(bytes, _) => pool.give_bytes(bytes),
            Body::Writing(writer) => pool.give_cold(writer.into_buffer()),
            Body::Sealed(sealed) => pool.give_cold(sealed.into_buffer()),
            Body::Compressing(_) | Body::Failed(_) | Body::Gone => {}
        }
    }
}

/// Makes a batch's records final: compressed (if it has a codec) into a buffer from `pool`,
/// which gets the records' buffer back. Needs nothing but the batch: runs on any thread.
pub(crate) fn seal(
    writer: BatchBuilder,
    compressor: &mut Compressor,
    pool: &BufferPool,
) -> Result<SealedBatch> {
    let (sealed, spent) = writer.seal(compressor, |capacity| pool.take_cold(capacity))?;
    if let Some(buf) = spent {
        pool.give(buf);
    }
    Ok(sealed)
}

/// The finished batch, its header carrying `stamp`'s producer id, epoch and base sequence
/// (or -1s without idempotence).
fn finish(mut sealed: SealedBatch, stamp: Option<&Stamp>) -> Result<Bytes> {
    if let Some(s) = stamp {
        sealed.set_producer(
            s.producer.id,
            s.producer.epoch,
            s.base_sequence,
            s.transactional,
        );
    }
    Ok(sealed.finish()?)
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
    // Seconds and milliseconds apart: `as_millis` divides a u128, a cost paid per record.
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
        i64::try_from(d.as_secs())
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000)
            .saturating_add(i64::from(d.subsec_millis()))
    })
}
