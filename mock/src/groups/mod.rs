//! The group coordinator: classic consumer groups (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup), KIP-848 consumer groups (ConsumerGroupHeartbeat, ConsumerGroupDescribe),
//! committed offsets (OffsetCommit, OffsetFetch), and DescribeGroups, ListGroups and
//! DeleteGroups.
//!
//! Clients judge a mock by how it behaves in a rebalance, so the state machine in
//! [`group`] follows Kafka's classic coordinator rule by rule (error codes, their order, when a
//! parked JoinGroup is answered); the handlers here only translate between the wire and it,
//! and [`run_timers`] applies its deadlines. Every broker answers NOT_COORDINATOR for a group
//! it does not coordinate, though the groups themselves are shared by the cluster: after
//! `MockCluster::move_group_coordinator` members must find the new coordinator, and find their
//! group (members, generation, offsets) there as Kafka's new coordinator would after loading
//! it.
//!
//! A group id names either a classic group or a consumer group, never both: a request of the
//! other protocol to a non-empty group fails with GROUP_ID_NOT_FOUND (Kafka without online
//! migration), and an empty group (one that only stores offsets) is converted, offsets kept.
//!
//! References: the Kafka protocol guide's group membership APIs; KIP-62 (rebalance timeout),
//! KIP-134 (initial rebalance delay), KIP-345 (static membership), KIP-394
//! (MEMBER_ID_REQUIRED), KIP-447 (offsets in transactions, require_stable), KIP-709
//! (batched OffsetFetch), KIP-814 (skip_assignment).

mod admin;
mod consumer;
mod consumer_api;
mod group;
mod member;
mod membership;
mod offsets;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::ResponseError;
use tokio::time::Instant;

pub use consumer::member::MemberState;
pub use consumer_api::{ConsumerGroupDescription, ConsumerGroupMember};
pub use member::GroupState;

use crate::config::MockConfig;
use crate::handlers::{Context, Reply};
use crate::state::{CoordinatorKind, Shared, State};
use consumer::ConsumerGroup;
use group::Group;
use member::{Answer, JoinOutcome, JoinRequest, SyncOutcome, SyncRequest};
use offsets::{Committed, Offsets};

/// The group APIs the mock serves: (API, lowest version, highest version).
///
/// OffsetCommit v9+ and OffsetFetch v9+ carry KIP-848 member epochs; v10 names topics by id,
/// which `kafka-protocol` 0.18 cannot encode. ConsumerGroupHeartbeat v1 (KIP-1082) is what
/// librdkafka 2.12 needs; v0 is served too.
pub(crate) const SERVED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
];

/// How often [`run_timers`] looks for passed deadlines.
const TICK: Duration = Duration::from_millis(10);

/// The groups of the cluster.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    /// Classic groups.
    groups: BTreeMap<String, Group>,
    /// KIP-848 consumer groups.
    consumer: BTreeMap<String, ConsumerGroup>,
    /// Orders every commit (see [`Committed::seq`]).
    commits: u64,
}

impl Groups {
    pub(crate) fn get(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    /// Every group, by id.
    pub(crate) fn ids(&self) -> impl Iterator<Item = (&str, &Group)> {
        self.groups.iter().map(|(id, g)| (id.as_str(), g))
    }

    /// DeleteGroups for one group: only an empty group (no members) can go, with its offsets.
    pub(crate) fn delete(&mut self, group_id: &str) -> Result<(), ResponseError> {
        if let Some(group) = self.consumer.get(group_id) {
            if !group.is_empty() {
                return Err(ResponseError::NonEmptyGroup);
            }
            self.consumer.remove(group_id);
            return Ok(());
        }
        let group = self
            .groups
            .get(group_id)
            .ok_or(ResponseError::GroupIdNotFound)?;
        if !group.is_empty() {
            return Err(ResponseError::NonEmptyGroup);
        }
        self.groups.remove(group_id);
        Ok(())
    }

    /// JoinGroup, after the coordinator check: the session timeout must be within the
    /// cluster's bounds, and only a member without an id may create the group.
    pub(crate) fn join(
        &mut self,
        group_id: &str,
        request: JoinRequest,
        config: &MockConfig,
        now: Instant,
    ) -> Answer<JoinOutcome> {
        if request.session_timeout < config.group_min_session_timeout
            || request.session_timeout > config.group_max_session_timeout
        {
            return Answer::Now(JoinOutcome::error(
                ResponseError::InvalidSessionTimeout,
                &request.member_id,
            ));
        }
        if let Some(consumer) = self.consumer.get(group_id) {
            if !consumer.is_empty() {
                return Answer::Now(JoinOutcome::error(
                    ResponseError::GroupIdNotFound,
                    &request.member_id,
                ));
            }
            // An empty consumer group becomes a classic one, offsets kept.
            if let Some(consumer) = self.consumer.remove(group_id) {
                let mut group = Group::new();
                group.offsets = consumer.offsets;
                self.groups.insert(group_id.to_owned(), group);
            }
        }
        if !self.groups.contains_key(group_id) {
            if !request.member_id.is_empty() {
                return Answer::Now(JoinOutcome::error(
                    ResponseError::UnknownMemberId,
                    &request.member_id,
                ));
            }
            self.groups.insert(group_id.to_owned(), Group::new());
        }
        match self.groups.get_mut(group_id) {
            Some(group) => group.join(request, config.group_initial_rebalance_delay, now),
            None => Answer::Now(JoinOutcome::error(
                ResponseError::CoordinatorNotAvailable,
                &request.member_id,
            )),
        }
    }

    pub(crate) fn sync(
        &mut self,
        group_id: &str,
        request: SyncRequest,
        now: Instant,
    ) -> Answer<SyncOutcome> {
        match self.groups.get_mut(group_id) {
            Some(group) => group.sync(request, now),
            None => Answer::Now(SyncOutcome::error(ResponseError::UnknownMemberId)),
        }
    }

    pub(crate) fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        self.groups
            .get_mut(group_id)
            .ok_or(ResponseError::UnknownMemberId)?
            .heartbeat(member_id, group_instance_id, generation, now)
    }

