//! ConsumerGroupHeartbeat and ConsumerGroupDescribe: translating between the wire and the
//! KIP-848 state machine in [`super::consumer`], and the cluster-level rules around it (one
//! group id is one protocol; empty groups convert).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::messages::consumer_group_describe_response::{
    self as describe_wire, DescribedGroup,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use super::consumer::assignor::{Assignment, ASSIGNORS};
use super::consumer::member::MemberState;
use super::consumer::{ConsumerGroup, Heartbeat, HeartbeatOutcome, TopicView, STATIC_LEAVE_EPOCH};
use super::{check_coordinator, GroupIdRule, Groups};
use crate::handlers::{str_bytes, Context};
use crate::state::{Shared, State};

/// The client host ConsumerGroupDescribe reports (see `admin.rs`).
const CLIENT_HOST: &str = "/127.0.0.1";

/// `authorized_operations` when the client did not ask for them.
const OPERATIONS_NOT_ASKED: i32 = i32::MIN;

/// A KIP-848 group as [`crate::MockCluster::describe_consumer_group`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerGroupDescription {
    /// Kafka's state name: Empty, Assigning, Reconciling or Stable.
    pub state: &'static str,
    /// The group epoch.
    pub group_epoch: i32,
    /// The epoch of the current target assignment.
    pub assignment_epoch: i32,
    /// The server-side assignor in use.
    pub assignor: String,
    /// The members, by member id.
    pub members: Vec<ConsumerGroupMember>,
}

/// A member of a [`ConsumerGroupDescription`]; partitions as (topic name, partition).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerGroupMember {
    /// The member id (chosen by the client from ConsumerGroupHeartbeat v1).
    pub member_id: String,
    /// Its `group.instance.id`, for a static member.
    pub instance_id: Option<String>,
    /// The client id of its first heartbeat.
    pub client_id: String,
    /// The topics it subscribes to.
    pub subscribed: Vec<String>,
    /// Its member epoch.
    pub member_epoch: i32,
    /// Where it is in reconciling with its target.
    pub state: MemberState,
    /// What it owns.
    pub assigned: Vec<(String, i32)>,
    /// What it must still release.
    pub revoking: Vec<(String, i32)>,
    /// Its target assignment.
    pub target: Vec<(String, i32)>,
}

/// The topics of the cluster as a consumer group sees them.
fn topic_view(state: &State) -> TopicView {
    state
        .topics
        .iter()
        .map(|(name, t)| (name.clone(), (t.id, t.partitions.len() as i32)))
        .collect()
}

fn named(state: &State, assignment: &Assignment) -> Vec<(String, i32)> {
    assignment
        .iter()
        .filter_map(|(id, ps)| Some((state.topic_name_by_id(*id)?.to_owned(), ps)))
        .flat_map(|(name, ps)| ps.iter().map(move |p| (name.clone(), *p)))
        .collect()
}

impl Groups {
    /// One ConsumerGroupHeartbeat, after the request's shape was checked.
    fn consumer_heartbeat(
        &mut self,
        group_id: &str,
        hb: Heartbeat,
        topics: &TopicView,
        config: &crate::MockConfig,
        now: Instant,
    ) -> Result<HeartbeatOutcome, ResponseError> {
        if let Some(classic) = self.groups.get(group_id) {
            if !classic.is_empty() {
                return Err(ResponseError::GroupIdNotFound);
            }
            // An empty classic group becomes a consumer group, offsets kept.
            if let Some(classic) = self.groups.remove(group_id) {
                self.consumer.insert(
                    group_id.to_owned(),
                    ConsumerGroup::with_offsets(classic.offsets),
                );
            }
        }
        if !self.consumer.contains_key(group_id) {
            if hb.epoch != 0 {
                return Err(ResponseError::GroupIdNotFound);
            }
            self.consumer
                .insert(group_id.to_owned(), ConsumerGroup::default());
        }
        let group = self
            .consumer
            .get_mut(group_id)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        group.heartbeat(hb, topics, config.consumer_group_session_timeout, now)
    }

