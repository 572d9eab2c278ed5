//! The record accumulator: per partition, one open batch that records are encoded into, and a
//! queue of sealed batches waiting for the sender.
//!
//! Why batches are built at `send` time: a record is encoded once, straight into the batch's
//! buffer ([`BatchBuilder`]), and the batch is sent as it is (compressed once, off the sender
//! task). A batch is sealed when the next record would push it past `batch_size` (or past
//! what fits in one request), when it reaches `batch_size`, when `linger` has passed since its
//! first record, and on `flush` or `close` (the sender seals by time, see
//! [`PartitionQueue::seal_if_due`]). Sealed batches leave in order; a retried batch is put
//! back in front of them (see `idempotence.rs` for the order).
//!
//! `send`'s cost is mostly here, so [`Accumulator::append`] does a record in one pass under
//! the lock, with no await, no hashing and no allocation in the common case: the topic last
//! used is found by comparing its name, its metadata is cached per topic (re-read from the
//! cluster's every [`METADATA_RECHECK_MS`]), the sticky partition is per topic, and buffer
//! memory comes from the open batch's credit ([`super::memory`]). What it cannot do without
//! waiting (unknown metadata, no free memory) it hands back to `send`, which waits and calls
//! again.
//!
//! Every batch also registers in an *incomplete* set until it completes, so `flush` can wait
//! for exactly the batches that exist when it is called (Java's `awaitFlushCompletion`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sluice_protocol::record::{BatchBuilder, BatchHeader, BATCH_HEADER_LEN};
use sluice_protocol::Compression;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use super::batch::{Incomplete, ProducerBatch, TopicPartition};
use super::memory::{BufferMemory, Reservation};
use super::partitioner::{self, key_partition, Partitioner, Sticky};
use super::pool::BufferPool;
use super::record::{DeliveryFuture, ProducerRecord};
use crate::cluster::TopicInfo;
use crate::error::{Error, KafkaCode};

/// How long `send` uses a topic's metadata before it looks at the cluster's again, in ms. The
/// sender refreshes the cluster's metadata on errors and by age; this only bounds how long
/// `send` takes to notice (a new partition count, a partition without leader).
const METADATA_RECHECK_MS: i64 = 100;
/// Batch buffers kept for reuse at most (and at least 2). Within that, as many as
/// `buffer_memory` holds batches: Java's `BufferPool` keeps that much too.
const POOLED_BUFFERS: usize = 64;

/// One partition's batches.
#[derive(Debug, Default)]
pub(crate) struct PartitionQueue {
    open: Option<ProducerBatch>,
    /// Sealed batches in send order.
    pub(crate) ready: VecDeque<ProducerBatch>,
    /// The size the last sealed batch reached: the next one's buffer starts that large, so a
    /// busy partition's batches do not grow by copying and a quiet one's stay small.
    last_size: usize,
}

