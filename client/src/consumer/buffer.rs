//! The prefetch buffer: completed fetches waiting to be consumed, bounded in bytes.
//!
//! Fetchers run ahead of the application while the buffer has room and stop when it is full,
//! so a slow consumer costs bounded memory rather than an ever-growing queue. The bound is
//! kept by reservation: a fetcher reserves the `max_bytes` it asks the broker for before it
//! sends, and may send only while `buffered + reserved` is under the bound. A broker answers
//! within `max_bytes` except that the first batch is always returned whole (KIP-74), so the
//! buffer holds at most the bound plus one batch per fetch in flight (one per broker).
//!
//! Accounting counts the whole records section of each partition's response, skipped
//! batches and a partial trailing batch included: they share the response's allocation, which
//! lives as long as any batch cut from it.

use std::collections::VecDeque;

use sluice_protocol::record::RecordBatch;

use super::state::Tp;
use crate::error::Error;

/// One partition's part of one fetch response, after filtering.
#[derive(Debug)]
pub(crate) struct Completed {
    pub(crate) tp: Tp,
    /// The partition's assignment epoch the fetch was made in.
    pub(crate) epoch: u64,
    /// The fetch offset: records below it in the first batch are skipped.
    pub(crate) skip_below: i64,
    /// Data batches to hand out, in order.
    pub(crate) batches: VecDeque<RecordBatch>,
    /// The position once every batch is consumed (past skipped trailing batches).
    pub(crate) next_offset: i64,
    pub(crate) high_watermark: i64,
    pub(crate) last_stable_offset: i64,
    pub(crate) log_start_offset: i64,
    /// Bytes still accounted to this entry.
    pub(crate) bytes: usize,
}

/// A buffer entry: data, or a partition's error, handed out in fetch order.
#[derive(Debug)]
pub(crate) enum Entry {
    Data(Completed),
    Error { tp: Tp, epoch: u64, error: Error },
}

impl Entry {
    fn tp(&self) -> &Tp {
        match self {
            Entry::Data(c) => &c.tp,
            Entry::Error { tp, .. } => tp,
        }
    }
}

/// What [`Buffer::pop`] hands out.
#[derive(Debug)]
pub(crate) enum Popped {
    /// A batch; `next_offset` is the position after it.
    Batch {
        tp: Tp,
        epoch: u64,
        batch: RecordBatch,
        skip_below: i64,
        next_offset: i64,
        high_watermark: i64,
        last_stable_offset: i64,
        log_start_offset: i64,
    },
    /// A response with no data left to hand out that still moves the position (it held only
    /// control batches or aborted transactions).
    Advance {
        tp: Tp,
        epoch: u64,
        next_offset: i64,
    },
    /// A partition's error.
    Error { tp: Tp, epoch: u64, error: Error },
}

/// Completed fetches in arrival order, with byte accounting.
#[derive(Debug)]
pub(crate) struct Buffer {
    entries: VecDeque<Entry>,
    max: usize,
    /// The least room worth a fetch, so a nearly full buffer does not cause a storm of tiny
    /// fetches while the application drains it.
    min_room: usize,
    bytes: usize,
    reserved: usize,
    peak: usize,
}