    /// OffsetFetch v9+'s member check: only consumer groups check it.
    pub(crate) fn check_fetch(
        &self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
    ) -> Result<(), ResponseError> {
        match self.consumer.get(group_id) {
            Some(group) => group.validate_fetch(member_id, epoch),
            None => Ok(()),
        }
    }

    /// Every consumer group: (id, state name).
    pub(crate) fn consumer_ids(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.consumer
            .iter()
            .map(|(id, g)| (id.as_str(), g.state_name()))
    }

    /// What a test sees of a consumer group.
    pub(crate) fn describe_consumer(
        &self,
        state: &State,
        group_id: &str,
    ) -> Option<ConsumerGroupDescription> {
        let group = self.consumer.get(group_id)?;
        Some(ConsumerGroupDescription {
            state: group.state_name(),
            group_epoch: group.group_epoch,
            assignment_epoch: group.assignment_epoch,
            assignor: group.assignor().to_owned(),
            members: group
                .members
                .values()
                .map(|m| ConsumerGroupMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    subscribed: m.subscribed.iter().cloned().collect(),
                    member_epoch: m.epoch,
                    state: m.state,
                    assigned: named(state, &m.assigned),
                    revoking: named(state, &m.revoking),
                    target: named(state, group.target.get(&m.id).unwrap_or(&Assignment::new())),
                })
                .collect(),
        })
    }
}

/// Kafka's checks of a heartbeat's shape (`throwIfConsumerGroupHeartbeatRequestIsInvalid`);
/// the message says what is wrong.
fn check_request(
    version: i16,
    request: &ConsumerGroupHeartbeatRequest,
) -> Result<(), (ResponseError, &'static str)> {
    let invalid = |why| Err((ResponseError::InvalidRequest, why));
    if request.group_id.0.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if version >= 1 && request.member_id.is_empty() {
        return invalid("MemberId can't be empty.");
    }
    if request.member_epoch == 0 {
        if request.rebalance_timeout_ms == -1 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if !request.topic_partitions.as_ref().is_some_and(Vec::is_empty) {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
        let regex = request
            .subscribed_topic_regex
            .as_ref()
            .filter(|r| !r.is_empty());
        if request.subscribed_topic_names.is_none() && regex.is_none() {
            return invalid(
                "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
            );
        }
    } else if request.member_epoch == STATIC_LEAVE_EPOCH && request.instance_id.is_none() {
        return invalid("InstanceId can't be null.");
    } else if request.member_epoch < STATIC_LEAVE_EPOCH {
        return invalid("MemberEpoch is invalid.");
    } else if version == 0 && request.member_id.is_empty() {
        return invalid("MemberId can't be empty.");
    }
    if let Some(assignor) = &request.server_assignor {
        if !ASSIGNORS.contains(&assignor.as_str()) {
            return Err((
                ResponseError::UnsupportedAssignor,
                "the mock offers the uniform and range assignors",
            ));
        }
    }
    if request
        .subscribed_topic_regex
        .as_ref()
        .is_some_and(|r| !r.is_empty())
    {
        return Err((
            ResponseError::InvalidRegularExpression,
            "the mock does not implement regex subscriptions",
        ));
    }
    Ok(())
}

pub(super) fn heartbeat(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    if let Err((error, why)) = check_request(ctx.version, &request) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(why)));
    }
    let group_id = request.group_id.0.to_string();
    let mut member_id = request.member_id.to_string();
    if member_id.is_empty() {
        // v0: the coordinator names a joining member.
        member_id = Uuid::from_u128(fastrand::u128(..)).to_string();
    }
    let hb = Heartbeat {
        member_id,
        epoch: request.member_epoch,
        instance_id: request.instance_id.as_ref().map(|i| i.to_string()),
        rack_id: request.rack_id.as_ref().map(|r| r.to_string()),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed: request.subscribed_topic_names.as_ref().map(|names| {
            names
                .iter()
                .map(|n| n.0.to_string())
                .collect::<BTreeSet<_>>()
        }),
        assignor: request.server_assignor.as_ref().map(|a| a.to_string()),
        owned: request.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .map(|tp| (tp.topic_id, tp.partitions.iter().copied().collect()))
                .collect()
        }),
    };
    let mut state = shared.lock();
    let result = check_coordinator(&state, ctx, &group_id, GroupIdRule::NonEmpty).and_then(|()| {
        let topics = topic_view(&state);
        state
            .groups
            .consumer_heartbeat(&group_id, hb, &topics, &shared.config, Instant::now())
    });
    match result {
        Ok(outcome) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(&outcome.member_id)))
            .with_member_epoch(outcome.epoch)
            .with_heartbeat_interval_ms(
                i32::try_from(shared.config.consumer_group_heartbeat_interval.as_millis())
                    .unwrap_or(i32::MAX),
            )
            .with_assignment(outcome.assignment.map(wire_assignment)),
        Err(e) => ConsumerGroupHeartbeatResponse::default().with_error_code(e.code()),
    }
}

