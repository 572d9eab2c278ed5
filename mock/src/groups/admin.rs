//! DescribeGroups, ListGroups and DeleteGroups, and the shape of every group API's
//! whole-request error (for fault injection).

use std::sync::Arc;

use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup as ConsumerGroupDescribedGroup;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatResponse, DeleteGroupsRequest,
    DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, GroupId,
    HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitResponse, OffsetFetchResponse, RequestKind, ResponseKind,
    SyncGroupResponse,
};

use super::member::GroupState;
use super::{check_coordinator, GroupIdRule};
use crate::handlers::{str_bytes, Context};
use crate::state::{CoordinatorKind, Shared};

/// KIP-848's names for the two group types (ListGroups v5); "consumer" is also the protocol
/// type of a consumer group.
const CLASSIC: &str = "classic";
const CONSUMER: &str = "consumer";

/// The client host DescribeGroups reports: every client of the mock is on loopback, and the
/// mock does not track connections' peers.
const CLIENT_HOST: &str = "/127.0.0.1";

pub(super) fn describe_groups(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: &DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let state = shared.lock();
    let groups = request
        .groups
        .iter()
        .map(|id| {
            let out = DescribedGroup::default().with_group_id(id.clone());
            if let Err(e) = check_coordinator(&state, ctx, id.0.as_str(), GroupIdRule::AnyString) {
                return out.with_error_code(e.code());
            }
            let Some(group) = state.groups.get(id.0.as_str()) else {
                return out.with_group_state(str_bytes(GroupState::Dead.name()));
            };
            // Metadata, assignments and the protocol only once the group is stable.
            let stable = group.state() == GroupState::Stable;
            let protocol = group
                .protocol
                .as_deref()
                .filter(|_| stable)
                .unwrap_or_default();
            let members = group
                .members
                .values()
                .map(|m| {
                    let mut member = DescribedGroupMember::default()
                        .with_member_id(str_bytes(&m.id))
                        .with_client_id(str_bytes(&m.client_id))
                        .with_client_host(str_bytes(CLIENT_HOST));
                    if ctx.version >= 4 {
                        member.group_instance_id = m.group_instance_id.as_deref().map(str_bytes);
                    }
                    if stable {
                        member.member_metadata = m.metadata(protocol);
                        member.member_assignment = m.assignment.clone();
                    }
                    member
                })
                .collect();
            out.with_group_state(str_bytes(group.state().name()))
                .with_protocol_type(str_bytes(
                    group.protocol_type.as_deref().unwrap_or_default(),
                ))
                .with_protocol_data(str_bytes(protocol))
                .with_members(members)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(super) fn list_groups(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: &ListGroupsRequest,
) -> ListGroupsResponse {
    let version = ctx.version;
    let state = shared.lock();
    let states: Vec<String> = if version >= 4 {
        request
            .states_filter
            .iter()
            .map(|s| s.to_lowercase())
            .collect()
    } else {
        Vec::new()
    };
    let types: Vec<String> = if version >= 5 {
        request
            .types_filter
            .iter()
            .map(|s| s.to_lowercase())
            .collect()
    } else {
        Vec::new()
    };
    // (id, protocol type, state, group type) of every group.
    let classic = state.groups.ids().map(|(id, g)| {
        let protocol_type = g.protocol_type.as_deref().unwrap_or_default();
        (id, protocol_type, g.state().name(), CLASSIC)
    });
    let consumer = state
        .groups
        .consumer_ids()
        .map(|(id, group_state)| (id, CONSUMER, group_state, CONSUMER));
    let listed = classic
        .chain(consumer)
        // Each broker lists the groups it coordinates; admin clients ask them all.
        .filter(|(id, ..)| state.coordinator(CoordinatorKind::Group, id) == ctx.broker)
        .filter(|(_, _, s, _)| states.is_empty() || states.contains(&s.to_lowercase()))
        .filter(|(.., kind)| types.is_empty() || types.iter().any(|t| t == kind))
        .map(|(id, protocol_type, group_state, kind)| {
            let mut listed = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(id)))
                .with_protocol_type(str_bytes(protocol_type));
            if version >= 4 {
                listed.group_state = str_bytes(group_state);
            }
            if version >= 5 {
                listed.group_type = str_bytes(kind);
            }
            listed
        })
        .collect();
    ListGroupsResponse::default().with_groups(listed)
}

pub(super) fn delete_groups(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: &DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut state = shared.lock();
    let results = request
        .groups_names
        .iter()
        .map(|id| {
            let name = id.0.as_str();
            let result = check_coordinator(&state, ctx, name, GroupIdRule::AnyString)
                .and_then(|()| state.groups.delete(name));
            DeletableGroupResult::default()
                .with_group_id(id.clone())
                .with_error_code(result.err().map_or(0, |e| e.code()))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}

/// The response to a group `request` failing as a whole with `code`, in its API's shape
/// (Kafka's `getErrorResponse` of each request).
pub(super) fn error_response(
    version: i16,
    request: &RequestKind,
    code: i16,
) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::JoinGroup(r) => {
            let mut response = JoinGroupResponse::default()
                .with_error_code(code)
                .with_member_id(r.member_id.clone());
            if version >= 7 {
                response.protocol_name = None;
            }
            ResponseKind::JoinGroup(response)
        }
        RequestKind::SyncGroup(_) => {
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(code))
        }
        RequestKind::Heartbeat(_) => {
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code))
        }
        RequestKind::LeaveGroup(_) => {
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(code))
        }
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(
            OffsetCommitResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        OffsetCommitResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        OffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        RequestKind::OffsetFetch(r) if version >= 8 => ResponseKind::OffsetFetch(
            OffsetFetchResponse::default().with_groups(
                r.groups
                    .iter()
                    .map(|g| {
                        OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        RequestKind::OffsetFetch(_) if version >= 2 => {
            ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_error_code(code))
        }
        // v1 has no top-level error: every requested partition carries it.
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(
            OffsetFetchResponse::default().with_topics(
                r.topics
                    .iter()
                    .flatten()
                    .map(|t| {
                        OffsetFetchResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partition_indexes
                                    .iter()
                                    .map(|&p| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(-1)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(
            DescribeGroupsResponse::default().with_groups(
                r.groups
                    .iter()
                    .map(|g| {
                        DescribedGroup::default()
                            .with_group_id(g.clone())
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        RequestKind::ListGroups(_) => {
            ResponseKind::ListGroups(ListGroupsResponse::default().with_error_code(code))
        }
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(
            DeleteGroupsResponse::default().with_results(
                r.groups_names
                    .iter()
                    .map(|g| {
                        DeletableGroupResult::default()
                            .with_group_id(g.clone())
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        RequestKind::ConsumerGroupHeartbeat(_) => ResponseKind::ConsumerGroupHeartbeat(
            ConsumerGroupHeartbeatResponse::default().with_error_code(code),
        ),
        RequestKind::ConsumerGroupDescribe(r) => ResponseKind::ConsumerGroupDescribe(
            ConsumerGroupDescribeResponse::default().with_groups(
                r.group_ids
                    .iter()
                    .map(|g| {
                        ConsumerGroupDescribedGroup::default()
                            .with_group_id(g.clone())
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        _ => return None,
    })
}
