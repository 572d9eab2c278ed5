//! The consumer's shared state: the assignment, each partition's offsets and leader, and the
//! prefetch buffer, behind one mutex that the application side, the driver and the fetchers
//! take briefly (never across an `.await`).
//!
//! **Epochs.** Every partition has an epoch that changes whenever its offsets are set from
//! outside the fetch loop: assign, seek, pause, an offset reset. Fetch responses, offset
//! lookups and buffered data carry the epoch they were made in, and anything from an older
//! epoch is dropped. Without it this sequence goes wrong: a fetch at offset 100 is in flight,
//! the application seeks to 0, the response arrives and its records (100..) are handed out
//! after the seek, and the position jumps forward past 0..99.
//!
//! **Two offsets.** `position` is the next offset the application gets; `fetch_offset` the
//! next one to fetch. Prefetching keeps `fetch_offset` ahead by what the buffer holds.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::Waker;

use tokio::time::Instant;

use super::buffer::{Buffer, Completed, Entry};
use super::offsets::Offset;
use crate::error::Error;

/// A topic-partition.
pub(crate) type Tp = (Arc<str>, i32);

/// One assigned partition.
#[derive(Debug, Clone)]
pub(crate) struct PartitionState {
    /// The next offset the application gets; `None` until a lookup sets it.
    pub(crate) position: Option<i64>,
    /// The next offset to fetch; `None` until a lookup sets it.
    pub(crate) fetch_offset: Option<i64>,
    /// A lookup to make (earliest, latest, by timestamp) before fetching.
    pub(crate) reset: Option<Offset>,
    /// The leader's broker id, once known.
    pub(crate) leader: Option<i32>,
    /// The leader epoch from metadata, sent with fetches (KIP-320), or -1.
    pub(crate) leader_epoch: i32,
    pub(crate) paused: bool,
    /// A fetch or lookup for it is in flight.
    pub(crate) busy: bool,
    /// Stopped after an error the application must see; cleared by a seek.
    pub(crate) failed: bool,
    pub(crate) epoch: u64,
    /// Failed attempts in a row to find the leader or the offset.
    pub(crate) failures: u32,
    /// No driver work before this.
    pub(crate) retry_at: Option<Instant>,
}

impl PartitionState {
    fn new(epoch: u64, reset: Offset) -> Self {
        let mut p = PartitionState {
            position: None,
            fetch_offset: None,
            reset: None,
            leader: None,
            leader_epoch: -1,
            paused: false,
            busy: false,
            failed: false,
            epoch,
            failures: 0,
            retry_at: None,
        };
        p.start_at(reset);
        p
    }

    fn start_at(&mut self, offset: Offset) {
        match offset {
            Offset::Exact(o) => {
                self.position = Some(o);
                self.fetch_offset = Some(o);
                self.reset = None;
            }
            other => {
                self.position = None;
                self.fetch_offset = None;
                self.reset = Some(other);
            }
        }
    }

    /// Whether a fetcher for `broker` may fetch it now.
    pub(crate) fn fetchable_from(&self, broker: i32) -> bool {
        self.leader == Some(broker)
            && self.fetch_offset.is_some()
            && !self.paused
            && !self.busy
            && !self.failed
    }
}

/// Everything behind the consumer's mutex.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) partitions: HashMap<Tp, PartitionState>,
    pub(crate) buffer: Buffer,
    /// The application task waiting for data, a position or an error.
    pub(crate) waker: Option<Waker>,
    /// A fetcher is waiting for buffer room.
    pub(crate) fetchers_starved: bool,
    pub(crate) closed: bool,
    /// The fetcher tasks, aborted when the consumer is dropped.
    pub(crate) tasks: Vec<tokio::task::AbortHandle>,
    next_epoch: u64,
}

impl State {
    pub(crate) fn new(buffer: Buffer) -> Self {
        State {
            partitions: HashMap::new(),
            buffer,
            waker: None,
            fetchers_starved: false,
            closed: false,
            tasks: Vec::new(),
            next_epoch: 1,
        }
    }

    fn epoch(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch
    }

    /// Wakes the application task, if it waits.
    pub(crate) fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Replaces the assignment. Partitions in both keep their state unless `start` gives them
    /// a new offset; new ones start at their `start` offset.
    ///
    /// Returns the partitions that start afresh, with their epochs.
    pub(crate) fn assign(
        &mut self,
        partitions: Vec<(Tp, Offset)>,
        keep_existing: bool,
    ) -> Vec<(Tp, u64)> {
        let mut next = HashMap::with_capacity(partitions.len());
        let mut fresh = Vec::new();
        for (tp, offset) in partitions {
            match self.partitions.remove(&tp) {
                Some(existing) if keep_existing => {
                    next.insert(tp, existing);
                }
                _ => {
                    self.buffer.remove(&tp);
                    let epoch = self.epoch();
                    fresh.push((tp.clone(), epoch));
                    next.insert(tp, PartitionState::new(epoch, offset));
                }
            }
        }
        for tp in self.partitions.keys() {
            self.buffer.remove(tp);
        }
        self.partitions = next;
        fresh
    }

