//! The transaction manager: the requests a transactional producer sends its transaction
//! coordinator (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn) and its group's
//! coordinator (TxnOffsetCommit), driven by [`StateMachine`].
//!
//! **Transactions v2** (KIP-890 part 2) are used when the coordinator's cluster finalized
//! `transaction.version` 2 or more, decided at `init_transactions` (as Java latches it; a
//! cluster upgraded later is used in v2 from the next `init_transactions`). Then a partition
//! joins the transaction with its first Produce (v12) and a group with its TxnOffsetCommit
//! (v5), so AddPartitionsToTxn and AddOffsetsToTxn are not sent, and every EndTxn (v5) bumps
//! the epoch, which the producer continues with (sequences start over at 0). Otherwise those
//! three requests stay below the versions that would mean v2 to the broker.
//!
//! Every request is retried while the coordinator says so (it moved, is loading, or is still
//! writing the markers of the previous transaction: CONCURRENT_TRANSACTIONS) until the
//! deadline; other errors make the transaction abortable or the producer unusable, as
//! [`super::state::severity`] classifies them.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, ApiKey, EndTxnRequest, GroupId,
    InitProducerIdRequest, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use tokio::time::Instant;

use super::metrics::Counters;
use super::state::{StateMachine, TxnCall, TxnState};
use crate::cluster::{Backoff, Cluster};
use crate::error::{Error, KafkaCode, Result};
use crate::group::coordinator::{Coordinator, CoordinatorType};
use crate::group::offsets::str_bytes;
use crate::group::{GroupMetadata, OffsetToCommit};
use crate::producer::batch::TopicPartition;

/// A producer id and epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerEpoch {
    pub(crate) id: i64,
    pub(crate) epoch: i16,
}

/// Settings of the transaction manager.
#[derive(Debug, Clone)]
pub(crate) struct TxnSettings {
    pub(crate) transactional_id: String,
    /// `transaction.timeout.ms`: the coordinator aborts a transaction open longer than this.
    pub(crate) transaction_timeout: Duration,
    pub(crate) request_timeout: Duration,
    /// How long a transactional call may take in all, retries included (`max.block.ms`).
    pub(crate) max_block: Duration,
    pub(crate) backoff: Backoff,
}

#[derive(Debug, Default)]
struct Inner {
    machine: StateMachine,
    identity: Option<ProducerEpoch>,
    /// Partitions added to the current transaction.
    partitions: BTreeSet<(Arc<str>, i32)>,
    /// Groups whose offsets the current transaction commits.
    groups: BTreeSet<String>,
    /// A sequence chain broke: the epoch must be bumped once the transaction is aborted.
    bump_needed: bool,
    /// Transactions v2 (see the module docs), decided at `init_transactions`.
    v2: bool,
}

/// The finalized feature that names the transaction protocol (KIP-890, KIP-1022).
const TRANSACTION_VERSION: &str = "transaction.version";
/// The last versions of the v1 flow (Kafka's `LAST_STABLE_VERSION_BEFORE_TRANSACTION_V2`):
/// above them the broker takes the request for transactions v2.
const LAST_PRODUCE_VERSION_BEFORE_V2: i16 = 11;
const LAST_END_TXN_VERSION_BEFORE_V2: i16 = 4;
const LAST_TXN_OFFSET_COMMIT_VERSION_BEFORE_V2: i16 = 4;

/// The transaction manager of one transactional producer.
#[derive(Debug)]
pub(crate) struct TransactionManager {
    settings: TxnSettings,
    pub(crate) counters: Counters,
    cluster: Cluster,
    coordinator: Coordinator,
    inner: Mutex<Inner>,
    /// Whether the state is InTransaction, mirrored on every unlock: `send` checks it per
    /// record without taking the lock.
    in_transaction: AtomicBool,
}

/// The locked state; unlocking refreshes [`TransactionManager::in_transaction`].
struct Locked<'a> {
    inner: MutexGuard<'a, Inner>,
    in_transaction: &'a AtomicBool,
}

impl Deref for Locked<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let open = *self.inner.machine.state() == TxnState::InTransaction;
        self.in_transaction.store(open, Ordering::Release);
    }
}

/// The outcome of one attempt at a request: done, or why to try again.
type Attempt<T> = std::result::Result<T, Error>;

