//! Output buffers for decompression, recycled once every record of a batch is dropped.
//!
//! A decompressed batch must be a buffer of its own (records are slices of it and may outlive
//! the next batch), and safe decoders write only into initialized memory, so a fresh buffer
//! per batch costs an allocation and a memset as large as the batch: a fifth of lz4 decode
//! time in the codec benchmark. Instead the `Bytes` handed out owns a pooled `Vec` whose
//! drop puts it back; the next batch decodes over the stale bytes without zeroing them.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytes::Bytes;

/// Buffers kept for reuse at most.
const MAX_POOLED: usize = 4;
/// Buffers larger than this are freed rather than kept, so one huge batch does not pin its
/// memory for the life of the consumer.
const MAX_POOLED_CAPACITY: usize = 4 << 20;

type Free = Mutex<Vec<Vec<u8>>>;

/// A small pool of decompression buffers.
#[derive(Debug, Default)]
pub(super) struct BufferPool {
    free: Arc<Free>,
}

impl BufferPool {
    /// A buffer to decode into: its length is initialized space, not output.
    pub(super) fn take(&self) -> Vec<u8> {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    /// Gives back a buffer that was not handed out (a failed decode).
    pub(super) fn put(&self, buf: Vec<u8>) {
        recycle(&self.free, buf);
    }

    /// Hands out the first `len` bytes of `buf`; the buffer returns when the last `Bytes`
    /// sharing it is dropped.
    pub(super) fn share(&self, buf: Vec<u8>, len: usize) -> Bytes {
        let len = len.min(buf.len());
        Bytes::from_owner(Pooled {
            buf,
            len,
            pool: Arc::downgrade(&self.free),
        })
    }
}

fn recycle(free: &Free, buf: Vec<u8>) {
    if buf.capacity() > MAX_POOLED_CAPACITY {
        return;
    }
    let mut free = free.lock().unwrap_or_else(PoisonError::into_inner);
    if free.len() < MAX_POOLED {
        free.push(buf);
    }
}

/// The owner behind a pooled `Bytes`.
struct Pooled {
    buf: Vec<u8>,
    len: usize,
    pool: Weak<Free>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(free) = self.pool.upgrade() {
            recycle(&free, std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_returns_only_after_its_last_view_is_dropped() {
        let pool = BufferPool::default();
        let shared = pool.share(vec![7u8; 100], 10);
        let view = shared.slice(2..5);
        drop(shared);
        assert!(pool.take().is_empty(), "a view is still alive");
        drop(view);
        let back = pool.take();
        assert_eq!(back.len(), 100, "the whole initialized buffer comes back");
        assert!(pool.take().is_empty());
    }

    #[test]
    fn huge_buffers_are_not_kept() {
        let pool = BufferPool::default();
        drop(pool.share(vec![0u8; MAX_POOLED_CAPACITY + 1], 1));
        assert!(pool.take().is_empty());
    }
}
