//! Sequence bookkeeping of the idempotent producer: a pure state machine (no I/O, no clock).
//!
//! Why: with idempotence the broker keeps, per producer id and partition, the last sequence
//! numbers it wrote, drops a batch it already has (DUPLICATE_SEQUENCE_NUMBER) and refuses one
//! that would leave a gap (OUT_OF_ORDER_SEQUENCE_NUMBER). Retries then cannot duplicate or
//! reorder records, as long as the client keeps its side straight: a batch keeps the sequence
//! it first got on every retry, and batches are (re)sent so that the broker sees them in order.
//! The sender drives this machine: [`Sequencer::gate`] says whether the head of a partition's
//! queue may be sent now (and stamps it), [`Sequencer::on_response`] turns a response into
//! complete / retry / fail, [`Sequencer::identity_request`] says when InitProducerId is due.
//!
//! The rules, following the Java client (`TransactionManager`, `RecordAccumulator`) and KIP-360:
//!
//! * **Sequences** are assigned when a batch is first drained (never at append, so a batch that
//!   waits long in the queue does not hold a hole), per partition from 0, wrapping from
//!   `i32::MAX` to 0 as Kafka does. At most `max_in_flight` (≤ 5, the broker's dedup window)
//!   batches of a partition are in flight.
//! * **Order across retries.** When a batch fails retriably, the batches sent after it fail
//!   too (the broker refuses their sequences as out of order), and each is put back into the
//!   queue in sequence order, in front of the batches never sent. A retried batch is sent only
//!   when nothing else of its partition is in flight, so retries go one at a time, in order;
//!   new batches follow once the retries are through. OUT_OF_ORDER_SEQUENCE_NUMBER for a batch
//!   that is *not* the next one the broker expects (last acknowledged + 1) means an earlier one
//!   failed: it is retried like any retriable error.
//! * **DUPLICATE_SEQUENCE_NUMBER is success**: an earlier attempt was written.
//! * **A broken chain.** OUT_OF_ORDER_SEQUENCE_NUMBER for the batch the broker should expect
//!   next, UNKNOWN_PRODUCER_ID and INVALID_PRODUCER_EPOCH mean the broker lost (or never had)
//!   our sequence state for the partition; a batch of the chain failing for good (delivery
//!   timeout, a non-retriable error) leaves a hole later batches can never fill. Either way the
//!   partition's chain is *broken*: a new producer identity is requested (KIP-360 epoch bump:
//!   InitProducerId with the current id and epoch where the broker supports it, a fresh id
//!   otherwise), and once **nothing of the partition is in flight** its sequences restart at 0
//!   under the new identity. Its queued batches are then re-sequenced in queue order, except
//!   those that may already be in the log (an attempt ended without a definite answer):
//!   sending those under a new identity could duplicate them, so they fail instead. Batches in
//!   flight when the chain broke are retried (re-sequenced) if their answer says they were
//!   not written, and fail otherwise. The one cheap case needs no new identity: the *last*
//!   batch assigned failing definitely just gives its sequences back.
//! * **Other partitions** keep the identity their chain started with until they are idle
//!   (nothing in flight, no retry queued), then move to the current one, starting again at 0:
//!   the broker requires a new producer id or epoch to start at sequence 0.
//!
//! Without idempotence only the in-flight limit applies and a retried batch is simply resent
//! (with `max_in_flight` > 1 a retry can then reorder records, as in Java).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A producer id and epoch (InitProducerId's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerIdentity {
    /// The producer id.
    pub(crate) id: i64,
    /// The epoch.
    pub(crate) epoch: i16,
}

/// The producer identity and sequences a batch is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// Producer id and epoch written into the batch header.
    pub(crate) producer: ProducerIdentity,
    /// The first record's sequence.
    pub(crate) base_sequence: i32,
    /// Records in the batch.
    pub(crate) count: i32,
    /// Which chain of its partition the sequences belong to.
    generation: u32,
    /// Whether the batch belongs to a transaction (the batch attribute).
    pub(crate) transactional: bool,
}

