//! One completion per batch, shared by the delivery futures of all its records.
//!
//! Why: a batch is acknowledged as a whole (one base offset, one append time, or one error), so
//! it is settled once, here, and each record's [`DeliveryFuture`](super::DeliveryFuture) derives
//! its own answer from it: offset = base offset + the record's index in the batch. A oneshot
//! channel and a `RecordMetadata` per record, made and sent by the producer, were a large part
//! of the cost of `send`.
//!
//! The result is written once ([`OnceLock`]) and read without a lock; wakers of futures that
//! were polled before the batch settled wait in a list under a mutex. The rule that keeps a
//! waiter from sleeping forever: `settle` writes the result *before* it takes the list, and a
//! poller checks the result again *after* it has put its waker in the list (under the lock), so
//! either the settler finds the waker or the poller finds the result.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::Waker;

use super::batch::{Ack, TopicPartition};
use crate::error::{Error, Result};

/// The shared outcome of one batch.
#[derive(Debug)]
pub(crate) struct Completion {
    pub(crate) tp: TopicPartition,
    outcome: OnceLock<Result<Ack>>,
    wakers: Mutex<Vec<Waker>>,
}

impl Completion {
    pub(crate) fn new(tp: TopicPartition) -> Arc<Self> {
        Arc::new(Completion {
            tp,
            outcome: OnceLock::new(),
            wakers: Mutex::new(Vec::new()),
        })
    }

    /// The outcome, once settled.
    pub(crate) fn outcome(&self) -> Option<&Result<Ack>> {
        self.outcome.get()
    }

    /// Settles the batch (the first call wins) and wakes every waiting future.
    pub(crate) fn settle(&self, outcome: Result<Ack>) {
        if self.outcome.set(outcome).is_err() {
            return;
        }
        let wakers = std::mem::take(&mut *self.lock());
        for waker in wakers {
            waker.wake();
        }
    }

    /// Registers `waker` unless the batch settled meanwhile. `slot` is where this future's
    /// waker sits in the list, if it registered before; it is replaced there rather than
    /// added again, so a future polled many times holds one entry.
    ///
    /// Returns the outcome if it is settled after all.
    pub(crate) fn register(&self, waker: &Waker, slot: &mut WakerSlot) -> Option<&Result<Ack>> {
        let mut wakers = self.lock();
        // Checked under the lock: see the module doc for the race this closes.
        if let Some(outcome) = self.outcome.get() {
            return Some(outcome);
        }
        match wakers.get_mut(slot.0 as usize) {
            Some(registered) => registered.clone_from(waker),
            None => match u32::try_from(wakers.len()) {
                Ok(i) if i != WakerSlot::NONE.0 => {
                    *slot = WakerSlot(i);
                    wakers.push(waker.clone());
                }
                // More waiting futures than a batch holds records: cannot happen, but waking
                // at once (the caller polls again) is correct if it did.
                _ => waker.wake_by_ref(),
            },
        }
        None
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waker>> {
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where a future's waker sits in a completion's list (`NONE` before it registered). A `u32`
/// rather than an `Option<usize>` keeps [`DeliveryFuture`](super::DeliveryFuture) small;
/// callers keep many of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WakerSlot(u32);

impl WakerSlot {
    pub(crate) const NONE: WakerSlot = WakerSlot(u32::MAX);
}

/// Held by a batch: settles its completion with `Closed` if the batch is dropped unanswered
/// (the sender task ended: closed past its bound, or the runtime shut down).
#[derive(Debug)]
pub(crate) struct CompletionGuard(pub(crate) Arc<Completion>);

impl Drop for CompletionGuard {
    fn drop(&mut self) {
        self.0.settle(Err(Error::Closed));
    }
}