impl TransactionManager {
    pub(crate) fn new(cluster: Cluster, settings: TxnSettings) -> Self {
        TransactionManager {
            coordinator: Coordinator::new(
                cluster.clone(),
                &settings.transactional_id,
                CoordinatorType::Transaction,
            ),
            cluster,
            settings,
            counters: Counters::default(),
            inner: Mutex::new(Inner::default()),
            in_transaction: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> Locked<'_> {
        Locked {
            inner: self.inner.lock().unwrap_or_else(PoisonError::into_inner),
            in_transaction: &self.in_transaction,
        }
    }

    /// The transactional id.
    pub(crate) fn transactional_id(&self) -> &str {
        &self.settings.transactional_id
    }

    /// The sender saw a sequence chain break (OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID
    /// inside a transaction): the transaction is spoilt, and aborting it bumps the epoch.
    pub(crate) fn need_epoch_bump(&self) {
        let mut inner = self.lock();
        if !inner.bump_needed {
            inner.bump_needed = true;
            inner.machine.send_failed(&Error::kafka(
                KafkaCode::OUT_OF_ORDER_SEQUENCE_NUMBER,
                "a sequence broke inside the transaction",
            ));
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> TxnState {
        self.lock().machine.state().clone()
    }

    /// The producer id and epoch batches must carry, once initialised.
    pub(crate) fn identity(&self) -> Option<ProducerEpoch> {
        self.lock().identity
    }

    /// Checks that `call` is legal now (and moves into it).
    pub(crate) fn start(&self, call: TxnCall) -> Result<()> {
        self.lock().machine.start(call)
    }

    /// Checks that a record may be sent now: without the lock while a transaction is open
    /// (the per-record case), through the state machine's error otherwise.
    pub(crate) fn start_send(&self) -> Result<()> {
        if self.in_transaction.load(Ordering::Acquire) {
            return Ok(());
        }
        self.start(TxnCall::Send)
    }

    /// Whether records of `partition` may be sent now: it is in the transaction already, or
    /// in transactions v2 it joins with its first Produce (recorded here, so the transaction
    /// counts as started). Otherwise it must be added with [`Self::add_partitions`] first.
    pub(crate) fn admit(&self, tp: &TopicPartition) -> bool {
        let mut inner = self.lock();
        // The topic's shared name: no allocation per drain of the sender.
        let key = (Arc::clone(&tp.topic), tp.partition);
        if inner.v2 {
            inner.partitions.insert(key);
            return true;
        }
        inner.partitions.contains(&key)
    }

    /// The highest Produce version the transaction allows: v12 adds partitions to a
    /// transaction implicitly, which only a v2 transaction may ask for.
    pub(crate) fn max_produce_version(&self) -> i16 {
        if self.lock().v2 {
            i16::MAX
        } else {
            LAST_PRODUCE_VERSION_BEFORE_V2
        }
    }

    /// Whether the coordinator's cluster runs transactions v2: `transaction.version` ≥ 2 and
    /// EndTxn v5 on offer.
    async fn coordinator_has_v2(&self) -> Result<bool> {
        let versions = self.coordinator.versions().await?;
        Ok(versions
            .finalized_feature(TRANSACTION_VERSION)
            .is_some_and(|level| level >= 2)
            && versions.get(ApiKey::EndTxn).is_ok_and(|v| v >= 5))
    }

    /// A record send of the transaction failed: it can only be aborted now.
    pub(crate) fn send_failed(&self, error: &Error) {
        self.lock().machine.send_failed(error);
    }

    /// Runs `attempt` until it succeeds, fails for good, or `max.block.ms` passes; errors
    /// move the state machine.
    async fn retrying<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Attempt<T>>,
    {
        let deadline = Instant::now() + self.settings.max_block;
        let mut failures = 0u32;
        loop {
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            self.coordinator.on_error(&error);
            if matches!(
                error.code(),
                Some(KafkaCode::PRODUCER_FENCED | KafkaCode::INVALID_PRODUCER_EPOCH)
            ) {
                self.counters.fenced();
            }
            let error = self.lock().machine.fail(&error);
            let retriable = matches!(
                error.code().map(super::state::severity),
                Some(super::state::Severity::Retriable)
            ) || (error.code().is_none() && error.is_retriable());
            if !retriable {
                return Err(error);
            }
            failures += 1;
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!(
                        "{what} for transactional id {} (last error: {error})",
                        self.settings.transactional_id
                    ),
                    after: self.settings.max_block,
                });
            }
            tokio::time::sleep(self.settings.backoff.delay(failures)).await;
        }
    }