impl Stamp {
    /// The last record's sequence.
    pub(crate) fn last_sequence(&self) -> i32 {
        add_sequence(self.base_sequence, self.count - 1)
    }
}

/// `sequence + n`, wrapping from `i32::MAX` to 0 (Kafka's `DefaultRecordBatch.incrementSequence`).
pub(crate) fn add_sequence(sequence: i32, n: i32) -> i32 {
    if sequence > i32::MAX - n {
        n - (i32::MAX - sequence) - 1
    } else {
        sequence + n
    }
}

/// Whether sequence `a` comes before `b` (they are at most half the sequence space apart).
fn sequence_before(a: i32, b: i32) -> bool {
    let distance = (i64::from(b) - i64::from(a)).rem_euclid(1 << 31);
    distance != 0 && distance < (1 << 30)
}

/// How an attempt to write a batch ended, as the state machine needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Written: no error, or DUPLICATE_SEQUENCE_NUMBER.
    Written,
    /// A retriable error (including a lost connection or a timeout).
    Retriable,
    /// OUT_OF_ORDER_SEQUENCE_NUMBER.
    OutOfOrder,
    /// UNKNOWN_PRODUCER_ID or INVALID_PRODUCER_EPOCH: the broker has no (or newer) state for us.
    UnknownProducer,
    /// Any other error: retrying would get the same answer.
    Rejected,
}

/// What to do with a batch after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Report success to its records.
    Complete,
    /// Put it back into its partition's queue (see [`Sequencer::requeue_before`]).
    Retry,
    /// Report the error to its records.
    Fail,
}

/// Whether the head of a partition's queue may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Send it, stamped with this (`None` without idempotence). It now counts as in flight.
    Send(Option<Stamp>),
    /// Leave it queued; something else must happen first.
    Wait,
    /// Fail it: its chain was reset and it may already be in the log (see the module docs).
    Fail,
}

/// The head of a partition's queue, as the gate sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    /// The stamp it was sent with before, if it was.
    pub(crate) stamp: Option<Stamp>,
    /// Records in it.
    pub(crate) count: i32,
    /// Whether an earlier attempt ended without a definite answer.
    pub(crate) possibly_written: bool,
}

/// The InitProducerId the driver should send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdentityRequest {
    /// The first one.
    Initial,
    /// A new epoch (or id) to replace this one, whose chain broke somewhere.
    Bump(ProducerIdentity),
}

/// Sequence state of every partition the producer writes to.
#[derive(Debug)]
pub(crate) struct Sequencer<K> {
    idempotent: bool,
    max_in_flight: usize,
    producer: Option<ProducerIdentity>,
    bump_needed: bool,
    /// A transactional producer: its identity comes from the transaction manager, and its
    /// batches are marked transactional.
    transactional: bool,
    partitions: HashMap<K, Chain>,
}

/// One partition's sequence chain.
#[derive(Debug, Default)]
struct Chain {
    /// The identity the chain's sequences belong to.
    producer: Option<ProducerIdentity>,
    generation: u32,
    next_sequence: i32,
    last_acked: Option<i32>,
    /// Sequenced batches not finished, by base sequence in order; `true` while in flight.
    outstanding: VecDeque<(i32, bool)>,
    in_flight: usize,
    broken: bool,
}

impl Chain {
    fn is_next(&self, stamp: &Stamp) -> bool {
        stamp.base_sequence == self.last_acked.map_or(0, |s| add_sequence(s, 1))
    }

    fn finish(&mut self, base_sequence: i32) {
        self.outstanding.retain(|&(b, _)| b != base_sequence);
    }

    fn set_in_flight(&mut self, base_sequence: i32, in_flight: bool) {
        if let Some(entry) = self
            .outstanding
            .iter_mut()
            .find(|(b, _)| *b == base_sequence)
        {
            entry.1 = in_flight;
        }
    }

