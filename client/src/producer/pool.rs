//! Batch buffers kept for reuse by the producer (see [`BufferPool`]).

use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::{Bytes, BytesMut};

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
    pub(crate) fn take_cold(&self, capacity: usize) -> BytesMut {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
}