    /// InitProducerId with the transactional id: fences older producers with the same id,
    /// aborts what they left open, and returns the id and epoch to use.
    pub(crate) async fn init(&self) -> Result<ProducerEpoch> {
        self.start(TxnCall::Init)?;
        let previous = self.lock().identity;
        let identity = self.init_producer_id(previous).await?;
        let v2 = self.coordinator_has_v2().await.unwrap_or(false);
        let mut inner = self.lock();
        inner.v2 = v2;
        inner.identity = Some(identity);
        inner.partitions.clear();
        inner.groups.clear();
        inner.bump_needed = false;
        inner.machine.finish();
        Ok(identity)
    }

    /// After an abort, bumps the epoch if a sequence chain broke during the transaction
    /// (KIP-360: InitProducerId with the current id and epoch keeps the transactional id's
    /// fencing and restarts sequences). Returns whether it did.
    pub(crate) async fn bump_if_needed(&self) -> Result<bool> {
        let (needed, previous) = {
            let inner = self.lock();
            (inner.bump_needed, inner.identity)
        };
        if !needed {
            return Ok(false);
        }
        let identity = self.init_producer_id(previous).await?;
        let mut inner = self.lock();
        inner.identity = Some(identity);
        inner.bump_needed = false;
        Ok(true)
    }

    async fn init_producer_id(&self, previous: Option<ProducerEpoch>) -> Result<ProducerEpoch> {
        self.retrying("InitProducerId", || async {
            let response = self
                .coordinator
                .send(self.settings.request_timeout, |version| {
                    let mut request = InitProducerIdRequest::default()
                        .with_transactional_id(Some(TransactionalId(str_bytes(
                            &self.settings.transactional_id,
                        ))))
                        .with_transaction_timeout_ms(millis(self.settings.transaction_timeout));
                    if version >= 3 {
                        // KIP-360: bump our own epoch if we had one.
                        let (id, epoch) = previous.map_or((-1, -1), |p| (p.id, p.epoch));
                        request.producer_id = ProducerId(id);
                        request.producer_epoch = epoch;
                    }
                    Ok(request)
                })
                .await?;
            match KafkaCode(response.error_code) {
                KafkaCode::NONE => Ok(ProducerEpoch {
                    id: response.producer_id.0,
                    epoch: response.producer_epoch,
                }),
                code => Err(Error::kafka(code, "InitProducerId")),
            }
        })
        .await
    }