    fn restart(&mut self, producer: ProducerIdentity) {
        self.producer = Some(producer);
        self.generation = self.generation.wrapping_add(1);
        self.next_sequence = 0;
        self.last_acked = None;
        self.outstanding.clear();
        self.broken = false;
    }
}

impl<K: Hash + Eq + Clone> Sequencer<K> {
    /// A sequencer; without `idempotent` it only counts batches in flight.
    pub(crate) fn new(idempotent: bool, max_in_flight: usize) -> Self {
        Sequencer {
            idempotent,
            max_in_flight: max_in_flight.max(1),
            producer: None,
            bump_needed: false,
            transactional: false,
            partitions: HashMap::new(),
        }
    }

    /// Marks the producer transactional (before any batch is stamped).
    pub(crate) fn set_transactional(&mut self) {
        self.transactional = true;
    }

    /// The current identity.
    pub(crate) fn producer(&self) -> Option<ProducerIdentity> {
        self.producer
    }

    /// The InitProducerId that is due, if any.
    pub(crate) fn identity_request(&self) -> Option<IdentityRequest> {
        match self.producer {
            _ if !self.idempotent => None,
            None => Some(IdentityRequest::Initial),
            Some(current) if self.bump_needed => Some(IdentityRequest::Bump(current)),
            Some(_) => None,
        }
    }

    /// Takes InitProducerId's answer as the current identity.
    pub(crate) fn set_producer(&mut self, producer: ProducerIdentity) {
        self.producer = Some(producer);
        self.bump_needed = false;
    }

    /// Whether a batch of `key` sent before with `stamp` goes back before `other` (the stamp
    /// of a queued batch, `None` if it was never sent) in its partition's queue.
    pub(crate) fn requeue_before(&self, stamp: Option<&Stamp>, other: Option<&Stamp>) -> bool {
        match (stamp, other) {
            // Without idempotence a retry goes to the front, as in Java.
            (None, _) | (_, None) => true,
            (Some(a), Some(b)) => {
                a.generation != b.generation || sequence_before(a.base_sequence, b.base_sequence)
            }
        }
    }

    /// Whether `head`, the first batch of `key`'s queue, may be sent now. `Send` counts it
    /// as in flight; the driver must report its outcome with [`Sequencer::on_response`].
    pub(crate) fn gate(&mut self, key: &K, head: Head) -> Gate {
        let chain = match self.partitions.get_mut(key) {
            Some(chain) => chain,
            None => self.partitions.entry(key.clone()).or_default(),
        };
        if !self.idempotent {
            if chain.in_flight >= self.max_in_flight {
                return Gate::Wait;
            }
            chain.in_flight += 1;
            return Gate::Send(None);
        }
        let Some(current) = self.producer else {
            return Gate::Wait;
        };
        if let Some(stamp) = head.stamp {
            if stamp.generation == chain.generation && !chain.broken {
                // A retry within the chain: alone, so nothing after it is written first.
                if chain.in_flight > 0 {
                    return Gate::Wait;
                }
                chain.set_in_flight(stamp.base_sequence, true);
                chain.in_flight += 1;
                return Gate::Send(Some(stamp));
            }
        }
        // A new batch, or one whose chain broke: it needs a chain on the current identity.
        if chain.broken || chain.producer != Some(current) {
            if chain.in_flight > 0 || (chain.broken && self.bump_needed) {
                return Gate::Wait;
            }
            chain.restart(current);
        }
        if head.stamp.is_some() && head.possibly_written {
            return Gate::Fail;
        }
        if chain.in_flight >= self.max_in_flight || chain.outstanding.iter().any(|&(_, f)| !f) {
            return Gate::Wait;
        }
        let stamp = Stamp {
            producer: current,
            base_sequence: chain.next_sequence,
            count: head.count.max(1),
            generation: chain.generation,
            transactional: self.transactional,
        };
        chain.next_sequence = add_sequence(chain.next_sequence, stamp.count);
        chain.outstanding.push_back((stamp.base_sequence, true));
        chain.in_flight += 1;
        Gate::Send(Some(stamp))
    }

