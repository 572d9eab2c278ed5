//! [`GroupConsumer`]: a consumer that is a member of a consumer group.
//!
//! Membership runs in two places, as in the Java client. A background task heartbeats while
//! the member is part of a generation, and notices when the group rebalances, the member was
//! fenced, or the application stopped polling for longer than `max.poll.interval.ms`. The
//! rebalance itself (revoking, JoinGroup, the leader's assignment, SyncGroup, fetching the
//! committed offsets) runs inside [`GroupConsumer::poll`], so it happens between the
//! application's reads, and partition changes reach the application as [`GroupEvent`]s
//! *before* they take effect: after a `Revoked` event the application may still commit the
//! offsets of those partitions, because the member joins again only on the next `poll`.
//!
//! Under a cooperative assignor a member keeps its partitions through a rebalance, so `poll`
//! keeps handing out their records while JoinGroup and SyncGroup are under way (the
//! coordinator may hold JoinGroup until a slow member rejoins), as Java's consumer does since
//! KAFKA-8421. Under an eager one the member owns nothing while it joins, so it just waits.
//!
//! With `group.protocol=consumer` and a coordinator that offers it, membership is KIP-848's
//! instead ([`super::kip848`], reconciled in `consumer_kip848.rs`): same events, same API.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::assignor::{wire, Assignor, RebalanceProtocol, TopicPartitions};
use super::coordinator::{Coordinator, CoordinatorType};
use super::membership::{self, rejoin_reason, Identity, Rejoin};
use super::offsets::{self, CommittedOffset, Committer, OffsetToCommit, Retry};
use crate::cluster::Backoff;
use crate::config::{ConsumerConfig, IsolationLevel, OffsetReset};
use crate::consumer::{Consumer, FetchedBatch, Offset};
use crate::error::{Error, KafkaCode, Result};

/// The version of the consumer protocol's subscription and assignment sluice writes (the
/// highest one, as the Java client does: v1 owned partitions, v2 generation, v3 rack).
const PROTOCOL_VERSION: i16 = 3;

/// How often a commit refused with STALE_MEMBER_EPOCH is retried (KIP-848).
const STALE_EPOCH_RETRIES: u32 = 3;

/// topic -> partition -> (next offset, leader epoch) of what was handed out.
type Consumed = HashMap<String, HashMap<i32, (i64, Option<i32>)>>;

/// What [`GroupConsumer::poll`] hands out: records, or a change of the member's partitions.
#[derive(Debug)]
pub enum GroupEvent {
    /// A batch of records of an assigned partition.
    Batch(FetchedBatch),
    /// These partitions were assigned to this member; records of them follow. With the
    /// classic protocol it comes after every rebalance (possibly empty); with KIP-848, which
    /// has no group-wide rebalances, only when partitions are added.
    Assigned(Vec<(String, i32)>),
    /// These partitions are about to be taken away. Until the next `poll`, their offsets can
    /// still be committed; after it, another member may own them.
    Revoked(Vec<(String, i32)>),
    /// These partitions were lost without a chance to commit: the member was expelled from the
    /// group (session timeout, fencing, a poll interval exceeded). Another member may already
    /// own them; committing their offsets would fail.
    Lost(Vec<(String, i32)>),
}

/// The member's identity as a transactional producer needs it to commit offsets inside a
/// transaction and be fenced if the group moved on (KIP-447).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadata {
    /// The group id.
    pub group_id: String,
    /// The current generation, -1 outside one.
    pub generation_id: i32,
    /// The member id, empty before the first join.
    pub member_id: String,
    /// The static instance id, if any.
    pub group_instance_id: Option<String>,
}

/// The group settings, taken from the config once.
#[derive(Debug, Clone)]
struct Settings {
    session_timeout: Duration,
    rebalance_timeout: Duration,
    heartbeat_interval: Duration,
    max_poll_interval: Duration,
    request_timeout: Duration,
    api_timeout: Duration,
    backoff: Backoff,
    auto_commit: Option<Duration>,
    reset: OffsetReset,
    require_stable: bool,
    rack: Option<String>,
}

