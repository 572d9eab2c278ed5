//! Consuming records: assign partitions, seek, and read whole record batches (or records)
//! from a prefetching fetcher.
//!
//! Why batches: a fetched [`RecordBatch`](sluice_protocol::record::RecordBatch) is a slice of
//! the fetch response, and its records are slices of it, so handing out the batch hands out
//! the data without a copy (decompression is the only one). The stream layer processes
//! batches; [`Consumer::recv`] and [`Consumer::records`] give one owned record at a time for
//! everything else, still sharing the fetched buffers.
//!
//! How: a driver task looks up leaders and starting offsets, and one fetcher task per leader
//! broker fetches ahead into a buffer bounded in bytes (`max_buffered_bytes`), stopping while
//! it is full. `read_committed` drops aborted transactions on the client, from the fetch
//! response's list of them ([`aborted`]). Consumer groups come later; this consumer reads the
//! partitions it is told to.
//!
//! References: the protocol guide's Fetch and ListOffsets; KIP-74 (fetch sizes), KIP-98
//! (transactions and isolation), KIP-320 (leader epochs in fetches), KIP-580 (retry backoff).

pub mod aborted;
mod buffer;
mod completed;
mod driver;
mod fetcher;
mod offsets;
mod record;
mod state;
mod stream;
#[cfg(test)]
mod testutil;

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use sluice_protocol::Decompressor;
use tokio::task::JoinHandle;

pub use offsets::Offset;
pub use record::{ConsumerRecord, FetchedBatch, RecordHeader};
pub use stream::Records;

use buffer::{Buffer, Popped};
use driver::{Settings, Shared};
use state::{State, Tp};

use crate::cluster::{Cluster, ClusterOptions};
use crate::config::ConsumerConfig;
use crate::error::{Error, KafkaCode, Result};

/// The prefetch buffer's counters, for monitoring and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferStats {
    /// Fetched bytes waiting to be handed out.
    pub bytes: usize,
    /// The most bytes that waited at once since the consumer started.
    pub peak_bytes: usize,
    /// Batches waiting.
    pub batches: usize,
    /// The bound (`max_buffered_bytes`). Fetching pauses at it; the buffer can exceed it by
    /// at most one record batch per broker, as a broker always returns a fetch's first batch
    /// whole (KIP-74).
    pub max_bytes: usize,
}

/// Records of a batch handed out one at a time by [`Consumer::recv`].
#[derive(Debug)]
struct Pending {
    batch: FetchedBatch,
    records: VecDeque<ConsumerRecord>,
}

/// A Kafka consumer of assigned partitions.
///
/// Fetching runs in background tasks from [`Consumer::new`] until the consumer is dropped;
/// the `Consumer` itself reads from the prefetch buffer. It implements
/// [`futures::Stream`] of [`FetchedBatch`]es; [`Consumer::records`] adapts it to a stream of
/// [`ConsumerRecord`]s.
///
/// Errors that concern one partition (a corrupt batch, OFFSET_OUT_OF_RANGE under
/// `auto.offset.reset=none`, an authorization failure) are returned in that partition's
/// order, after the data fetched before them; the partition then stops until it is sought.
/// Other partitions go on.
#[derive(Debug)]
pub struct Consumer {
    shared: Arc<Shared>,
    driver: JoinHandle<()>,
    decompressor: Decompressor,
    pending: Option<Pending>,
}

fn tp(topic: &str, partition: i32) -> Tp {
    (Arc::from(topic), partition)
}

impl Consumer {
    /// Connects to the cluster and starts the background driver. Nothing is fetched until
    /// partitions are assigned.
    ///
    /// Cancel safety: safe to drop; nothing is started until it returns.
    pub async fn new(config: ConsumerConfig) -> Result<Consumer> {
        let cluster = Cluster::connect(ClusterOptions::from_client(config.client())).await?;
        let settings = Settings::new(&config);
        let buffer = Buffer::new(config.max_buffered_bytes(), settings.max_bytes);
        let shared = Arc::new(Shared::new(State::new(buffer), cluster, settings));
        let driver = tokio::spawn(driver::run(Arc::clone(&shared)));
        Ok(Consumer {
            shared,
            driver,
            decompressor: Decompressor::new(),
            pending: None,
        })
    }