fn wire_assignment(assignment: Assignment) -> WireAssignment {
    WireAssignment::default().with_topic_partitions(
        assignment
            .into_iter()
            .filter(|(_, ps)| !ps.is_empty())
            .map(|(topic_id, ps)| {
                TopicPartitions::default()
                    .with_topic_id(topic_id)
                    .with_partitions(ps.into_iter().collect())
            })
            .collect(),
    )
}

pub(super) fn describe(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: &ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let state = shared.lock();
    let groups = request
        .group_ids
        .iter()
        .map(|id| {
            let out = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(OPERATIONS_NOT_ASKED);
            if let Err(e) = check_coordinator(&state, ctx, id.0.as_str(), GroupIdRule::AnyString) {
                return out.with_error_code(e.code());
            }
            let Some(group) = state.groups.describe_consumer(&state, id.0.as_str()) else {
                return out
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes("not a consumer group")));
            };
            let members = group
                .members
                .iter()
                .map(|m| describe_member(&state, m, ctx.version))
                .collect();
            out.with_group_state(str_bytes(group.state))
                .with_group_epoch(group.group_epoch)
                .with_assignment_epoch(group.assignment_epoch)
                .with_assignor_name(str_bytes(&group.assignor))
                .with_members(members)
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

fn describe_member(state: &State, m: &ConsumerGroupMember, version: i16) -> describe_wire::Member {
    let assignment = |list: &[(String, i32)]| {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, p) in list {
            by_topic.entry(topic).or_default().push(*p);
        }
        describe_wire::Assignment::default().with_topic_partitions(
            by_topic
                .into_iter()
                .map(|(topic, ps)| {
                    describe_wire::TopicPartitions::default()
                        .with_topic_id(state.topics.get(topic).map_or(Uuid::nil(), |t| t.id))
                        .with_topic_name(TopicName(str_bytes(topic)))
                        .with_partitions(ps)
                })
                .collect(),
        )
    };
    let mut member = describe_wire::Member::default()
        .with_member_id(str_bytes(&m.member_id))
        .with_instance_id(m.instance_id.as_deref().map(str_bytes))
        .with_member_epoch(m.member_epoch)
        .with_client_id(str_bytes(&m.client_id))
        .with_client_host(str_bytes(CLIENT_HOST))
        .with_subscribed_topic_names(
            m.subscribed
                .iter()
                .map(|t| TopicName(str_bytes(t)))
                .collect(),
        )
        .with_assignment(assignment(&m.assigned))
        .with_target_assignment(assignment(&m.target));
    if version >= 1 {
        // 1: a member of the consumer protocol (0 would be a classic member).
        member.member_type = 1;
    }
    member
}