    /// Stops `tp` at offset `at` (a batch there cannot be read; the caller hands out the
    /// error) and drops what was prefetched after it.
    pub(crate) fn stop_at(&mut self, tp: &Tp, epoch: u64, at: i64) {
        let Some(p) = self.partitions.get_mut(tp).filter(|p| p.epoch == epoch) else {
            return;
        };
        p.position = Some(at);
        p.fetch_offset = Some(at);
        p.failed = true;
        p.busy = false;
        self.buffer.remove(tp);
    }

    /// Moves `tp` to `offset`, dropping what was prefetched and any error it stopped on.
    /// Returns false if `tp` is not assigned.
    pub(crate) fn seek(&mut self, tp: &Tp, offset: Offset) -> bool {
        let epoch = self.epoch();
        let Some(p) = self.partitions.get_mut(tp) else {
            return false;
        };
        p.epoch = epoch;
        p.start_at(offset);
        p.failed = false;
        p.busy = false;
        p.failures = 0;
        p.retry_at = None;
        self.buffer.remove(tp);
        true
    }

    /// Pauses or resumes `tp`. Pausing drops its prefetched data (so a paused partition cannot
    /// hold buffer room that the others need) and rewinds the fetch offset to the position.
    pub(crate) fn set_paused(&mut self, tp: &Tp, paused: bool) -> bool {
        let epoch = self.epoch();
        let Some(p) = self.partitions.get_mut(tp) else {
            return false;
        };
        if p.paused == paused {
            return true;
        }
        p.paused = paused;
        if paused {
            p.epoch = epoch;
            p.busy = false;
            // With a reset pending (out of range), fetching waits for its lookup as before.
            if p.reset.is_none() {
                p.fetch_offset = p.position;
            }
            self.buffer.remove(tp);
        }
        true
    }

    /// Sets the position the application consumed up to; ignored if `epoch` is stale.
    ///
    /// Exact, not a maximum: positions come from the buffer in fetch order, and after an
    /// offset reset the next position can be lower than the last one.
    pub(crate) fn advance(&mut self, tp: &Tp, epoch: u64, position: i64) -> bool {
        match self.partitions.get_mut(tp) {
            Some(p) if p.epoch == epoch => {
                p.position = Some(position);
                true
            }
            _ => false,
        }
    }

    /// Whether data of `epoch` for `tp` is still current.
    pub(crate) fn is_current(&self, tp: &Tp, epoch: u64) -> bool {
        self.partitions.get(tp).is_some_and(|p| p.epoch == epoch)
    }

    /// Stops `tp` and queues `error` for the application, if `epoch` is current.
    pub(crate) fn fail(&mut self, tp: &Tp, epoch: u64, error: Error) {
        let Some(p) = self.partitions.get_mut(tp) else {
            return;
        };
        if p.epoch != epoch {
            return;
        }
        p.failed = true;
        p.busy = false;
        self.buffer.push(Entry::Error {
            tp: tp.clone(),
            epoch,
            error,
        });
        self.wake();
    }

    /// Restarts fetching `tp` from `offset` after the fetch offset turned out to be out of
    /// range. What was prefetched before it stays and is handed out first (as if it had been
    /// consumed before the fetch that failed, which is the order the Java client sees); the
    /// position jumps when the application reaches the new data (see [`State::resolve`]).
    pub(crate) fn reset_fetch(&mut self, tp: &Tp, epoch: u64, offset: Offset) {
        if let Some(p) = self.partitions.get_mut(tp) {
            if p.epoch == epoch && offset.lookup_timestamp().is_some() {
                p.fetch_offset = None;
                p.reset = Some(offset);
                p.busy = false;
            }
        }
    }

    /// Forgets `tp`'s leader (after NOT_LEADER_OR_FOLLOWER, a lost connection...), so the
    /// driver looks it up again after `backoff`.
    pub(crate) fn lose_leader(&mut self, tp: &Tp, epoch: u64, retry_at: Instant) {
        if let Some(p) = self.partitions.get_mut(tp) {
            if p.epoch == epoch {
                p.leader = None;
                p.failures = p.failures.saturating_add(1);
                p.retry_at = Some(retry_at);
            }
        }
    }

    /// Sets the offset a lookup found, if nothing changed meanwhile.
    ///
    /// A partition with no position yet (assigned or sought) starts there. One that had a
    /// position (an offset reset) fetches from there, and an empty entry in the buffer moves
    /// the position when the application gets to it, after the data fetched before.
    pub(crate) fn resolve(&mut self, tp: &Tp, epoch: u64, offset: i64) {
        let Some(p) = self.partitions.get_mut(tp) else {
            return;
        };
        if p.epoch != epoch || p.reset.is_none() {
            return;
        }
        p.reset = None;
        p.busy = false;
        p.fetch_offset = Some(offset);
        p.failures = 0;
        p.retry_at = None;
        if p.position.is_none() {
            p.position = Some(offset);
        } else {
            self.buffer.push(Entry::Data(Completed {
                tp: tp.clone(),
                epoch,
                skip_below: offset,
                batches: VecDeque::new(),
                next_offset: offset,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                bytes: 0,
            }));
        }
    }

    /// The earliest time driver work is due, if some is waiting on a backoff.
    pub(crate) fn next_retry(&self) -> Option<Instant> {
        self.partitions
            .values()
            .filter(|p| !p.failed && (p.leader.is_none() || p.reset.is_some()))
            .filter_map(|p| p.retry_at)
            .min()
    }
}