/// Why the member must join (again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// The subscription changed, or the first join.
    Subscription,
    /// The coordinator said so.
    Rejoin(Rejoin),
    /// The application did not poll within `max.poll.interval.ms`; the member left.
    PollTimeout,
}

/// Membership state shared with the heartbeat task.
#[derive(Debug)]
struct Membership {
    id: Identity,
    /// In a generation and not joining: heartbeats run.
    stable: bool,
    need: Option<Need>,
    last_poll: Instant,
    fatal: Option<Error>,
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    coordinator: Coordinator,
    settings: Settings,
    state: Mutex<Membership>,
    /// Wakes the application's `poll`.
    app_wake: Notify,
    /// Wakes the heartbeat task.
    heartbeat_wake: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Membership> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn retry(&self) -> Retry {
        Retry {
            deadline: Instant::now() + self.settings.api_timeout,
            request_timeout: self.settings.request_timeout,
            backoff: self.settings.backoff,
        }
    }
}

/// A consumer in a consumer group: subscribe to topics, and the group spreads their
/// partitions over its members.
///
/// The group protocol is the classic one unless `group.protocol=consumer` asks for KIP-848
/// and the coordinator offers it (see [`GroupProtocol`](crate::config::GroupProtocol)); the
/// API and the events are the same either way.
///
/// ```no_run
/// # async fn example() -> sluice_client::Result<()> {
/// use sluice_client::config::ConsumerConfig;
/// use sluice_client::group::{GroupConsumer, GroupEvent};
///
/// let config = ConsumerConfig::from_properties([
///     ("bootstrap.servers", "localhost:9092"),
///     ("group.id", "billing"),
///     ("enable.auto.commit", "false"),
/// ])?;
/// let mut consumer = GroupConsumer::new(config).await?;
/// consumer.subscribe(&["orders"]);
/// loop {
///     match consumer.poll().await? {
///         GroupEvent::Batch(batch) => { /* process batch.to_records()? */ }
///         GroupEvent::Revoked(_) => consumer.commit().await?,
///         GroupEvent::Assigned(_) | GroupEvent::Lost(_) => {}
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct GroupConsumer {
    consumer: Consumer,
    shared: Arc<Shared>,
    heartbeat: JoinHandle<()>,
    assignors: Arc<[Box<dyn Assignor>]>,
    topics: BTreeSet<String>,
    owned: TopicPartitions,
    /// The next offset to commit per partition: after the last record handed out.
    /// topic -> partition -> (next offset, leader epoch); by topic so that recording a batch
    /// allocates nothing once its topic is known.
    consumed: Consumed,
    events: VecDeque<GroupEvent>,
    /// A join is due once the events before it are handed out.
    join_due: bool,
    /// The JoinGroup / SyncGroup exchange under way beside reads (cooperative rebalances).
    joining: Option<Joining>,
    /// Partitions handed out in a `Revoked` event, given up on the next `poll` (so the
    /// application can still commit their offsets in between).
    revoking: Vec<(String, i32)>,
    next_auto_commit: Instant,
    group_id: String,
    /// The KIP-848 membership, once the coordinator is known to offer it.
    kip848: Option<super::kip848::Kip848>,
    /// Asked for with `group.protocol=consumer` and not yet started (the coordinator's
    /// ApiVersions decide at the first join).
    kip848_wanted: Option<super::kip848::member::Profile>,
    /// Topic ids of the subscribed topics, to name KIP-848 assignments.
    topic_names: HashMap<uuid::Uuid, String>,
}