    /// Adds `partitions` to the transaction (AddPartitionsToTxn), before records are sent to
    /// them; partitions already added are skipped.
    pub(crate) async fn add_partitions(&self, partitions: &[TopicPartition]) -> Result<()> {
        let (identity, missing) = {
            let inner = self.lock();
            // Batches are sent (and their partitions added) while the transaction is open,
            // and while commit or abort flush it.
            if !matches!(
                inner.machine.state(),
                TxnState::InTransaction | TxnState::Committing | TxnState::Aborting
            ) {
                return Err(Error::Transaction {
                    state: inner.machine.state().clone(),
                    reason: "records can only be sent inside a transaction".into(),
                });
            }
            let missing: BTreeSet<(Arc<str>, i32)> = partitions
                .iter()
                .map(|tp| (Arc::clone(&tp.topic), tp.partition))
                .filter(|key| !inner.partitions.contains(key))
                .collect();
            (inner.identity, missing)
        };
        if missing.is_empty() {
            return Ok(());
        }
        let identity = identity.ok_or_else(not_initialised)?;
        self.retrying("AddPartitionsToTxn", || async {
            let response = self
                .coordinator
                .send(self.settings.request_timeout, |version| {
                    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                    for (t, p) in &missing {
                        topics.entry(&**t).or_default().push(*p);
                    }
                    if version > 3 {
                        return Err(Error::BrokerTooOld {
                            broker: "transaction coordinator".into(),
                            reason: format!(
                                "AddPartitionsToTxn v{version} is the broker-to-broker form"
                            ),
                        });
                    }
                    Ok(AddPartitionsToTxnRequest::default()
                        .with_v3_and_below_transactional_id(TransactionalId(str_bytes(
                            &self.settings.transactional_id,
                        )))
                        .with_v3_and_below_producer_id(ProducerId(identity.id))
                        .with_v3_and_below_producer_epoch(identity.epoch)
                        .with_v3_and_below_topics(
                            topics
                                .into_iter()
                                .map(|(name, partitions)| {
                                    AddPartitionsToTxnTopic::default()
                                        .with_name(TopicName(str_bytes(name)))
                                        .with_partitions(partitions)
                                })
                                .collect(),
                        ))
                })
                .await?;
            // The first real error wins over OPERATION_NOT_ATTEMPTED, which only says another
            // partition failed.
            let mut worst: Option<Error> = None;
            for topic in &response.results_by_topic_v3_and_below {
                for p in &topic.results_by_partition {
                    let code = KafkaCode(p.partition_error_code);
                    if code.is_ok() {
                        continue;
                    }
                    let error = Error::kafka(
                        code,
                        format!(
                            "AddPartitionsToTxn {}-{}",
                            topic.name.0.as_str(),
                            p.partition_index
                        ),
                    );
                    if worst.is_none()
                        || worst.as_ref().and_then(Error::code)
                            == Some(KafkaCode::OPERATION_NOT_ATTEMPTED)
                    {
                        worst = Some(error);
                    }
                }
            }
            match worst {
                None => Ok(()),
                Some(e) => Err(e),
            }
        })
        .await?;
        self.lock().partitions.extend(missing);
        Ok(())
    }