impl PartitionQueue {
    fn seal(&mut self) {
        if let Some(mut batch) = self.open.take() {
            self.last_size = batch.size();
            batch.release_credit();
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

    /// The partition of the queue's records, if it has any (open or sealed).
    pub(crate) fn partition(&self) -> Option<&TopicPartition> {
        self.ready.front().or(self.open.as_ref()).map(|b| &b.tp)
    }
}

/// One topic: its partitions' queues, its sticky choice and the metadata `send` uses.
#[derive(Debug)]
pub(crate) struct TopicQueues {
    pub(crate) name: Arc<str>,
    /// Queues by partition number.
    partitions: Vec<PartitionQueue>,
    sticky: Sticky,
    meta: Option<TopicMeta>,
}

/// What `send` needs of a topic's metadata, taken from the cluster's now and then.
#[derive(Debug)]
struct TopicMeta {
    info: Arc<TopicInfo>,
    count: i32,
    /// Partitions with a leader, or empty when all have one (as the partitioner takes it).
    available: Vec<i32>,
    /// When it was taken (ms since the epoch).
    checked_ms: i64,
}

impl TopicMeta {
    fn new(info: Arc<TopicInfo>, now_ms: i64) -> Self {
        let available = if info.partitions.iter().all(|p| p.leader >= 0) {
            Vec::new()
        } else {
            info.partitions
                .iter()
                .filter(|p| p.leader >= 0)
                .map(|p| p.partition)
                .collect()
        };
        TopicMeta {
            count: i32::try_from(info.partitions.len()).unwrap_or(i32::MAX),
            info,
            available,
            checked_ms: now_ms,
        }
    }

    fn is_stale(&self, now_ms: i64) -> bool {
        // A clock set back counts as stale too.
        !(self.checked_ms..self.checked_ms + METADATA_RECHECK_MS).contains(&now_ms)
    }
}

impl TopicQueues {
    fn new(name: Arc<str>) -> Self {
        TopicQueues {
            name,
            partitions: Vec::new(),
            sticky: Sticky::default(),
            meta: None,
        }
    }

    /// The queue of `partition`, made if missing. `None` for a negative partition.
    pub(crate) fn queue_mut(&mut self, partition: i32) -> Option<&mut PartitionQueue> {
        queue_in(&mut self.partitions, partition)
    }

    /// Every partition's queue, with its number.
    pub(crate) fn queues_mut(&mut self) -> impl Iterator<Item = (i32, &mut PartitionQueue)> {
        (0..).zip(self.partitions.iter_mut())
    }

    /// Installs `info` unless it is the one in use; either way it counts as fresh.
    fn set_meta(&mut self, info: Arc<TopicInfo>, now_ms: i64) {
        match &mut self.meta {
            Some(meta) if Arc::ptr_eq(&meta.info, &info) => meta.checked_ms = now_ms,
            meta => *meta = Some(TopicMeta::new(info, now_ms)),
        }
    }
}

/// The queue of `partition` in `partitions` (indexed by number), made if missing. `None` for a
/// negative partition.
fn queue_in(partitions: &mut Vec<PartitionQueue>, partition: i32) -> Option<&mut PartitionQueue> {
    let i = usize::try_from(partition).ok()?;
    if partitions.len() <= i {
        partitions.resize_with(i + 1, PartitionQueue::default);
    }
    partitions.get_mut(i)
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
    /// `buffer_memory`: bounds the batch buffers kept for reuse.
    pub(crate) buffer_memory: usize,
}

/// State under the accumulator's lock.
#[derive(Debug)]
pub(crate) struct State {
    /// Topics in the order first used; never removed.
    pub(crate) topics: Vec<TopicQueues>,
    by_name: HashMap<Arc<str>, usize>,
    /// The topic last appended to: most producers send to one topic at a time, and a string
    /// comparison is cheaper than hashing the name.
    last: usize,
    rng: fastrand::Rng,
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
            .iter()
            .all(|topic| topic.partitions.iter().all(PartitionQueue::is_empty))
    }

    /// Takes every batch out, open ones included.
    pub(crate) fn take_all(&mut self) -> Vec<ProducerBatch> {
        let mut all = Vec::new();
        for topic in &mut self.topics {
            for queue in &mut topic.partitions {
                queue.seal();
                all.extend(queue.ready.drain(..));
            }
        }
        all
    }

    /// The index of `name` in `topics`, added if new.
    fn topic_index(&mut self, name: &Arc<str>) -> usize {
        if let Some(&i) = self.by_name.get(&**name) {
            return i;
        }
        let name = Arc::clone(name);
        let i = self.topics.len();
        self.topics.push(TopicQueues::new(Arc::clone(&name)));
        self.by_name.insert(name, i);
        i
    }

    /// The queue of `tp`, made if missing. `None` for a negative partition.
    pub(crate) fn queue_mut(&mut self, tp: &TopicPartition) -> Option<&mut PartitionQueue> {
        let i = self.topic_index(&tp.topic);
        self.topics.get_mut(i)?.queue_mut(tp.partition)
    }

    #[cfg(test)]
    /// The queue of `partition` of `topic`, if it exists.
    pub(crate) fn queue(&self, topic: &str, partition: usize) -> Option<&PartitionQueue> {
        let i = *self.by_name.get(topic)?;
        self.topics.get(i)?.partitions.get(partition)
    }

    #[cfg(test)]
    /// The partitions of `topic` that have a queue holding something.
    pub(crate) fn used_partitions(&self, topic: &str) -> Vec<i32> {
        let Some(&i) = self.by_name.get(topic) else {
            return Vec::new();
        };
        (0..)
            .zip(&self.topics[i].partitions)
            .filter(|(_, q)| !q.is_empty())
            .map(|(p, _)| p)
            .collect()
    }
}

/// One record for [`Accumulator::append`].
#[derive(Debug)]
pub(crate) struct Append<'a> {
    pub(crate) record: &'a ProducerRecord,
    /// Its size bound ([`ProducerRecord::size_upper_bound`]).
    pub(crate) size: usize,
    /// The clock at `send` (ms since the epoch): the create time unless the record has one.
    pub(crate) now_ms: i64,
    /// The topic's metadata, when the caller had to fetch it.
    pub(crate) info: Option<Arc<TopicInfo>>,
    /// At least `size` bytes of buffer memory, when the caller had to wait for them.
    pub(crate) memory: Option<Reservation>,
}