    pub(crate) fn leave(
        &mut self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        now: Instant,
    ) -> Result<(), ResponseError> {
        self.groups
            .get_mut(group_id)
            .ok_or(ResponseError::UnknownMemberId)?
            .leave(member_id, group_instance_id, now)
    }

    /// Whether an OffsetCommit may store offsets in `group_id`; a commit with generation -1 to
    /// a group that does not exist creates it (a group that only stores offsets).
    pub(crate) fn check_commit(
        &mut self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
        version: i16,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if let Some(consumer) = self.consumer.get(group_id) {
            return consumer.validate_commit(
                member_id,
                group_instance_id,
                generation,
                false,
                version,
            );
        }
        let group = match self.groups.get_mut(group_id) {
            Some(group) => group,
            None if generation < 0 => self
                .groups
                .entry(group_id.to_owned())
                .or_insert_with(Group::new),
            None => return Err(ResponseError::IllegalGeneration),
        };
        group.validate_commit(member_id, group_instance_id, generation, false)?;
        group.accept_commit(member_id, now)
    }

    /// Stores one committed offset (after [`Groups::check_commit`]).
    pub(crate) fn commit(
        &mut self,
        group_id: &str,
        topic: &str,
        partition: i32,
        offset: i64,
        leader_epoch: i32,
        metadata: String,
    ) {
        self.commits += 1;
        let seq = self.commits;
        if let Some(offsets) = self.offsets_mut(group_id) {
            offsets.commit(
                topic,
                partition,
                Committed {
                    offset,
                    leader_epoch,
                    metadata,
                    seq,
                },
            );
        }
    }

    /// Applies every deadline passed by `now`; true if any group changed.
    pub(crate) fn tick(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for group in self.consumer.values_mut() {
            changed |= group.tick(now);
        }
        for group in self.groups.values_mut() {
            changed |= group.tick(now);
        }
        changed
    }

    /// What a test sees of a group.
    pub(crate) fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let group = self.groups.get(group_id)?;
        Some(GroupDescription {
            state: group.state(),
            generation: group.generation,
            protocol_type: group.protocol_type.clone(),
            protocol: group.protocol.clone(),
            leader: group.leader.clone(),
            members: group
                .members
                .values()
                .map(|m| GroupMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        })
    }

    /// The committed offset of a partition (not offsets pending in a transaction).
    pub(crate) fn committed(&self, group_id: &str, topic: &str, partition: i32) -> Option<i64> {
        Some(self.offsets(group_id)?.get(topic, partition)?.offset)
    }

    /// A group's offsets, whichever protocol it runs.
    pub(crate) fn offsets(&self, group_id: &str) -> Option<&Offsets> {
        match self.consumer.get(group_id) {
            Some(g) => Some(&g.offsets),
            None => self.groups.get(group_id).map(|g| &g.offsets),
        }
    }

    fn offsets_mut(&mut self, group_id: &str) -> Option<&mut Offsets> {
        match self.consumer.get_mut(group_id) {
            Some(g) => Some(&mut g.offsets),
            None => self.groups.get_mut(group_id).map(|g| &mut g.offsets),
        }
    }
}

// The interface the transaction coordinator uses (TxnOffsetCommit, EndTxn; KIP-447).
impl Groups {
    /// Checks a TxnOffsetCommit's member against the group: Ok for generation -1 with an empty
    /// member id (a producer not in a group), else ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID or
    /// FENCED_INSTANCE_ID as Kafka's coordinator answers.
    pub(crate) fn check_txn_member(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
        group_instance_id: Option<&str>,
    ) -> Result<(), kafka_protocol::ResponseError> {
        if let Some(g) = self.consumer.get(group) {
            return g.validate_commit(member_id, group_instance_id, generation, true, i16::MAX);
        }
        match self.groups.get(group) {
            Some(g) => g.validate_commit(member_id, group_instance_id, generation, true),
            // Kafka's (Java) coordinator: a transactional commit may create the group only
            // without a generation.
            None if generation < 0 => Ok(()),
            None => Err(ResponseError::IllegalGeneration),
        }
    }

