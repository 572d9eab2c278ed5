//! The record accumulator: per partition, one open batch that records are encoded into, and a
//! queue of sealed batches waiting for the sender.
//!
//! Why batches are built at `send` time: a record is encoded once, straight into the batch's
//! `BytesMut` ([`BatchBuilder`](sluice_protocol::record::BatchBuilder)), and the batch is sent as it is (compressed once, by the
//! sender task). A batch is sealed when the next record would push it past `batch_size`
//! (or past what fits in one request), when it reaches `batch_size`, when `linger` has passed
//! since its first record, and on `flush` or `close` (the sender seals by time, see
//! [`PartitionQueue::seal_if_due`]). Sealed batches leave in order; a retried batch is put
//! back in front of them (see `idempotence.rs` for the order).
//!
//! Every batch also registers in an *incomplete* set until it completes, so `flush` can wait
//! for exactly the batches that exist when it is called (Java's `awaitFlushCompletion`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sluice_protocol::Compression;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use super::batch::{now_millis, Incomplete, ProducerBatch, TopicPartition};
use super::memory::Reservation;
use super::partitioner::{Partitioner, StickyPartitioner};
use super::record::{DeliveryFuture, ProducerRecord, SendError};
use crate::cluster::TopicInfo;
use crate::error::{Error, KafkaCode};

/// One partition's batches.
#[derive(Debug, Default)]
pub(crate) struct PartitionQueue {
    open: Option<ProducerBatch>,
    /// Sealed batches in send order.
    pub(crate) ready: VecDeque<ProducerBatch>,
}

impl PartitionQueue {
    fn seal(&mut self) {
        if let Some(batch) = self.open.take() {
            self.ready.push_back(batch);
        }
    }

    /// Seals the open batch if `linger` has passed since its first record, or if `force`.
    /// Returns when it is due otherwise.
    pub(crate) fn seal_if_due(
        &mut self,
        now: Instant,
        linger: Duration,
        force: bool,
    ) -> Option<Instant> {
        let due = self.open.as_ref()?.created + linger;
        if force || now >= due {
            self.seal();
            None
        } else {
            Some(due)
        }
    }

    /// Puts a batch that failed back in its place: before the first queued batch `before`
    /// says it goes before.
    pub(crate) fn requeue(
        &mut self,
        batch: ProducerBatch,
        before: impl Fn(&ProducerBatch) -> bool,
    ) {
        let at = self
            .ready
            .iter()
            .position(before)
            .unwrap_or(self.ready.len());
        self.ready.insert(at, batch);
    }

    fn is_empty(&self) -> bool {
        self.open.is_none() && self.ready.is_empty()
    }
}

/// What the accumulator needs from the producer config.
#[derive(Debug, Clone)]
pub(crate) struct AccumulatorConfig {
    /// Seal a batch at this many uncompressed bytes (`batch_size`, capped by what fits in a
    /// request).
    pub(crate) batch_limit: usize,
    pub(crate) linger: Duration,
    pub(crate) delivery_timeout: Duration,
    pub(crate) compression: Compression,
    pub(crate) partitioner: Partitioner,
    /// Whether unkeyed records stick to a partition (`sticky_partitioning_linger` > 0).
    pub(crate) sticky: bool,
}

/// State under the accumulator's lock.
#[derive(Debug)]
pub(crate) struct State {
    /// Queues by topic, then partition.
    pub(crate) topics: HashMap<Arc<str>, BTreeMap<i32, PartitionQueue>>,
    partitioner: StickyPartitioner,
    next_batch_id: u64,
    closing: Option<Instant>,
    /// An error after which nothing can be sent (the producer must be rebuilt).
    fatal: Option<Error>,
}

impl State {
    /// Why records are refused, if they are.
    fn refusal(&self) -> Option<Error> {
        match (&self.fatal, self.closing) {
            (Some(error), _) => Some(error.clone()),
            (None, Some(_)) => Some(Error::Closed),
            (None, None) => None,
        }
    }

    /// Whether no batch is open or queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.topics
            .values()
            .all(|parts| parts.values().all(PartitionQueue::is_empty))
    }

    /// Takes every batch out, open ones included.
    pub(crate) fn take_all(&mut self) -> Vec<ProducerBatch> {
        let mut all = Vec::new();
        for parts in self.topics.values_mut() {
            for queue in parts.values_mut() {
                queue.seal();
                all.extend(queue.ready.drain(..));
            }
        }
        all
    }
}

/// The accumulator, shared by `send` and the sender task.
#[derive(Debug)]
pub(crate) struct Accumulator {
    config: AccumulatorConfig,
    state: Mutex<State>,
    /// Wakes the sender: a batch was opened or sealed, a flush or close began.
    pub(crate) wake: Notify,
    incomplete: Arc<Incomplete>,
    flushing: AtomicUsize,
}

impl Accumulator {
    pub(crate) fn new(config: AccumulatorConfig, batch_size: usize) -> Self {
        Accumulator {
            config,
            state: Mutex::new(State {
                topics: HashMap::new(),
                partitioner: StickyPartitioner::new(batch_size.max(1)),
                next_batch_id: 0,
                closing: None,
                fatal: None,
            }),
            wake: Notify::new(),
            incomplete: Arc::new(Incomplete::default()),
            flushing: AtomicUsize::new(0),
        }
    }

