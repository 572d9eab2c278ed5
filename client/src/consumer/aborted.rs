//! `read_committed` filtering: which fetched batches belong to aborted transactions.
//!
//! A broker returns every batch up to the last stable offset, aborted ones included, plus a
//! list of the aborted transactions that overlap the fetched range: (producer id, first
//! offset). The consumer drops the batches of those transactions itself. The rule is the Java
//! client's (`CompletedFetch.nextFetchedRecord`), walked in offset order:
//!
//! 1. Before a batch of producer P is judged, every listed transaction whose first offset is
//!    at or below the batch's last offset becomes *active*: its producer id joins the set of
//!    aborting producers.
//! 2. A control batch whose first record is an ABORT marker ends P's aborted transaction: P
//!    leaves the set, so P's next transaction is delivered (unless it is listed too).
//! 3. Any other transactional batch of a producer in the set is dropped.
//! 4. Control batches (ABORT and COMMIT markers) are never handed out, under either isolation
//!    level.
//!
//! A COMMIT marker needs no state: a committed transaction was never in the list. Batches
//! without a producer id (-1) are never part of a transaction. `read_uncommitted` only drops
//! control batches.
//!
//! This module is pure, so it is tested with constructed batches and lists
//! (`client/tests/consumer_aborted.rs`); the local broker never fills the list (tansu-notes.md,
//! gap 1).
//!
//! References: KIP-98 (transactions, the fetch response's `AbortedTransactions`), Kafka's
//! `CompletedFetch.java`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use sluice_protocol::record::{ControlRecord, ControlType, RecordBatch};

/// One entry of a fetch response's `aborted_transactions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTransaction {
    /// The producer that aborted.
    pub producer_id: i64,
    /// The offset of the transaction's first batch in this partition.
    pub first_offset: i64,
}

/// What the filter decides for one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// A data batch to hand out.
    Deliver,
    /// A data batch of an aborted transaction: skip it.
    Aborted,
    /// A control batch (transaction marker): skip it.
    Control,
}

/// The facts about a batch the filter judges by, so that it can be driven without bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchFacts {
    /// The batch's producer id, or -1.
    pub producer_id: i64,
    /// The batch's last offset.
    pub last_offset: i64,
    /// Whether the transactional attribute is set.
    pub transactional: bool,
    /// Whether the control attribute is set.
    pub control: bool,
    /// For a control batch, the type of its first record (`None` if it has none).
    pub marker: Option<ControlType>,
}

impl BatchFacts {
    /// Reads the facts from a batch. Only a control batch's records are looked at (its one
    /// marker); data batches are not decoded, so a compressed one costs nothing here.
    ///
    /// Fails if a control batch's first record cannot be read: guessing its type could hide a
    /// committed transaction or show an aborted one.
    pub fn of(batch: &RecordBatch) -> Result<BatchFacts, sluice_protocol::Error> {
        let marker = if batch.is_control() {
            let records = batch.records()?;
            let first = records.iter().next().transpose()?;
            first
                .map(|r| ControlRecord::parse(&r).map(|c| c.kind))
                .transpose()?
        } else {
            None
        };
        Ok(BatchFacts {
            producer_id: batch.producer_id(),
            last_offset: batch.last_offset(),
            transactional: batch.is_transactional(),
            control: batch.is_control(),
            marker,
        })
    }
}

/// The filter state of one partition's fetch response. Feed it the response's batches in
/// order, and build a new one for the next response.
#[derive(Debug, Clone)]
pub struct AbortedFilter {
    read_committed: bool,
    /// Listed transactions not yet reached, lowest first offset first.
    pending: BinaryHeap<Reverse<(i64, i64)>>,
    /// Producers whose aborted transaction is open at the current batch.
    aborting: HashSet<i64>,
}

impl AbortedFilter {
    /// A `read_committed` filter for a response that listed `aborted`.
    pub fn read_committed(aborted: impl IntoIterator<Item = AbortedTransaction>) -> Self {
        AbortedFilter {
            read_committed: true,
            pending: aborted
                .into_iter()
                .map(|t| Reverse((t.first_offset, t.producer_id)))
                .collect(),
            aborting: HashSet::new(),
        }
    }

    /// A `read_uncommitted` filter: it drops control batches only.
    pub fn read_uncommitted() -> Self {
        AbortedFilter {
            read_committed: false,
            pending: BinaryHeap::new(),
            aborting: HashSet::new(),
        }
    }

    /// Judges the next batch of the response.
    pub fn verdict(&mut self, batch: &BatchFacts) -> Verdict {
        if self.read_committed && batch.producer_id >= 0 {
            while let Some(&Reverse((first_offset, producer_id))) = self.pending.peek() {
                if first_offset > batch.last_offset {
                    break;
                }
                self.pending.pop();
                self.aborting.insert(producer_id);
            }
            if batch.control && batch.marker == Some(ControlType::Abort) {
                self.aborting.remove(&batch.producer_id);
            } else if batch.transactional && self.aborting.contains(&batch.producer_id) {
                return Verdict::Aborted;
            }
        }
        if batch.control {
            Verdict::Control
        } else {
            Verdict::Deliver
        }
    }
}