impl GroupConsumer {
    /// Connects and starts the member's heartbeat task. The member joins the group on the
    /// first [`poll`](Self::poll) after [`subscribe`](Self::subscribe).
    ///
    /// Fails with a config error without `group.id`.
    pub async fn new(config: ConsumerConfig) -> Result<GroupConsumer> {
        let group_id = config
            .group_id()
            .map(str::to_owned)
            .ok_or_else(|| Error::Config {
                property: "group.id".into(),
                reason: "a group consumer needs one".into(),
            })?;
        let consumer = Consumer::new(config.clone()).await?;
        let coordinator = Coordinator::new(
            consumer.cluster().clone(),
            &group_id,
            CoordinatorType::Group,
        )
        .with_own_connection();
        let client = config.client();
        let settings = Settings {
            session_timeout: config.session_timeout(),
            rebalance_timeout: config.rebalance_timeout(),
            heartbeat_interval: config.heartbeat_interval(),
            max_poll_interval: config.max_poll_interval(),
            request_timeout: client.request_timeout(),
            api_timeout: client.request_timeout().max(Duration::from_secs(60)),
            backoff: Backoff {
                initial: client.retry_backoff(),
                max: client.retry_backoff_max(),
            },
            auto_commit: config.auto_commit().then(|| config.auto_commit_interval()),
            reset: config.auto_offset_reset(),
            require_stable: config.isolation_level() == IsolationLevel::ReadCommitted,
            rack: config.client_rack().map(str::to_owned),
        };
        let shared = Arc::new(Shared {
            coordinator,
            state: Mutex::new(Membership {
                id: Identity::new(config.group_instance_id().map(str::to_owned)),
                stable: false,
                need: None,
                last_poll: Instant::now(),
                fatal: None,
                closed: false,
            }),
            app_wake: Notify::new(),
            heartbeat_wake: Notify::new(),
            settings: settings.clone(),
        });
        let heartbeat = tokio::spawn(heartbeat_loop(Arc::clone(&shared)));
        Ok(GroupConsumer {
            consumer,
            shared,
            heartbeat,
            assignors: config
                .assignors()
                .iter()
                .map(|a| super::assignor_for(*a))
                .collect(),
            topics: BTreeSet::new(),
            owned: TopicPartitions::new(),
            consumed: HashMap::new(),
            events: VecDeque::new(),
            join_due: false,
            joining: None,
            revoking: Vec::new(),
            next_auto_commit: Instant::now() + settings.auto_commit.unwrap_or(Duration::MAX / 4),
            group_id,
            kip848: None,
            kip848_wanted: kip848_glue::profile(&config),
            topic_names: HashMap::new(),
        })
    }

    /// Subscribes to exactly `topics` (replacing the subscription); the group rebalances on the
    /// next `poll`.
    pub fn subscribe<T: AsRef<str>>(&mut self, topics: &[T]) {
        let topics: BTreeSet<String> = topics.iter().map(|t| t.as_ref().to_owned()).collect();
        if topics != self.topics {
            self.topics = topics;
            self.shared.lock().need.get_or_insert(Need::Subscription);
        }
    }