    /// The outcome of an attempt of a batch `gate` let through. `may_retry`: whether its
    /// retries and delivery timeout allow another attempt. `possibly_written`: whether this
    /// or an earlier attempt ended without a definite answer.
    pub(crate) fn on_response(
        &mut self,
        key: &K,
        stamp: Option<Stamp>,
        outcome: Outcome,
        may_retry: bool,
        possibly_written: bool,
    ) -> Verdict {
        let simple = match outcome {
            Outcome::Written => Verdict::Complete,
            Outcome::Retriable if may_retry => Verdict::Retry,
            _ => Verdict::Fail,
        };
        let Some(chain) = self.partitions.get_mut(key) else {
            return simple;
        };
        chain.in_flight = chain.in_flight.saturating_sub(1);
        let Some(stamp) = stamp.filter(|s| self.idempotent && s.generation == chain.generation)
        else {
            return simple;
        };
        chain.set_in_flight(stamp.base_sequence, false);
        match outcome {
            Outcome::Written => {
                chain.finish(stamp.base_sequence);
                let last = stamp.last_sequence();
                if chain
                    .last_acked
                    .is_none_or(|acked| sequence_before(acked, last))
                {
                    chain.last_acked = Some(last);
                }
                Verdict::Complete
            }
            Outcome::Retriable if may_retry && !chain.broken => Verdict::Retry,
            Outcome::OutOfOrder if may_retry && !chain.broken && !chain.is_next(&stamp) => {
                Verdict::Retry
            }
            // Broken before or by this answer; re-sequenced after the reset if not written.
            Outcome::Retriable | Outcome::OutOfOrder | Outcome::UnknownProducer
                if chain.broken
                    || matches!(outcome, Outcome::OutOfOrder | Outcome::UnknownProducer) =>
            {
                let broke_now = !chain.broken;
                chain.broken = true;
                if broke_now && chain.producer == self.producer {
                    self.bump_needed = true;
                }
                if may_retry && !possibly_written {
                    Verdict::Retry
                } else {
                    Verdict::Fail
                }
            }
            _ => {
                self.abandon(key, stamp, possibly_written);
                Verdict::Fail
            }
        }
    }

    /// A batch of `key` with `stamp` failed for good without being in flight (its delivery
    /// timeout passed in the queue).
    pub(crate) fn on_abandoned(&mut self, key: &K, stamp: Option<Stamp>, possibly_written: bool) {
        if let Some(stamp) = stamp.filter(|_| self.idempotent) {
            self.abandon(key, stamp, possibly_written);
        }
    }

    /// A batch of the chain will never be written (as far as we know): the chain must not go
    /// on past the hole it leaves.
    fn abandon(&mut self, key: &K, stamp: Stamp, possibly_written: bool) {
        let Some(chain) = self.partitions.get_mut(key) else {
            return;
        };
        if stamp.generation != chain.generation {
            return;
        }
        chain.finish(stamp.base_sequence);
        if chain.broken {
            return;
        }
        if !possibly_written
            && add_sequence(stamp.base_sequence, stamp.count) == chain.next_sequence
        {
            // The last batch assigned, never written: nothing follows it, take its numbers back.
            chain.next_sequence = stamp.base_sequence;
            return;
        }
        chain.broken = true;
        if chain.producer == self.producer {
            self.bump_needed = true;
        }
    }

    #[cfg(test)]
    /// Batches of `key` in flight.
    pub(crate) fn in_flight(&self, key: &K) -> usize {
        self.partitions.get(key).map_or(0, |c| c.in_flight)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "idempotence_tests.rs"]
mod tests;