    /// Stages offsets committed inside `producer_id`'s transaction; they become visible to
    /// OffsetFetch only when [`Groups::complete_txn`] commits them (until then a
    /// require_stable OffsetFetch answers UNSTABLE_OFFSET_COMMIT for those partitions).
    pub(crate) fn stage_txn_offsets(
        &mut self,
        group: &str,
        producer_id: i64,
        offsets: Vec<TxnOffset>,
    ) {
        if self.offsets(group).is_none() {
            self.groups.insert(group.to_owned(), Group::new());
        }
        for o in offsets {
            self.commits += 1;
            let seq = self.commits;
            if let Some(staged) = self.offsets_mut(group) {
                staged.stage(
                    producer_id,
                    &o.topic,
                    o.partition,
                    Committed {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata: o.metadata.unwrap_or_default(),
                        seq,
                    },
                );
            }
        }
    }

    /// Applies (`commit`) or drops the offsets `producer_id` staged in `group`.
    pub(crate) fn complete_txn(&mut self, group: &str, producer_id: i64, commit: bool) {
        if let Some(offsets) = self.offsets_mut(group) {
            offsets.complete(producer_id, commit);
        }
    }
}

/// One offset committed inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnOffset {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: Option<String>,
}

/// A consumer group as [`crate::MockCluster::describe_group`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupDescription {
    /// The group's state.
    pub state: GroupState,
    /// The current generation (0 before the first rebalance ends).
    pub generation: i32,
    /// The members' protocol type ("consumer" for consumers).
    pub protocol_type: Option<String>,
    /// The protocol (assignor) the last rebalance chose.
    pub protocol: Option<String>,
    /// The leader's member id.
    pub leader: Option<String>,
    /// The members, by member id.
    pub members: Vec<GroupMember>,
}

/// A member of a [`GroupDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupMember {
    /// The id the coordinator gave it.
    pub member_id: String,
    /// Its `group.instance.id`, for a static member.
    pub group_instance_id: Option<String>,
    /// The client id of its JoinGroup.
    pub client_id: String,
    /// Its assignment from the last SyncGroup, as the leader encoded it.
    pub assignment: Vec<u8>,
}

/// Expires sessions and rebalance timeouts; runs for the cluster's lifetime.
pub(crate) async fn run_timers(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let changed = shared.lock().groups.tick(Instant::now());
        if changed {
            shared.notify();
        }
    }
}

/// Which group ids an API accepts (Kafka's `isValidGroupId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupIdRule {
    /// Membership APIs: not empty.
    NonEmpty,
    /// Offset and admin APIs: any string, even "".
    AnyString,
}

/// Kafka's `validateGroupStatus`: a valid group id, then this broker must coordinate it.
pub(crate) fn check_coordinator(
    state: &State,
    ctx: &Context,
    group_id: &str,
    rule: GroupIdRule,
) -> Result<(), ResponseError> {
    if rule == GroupIdRule::NonEmpty && group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    if state.coordinator(CoordinatorKind::Group, group_id) != ctx.broker {
        return Err(ResponseError::NotCoordinator);
    }
    Ok(())
}

/// Serves a group request, or hands back a request that is not one.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: RequestKind,
) -> Result<Reply, RequestKind> {
    let response = match request {
        RequestKind::JoinGroup(r) => match membership::join_group(shared, ctx, r).await {
            Some(r) => ResponseKind::JoinGroup(r),
            None => return Ok(Reply::Close),
        },
        RequestKind::SyncGroup(r) => match membership::sync_group(shared, ctx, r).await {
            Some(r) => ResponseKind::SyncGroup(r),
            None => return Ok(Reply::Close),
        },
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(membership::heartbeat(shared, ctx, &r))
        }
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(membership::leave_group(shared, ctx, &r))
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(offsets::offset_commit(shared, ctx, r))
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(offsets::offset_fetch(shared, ctx, r))
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(admin::describe_groups(shared, ctx, &r))
        }
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(admin::list_groups(shared, ctx, &r)),
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(admin::delete_groups(shared, ctx, &r))
        }
        RequestKind::ConsumerGroupHeartbeat(r) => {
            ResponseKind::ConsumerGroupHeartbeat(consumer_api::heartbeat(shared, ctx, r))
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            ResponseKind::ConsumerGroupDescribe(consumer_api::describe(shared, ctx, &r))
        }
        other => return Err(other),
    };
    let read_only = matches!(
        response,
        ResponseKind::Heartbeat(_)
            | ResponseKind::OffsetFetch(_)
            | ResponseKind::DescribeGroups(_)
            | ResponseKind::ListGroups(_)
            | ResponseKind::ConsumerGroupDescribe(_)
    );
    if !read_only {
        shared.notify();
    }
    Ok(Reply::Respond(Box::new(response)))
}

/// A group request failing as a whole with `code`.
pub(crate) fn error_response(
    version: i16,
    request: &RequestKind,
    code: i16,
) -> Option<ResponseKind> {
    admin::error_response(version, request, code)
}

#[cfg(test)]
mod tests;