    /// The partitions this member owns now.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        flatten(&self.owned)
    }

    /// The group metadata for `send_offsets_to_transaction` (KIP-447).
    pub fn group_metadata(&self) -> GroupMetadata {
        let committer = self.committer();
        GroupMetadata {
            group_id: self.group_id.clone(),
            generation_id: committer.generation,
            member_id: committer.member_id,
            group_instance_id: committer.instance_id,
        }
    }

    /// The underlying consumer, for seek, pause and resume of owned partitions.
    pub fn consumer(&mut self) -> &mut Consumer {
        &mut self.consumer
    }

    /// Waits for the next batch or partition change, running a rebalance when the group needs
    /// one. Calling it is also what tells the group this member is alive and processing
    /// (`max.poll.interval.ms`).
    ///
    /// Cancel safety: cancel safe between steps; a rebalance cut short is started over on the
    /// next call (the coordinator sees a member that took long to rejoin). To wait for data
    /// with a time limit, use [`poll_for`](Self::poll_for), which never cuts a rebalance.
    pub async fn poll(&mut self) -> Result<GroupEvent> {
        loop {
            if let Some(event) = self.poll_until(None).await? {
                return Ok(event);
            }
        }
    }

    /// Like [`poll`](Self::poll), but returns `None` if no batch or partition change came
    /// within `max_wait`. An eager rebalance under way runs to its end first, whatever the
    /// limit (as Java's `poll(Duration)` does); a cooperative one goes on in the background
    /// of the reads and of the next calls.
    pub async fn poll_for(&mut self, max_wait: Duration) -> Result<Option<GroupEvent>> {
        self.poll_until(Some(Instant::now() + max_wait)).await
    }

    async fn poll_until(&mut self, deadline: Option<Instant>) -> Result<Option<GroupEvent>> {
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        loop {
            self.shared.lock().last_poll = Instant::now();
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            if !self.revoking.is_empty() {
                let revoking = std::mem::take(&mut self.revoking);
                self.give_up(&revoking);
            }
            if self.kip848_step().await? {
                continue;
            }
            if let Some(e) = self.shared.lock().fatal.clone() {
                return Err(e);
            }
            self.maybe_auto_commit();
            let need = if self.joining.is_some() {
                // The join under way settles the membership first.
                None
            } else {
                // Taking the need starts the rejoin: from here an error about the generation
                // being left must not ask for another one (see `request_rejoin`).
                let mut st = self.shared.lock();
                let need = st.need.take();
                if need.is_some() {
                    st.stable = false;
                }
                need
            };
            if let Some(need) = need {
                if !self.use_kip848(need).await? {
                    self.prepare_join(need).await;
                }
                continue;
            }
            if self.join_due && !self.joins_beside_reads() {
                let assignment = self.negotiation().run().await?;
                self.take_assignment(assignment).await?;
                continue;
            }
            if self.join_due && self.joining.is_none() {
                self.joining = Some(Joining(Mutex::new(Box::pin(self.negotiation().run()))));
            }
            let shared = Arc::clone(&self.shared);
            let wake = shared.app_wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            if self.shared.lock().need.is_some() {
                continue;
            }
            // Waking up on our own while no data comes: waiting in `poll` is polling, so
            // `last_poll` is refreshed within `max.poll.interval.ms` (else the heartbeat task
            // would leave the group of a member that is only idle), and a due auto-commit
            // runs (else what was read last before a quiet spell is never committed).
            let mut wake_at = Instant::now() + self.shared.settings.max_poll_interval / 2;
            if self.shared.settings.auto_commit.is_some() && self.in_group() {
                wake_at = wake_at.min(self.next_auto_commit);
            }
            let joining = self.joining.as_mut().map(|j| {
                j.0.get_mut()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_mut()
            });
            let joined = tokio::select! {
                assignment = async {
                    match joining {
                        Some(joining) => Some(joining.await),
                        None => std::future::pending().await,
                    }
                } => assignment,
                batch = self.consumer.poll_batch() => {
                    let batch = batch?;
                    record_consumed(&mut self.consumed, &batch);
                    return Ok(Some(GroupEvent::Batch(batch)));
                }
                () = &mut wake => None,
                () = tokio::time::sleep_until(deadline.unwrap_or(far)) => return Ok(None),
                () = tokio::time::sleep_until(wake_at) => None,
            };
            if let Some(assignment) = joined {
                self.joining = None;
                self.take_assignment(assignment?).await?;
            }
        }
    }

    /// Waits for the next batch, handling partition changes itself: with
    /// `enable.auto.commit`, offsets of revoked partitions are committed before they go.
    pub async fn poll_batch(&mut self) -> Result<FetchedBatch> {
        loop {
            if let GroupEvent::Batch(batch) = self.poll().await? {
                return Ok(batch);
            }
        }
    }

    /// Commits the offsets after the records handed out so far, for every owned partition.
    pub async fn commit(&mut self) -> Result<()> {
        let offsets = self.consumed_offsets(None);
        self.commit_offsets(&offsets).await
    }

    /// Commits `offsets` (the next offset to read per partition) for this member's generation.
    /// A commit refused because the group rebalanced (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION,
    /// UNKNOWN_MEMBER_ID) fails, and the member rejoins on the next `poll`. While a cooperative
    /// rebalance runs beside the reads, a refused commit fails with REBALANCE_IN_PROGRESS, as
    /// Java's `RebalanceInProgressException`: `poll` finishes the rebalance, then the commit
    /// can be made again under the new generation.
    pub async fn commit_offsets(&mut self, offsets: &[OffsetToCommit]) -> Result<()> {
        let mut stale = 0;
        loop {
            let committer = self.committer();
            let result = offsets::commit(
                &self.shared.coordinator,
                &committer,
                offsets,
                self.shared.retry(),
            )
            .await;
            match &result {
                // KIP-848: a heartbeat moved the member epoch on while the commit was under
                // way; the next attempt carries the new one.
                Err(e)
                    if e.code() == Some(KafkaCode::STALE_MEMBER_EPOCH)
                        && stale < STALE_EPOCH_RETRIES =>
                {
                    stale += 1;
                    tokio::time::sleep(self.shared.settings.backoff.delay(stale)).await;
                    continue;
                }
                Err(e)
                    if self.joining.is_some()
                        && matches!(
                            e.code(),
                            Some(KafkaCode::ILLEGAL_GENERATION | KafkaCode::REBALANCE_IN_PROGRESS)
                        ) =>
                {
                    return Err(Error::kafka(
                        KafkaCode::REBALANCE_IN_PROGRESS,
                        format!(
                            "commit for group {}: a rebalance is under way; poll to finish it, \
                             then commit again ({e})",
                            self.group_id
                        ),
                    ));
                }
                // Under KIP-848 the heartbeat, not a commit, notices a lost membership.
                Err(e) if self.kip848.is_none() => {
                    if let Some(reason) = rejoin_reason(e) {
                        request_rejoin(&self.shared, committer.generation, reason);
                    }
                }
                _ => {}
            }
            return result;
        }
    }

    /// The committed offsets of `partitions` (`None` where nothing is committed).
    pub async fn committed(
        &self,
        partitions: &[(String, i32)],
    ) -> Result<BTreeMap<(String, i32), Option<CommittedOffset>>> {
        offsets::fetch_committed(
            &self.shared.coordinator,
            Some(partitions),
            self.shared.settings.require_stable,
            self.shared.retry(),
        )
        .await
    }

    /// Leaves the group: commits first with `enable.auto.commit`, then sends LeaveGroup so
    /// the others take over at once (a static member does not leave: its partitions wait for
    /// it until the session times out, as in Java).
    pub async fn close(mut self) -> Result<()> {
        if self.shared.settings.auto_commit.is_some() && !self.owned.is_empty() {
            let offsets = self.consumed_offsets(None);
            if let Err(e) = self.commit_offsets(&offsets).await {
                tracing::warn!(group = %self.group_id, error = %e, "commit on close failed");
            }
        }
        if let Some(k) = self.kip848.take() {
            self.shared.lock().closed = true;
            self.heartbeat.abort();
            return k.leave().await;
        }
        let id = {
            let mut st = self.shared.lock();
            st.closed = true;
            st.stable = false;
            st.id.clone()
        };
        self.shared.heartbeat_wake.notify_one();
        self.heartbeat.abort();
        if id.generation >= 0 && id.instance_id.is_none() && !id.member_id.is_empty() {
            membership::leave(
                &self.shared.coordinator,
                &id,
                "the consumer is closing",
                self.shared.settings.request_timeout,
            )
            .await?;
        }
        Ok(())
    }

    /// Who commits: the classic generation, or under KIP-848 the member epoch in its place
    /// (KIP-447 holds for both).
    fn committer(&self) -> Committer {
        // Taken before the membership lock: the two locks are never held together.
        let kip848 = self.kip848.as_ref().map(super::kip848::Kip848::identity);
        let st = self.shared.lock();
        let (member_id, generation) =
            kip848.unwrap_or_else(|| (st.id.member_id.clone(), st.id.generation));
        Committer {
            generation,
            member_id,
            instance_id: st.id.instance_id.clone(),
        }
    }

    /// The consumed offsets of the owned partitions (or of `only`).
    fn consumed_offsets(&self, only: Option<&[(String, i32)]>) -> Vec<OffsetToCommit> {
        let owned = flatten(&self.owned);
        let wanted = only.map_or(owned.as_slice(), |o| o);
        wanted
            .iter()
            .filter_map(|key| {
                let &(offset, leader_epoch) = self.consumed.get(&key.0)?.get(&key.1)?;
                Some(OffsetToCommit {
                    topic: key.0.clone(),
                    partition: key.1,
                    offset,
                    leader_epoch,
                    metadata: None,
                })
            })
            .collect()
    }

    /// Starts an auto-commit in the background when one is due.
    fn maybe_auto_commit(&mut self) {
        let Some(interval) = self.shared.settings.auto_commit else {
            return;
        };
        if Instant::now() < self.next_auto_commit || !self.in_group() {
            return;
        }
        self.next_auto_commit = Instant::now() + interval;
        let offsets = self.consumed_offsets(None);
        if offsets.is_empty() {
            return;
        }
        let committer = self.committer();
        let classic = self.kip848.is_none();
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            if let Err(e) =
                offsets::commit(&shared.coordinator, &committer, &offsets, shared.retry()).await
            {
                tracing::warn!(group = %shared.coordinator.key(), error = %e, "auto-commit failed");
                // Under KIP-848 the heartbeat, not a commit, notices a lost membership.
                if let Some(reason) = rejoin_reason(&e).filter(|_| classic) {
                    request_rejoin(&shared, committer.generation, reason);
                }
            }
        });
    }

    fn protocol(&self) -> RebalanceProtocol {
        // The group runs cooperatively only if every member offered a cooperative assignor
        // and it was chosen; the chosen one is known after the first join.
        let chosen = self.shared.lock().id.protocol.clone();
        chosen
            .and_then(|name| self.assignors.iter().find(|a| a.name() == name))
            .or_else(|| self.assignors.first())
            .map_or(RebalanceProtocol::Eager, |a| a.rebalance_protocol())
    }

    /// Gives up what must go before joining: everything under an eager protocol (after
    /// committing with auto-commit), everything as lost when the member was expelled.
    async fn prepare_join(&mut self, need: Need) {
        let lost = matches!(
            need,
            Need::PollTimeout | Need::Rejoin(Rejoin::NewGeneration | Rejoin::NewMember)
        );
        if lost {
            let mut st = self.shared.lock();
            st.stable = false;
            let new_member = matches!(need, Need::PollTimeout | Need::Rejoin(Rejoin::NewMember));
            let dynamic = st.id.instance_id.is_none();
            st.id.reset(new_member && dynamic);
        }
        if !self.owned.is_empty() && (lost || self.protocol() == RebalanceProtocol::Eager) {
            let owned = flatten(&self.owned);
            if lost {
                self.events.push_back(GroupEvent::Lost(owned.clone()));
                self.give_up(&owned);
            } else {
                self.auto_commit_now(&owned).await;
                self.events.push_back(GroupEvent::Revoked(owned.clone()));
                self.revoking.extend(owned);
            }
        }
        self.join_due = true;
    }

    /// Commits the consumed offsets of `partitions` now, with auto-commit.
    async fn auto_commit_now(&mut self, partitions: &[(String, i32)]) {
        if self.shared.settings.auto_commit.is_none() {
            return;
        }
        let offsets = self.consumed_offsets(Some(partitions));
        if let Err(e) = self.commit_offsets(&offsets).await {
            tracing::warn!(group = %self.group_id, error = %e, "commit before revocation failed");
        }
    }

    /// Stops reading `partitions` and forgets their consumed offsets.
    fn give_up(&mut self, partitions: &[(String, i32)]) {
        for (topic, partition) in partitions {
            if let Some(list) = self.owned.get_mut(topic) {
                list.retain(|p| p != partition);
                if list.is_empty() {
                    self.owned.remove(topic);
                }
            }
            if let Some(partitions) = self.consumed.get_mut(topic) {
                partitions.remove(partition);
            }
        }
        let keep = flatten(&self.owned)
            .into_iter()
            .map(|(t, p)| (t, p, Offset::End))
            .collect();
        self.consumer.assign_keeping(keep);
    }

    /// Whether a join runs beside reads: under a cooperative protocol, while the member owns
    /// partitions (it keeps them through the rebalance).
    fn joins_beside_reads(&self) -> bool {
        self.protocol() == RebalanceProtocol::Cooperative && !self.owned.is_empty()
    }

    /// What JoinGroup and SyncGroup need, taken now.
    fn negotiation(&self) -> Negotiation {
        Negotiation {
            shared: Arc::clone(&self.shared),
            assignors: Arc::clone(&self.assignors),
            topics: self.topics.clone(),
            owned: self.owned.clone(),
            cluster: self.consumer.cluster().clone(),
        }
    }

    /// Takes on the assignment SyncGroup gave: revokes what moved away (cooperative), starts
    /// reading what is new from its committed offsets.
    async fn take_assignment(&mut self, assignment: bytes::Bytes) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        let (assigned, _user_data) = wire::decode_assignment(assignment)?;
        let assigned: TopicPartitions = assigned
            .into_iter()
            .filter(|(topic, _)| self.topics.contains(topic))
            .collect();
        let new = flatten(&assigned);
        let old = flatten(&self.owned);
        let revoked: Vec<(String, i32)> =
            old.iter().filter(|tp| !new.contains(tp)).cloned().collect();
        let added: Vec<(String, i32)> =
            new.iter().filter(|tp| !old.contains(tp)).cloned().collect();
        if !revoked.is_empty() {
            // Cooperative: give up only what moves, then rejoin so the others can take it.
            self.auto_commit_now(&revoked).await;
            self.events.push_back(GroupEvent::Revoked(revoked.clone()));
            self.revoking.extend(revoked.iter().cloned());
        }
        self.take_on(&added).await?;
        self.events.push_back(GroupEvent::Assigned(added));
        {
            let mut st = shared.lock();
            st.stable = true;
            if !revoked.is_empty() {
                st.need.get_or_insert(Need::Rejoin(Rejoin::Rebalance));
            }
        }
        shared.heartbeat_wake.notify_one();
        self.join_due = false;
        Ok(())
    }

    /// Starts reading `added` (from their committed offsets, or as the reset policy says),
    /// keeping the owned partitions' positions, and counts them as owned.
    async fn take_on(&mut self, added: &[(String, i32)]) -> Result<()> {
        let starts = self.starting_offsets(added).await?;
        let mut all: Vec<(String, i32, Offset)> = flatten(&self.owned)
            .into_iter()
            .map(|(t, p)| (t, p, Offset::End))
            .collect();
        all.extend(starts);
        self.consumer.assign_keeping(all);
        for (topic, partition) in added {
            let list = self.owned.entry(topic.clone()).or_default();
            list.push(*partition);
            list.sort_unstable();
        }
        Ok(())
    }

    /// Where newly assigned partitions start: their committed offsets, or the reset policy.
    async fn starting_offsets(
        &self,
        added: &[(String, i32)],
    ) -> Result<Vec<(String, i32, Offset)>> {
        if added.is_empty() {
            return Ok(Vec::new());
        }
        let committed = self.committed(added).await?;
        let mut starts = Vec::with_capacity(added.len());
        for (topic, partition) in added {
            let offset = match committed.get(&(topic.clone(), *partition)).cloned().flatten() {
                Some(c) => Offset::Exact(c.offset),
                None => match self.shared.settings.reset {
                    OffsetReset::Earliest => Offset::Beginning,
                    OffsetReset::Latest => Offset::End,
                    OffsetReset::Error => {
                        return Err(Error::kafka(
                            KafkaCode::OFFSET_OUT_OF_RANGE,
                            format!("{topic}-{partition} has no committed offset and auto.offset.reset is none"),
                        ))
                    }
                },
            };
            starts.push((topic.clone(), *partition, offset));
        }
        Ok(starts)
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.heartbeat.abort();
    }
}