/// What became of an [`Append`].
#[derive(Debug)]
pub(crate) enum Appended {
    /// In a batch.
    Done(DeliveryFuture),
    /// Refused for good.
    Refused(Error),
    /// The topic's metadata is not known here (or does not have the record's partition):
    /// the caller is to fetch it, waiting if need be, and try again with it.
    NoMetadata,
    /// No buffer memory is free right now: the caller is to wait for `size` bytes and try
    /// again with them.
    NoMemory,
}

/// The accumulator, shared by `send` and the sender task.
#[derive(Debug)]
pub(crate) struct Accumulator {
    config: AccumulatorConfig,
    /// Bytes of unkeyed records after which the sticky partitioner moves on.
    sticky_bytes: usize,
    state: Mutex<State>,
    /// Wakes the sender: a batch was opened or sealed, a flush or close began.
    pub(crate) wake: Notify,
    incomplete: Arc<Incomplete>,
    flushing: AtomicUsize,
    pool: Arc<BufferPool>,
}

impl Accumulator {
    pub(crate) fn new(config: AccumulatorConfig, batch_size: usize) -> Self {
        Accumulator {
            sticky_bytes: batch_size.max(1),
            state: Mutex::new(State {
                topics: Vec::new(),
                by_name: HashMap::new(),
                last: usize::MAX,
                rng: fastrand::Rng::new(),
                next_batch_id: 0,
                closing: None,
                fatal: None,
            }),
            wake: Notify::new(),
            incomplete: Arc::new(Incomplete::default()),
            flushing: AtomicUsize::new(0),
            pool: Arc::new(BufferPool::new(
                (config.buffer_memory / (BATCH_HEADER_LEN + config.batch_limit))
                    .clamp(2, POOLED_BUFFERS),
                2 * (BATCH_HEADER_LEN + config.batch_limit),
            )),
            config,
        }
    }

    pub(crate) fn config(&self) -> &AccumulatorConfig {
        &self.config
    }

