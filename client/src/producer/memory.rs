//! Bounded buffer memory (`buffer.memory`): a semaphore of byte permits.
//!
//! Why: without a bound, a producer faster than its brokers grows until the process dies.
//! `send` reserves the record's bytes before it is appended to a batch and the batch gives
//! them back when it completes (acknowledged or failed), so at most `buffer_memory` bytes of
//! records wait in the producer. When that is reached `send` waits for room (back-pressure)
//! up to its deadline, then gives the record back.
//!
//! What is counted is an upper bound of each record's encoded size, not allocator capacity:
//! batch headers, the spare capacity of batch buffers and the buffers kept for reuse (at most
//! about `buffer_memory` of them, see `writer.rs`) come on top (Java counts whole `batch.size`
//! buffers instead).
//!
//! A semaphore operation per record cost more than encoding the record, so an open batch
//! reserves in chunks ([`BufferMemory::chunk`]: 1/32 of the buffer, at most 256 KiB) and its
//! records draw on that credit; what a batch did not use is given back when it is sealed. At
//! most one chunk per open batch is thus held without a record in it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::{Error, KafkaCode, Result};

/// The producer's record memory.
#[derive(Debug)]
pub(crate) struct BufferMemory {
    permits: Arc<Semaphore>,
    total: usize,
}

/// Bytes reserved by one record or, merged, by one batch. Dropping it gives them back.
#[derive(Debug, Default)]
pub(crate) struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    /// Adds `other`'s bytes to this reservation.
    pub(crate) fn merge(&mut self, other: Reservation) {
        match (&mut self.permit, other.permit) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
    }

    /// The bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }

    /// Gives back all but `keep` bytes (nothing if it holds no more than that).
    pub(crate) fn shrink_to(&mut self, keep: usize) {
        let Some(permit) = &mut self.permit else {
            return;
        };
        let spare = permit.num_permits().saturating_sub(keep);
        if spare > 0 {
            // Dropping the split-off permit releases its bytes.
            drop(permit.split(spare));
        }
    }
}

impl BufferMemory {
    /// `total` bytes of record memory.
    pub(crate) fn new(total: usize) -> Self {
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        BufferMemory {
            permits: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// The bytes there are in all.
    pub(crate) fn total(&self) -> usize {
        self.total
    }

    /// The bytes free right now.
    pub(crate) fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// How many bytes an open batch reserves at a time.
    pub(crate) fn chunk(&self) -> usize {
        (self.total / 32).min(256 * 1024)
    }

    /// Reserves `bytes` if they are free right now. Never takes bytes that a waiting
    /// `reserve` is owed: the semaphore hands released bytes to its waiters first.
    pub(crate) fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let n = u32::try_from(bytes).ok()?;
        let permit = Arc::clone(&self.permits).try_acquire_many_owned(n).ok()?;
        Some(Reservation {
            permit: Some(permit),
        })
    }

    /// Reserves `bytes`, waiting until `deadline` for them to be free.
    ///
    /// Fails with MESSAGE_TOO_LARGE if `bytes` exceeds the whole buffer (it could never fit),
    /// `Timeout` at the deadline and `Closed` once the producer is closing. Waiters are served
    /// in order (the semaphore is fair), so a large record is not starved by small ones.
    ///
    /// Cancel safety: safe to drop; nothing is reserved unless it returns `Ok`.
    pub(crate) async fn reserve(
        &self,
        bytes: usize,
        deadline: Instant,
        bound: Duration,
    ) -> Result<Reservation> {
        let n = u32::try_from(bytes)
            .ok()
            .filter(|_| bytes <= self.total)
            .ok_or_else(|| {
                Error::kafka(
                    KafkaCode::MESSAGE_TOO_LARGE,
                    format!(
                        "a record of up to {bytes} bytes does not fit in buffer.memory ({} bytes)",
                        self.total
                    ),
                )
            })?;
        // Fast path without a timer.
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_many_owned(n) {
            return Ok(Reservation {
                permit: Some(permit),
            });
        }
        if self.permits.is_closed() {
            return Err(Error::Closed);
        }
        tracing::trace!(
            bytes,
            available = self.available(),
            "buffer memory full, waiting"
        );
        match tokio::time::timeout_at(deadline, Arc::clone(&self.permits).acquire_many_owned(n))
            .await
        {
            Ok(Ok(permit)) => Ok(Reservation {
                permit: Some(permit),
            }),
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout {
                what: format!("{bytes} bytes of producer buffer memory"),
                after: bound,
            }),
        }
    }

    /// Fails every waiting and later `reserve`; reservations held stay valid.
    pub(crate) fn close(&self) {
        self.permits.close();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn reserve_waits_for_released_bytes() {
        let memory = Arc::new(BufferMemory::new(100));
        let a = memory
            .reserve(60, soon(1000), Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(memory.available(), 40);
        let waiter = {
            let memory = Arc::clone(&memory);
            tokio::spawn(
                async move { memory.reserve(50, soon(5000), Duration::from_secs(5)).await },
            )
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiter.is_finished(),
            "50 bytes must wait while only 40 are free"
        );
        drop(a);
        let b = waiter.await.unwrap().unwrap();
        assert_eq!(b.bytes(), 50);
        assert_eq!(memory.available(), 50);
    }

    #[tokio::test]
    async fn reserve_times_out_and_too_large_fails_at_once() {
        let memory = BufferMemory::new(100);
        let _held = memory
            .reserve(100, soon(1000), Duration::from_secs(1))
            .await
            .unwrap();
        let err = memory
            .reserve(1, soon(20), Duration::from_millis(20))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        let err = memory
            .reserve(101, soon(1000), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(KafkaCode::MESSAGE_TOO_LARGE));
    }

    #[tokio::test]
    async fn merged_reservations_release_together_and_close_fails_waiters() {
        let memory = BufferMemory::new(100);
        let mut batch = Reservation::default();
        for _ in 0..4 {
            batch.merge(
                memory
                    .reserve(20, soon(1000), Duration::from_secs(1))
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(batch.bytes(), 80);
        assert_eq!(memory.available(), 20);
        drop(batch);
        assert_eq!(memory.available(), 100);
        let _all = memory
            .reserve(100, soon(1000), Duration::from_secs(1))
            .await
            .unwrap();
        memory.close();
        let err = memory
            .reserve(1, soon(1000), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Closed));
    }
}