impl Buffer {
    /// A buffer bounded at `max` bytes for fetches of at most `fetch_max` bytes.
    pub(crate) fn new(max: usize, fetch_max: usize) -> Self {
        let max = max.max(1);
        Buffer {
            entries: VecDeque::new(),
            max,
            min_room: fetch_max.min(max / 4).max(1),
            bytes: 0,
            reserved: 0,
            peak: 0,
        }
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The most bytes held at once so far.
    pub(crate) fn peak(&self) -> usize {
        self.peak
    }

    /// The bound.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Batches held.
    pub(crate) fn batches(&self) -> usize {
        self.entries
            .iter()
            .map(|e| match e {
                Entry::Data(c) => c.batches.len(),
                Entry::Error { .. } => 0,
            })
            .sum()
    }

    fn room(&self) -> usize {
        self.max.saturating_sub(self.bytes + self.reserved)
    }

    /// Reserves room for a fetch of up to `want` bytes; returns how many bytes to ask for,
    /// or `None` when the buffer is too full to fetch.
    pub(crate) fn reserve(&mut self, want: usize) -> Option<usize> {
        let room = self.room();
        if room == 0 || room < self.min_room.min(want.max(1)) {
            return None;
        }
        let n = want.min(room).max(1);
        self.reserved += n;
        Some(n)
    }

    /// Gives back a reservation once its response is in (or failed).
    pub(crate) fn release(&mut self, reserved: usize) {
        self.reserved = self.reserved.saturating_sub(reserved);
    }

    /// Whether a fetcher that found no room could fetch again.
    pub(crate) fn has_room(&self) -> bool {
        let room = self.room();
        room > 0 && room >= self.min_room
    }

    /// Appends an entry.
    pub(crate) fn push(&mut self, entry: Entry) {
        if let Entry::Data(c) = &entry {
            self.bytes += c.bytes;
            self.peak = self.peak.max(self.bytes);
        }
        self.entries.push_back(entry);
    }

    /// Takes the next batch, advance or error, in arrival order.
    pub(crate) fn pop(&mut self) -> Option<Popped> {
        let entry = self.entries.front_mut()?;
        let Entry::Data(c) = entry else {
            return match self.entries.pop_front() {
                Some(Entry::Error { tp, epoch, error }) => Some(Popped::Error { tp, epoch, error }),
                _ => None,
            };
        };
        let Some(batch) = c.batches.pop_front() else {
            let (tp, epoch, next_offset, bytes) = (c.tp.clone(), c.epoch, c.next_offset, c.bytes);
            self.bytes -= bytes;
            self.entries.pop_front();
            return Some(Popped::Advance {
                tp,
                epoch,
                next_offset,
            });
        };
        let len = batch.as_bytes().len().min(c.bytes);
        c.bytes -= len;
        self.bytes -= len;
        let last = c.batches.is_empty();
        let next_offset = if last {
            c.next_offset
        } else {
            batch.last_offset() + 1
        };
        let popped = Popped::Batch {
            tp: c.tp.clone(),
            epoch: c.epoch,
            batch,
            skip_below: c.skip_below,
            next_offset,
            high_watermark: c.high_watermark,
            last_stable_offset: c.last_stable_offset,
            log_start_offset: c.log_start_offset,
        };
        if last {
            // What is left is skipped data and a partial batch: freed with the entry.
            self.bytes -= c.bytes;
            self.entries.pop_front();
        }
        Some(popped)
    }

    /// Drops everything held for `tp` (after a seek, pause or unassignment).
    pub(crate) fn remove(&mut self, tp: &Tp) {
        let mut freed = 0;
        self.entries.retain(|e| {
            let keep = e.tp() != tp;
            if !keep {
                if let Entry::Data(c) = e {
                    freed += c.bytes;
                }
            }
            keep
        });
        self.bytes -= freed;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::consumer::testutil::batch;
    use crate::error::KafkaCode;
    use sluice_protocol::Compression;

    fn tp(p: i32) -> Tp {
        (Arc::from("t"), p)
    }

    /// An entry of `tp` holding batches at `bases` (10 records each), accounted as their size
    /// plus `extra` bytes of skipped or partial data.
    fn completed(tp: Tp, bases: &[i64], extra: usize) -> Completed {
        let batches: VecDeque<RecordBatch> = bases
            .iter()
            .map(|&b| RecordBatch::from_bytes(batch(b, 10, Compression::None)).unwrap())
            .collect();
        let bytes = batches.iter().map(|b| b.as_bytes().len()).sum::<usize>() + extra;
        let next_offset = bases.last().map_or(0, |b| b + 10) + 5;
        Completed {
            tp,
            epoch: 1,
            skip_below: 0,
            batches,
            next_offset,
            high_watermark: 100,
            last_stable_offset: 100,
            log_start_offset: 0,
            bytes,
        }
    }

    #[test]
    fn bytes_are_counted_in_and_out_to_zero() {
        let mut buffer = Buffer::new(1 << 20, 1 << 20);
        let a = completed(tp(0), &[0, 10], 100);
        let b = completed(tp(1), &[0], 0);
        let (a_bytes, b_bytes) = (a.bytes, b.bytes);
        buffer.push(Entry::Data(a));
        buffer.push(Entry::Data(b));
        assert_eq!(buffer.bytes(), a_bytes + b_bytes);
        assert_eq!(buffer.batches(), 3);

        let Some(Popped::Batch { next_offset, .. }) = buffer.pop() else {
            panic!()
        };
        assert_eq!(
            next_offset, 10,
            "inside an entry the position follows the batch"
        );
        assert!(buffer.bytes() > b_bytes + 100);
        let Some(Popped::Batch {
            next_offset,
            tp: got,
            ..
        }) = buffer.pop()
        else {
            panic!()
        };
        // The last batch of an entry takes the position past the skipped tail (next_offset),
        // and frees the tail's bytes too.
        assert_eq!((got, next_offset), (tp(0), 25));
        assert_eq!(buffer.bytes(), b_bytes);
        assert!(matches!(buffer.pop(), Some(Popped::Batch { .. })));
        assert_eq!(buffer.bytes(), 0);
        assert!(buffer.pop().is_none());
        assert_eq!(buffer.peak(), a_bytes + b_bytes);
    }

    #[test]
    fn entries_without_batches_advance_and_errors_keep_their_place() {
        let mut buffer = Buffer::new(1 << 20, 1 << 20);
        buffer.push(Entry::Data(completed(tp(0), &[], 300)));
        buffer.push(Entry::Error {
            tp: tp(0),
            epoch: 1,
            error: crate::Error::kafka(KafkaCode::CORRUPT_MESSAGE, ""),
        });
        assert_eq!(buffer.bytes(), 300);
        assert!(matches!(
            buffer.pop(),
            Some(Popped::Advance { next_offset: 5, .. })
        ));
        assert_eq!(buffer.bytes(), 0);
        assert!(matches!(buffer.pop(), Some(Popped::Error { .. })));
    }

    #[test]
    fn removing_a_partition_frees_its_bytes_only() {
        let mut buffer = Buffer::new(1 << 20, 1 << 20);
        let keep = completed(tp(1), &[0], 7);
        let keep_bytes = keep.bytes;
        buffer.push(Entry::Data(completed(tp(0), &[0, 10], 50)));
        buffer.push(Entry::Data(keep));
        buffer.push(Entry::Data(completed(tp(0), &[20], 0)));
        buffer.remove(&tp(0));
        assert_eq!(buffer.bytes(), keep_bytes);
        let Some(Popped::Batch { tp: got, .. }) = buffer.pop() else {
            panic!()
        };
        assert_eq!(got, tp(1));
        assert_eq!(buffer.bytes(), 0);
    }

    #[test]
    fn reservations_keep_fetches_within_the_bound() {
        let mut buffer = Buffer::new(1000, 400);
        // Fetches of at most 400 bytes; a quarter of the bound (250) is the least worth asking.
        assert_eq!(buffer.reserve(400), Some(400));
        assert_eq!(buffer.reserve(400), Some(400));
        assert_eq!(
            buffer.reserve(400),
            None,
            "200 bytes of room is under a quarter of the bound"
        );
        assert!(!buffer.has_room());
        buffer.release(400);
        let mut c = completed(tp(0), &[], 0);
        c.bytes = 380;
        buffer.push(Entry::Data(c));
        // 1000 - 380 held - 400 reserved = 220: still too little.
        assert_eq!(buffer.reserve(400), None);
        buffer.release(400);
        assert!(buffer.has_room());
        assert_eq!(buffer.reserve(400), Some(400));
        assert_eq!(buffer.reserve(10_000), None);
        buffer.release(400);
        // A small buffer still fetches: its least fetch is a quarter of it.
        let mut small = Buffer::new(100, 1 << 20);
        assert_eq!(small.reserve(1 << 20), Some(100));
    }
}