    /// Reads exactly `partitions` from now on, replacing the assignment. Partitions already
    /// assigned keep their position and prefetched data; new ones start where
    /// `auto.offset.reset` says (earliest or latest; with `none` their first read fails
    /// with OFFSET_OUT_OF_RANGE until they are sought). A topic or partition that does not
    /// exist (yet) is looked up again with backoff until it does.
    pub fn assign<T: AsRef<str>>(&mut self, partitions: &[(T, i32)]) {
        let start = self.shared.settings.reset_offset();
        let list = partitions
            .iter()
            .map(|(t, p)| (tp(t.as_ref(), *p), start.unwrap_or(Offset::End)))
            .collect();
        let mut st = self.shared.lock();
        let fresh = st.assign(list, true);
        if start.is_none() {
            for (tp, epoch) in fresh {
                let error = Error::kafka(
                    KafkaCode::OFFSET_OUT_OF_RANGE,
                    format!(
                        "{}-{} has no starting offset and auto.offset.reset is none",
                        tp.0, tp.1
                    ),
                );
                st.fail(&tp, epoch, error);
            }
        }
        self.after_change(st);
    }

    /// Reads exactly `partitions` from now on, each from the offset given, replacing the
    /// assignment. Every listed partition starts over, even if it was assigned.
    pub fn assign_with_offsets<T: AsRef<str>>(&mut self, partitions: &[(T, i32, Offset)]) {
        let list = partitions
            .iter()
            .map(|(t, p, o)| (tp(t.as_ref(), *p), *o))
            .collect();
        let mut st = self.shared.lock();
        st.assign(list, false);
        self.after_change(st);
    }

    /// Replaces the assignment for a consumer group: partitions already assigned keep their
    /// position and prefetched data (the offset given for them is ignored), new ones start at
    /// the offset given.
    pub(crate) fn assign_keeping(&mut self, partitions: Vec<(String, i32, Offset)>) {
        let list = partitions
            .into_iter()
            .map(|(t, p, o)| (tp(&t, p), o))
            .collect();
        let mut st = self.shared.lock();
        st.assign(list, true);
        self.after_change(st);
    }

    /// The cluster the consumer talks to (shared with its group membership).
    pub(crate) fn cluster(&self) -> &crate::cluster::Cluster {
        &self.shared.cluster
    }

    /// Moves an assigned partition to `offset`: prefetched data is dropped, an error it stopped
    /// on is cleared, and the next record handed out for it is at `offset` (or where the
    /// lookup of `Beginning`, `End` or a timestamp lands).
    ///
    /// Fails with UNKNOWN_TOPIC_OR_PARTITION if it is not assigned, and with a config error
    /// for a negative exact offset.
    pub fn seek(&mut self, topic: &str, partition: i32, offset: Offset) -> Result<()> {
        if let Offset::Exact(o) = offset {
            if o < 0 {
                return Err(Error::Config {
                    property: "offset".into(),
                    reason: format!("{o} is negative"),
                });
            }
        }
        let key = tp(topic, partition);
        let mut st = self.shared.lock();
        if !st.seek(&key, offset) {
            return Err(not_assigned(topic, partition));
        }
        self.after_change(st);
        Ok(())
    }

    /// Stops handing out and fetching records of these partitions. What was prefetched for
    /// them is dropped, and fetching resumes at their position. Unassigned ones are ignored.
    pub fn pause<T: AsRef<str>>(&mut self, partitions: &[(T, i32)]) {
        self.set_paused(partitions, true);
    }

    /// Resumes paused partitions where they stopped.
    pub fn resume<T: AsRef<str>>(&mut self, partitions: &[(T, i32)]) {
        self.set_paused(partitions, false);
    }

    fn set_paused<T: AsRef<str>>(&mut self, partitions: &[(T, i32)], paused: bool) {
        let mut st = self.shared.lock();
        for (t, p) in partitions {
            st.set_paused(&tp(t.as_ref(), *p), paused);
        }
        self.after_change(st);
    }

