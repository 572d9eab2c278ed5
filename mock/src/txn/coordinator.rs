//! The transaction coordinator's state machine: one [`TxnMetadata`] per transactional id,
//! moved by InitProducerId, AddPartitionsToTxn / AddOffsetsToTxn, EndTxn and the timeout
//! timer.
//!
//! No I/O and no clock: callers pass the time in, and a transition that ends a transaction
//! hands back the [`Markers`] to write; the caller writes them and reports back with
//! [`Transactions::markers_written`]. Transitions and error codes follow Apache Kafka's
//! `TransactionCoordinator` and `TransactionMetadata`. In transactions v1 the epoch is bumped
//! by InitProducerId and by fencing only; in v2 (KIP-890 part 2, EndTxn v5) every EndTxn
//! bumps it too, the markers carry the new epoch, and the producer continues with it.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;

/// No epoch yet (`RecordBatch.NO_PRODUCER_EPOCH`).
const NO_EPOCH: i16 = -1;

/// From this epoch on, InitProducerId hands out a new producer id at epoch 0 instead of a
/// bump (`TransactionMetadata.isEpochExhausted`: `epoch >= Short.MAX_VALUE - 1`; the last
/// value stays free so a fence can still bump once).
const EXHAUSTED_EPOCH: i16 = i16::MAX - 1;

/// The transactions of the cluster, by transactional id.
#[derive(Debug, Default)]
pub(crate) struct Transactions {
    txns: BTreeMap<String, TxnMetadata>,
}

/// What the coordinator keeps of one transactional id (Kafka's `TransactionMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnMetadata {
    pub(crate) producer_id: i64,
    /// The producer id before the last rotation: a retry of the InitProducerId that rotated
    /// may still name it.
    previous_producer_id: i64,
    pub(crate) epoch: i16,
    /// The epoch before the last bump InitProducerId made for a producer that named its
    /// current epoch (KIP-360), so a retry of that call gets the same answer; -1 after a
    /// fence, so a fenced producer cannot pass itself off as that retry.
    last_epoch: i16,
    pub(crate) timeout_ms: i32,
    /// When the current (or last) transaction began; -1 after InitProducerId.
    pub(crate) started_ms: i64,
    pub(crate) state: TxnState,
}

/// Where a transactional id's transaction is. Kafka's `PrepareEpochFence` is not a state
/// here: the mock fences and starts the abort in one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TxnState {
    /// No transaction since InitProducerId.
    Empty,
    /// Partitions or groups were added; the transaction is open.
    Ongoing(Members),
    /// EndTxn(commit) was accepted and its markers are being written.
    PrepareCommit(Members),
    /// EndTxn(abort), a fence or a timeout was accepted and its markers are being written.
    PrepareAbort(Members),
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// The name DescribeTransactions and ListTransactions use (`TransactionState.name`).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing(_) => "Ongoing",
            TxnState::PrepareCommit(_) => "PrepareCommit",
            TxnState::PrepareAbort(_) => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// Every state name Kafka knows, for ListTransactions' state filter.
    pub(crate) const NAMES: &'static [&'static str] = &[
        "Empty",
        "Ongoing",
        "PrepareCommit",
        "PrepareAbort",
        "CompleteCommit",
        "CompleteAbort",
        "Dead",
        "PrepareEpochFence",
    ];

    /// The partitions and groups of an open or ending transaction.
    pub(crate) fn members(&self) -> Option<&Members> {
        match self {
            TxnState::Ongoing(m) | TxnState::PrepareCommit(m) | TxnState::PrepareAbort(m) => {
                Some(m)
            }
            _ => None,
        }
    }
}

/// What a transaction has touched: partitions (AddPartitionsToTxn) and consumer groups
/// (AddOffsetsToTxn; Kafka records the group's `__consumer_offsets` partition).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Members {
    pub(crate) partitions: BTreeSet<(String, i32)>,
    pub(crate) groups: BTreeSet<String>,
}

impl Members {
    fn contains_all(&self, other: &Members) -> bool {
        other.partitions.is_subset(&self.partitions) && other.groups.is_subset(&self.groups)
    }