    /// Commits `offsets` of the group `group` inside the transaction: AddOffsetsToTxn to the
    /// transaction coordinator, then TxnOffsetCommit to the group coordinator with the
    /// member's generation, so a zombie member is fenced (KIP-447).
    pub(crate) async fn send_offsets(
        &self,
        offsets: &[OffsetToCommit],
        group: &GroupMetadata,
    ) -> Result<()> {
        self.start(TxnCall::SendOffsets)?;
        let identity = self.identity().ok_or_else(not_initialised)?;
        let (already, v2) = {
            let mut inner = self.lock();
            let already = inner.groups.contains(&group.group_id);
            if inner.v2 {
                // TxnOffsetCommit v5 adds the group itself.
                inner.groups.insert(group.group_id.clone());
            }
            (already, inner.v2)
        };
        if !already && !v2 {
            self.retrying("AddOffsetsToTxn", || async {
                let response = self
                    .coordinator
                    .send(self.settings.request_timeout, |_| {
                        Ok(AddOffsetsToTxnRequest::default()
                            .with_transactional_id(TransactionalId(str_bytes(
                                &self.settings.transactional_id,
                            )))
                            .with_producer_id(ProducerId(identity.id))
                            .with_producer_epoch(identity.epoch)
                            .with_group_id(GroupId(str_bytes(&group.group_id))))
                    })
                    .await?;
                match KafkaCode(response.error_code) {
                    KafkaCode::NONE => Ok(()),
                    code => Err(Error::kafka(
                        code,
                        format!("AddOffsetsToTxn for group {}", group.group_id),
                    )),
                }
            })
            .await?;
            self.lock().groups.insert(group.group_id.clone());
        }
        let group_coordinator = Coordinator::new(
            self.cluster.clone(),
            &group.group_id,
            CoordinatorType::Group,
        );
        let result = self
            .retrying("TxnOffsetCommit", || async {
                let max = if v2 {
                    i16::MAX
                } else {
                    LAST_TXN_OFFSET_COMMIT_VERSION_BEFORE_V2
                };
                let response = group_coordinator
                    .send_at_most(self.settings.request_timeout, max, |version| {
                        Ok(txn_offset_commit(
                            &self.settings.transactional_id,
                            identity,
                            offsets,
                            group,
                            version,
                        ))
                    })
                    .await;
                if let Err(e) = &response {
                    group_coordinator.on_error(e);
                }
                let response = response?;
                for topic in &response.topics {
                    for p in &topic.partitions {
                        if p.error_code != 0 {
                            let error = Error::kafka(
                                KafkaCode(p.error_code),
                                format!(
                                    "TxnOffsetCommit {}-{} for group {}",
                                    topic.name.0.as_str(),
                                    p.partition_index,
                                    group.group_id
                                ),
                            );
                            group_coordinator.on_error(&error);
                            return Err(error);
                        }
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = &result {
            // A member fenced by its group (a rebalance moved on) spoils the transaction.
            if matches!(
                e.code(),
                Some(
                    KafkaCode::ILLEGAL_GENERATION
                        | KafkaCode::UNKNOWN_MEMBER_ID
                        | KafkaCode::FENCED_INSTANCE_ID
                )
            ) {
                self.lock().machine.send_failed(e);
            }
        }
        result
    }

    /// Ends the transaction (EndTxn) once its records are acknowledged: the coordinator writes
    /// commit or abort markers to every partition and group it touched.
    pub(crate) async fn end(&self, commit: bool) -> Result<()> {
        let identity = self.identity().ok_or_else(not_initialised)?;
        let (touched, v2) = {
            let inner = self.lock();
            (
                !inner.partitions.is_empty() || !inner.groups.is_empty(),
                inner.v2,
            )
        };
        let max = if v2 {
            i16::MAX
        } else {
            LAST_END_TXN_VERSION_BEFORE_V2
        };
        if touched {
            let new_epoch = self
                .retrying("EndTxn", || async {
                    let response = self
                        .coordinator
                        .send_at_most(self.settings.request_timeout, max, |_| {
                            Ok(EndTxnRequest::default()
                                .with_transactional_id(TransactionalId(str_bytes(
                                    &self.settings.transactional_id,
                                )))
                                .with_producer_id(ProducerId(identity.id))
                                .with_producer_epoch(identity.epoch)
                                .with_committed(commit))
                        })
                        .await?;
                    match KafkaCode(response.error_code) {
                        KafkaCode::NONE => Ok((response.producer_id.0, response.producer_epoch)),
                        code => Err(Error::kafka(
                            code,
                            if commit {
                                "EndTxn (commit)"
                            } else {
                                "EndTxn (abort)"
                            },
                        )),
                    }
                })
                .await
                .inspect_err(|e| {
                    // Out of time with the outcome unknown: start over with InitProducerId
                    // rather than guess.
                    if matches!(e, Error::Timeout { .. }) {
                        self.lock().machine.reinit_required();
                    }
                })?;
            // EndTxn v5 (KIP-890 part 2) bumps the epoch at every end and says so.
            if new_epoch.0 >= 0
                && new_epoch.1 >= 0
                && (new_epoch.0, new_epoch.1) != (identity.id, identity.epoch)
            {
                self.lock().identity = Some(ProducerEpoch {
                    id: new_epoch.0,
                    epoch: new_epoch.1,
                });
            }
        }
        if !commit {
            self.counters.aborted();
        }
        let mut inner = self.lock();
        inner.partitions.clear();
        inner.groups.clear();
        inner.machine.finish();
        Ok(())
    }
}

fn txn_offset_commit(
    transactional_id: &str,
    identity: ProducerEpoch,
    offsets: &[OffsetToCommit],
    group: &GroupMetadata,
    version: i16,
) -> TxnOffsetCommitRequest {
    let mut topics: BTreeMap<&str, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
    for o in offsets {
        let mut p = TxnOffsetCommitRequestPartition::default()
            .with_partition_index(o.partition)
            .with_committed_offset(o.offset)
            .with_committed_metadata(Some(str_bytes(o.metadata.as_deref().unwrap_or(""))));
        if version >= 2 {
            p.committed_leader_epoch = o.leader_epoch.unwrap_or(-1);
        }
        topics.entry(o.topic.as_str()).or_default().push(p);
    }
    let mut request = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(str_bytes(transactional_id)))
        .with_group_id(GroupId(str_bytes(&group.group_id)))
        .with_producer_id(ProducerId(identity.id))
        .with_producer_epoch(identity.epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(str_bytes(name)))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    if version >= 3 {
        request.generation_id = group.generation_id;
        request.member_id = str_bytes(&group.member_id);
        request.group_instance_id = group.group_instance_id.as_deref().map(str_bytes);
    }
    request
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

fn not_initialised() -> Error {
    Error::Transaction {
        state: TxnState::Uninitialized,
        reason: "init_transactions has not completed".into(),
    }
}