    /// The batch buffers kept for reuse.
    pub(crate) fn pool(&self) -> &Arc<BufferPool> {
        &self.pool
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Encodes a record into a batch of its partition (chosen here unless given), in one
    /// pass under the lock: no await, no allocation but the batch's when one is opened.
    ///
    /// Without `info`, the topic's metadata is the one cached here, re-read through `lookup`
    /// (the cluster's current metadata, or `None`) every [`METADATA_RECHECK_MS`]. Without
    /// `memory`, the record draws on its batch's memory credit, topped up from `pool` without
    /// waiting. When either is missing it returns [`Appended::NoMetadata`] or
    /// [`Appended::NoMemory`] having changed nothing; the caller waits for what is missing
    /// and calls again with it.
    pub(crate) fn append(
        &self,
        append: Append<'_>,
        pool: &BufferMemory,
        lookup: impl FnOnce(&str) -> Option<Arc<TopicInfo>>,
    ) -> Appended {
        let Append {
            record,
            size,
            now_ms,
            info,
            memory,
        } = append;
        let mut guard = self.lock();
        let state = &mut *guard;
        if let Some(error) = state.refusal() {
            return Appended::Refused(error);
        }
        let t = match state.topics.get(state.last) {
            Some(topic)
                if Arc::ptr_eq(&topic.name, record.topic.shared())
                    || *topic.name == *record.topic =>
            {
                state.last
            }
            _ => {
                let t = state.topic_index(record.topic.shared());
                state.last = t;
                t
            }
        };
        let State {
            topics,
            rng,
            next_batch_id,
            ..
        } = state;
        let Some(topic) = topics.get_mut(t) else {
            return Appended::NoMetadata;
        };
        match info {
            Some(info) => topic.set_meta(info, now_ms),
            None if topic.meta.as_ref().is_none_or(|m| m.is_stale(now_ms)) => {
                match lookup(&topic.name) {
                    Some(info) if !info.partitions.is_empty() => topic.set_meta(info, now_ms),
                    _ => return Appended::NoMetadata,
                }
            }
            None => {}
        }
        let TopicQueues {
            name,
            partitions,
            sticky,
            meta,
        } = &mut *topic;
        let Some(meta) = meta.as_ref() else {
            return Appended::NoMetadata;
        };
        let partition = match record.partition {
            Some(p) if meta.info.partition(p).is_some() => p,
            Some(_) => return Appended::NoMetadata,
            None => match self.choose_partition(rng, sticky, meta, record.key.as_deref()) {
                Some(p) => p,
                None => {
                    return Appended::Refused(Error::kafka(
                        KafkaCode::LEADER_NOT_AVAILABLE,
                        format!("topic {name} has no partitions"),
                    ))
                }
            },
        };
        let Some(queue) = queue_in(partitions, partition) else {
            return Appended::Refused(Error::kafka(
                KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic {name} has no partition {partition}"),
            ));
        };
        let limit = self.config.batch_limit;
        let fits = queue
            .open
            .as_ref()
            .is_some_and(|open| open.size() + size <= limit);
        let credit = match &queue.open {
            Some(open) if fits => open.credit(),
            _ => 0,
        };
        let memory = match memory {
            Some(memory) => Some(memory),
            None if credit >= size => None,
            None => {
                let need = size - credit;
                match pool
                    .try_reserve(need.max(pool.chunk()))
                    .or_else(|| pool.try_reserve(need))
                {
                    Some(memory) => Some(memory),
                    None => return Appended::NoMemory,
                }
            }
        };
        let mut wake = false;
        if !fits {
            // Also when the open batch is empty: it never is (a failed push removes it).
            queue.seal();
        }
        let open = queue.open.get_or_insert_with(|| {
            wake = true;
            let id = *next_batch_id;
            *next_batch_id += 1;
            let tp = TopicPartition {
                topic: Arc::clone(name),
                partition,
            };
            let capacity = queue.last_size.max(64 * 1024).min(limit).max(size);
            self.new_batch(tp, id, capacity, Instant::now())
        });
        if let Some(memory) = memory {
            open.add_memory(memory);
        }
        let timestamp = record.timestamp.unwrap_or(now_ms);
        let result = open.push(record, timestamp, size);
        let full = open.size() >= limit;
        if result.is_err() && open.is_empty() {
            queue.open = None;
        } else if full {
            queue.seal();
            wake = true;
        }
        if result.is_ok() && record.key.is_none() && record.partition.is_none() {
            sticky.on_append(partition, size, self.sticky_bytes);
        }
        drop(guard);
        if wake {
            self.wake.notify_one();
        }
        match result {
            Ok(delivery) => Appended::Done(delivery),
            Err(error) => Appended::Refused(error),
        }
    }

    fn choose_partition(
        &self,
        rng: &mut fastrand::Rng,
        sticky: &mut Sticky,
        meta: &TopicMeta,
        key: Option<&[u8]>,
    ) -> Option<i32> {
        let (count, available) = (meta.count, &meta.available[..]);
        match (self.config.partitioner, key) {
            (Partitioner::Murmur2 | Partitioner::Murmur2Random, Some(key)) => {
                key_partition(key, count)
            }
            (Partitioner::Murmur2, None) if self.config.sticky => {
                sticky.partition(rng, count, available)
            }
            (Partitioner::Murmur2 | Partitioner::Murmur2Random, None)
            | (Partitioner::Random, _) => partitioner::random(rng, count, available),
        }
    }

    fn new_batch(
        &self,
        tp: TopicPartition,
        id: u64,
        capacity: usize,
        now: Instant,
    ) -> ProducerBatch {
        let buffer = self.pool.take(BATCH_HEADER_LEN + capacity);
        let config = &self.config;
        ProducerBatch::new(
            tp,
            BatchBuilder::with_buffer(
                BatchHeader {
                    compression: config.compression,
                    ..BatchHeader::default()
                },
                buffer,
            ),
            now,
            config.delivery_timeout,
            &self.incomplete,
            id,
            &self.pool,
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