    /// Whether the partition is assigned and paused.
    pub fn is_paused(&self, topic: &str, partition: i32) -> bool {
        self.shared
            .lock()
            .partitions
            .get(&tp(topic, partition))
            .is_some_and(|p| p.paused)
    }

    /// The offset of the next record this consumer hands out for the partition, or `None`
    /// if it is not assigned or its starting offset is still being looked up.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.shared
            .lock()
            .partitions
            .get(&tp(topic, partition))
            .and_then(|p| p.position)
    }

    /// Waits until the partition's starting offset is known and returns
    /// [`position`](Self::position).
    ///
    /// Cancel safety: cancel safe; it only reads.
    pub async fn resolved_position(&mut self, topic: &str, partition: i32) -> Result<i64> {
        let key = tp(topic, partition);
        poll_fn(|cx| {
            let mut st = self.shared.lock();
            let Some(p) = st.partitions.get(&key) else {
                return Poll::Ready(Err(not_assigned(topic, partition)));
            };
            if let Some(position) = p.position {
                return Poll::Ready(Ok(position));
            }
            if p.failed {
                let reason =
                    format!("{topic}-{partition} stopped on an error; poll it to see the error");
                return Poll::Ready(Err(Error::kafka(KafkaCode::OFFSET_OUT_OF_RANGE, reason)));
            }
            st.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// The assigned partitions, sorted.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        let mut list: Vec<(String, i32)> = self
            .shared
            .lock()
            .partitions
            .keys()
            .map(|(t, p)| (t.to_string(), *p))
            .collect();
        list.sort();
        list
    }

    /// The prefetch buffer's counters.
    pub fn buffer_stats(&self) -> BufferStats {
        let st = self.shared.lock();
        BufferStats {
            bytes: st.buffer.bytes(),
            peak_bytes: st.buffer.peak(),
            batches: st.buffer.batches(),
            max_bytes: st.buffer.max(),
        }
    }

    /// Waits for the next batch of any assigned, unpaused partition.
    ///
    /// Batches of one partition come in offset order; a partition's error comes in the same
    /// order (see [`Consumer`]). With nothing assigned it waits until something is.
    ///
    /// Cancel safety: cancel safe. A batch is taken from the buffer only when it is returned,
    /// so dropping the future loses nothing.
    pub async fn poll_batch(&mut self) -> Result<FetchedBatch> {
        poll_fn(|cx| self.poll_batch_inner(cx)).await
    }

    /// Waits for the next record.
    ///
    /// Records are taken a batch at a time and handed out one by one; the position moves
    /// with each. Mixed with [`poll_batch`](Self::poll_batch), the rest of a partly handed out
    /// batch comes first.
    ///
    /// Cancel safety: cancel safe, like `poll_batch`.
    pub async fn recv(&mut self) -> Result<ConsumerRecord> {
        poll_fn(|cx| self.poll_record(cx)).await
    }

    /// The consumer as a stream of records (the consumer itself streams batches).
    pub fn records(&mut self) -> Records<'_> {
        Records::new(self)
    }

    fn after_change(&self, st: std::sync::MutexGuard<'_, State>) {
        drop(st);
        self.shared.wake_all();
    }

    /// Hands out the next batch, or registers the task's waker.
    pub(crate) fn poll_batch_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<FetchedBatch>> {
        if let Some(mut pending) = self.pending.take() {
            if let Some(first) = pending.records.front() {
                let st = self.shared.lock();
                if st.is_current(&pending.batch.topic_partition(), pending.batch.epoch) {
                    pending.batch.skip_below = first.offset;
                    drop(st);
                    self.commit_position(&pending.batch, pending.batch.next_offset);
                    return Poll::Ready(Ok(pending.batch));
                }
            }
        }
        loop {
            let popped = {
                let mut st = self.shared.lock();
                let popped = st.buffer.pop();
                if st.fetchers_starved && st.buffer.has_room() {
                    st.fetchers_starved = false;
                    self.shared.fetch_wake.send_replace(());
                }
                match popped {
                    Some(p) => p,
                    None => {
                        st.waker = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                }
            };
            match popped {
                Popped::Error { tp, epoch, error } => {
                    if self.shared.lock().is_current(&tp, epoch) {
                        return Poll::Ready(Err(error));
                    }
                }
                Popped::Advance {
                    tp,
                    epoch,
                    next_offset,
                } => {
                    self.shared.lock().advance(&tp, epoch, next_offset);
                }
                Popped::Batch {
                    tp,
                    epoch,
                    batch,
                    skip_below,
                    next_offset,
                    high_watermark,
                    last_stable_offset,
                    log_start_offset,
                } => {
                    let records = match batch.decode(&mut self.decompressor) {
                        Ok(records) => records,
                        Err(e) => {
                            if !self.shared.lock().is_current(&tp, epoch) {
                                continue;
                            }
                            let at = skip_below.max(batch.base_offset());
                            return Poll::Ready(Err(self.stop_at(&tp, epoch, at, &e)));
                        }
                    };
                    let fetched = FetchedBatch {
                        topic: tp.0,
                        partition: tp.1,
                        batch,
                        records,
                        skip_below,
                        next_offset,
                        high_watermark,
                        last_stable_offset,
                        log_start_offset,
                        epoch,
                    };
                    if self.commit_position(&fetched, next_offset) {
                        return Poll::Ready(Ok(fetched));
                    }
                }
            }
        }
    }

    /// Stops a partition at the batch at `at` that cannot be read, so that a seek past it is
    /// the way on (the Java client stops there too), and returns the error to hand out.
    fn stop_at(&self, tp: &Tp, epoch: u64, at: i64, e: &dyn std::fmt::Display) -> Error {
        let error = Error::kafka(
            KafkaCode::CORRUPT_MESSAGE,
            format!("{}-{}: record batch at offset {at}: {e}", tp.0, tp.1),
        );
        self.shared.lock().stop_at(tp, epoch, at);
        error
    }

    /// Moves the position past what is handed out; false if the partition moved meanwhile
    /// (then the data is stale and dropped).
    fn commit_position(&self, batch: &FetchedBatch, position: i64) -> bool {
        self.shared
            .lock()
            .advance(&batch.topic_partition(), batch.epoch, position)
    }

    /// Hands out the next record, or registers the task's waker.
    pub(crate) fn poll_record(&mut self, cx: &mut Context<'_>) -> Poll<Result<ConsumerRecord>> {
        loop {
            if let Some(pending) = &mut self.pending {
                if let Some(record) = pending.records.pop_front() {
                    let key = pending.batch.topic_partition();
                    let position = if pending.records.is_empty() {
                        pending.batch.next_offset
                    } else {
                        record.offset + 1
                    };
                    if self
                        .shared
                        .lock()
                        .advance(&key, pending.batch.epoch, position)
                    {
                        return Poll::Ready(Ok(record));
                    }
                    // Sought or paused since: the rest is stale.
                    self.pending = None;
                    continue;
                }
                self.pending = None;
            }
            let batch = match self.poll_batch_inner(cx) {
                Poll::Ready(Ok(batch)) => batch,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            let records = match batch.to_records() {
                Ok(records) => records,
                Err(e) => {
                    let at = batch.first_offset();
                    return Poll::Ready(Err(self.stop_at(
                        &batch.topic_partition(),
                        batch.epoch,
                        at,
                        &e,
                    )));
                }
            };
            // poll_batch_inner moved the position past the batch; set it back to its start so
            // it follows the records handed out.
            let start = records.first().map_or(batch.next_offset, |r| r.offset);
            self.shared
                .lock()
                .advance(&batch.topic_partition(), batch.epoch, start);
            self.pending = Some(Pending {
                batch,
                records: records.into(),
            });
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.closed = true;
        for task in st.tasks.drain(..) {
            task.abort();
        }
        drop(st);
        self.shared.wake_all();
        self.driver.abort();
    }
}

fn not_assigned(topic: &str, partition: i32) -> Error {
    Error::kafka(
        KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
        format!("{topic}-{partition} is not assigned to this consumer"),
    )
}