    pub(crate) fn config(&self) -> &AccumulatorConfig {
        &self.config
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `record` to a batch of its partition (chosen here unless given), reserving
    /// nothing more: `memory` (at least `size` bytes) goes with the batch.
    // The record comes back by value in the error, like tokio's `TrySendError`.
    #[allow(clippy::result_large_err)]
    pub(crate) fn append(
        &self,
        info: &TopicInfo,
        record: ProducerRecord,
        size: usize,
        memory: Reservation,
        now: Instant,
    ) -> std::result::Result<DeliveryFuture, SendError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        if let Some(error) = state.refusal() {
            return Err(SendError { error, record });
        }
        let partition = match record.partition {
            Some(p) => Some(p),
            None => self.choose_partition(state, info, &record),
        };
        let Some(partition) = partition else {
            let error = Error::kafka(
                KafkaCode::LEADER_NOT_AVAILABLE,
                format!("topic {} has no partitions", info.name),
            );
            return Err(SendError { error, record });
        };
        let timestamp = record.timestamp.unwrap_or_else(now_millis);
        let topic = match state.topics.get_key_value(record.topic.as_str()) {
            Some((topic, _)) => Arc::clone(topic),
            None => {
                let topic: Arc<str> = Arc::from(record.topic.as_str());
                state.topics.insert(Arc::clone(&topic), BTreeMap::new());
                topic
            }
        };
        let queue = state
            .topics
            .entry(Arc::clone(&topic))
            .or_default()
            .entry(partition)
            .or_default();
        if queue
            .open
            .as_ref()
            .is_some_and(|open| !open.is_empty() && open.size() + size > self.config.batch_limit)
        {
            queue.seal();
        }
        let opened = queue.open.is_none();
        let open = match &mut queue.open {
            Some(open) => open,
            None => {
                let id = state.next_batch_id;
                state.next_batch_id += 1;
                queue.open.insert(self.new_batch(
                    TopicPartition { topic, partition },
                    id,
                    size,
                    now,
                ))
            }
        };
        let delivery = match open.push(&record, timestamp, memory) {
            Ok(delivery) => delivery,
            Err(error) => {
                if open.is_empty() {
                    queue.open = None;
                }
                return Err(SendError { error, record });
            }
        };
        let full = open.size() >= self.config.batch_limit;
        if full {
            queue.seal();
        }
        if record.key.is_none() && record.partition.is_none() {
            state.partitioner.on_append(&record.topic, partition, size);
        }
        drop(guard);
        if opened || full {
            self.wake.notify_one();
        }
        Ok(delivery)
    }

    fn choose_partition(
        &self,
        state: &mut State,
        info: &TopicInfo,
        record: &ProducerRecord,
    ) -> Option<i32> {
        let count = i32::try_from(info.partitions.len()).ok()?;
        // Unkeyed records go only to partitions with a leader; an empty list means all.
        let available: Vec<i32> = if info.partitions.iter().all(|p| p.leader >= 0) {
            Vec::new()
        } else {
            info.partitions
                .iter()
                .filter(|p| p.leader >= 0)
                .map(|p| p.partition)
                .collect()
        };
        let key = record.key.as_deref();
        if key.is_none() && !self.config.sticky && self.config.partitioner == Partitioner::Murmur2 {
            return state.partitioner.random(count, &available);
        }
        self.config.partitioner.partition(
            &mut state.partitioner,
            &record.topic,
            key,
            count,
            &available,
        )
    }

    fn new_batch(
        &self,
        tp: TopicPartition,
        id: u64,
        first_record: usize,
        now: Instant,
    ) -> ProducerBatch {
        let capacity = first_record.max(self.config.batch_limit.min(64 * 1024));
        let config = &self.config;
        ProducerBatch::new(
            tp,
            config.compression,
            capacity,
            now,
            config.delivery_timeout,
            &self.incomplete,
            id,
        )
    }

    /// Whether open batches are to be sealed now regardless of linger (flush or close).
    pub(crate) fn force_ready(&self) -> bool {
        self.flushing.load(Ordering::Acquire) > 0 || self.lock().closing.is_some()
    }

    /// Starts a flush: open batches are sealed until the guard drops. Returns the batches to
    /// wait for.
    pub(crate) fn begin_flush(&self) -> (FlushGuard<'_>, Vec<Arc<Semaphore>>) {
        self.flushing.fetch_add(1, Ordering::AcqRel);
        let guard = FlushGuard(self);
        let waiters = self.incomplete.snapshot();
        self.wake.notify_one();
        (guard, waiters)
    }

    /// Refuses new records; the sender sends what is queued until `deadline`, then fails it.
    /// An earlier deadline wins.
    pub(crate) fn close(&self, deadline: Instant) {
        {
            let mut state = self.lock();
            state.closing = Some(state.closing.map_or(deadline, |d| d.min(deadline)));
        }
        self.wake.notify_one();
    }

    /// Why records are refused (closed, or a fatal error), if they are.
    pub(crate) fn refusal(&self) -> Option<Error> {
        self.lock().refusal()
    }

    /// Refuses records from now on with `error`.
    pub(crate) fn set_fatal(&self, error: Error) {
        self.lock().fatal.get_or_insert(error);
    }

    /// The close deadline, once closing.
    pub(crate) fn closing(&self) -> Option<Instant> {
        self.lock().closing
    }

    #[cfg(test)]
    /// Batches not yet complete.
    pub(crate) fn incomplete(&self) -> usize {
        self.incomplete.len()
    }
}

/// Ends a flush when dropped (so a cancelled `flush` does not leave linger disabled).
#[derive(Debug)]
pub(crate) struct FlushGuard<'a>(&'a Accumulator);

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        self.0.flushing.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "accumulator_tests.rs"]
mod tests;