mod kip848_glue;
mod negotiation;

use negotiation::{Joining, Negotiation};

/// Notes that the records of `batch` are handed out: the offset after it is what a commit
/// of its partition stores.
fn record_consumed(consumed: &mut Consumed, batch: &FetchedBatch) {
    let epoch = Some(batch.batch().partition_leader_epoch()).filter(|e| *e >= 0);
    let entry = (batch.next_offset(), epoch);
    match consumed.get_mut(batch.topic()) {
        Some(partitions) => {
            partitions.insert(batch.partition(), entry);
        }
        None => {
            let partitions = HashMap::from([(batch.partition(), entry)]);
            consumed.insert(batch.topic().to_owned(), partitions);
        }
    }
}

fn flatten(partitions: &TopicPartitions) -> Vec<(String, i32)> {
    partitions
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
        .collect()
}

/// Marks that the member must rejoin, unless the generation already moved on or a rejoin is
/// already under way.
///
/// A member that is not stable is rejoining: an error about the generation it is leaving
/// says nothing about the next one. Without that check this goes wrong: a heartbeat of
/// generation 5 is in flight when the application starts rejoining; the coordinator moves to
/// generation 6 and answers the heartbeat ILLEGAL_GENERATION; the member's id still says 5
/// (JoinGroup has not answered yet), so the error would mark generation 6 as lost as soon as
/// it is joined, and the partitions just assigned would be handed out as `Lost`.
fn request_rejoin(shared: &Shared, generation: i32, reason: Rejoin) {
    let mut st = shared.lock();
    if st.stable && st.id.generation == generation && st.need.is_none() {
        st.need = Some(Need::Rejoin(reason));
        st.stable = false;
        drop(st);
        shared.app_wake.notify_one();
    }
}