    fn extend(&mut self, other: Members) {
        self.partitions.extend(other.partitions);
        self.groups.extend(other.groups);
    }
}

/// The transaction markers a transition asks for: a control batch in every partition, and
/// the group offsets applied or dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Markers {
    pub(crate) transactional_id: String,
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    pub(crate) commit: bool,
    pub(crate) members: Members,
}

/// How EndTxn went: the markers to write (none for a retry, or a v2 abort of nothing) and
/// the producer id and epoch the producer continues with (EndTxn v5 answers with them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ended {
    pub(crate) markers: Option<Markers>,
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
}

/// How InitProducerId for a transactional id went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Init {
    /// The producer id and epoch to answer with.
    Ready { producer_id: i64, epoch: i16 },
    /// The previous incarnation left a transaction open: it is fenced (epoch + 1) and its
    /// transaction aborted with these markers. The client gets CONCURRENT_TRANSACTIONS and
    /// retries, which bumps the epoch once more (Kafka's answer too, so an exhausted epoch
    /// rotates on the retry).
    Fencing(Markers),
}

impl Transactions {
    /// The metadata of `transactional_id`, if it was ever initialised.
    pub(crate) fn get(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id)
    }

    /// Every transactional id and its metadata.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &TxnMetadata)> {
        self.txns.iter().map(|(id, txn)| (id.as_str(), txn))
    }

    /// InitProducerId for a transactional id (`handleInitProducerId`,
    /// `prepareInitProducerIdTransit`). `expected` is the (producer id, epoch) a v3+ producer
    /// names when it asks for a bump after an error (KIP-360). The caller has validated the
    /// timeout. Errors: PRODUCER_FENCED, CONCURRENT_TRANSACTIONS.
    pub(crate) fn init_producer_id(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        allocate: &mut dyn FnMut() -> i64,
    ) -> Result<Init, ResponseError> {
        let txn = match self.txns.entry(transactional_id.to_owned()) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(TxnMetadata {
                producer_id: allocate(),
                previous_producer_id: -1,
                epoch: NO_EPOCH,
                last_epoch: NO_EPOCH,
                timeout_ms,
                started_ms: -1,
                state: TxnState::Empty,
            }),
        };
        if let Some((producer_id, epoch)) = expected {
            let known = txn.epoch == NO_EPOCH
                || producer_id == txn.producer_id
                || (producer_id == txn.previous_producer_id && epoch >= EXHAUSTED_EPOCH);
            if !known {
                return Err(ResponseError::ProducerFenced);
            }
        }
        match txn.state {
            TxnState::PrepareCommit(_) | TxnState::PrepareAbort(_) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Ongoing(_) => Ok(Init::Fencing(txn.fence_and_abort(transactional_id))),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                if txn.epoch >= EXHAUSTED_EPOCH && expected.is_none_or(|(_, e)| e == txn.epoch) {
                    // `prepareProducerIdRotation`.
                    txn.previous_producer_id = txn.producer_id;
                    txn.last_epoch = if expected.is_some() {
                        txn.epoch
                    } else {
                        NO_EPOCH
                    };
                    txn.producer_id = allocate();
                    txn.epoch = 0;
                } else {
                    // `prepareIncrementProducerEpoch`.
                    let bumped = txn.epoch + 1;
                    match expected {
                        None => (txn.epoch, txn.last_epoch) = (bumped, NO_EPOCH),
                        Some((_, e)) if txn.epoch == NO_EPOCH || e == txn.epoch => {
                            (txn.epoch, txn.last_epoch) = (bumped, txn.epoch);
                        }
                        // A retry of a bump whose answer was lost: the same answer again.
                        Some((_, e)) if e == txn.last_epoch => {}
                        Some(_) => return Err(ResponseError::ProducerFenced),
                    }
                }
                txn.timeout_ms = timeout_ms;
                txn.started_ms = -1;
                txn.state = TxnState::Empty;
                Ok(Init::Ready {
                    producer_id: txn.producer_id,
                    epoch: txn.epoch,
                })
            }
        }
    }

    /// AddPartitionsToTxn and AddOffsetsToTxn (`handleAddPartitionsToTransaction`): adds
    /// `members` to the transaction, opening it if none is. Errors:
    /// INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED, CONCURRENT_TRANSACTIONS.
    pub(crate) fn add(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        members: Members,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        let txn = self.checked(transactional_id, producer_id, epoch)?;
        match &mut txn.state {
            TxnState::PrepareCommit(_) | TxnState::PrepareAbort(_) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Ongoing(open) => {
                if !open.contains_all(&members) {
                    open.extend(members);
                }
                Ok(())
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                txn.started_ms = now_ms;
                txn.state = TxnState::Ongoing(members);
                Ok(())
            }
        }
    }

    /// Whether a partition or group is in the producer's open transaction, as a partition
    /// leader asks before the first transactional write (KIP-890 part 1,
    /// `handleVerifyPartitionsInTransaction`). Errors: INVALID_PRODUCER_ID_MAPPING,
    /// PRODUCER_FENCED, CONCURRENT_TRANSACTIONS, and TRANSACTION_ABORTABLE when it is not in
    /// the transaction (the leader converts these for its client).
    pub(crate) fn verify(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        member: &Members,
    ) -> Result<(), ResponseError> {
        let txn = match self.txns.get(transactional_id) {
            Some(txn) if txn.producer_id == producer_id => txn,
            _ => return Err(ResponseError::InvalidProducerIdMapping),
        };
        if txn.epoch != epoch {
            return Err(ResponseError::ProducerFenced);
        }
        match &txn.state {
            TxnState::PrepareCommit(_) | TxnState::PrepareAbort(_) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Ongoing(open) if open.contains_all(member) => Ok(()),
            _ => Err(ResponseError::TransactionAbortable),
        }
    }

    /// EndTxn (`endTransaction`, from a client); `v2` for EndTxn v5 (transactions v2), which
    /// bumps the epoch (a new producer id once it is exhausted) and may abort an empty
    /// transaction just for that bump. A retry of an EndTxn that already ended the
    /// transaction the same way is answered again without markers; in v2 it names the epoch
    /// before the bump. Errors: INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED,
    /// CONCURRENT_TRANSACTIONS, INVALID_TXN_STATE.
    pub(crate) fn end(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        v2: bool,
        allocate: &mut dyn FnMut() -> i64,
    ) -> Result<Ended, ResponseError> {
        let completed_same = |state: &TxnState| {
            matches!(
                (state, commit),
                (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false)
            )
        };
        if v2 {
            if let Some(txn) = self.txns.get(transactional_id) {
                let before_bump = if txn.previous_producer_id != -1 && txn.epoch == 0 {
                    txn.previous_producer_id
                } else {
                    txn.producer_id
                };
                let retry = txn.last_epoch != NO_EPOCH
                    && (producer_id, epoch) == (before_bump, txn.last_epoch)
                    && completed_same(&txn.state);
                if retry {
                    return Ok(txn.ended(None));
                }
            }
        }
        let txn = self.checked(transactional_id, producer_id, epoch)?;
        match (&txn.state, commit) {
            (TxnState::Ongoing(_), _) => {
                let mut markers = txn.prepare_end(transactional_id, commit);
                if v2 {
                    txn.bump_at_end(allocate);
                    // The markers close the transaction under the epoch it ends with.
                    markers.epoch = epoch.saturating_add(1);
                }
                Ok(txn.ended(Some(markers)))
            }
            (TxnState::PrepareCommit(_), true) | (TxnState::PrepareAbort(_), false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            (TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort, false) if v2 => {
                // Nothing to abort, but the producer asked for a new epoch (a v2 client
                // recovering from an error): bump it.
                txn.bump_at_end(allocate);
                txn.state = TxnState::CompleteAbort;
                Ok(txn.ended(None))
            }
            (state, _) if !v2 && completed_same(state) => Ok(txn.ended(None)),
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// The markers of a Prepare* transaction are all written: it is complete.
    pub(crate) fn markers_written(&mut self, transactional_id: &str) {
        if let Some(txn) = self.txns.get_mut(transactional_id) {
            txn.state = match txn.state {
                TxnState::PrepareCommit(_) => TxnState::CompleteCommit,
                TxnState::PrepareAbort(_) => TxnState::CompleteAbort,
                ref other => other.clone(),
            };
        }
    }

    /// Fences and aborts every open transaction older than its timeout
    /// (`abortTimedOutTransactions`): the epoch goes up by one, so the producer's next
    /// request is fenced, and the abort markers carry the new epoch.
    pub(crate) fn expire(&mut self, now_ms: i64) -> Vec<Markers> {
        self.txns
            .iter_mut()
            .filter(|(_, txn)| {
                matches!(txn.state, TxnState::Ongoing(_))
                    && txn.started_ms.saturating_add(i64::from(txn.timeout_ms)) < now_ms
            })
            .map(|(id, txn)| txn.fence_and_abort(id))
            .collect()
    }

    /// The transaction, if `producer_id` and `epoch` are its current ones.
    fn checked(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
    ) -> Result<&mut TxnMetadata, ResponseError> {
        let txn = match self.txns.get_mut(transactional_id) {
            Some(txn) if txn.producer_id == producer_id => txn,
            _ => return Err(ResponseError::InvalidProducerIdMapping),
        };
        if txn.epoch != epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(txn)
    }
}

impl TxnMetadata {
    /// The answer to an EndTxn.
    fn ended(&self, markers: Option<Markers>) -> Ended {
        Ended {
            markers,
            producer_id: self.producer_id,
            epoch: self.epoch,
        }
    }

    /// The epoch bump of a v2 EndTxn: the producer's next transaction runs at epoch + 1, or
    /// under a new producer id once the epoch is exhausted (`prepareAbortOrCommit` with
    /// `clientTransactionVersion` 2). The epoch before stays known so a retry gets the same
    /// answer.
    fn bump_at_end(&mut self, allocate: &mut dyn FnMut() -> i64) {
        self.last_epoch = self.epoch;
        let bumped = self.epoch.saturating_add(1);
        if bumped >= EXHAUSTED_EPOCH {
            self.previous_producer_id = self.producer_id;
            self.producer_id = allocate();
            self.epoch = 0;
        } else {
            self.previous_producer_id = -1;
            self.epoch = bumped;
        }
    }

    /// `prepareFenceProducerEpoch` followed by an abort: only for an Ongoing transaction.
    fn fence_and_abort(&mut self, transactional_id: &str) -> Markers {
        self.epoch = self.epoch.saturating_add(1);
        self.last_epoch = NO_EPOCH;
        self.prepare_end(transactional_id, false)
    }

    /// Ongoing → PrepareCommit / PrepareAbort, and the markers that complete it.
    fn prepare_end(&mut self, transactional_id: &str, commit: bool) -> Markers {
        let members = match std::mem::replace(&mut self.state, TxnState::Empty) {
            TxnState::Ongoing(members) => members,
            other => {
                // Callers only end Ongoing transactions; keep the state if one did not.
                self.state = other;
                Members::default()
            }
        };
        self.state = if commit {
            TxnState::PrepareCommit(members.clone())
        } else {
            TxnState::PrepareAbort(members.clone())
        };
        Markers {
            transactional_id: transactional_id.to_owned(),
            producer_id: self.producer_id,
            epoch: self.epoch,
            commit,
            members,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn counter() -> impl FnMut() -> i64 {
        let mut next = 1000;
        move || {
            next += 1;
            next
        }
    }

    /// EndTxn v0-4: the markers, or none for a retry.
    fn end_v1(
        txns: &mut Transactions,
        id: &str,
        pid: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<Option<Markers>, ResponseError> {
        let ended = txns.end(id, pid, epoch, commit, false, &mut || unreachable!())?;
        assert_eq!(
            (ended.producer_id, ended.epoch),
            (pid, epoch),
            "v1 keeps the epoch"
        );
        Ok(ended.markers)
    }

    fn partition(topic: &str, p: i32) -> Members {
        Members {
            partitions: [(topic.to_owned(), p)].into(),
            groups: BTreeSet::new(),
        }
    }

    fn ready(init: Result<Init, ResponseError>) -> (i64, i16) {
        match init.unwrap() {
            Init::Ready { producer_id, epoch } => (producer_id, epoch),
            Init::Fencing(m) => panic!("expected ready, got fencing {m:?}"),
        }
    }

    #[test]
    fn init_gives_a_new_id_then_bumps_the_epoch() {
        let mut txns = Transactions::default();
        let mut ids = counter();
        assert_eq!(
            ready(txns.init_producer_id("t", 60_000, None, &mut ids)),
            (1001, 0)
        );
        assert_eq!(
            ready(txns.init_producer_id("t", 60_000, None, &mut ids)),
            (1001, 1)
        );
        assert_eq!(
            ready(txns.init_producer_id("u", 60_000, None, &mut ids)),
            (1002, 0)
        );
        // The fenced incarnation (epoch 0) is fenced everywhere.
        assert_eq!(
            txns.add("t", 1001, 0, partition("a", 0), 0),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            end_v1(&mut txns, "t", 1001, 0, true),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            txns.add("t", 1002, 1, partition("a", 0), 0),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        assert_eq!(
            end_v1(&mut txns, "nope", 1001, 1, true),
            Err(ResponseError::InvalidProducerIdMapping)
        );
    }

    #[test]
    fn commit_writes_markers_then_retries_are_idempotent() {
        let mut txns = Transactions::default();
        let mut ids = counter();
        let (pid, epoch) = ready(txns.init_producer_id("t", 60_000, None, &mut ids));
        assert_eq!(
            end_v1(&mut txns, "t", pid, epoch, true),
            Err(ResponseError::InvalidTxnState),
            "nothing to end yet"
        );
        txns.add("t", pid, epoch, partition("a", 0), 5).unwrap();
        txns.add("t", pid, epoch, partition("a", 1), 6).unwrap();
        assert_eq!(txns.get("t").unwrap().started_ms, 5);
        let groups = Members {
            groups: ["g".to_owned()].into(),
            ..Members::default()
        };
        txns.add("t", pid, epoch, groups.clone(), 7).unwrap();
        txns.verify("t", pid, epoch, &partition("a", 1)).unwrap();
        txns.verify("t", pid, epoch, &groups).unwrap();
        assert_eq!(
            txns.verify("t", pid, epoch, &partition("a", 2)),
            Err(ResponseError::TransactionAbortable)
        );

        let markers = end_v1(&mut txns, "t", pid, epoch, true).unwrap().unwrap();
        assert!(markers.commit);
        assert_eq!(markers.epoch, epoch);
        assert_eq!(markers.members.partitions.len(), 2);
        assert_eq!(markers.members.groups.len(), 1);
        assert_eq!(
            end_v1(&mut txns, "t", pid, epoch, true),
            Err(ResponseError::ConcurrentTransactions),
            "markers not written yet"
        );
        assert_eq!(
            txns.add("t", pid, epoch, partition("a", 0), 8),
            Err(ResponseError::ConcurrentTransactions)
        );
        txns.markers_written("t");
        assert_eq!(txns.get("t").unwrap().state, TxnState::CompleteCommit);
        assert_eq!(end_v1(&mut txns, "t", pid, epoch, true), Ok(None), "retry");
        assert_eq!(
            end_v1(&mut txns, "t", pid, epoch, false),
            Err(ResponseError::InvalidTxnState)
        );
        assert_eq!(
            txns.verify("t", pid, epoch, &partition("a", 0)),
            Err(ResponseError::TransactionAbortable),
            "a partition of the ended transaction"
        );

        // The next transaction starts empty, at a new start time.
        txns.add("t", pid, epoch, partition("b", 0), 20).unwrap();
        assert_eq!(txns.get("t").unwrap().started_ms, 20);
        let markers = end_v1(&mut txns, "t", pid, epoch, false).unwrap().unwrap();
        assert_eq!(markers.members, partition("b", 0));
        txns.markers_written("t");
        assert_eq!(end_v1(&mut txns, "t", pid, epoch, false), Ok(None));
        assert_eq!(
            end_v1(&mut txns, "t", pid, epoch, true),
            Err(ResponseError::InvalidTxnState)
        );
    }

    #[test]
    fn reinit_with_an_open_transaction_fences_and_aborts_it() {
        let mut txns = Transactions::default();
        let mut ids = counter();
        let (pid, epoch) = ready(txns.init_producer_id("t", 60_000, None, &mut ids));
        txns.add("t", pid, epoch, partition("a", 0), 0).unwrap();

        let Init::Fencing(markers) = txns.init_producer_id("t", 60_000, None, &mut ids).unwrap()
        else {
            panic!("expected a fence");
        };
        assert!(!markers.commit);
        assert_eq!(
            markers.epoch,
            epoch + 1,
            "abort markers carry the bumped epoch"
        );
        assert_eq!(
            txns.init_producer_id("t", 60_000, None, &mut ids),
            Err(ResponseError::ConcurrentTransactions)
        );
        txns.markers_written("t");
        assert_eq!(
            ready(txns.init_producer_id("t", 60_000, None, &mut ids)),
            (pid, epoch + 2)
        );
        assert_eq!(
            end_v1(&mut txns, "t", pid, epoch, false),
            Err(ResponseError::ProducerFenced)
        );
    }

    #[test]
    fn kip_360_bump_and_its_retry() {
        let mut txns = Transactions::default();
        let mut ids = counter();
        let (pid, epoch) = ready(txns.init_producer_id("t", 60_000, None, &mut ids));
        let bump = Some((pid, epoch));
        assert_eq!(
            ready(txns.init_producer_id("t", 60_000, bump, &mut ids)),
            (pid, epoch + 1)
        );
        // The answer was lost; the retry names the old epoch and gets the same answer.
        assert_eq!(
            ready(txns.init_producer_id("t", 60_000, bump, &mut ids)),
            (pid, epoch + 1)
        );
        // Another producer id, or an epoch neither current nor last, is fenced.
        assert_eq!(
            txns.init_producer_id("t", 60_000, Some((pid + 1, epoch + 1)), &mut ids),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            txns.init_producer_id("t", 60_000, Some((pid, epoch + 7)), &mut ids),
            Err(ResponseError::ProducerFenced)
        );
        // An unknown transactional id takes any producer id: a producer migrating to it.
        assert_eq!(
            ready(txns.init_producer_id("new", 60_000, Some((77, 3)), &mut ids)),
            (1002, 0)
        );
    }

    #[test]
    fn an_exhausted_epoch_rotates_the_producer_id() {
        let mut txns = Transactions::default();
        let mut ids = counter();
        let (pid, _) = ready(txns.init_producer_id("t", 60_000, None, &mut ids));
        txns.txns.get_mut("t").unwrap().epoch = EXHAUSTED_EPOCH;
        let bump = Some((pid, EXHAUSTED_EPOCH));
        let (new_pid, epoch) = ready(txns.init_producer_id("t", 60_000, bump, &mut ids));
        assert_ne!(new_pid, pid);
        assert_eq!(epoch, 0);
        // A retry naming the previous id and its exhausted epoch gets the new one.
        assert_eq!(
            ready(txns.init_producer_id("t", 60_000, bump, &mut ids)),
            (new_pid, 0)
        );
    }

    #[test]
    fn a_transaction_past_its_timeout_is_fenced_and_aborted() {
        let mut txns = Transactions::default();
        let mut ids = counter();
        let (pid, epoch) = ready(txns.init_producer_id("t", 1_000, None, &mut ids));
        txns.add("t", pid, epoch, partition("a", 0), 10_000)
            .unwrap();
        assert!(txns.expire(11_000).is_empty(), "exactly at the timeout");
        let expired = txns.expire(11_001);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].epoch, epoch + 1);
        assert!(!expired[0].commit);
        txns.markers_written("t");
        assert!(txns.expire(99_999).is_empty());
        assert_eq!(
            end_v1(&mut txns, "t", pid, epoch, true),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            txns.verify("t", pid, epoch, &partition("a", 0)),
            Err(ResponseError::ProducerFenced)
        );
        // The zombie's KIP-360 bump cannot pass for a retry: the fence cleared the last epoch.
        assert_eq!(
            txns.init_producer_id("t", 1_000, Some((pid, epoch)), &mut ids),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            ready(txns.init_producer_id("t", 1_000, None, &mut ids)),
            (pid, epoch + 2)
        );
    }

    #[test]
    fn v2_end_bumps_the_epoch_and_a_retry_gets_the_same_answer() {
        let mut txns = Transactions::default();
        let mut ids = counter();
        let (pid, epoch) = ready(txns.init_producer_id("t", 60_000, None, &mut ids));
        txns.add("t", pid, epoch, partition("a", 0), 0).unwrap();
        let ended = txns.end("t", pid, epoch, true, true, &mut ids).unwrap();
        let markers = ended.markers.unwrap();
        assert_eq!(markers.epoch, epoch + 1, "markers carry the new epoch");
        assert!(markers.commit);
        assert_eq!((ended.producer_id, ended.epoch), (pid, epoch + 1));
        txns.markers_written("t");
        // The answer was lost: the retry names the old epoch and gets the same answer.
        let retry = txns.end("t", pid, epoch, true, true, &mut ids).unwrap();
        assert_eq!(
            (retry.markers, retry.producer_id, retry.epoch),
            (None, pid, epoch + 1)
        );
        // The old epoch is fenced for anything else.
        assert_eq!(
            txns.add("t", pid, epoch, partition("a", 0), 1),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            txns.end("t", pid, epoch, false, true, &mut ids),
            Err(ResponseError::ProducerFenced),
            "not a retry: the other outcome"
        );
        // The next transaction runs at the new epoch.
        txns.add("t", pid, epoch + 1, partition("a", 0), 2).unwrap();
        let ended = txns
            .end("t", pid, epoch + 1, false, true, &mut ids)
            .unwrap();
        assert_eq!(ended.epoch, epoch + 2);
        assert!(!ended.markers.unwrap().commit);
    }

    #[test]
    fn v2_abort_of_nothing_bumps_the_epoch_and_commit_of_nothing_is_refused() {
        let mut txns = Transactions::default();
        let mut ids = counter();
        let (pid, epoch) = ready(txns.init_producer_id("t", 60_000, None, &mut ids));
        assert_eq!(
            txns.end("t", pid, epoch, true, true, &mut ids),
            Err(ResponseError::InvalidTxnState)
        );
        let ended = txns.end("t", pid, epoch, false, true, &mut ids).unwrap();
        assert_eq!((ended.markers, ended.epoch), (None, epoch + 1));
        assert_eq!(txns.get("t").unwrap().state, TxnState::CompleteAbort);
    }

    #[test]
    fn v2_end_at_an_exhausted_epoch_rotates_the_producer_id() {
        let mut txns = Transactions::default();
        let mut ids = counter();
        let (pid, _) = ready(txns.init_producer_id("t", 60_000, None, &mut ids));
        let last = EXHAUSTED_EPOCH - 1;
        txns.txns.get_mut("t").unwrap().epoch = last;
        txns.add("t", pid, last, partition("a", 0), 0).unwrap();
        let ended = txns.end("t", pid, last, true, true, &mut ids).unwrap();
        let markers = ended.markers.unwrap();
        assert_eq!((markers.producer_id, markers.epoch), (pid, EXHAUSTED_EPOCH));
        assert_ne!(ended.producer_id, pid);
        assert_eq!(ended.epoch, 0);
        txns.markers_written("t");
        let retry = txns.end("t", pid, last, true, true, &mut ids).unwrap();
        assert_eq!((retry.producer_id, retry.epoch), (ended.producer_id, 0));
        txns.add("t", ended.producer_id, 0, partition("a", 0), 1)
            .unwrap();
    }
}