/// Heartbeats while the member is in a generation; notices rebalances, fencing and a
/// stalled application.
async fn heartbeat_loop(shared: Arc<Shared>) {
    let settings = shared.settings.clone();
    let mut failures = 0u32;
    loop {
        let current = {
            let st = shared.lock();
            if st.closed {
                return;
            }
            st.stable.then(|| (st.id.clone(), st.last_poll))
        };
        let Some((id, last_poll)) = current else {
            // Woken when the member becomes stable or closes (a permit stored by notify_one
            // before this wait is not lost).
            shared.heartbeat_wake.notified().await;
            continue;
        };
        if last_poll.elapsed() > settings.max_poll_interval {
            tracing::warn!(
                group = %shared.coordinator.key(),
                "no poll for longer than max.poll.interval.ms: leaving the group"
            );
            if id.instance_id.is_none() {
                let _ = membership::leave(
                    &shared.coordinator,
                    &id,
                    "max.poll.interval.ms exceeded",
                    settings.request_timeout,
                )
                .await;
            }
            let mut st = shared.lock();
            if st.id.generation == id.generation {
                st.stable = false;
                st.need = Some(Need::PollTimeout);
            }
            drop(st);
            shared.app_wake.notify_one();
            continue;
        }
        match membership::heartbeat(&shared.coordinator, &id, settings.request_timeout).await {
            Ok(()) => failures = 0,
            Err(e) => match rejoin_reason(&e) {
                Some(reason) => request_rejoin(&shared, id.generation, reason),
                None if e.code() == Some(KafkaCode::FENCED_INSTANCE_ID) || e.is_fatal() => {
                    let mut st = shared.lock();
                    st.fatal = Some(e);
                    st.stable = false;
                    drop(st);
                    shared.app_wake.notify_one();
                }
                None => {
                    shared.coordinator.on_error(&e);
                    failures += 1;
                    tracing::debug!(group = %shared.coordinator.key(), error = %e, "heartbeat failed");
                    tokio::time::sleep(settings.backoff.delay(failures)).await;
                    continue;
                }
            },
        }
        tokio::select! {
            () = tokio::time::sleep(settings.heartbeat_interval) => {}
            () = shared.heartbeat_wake.notified() => {}
        }
    }
}
