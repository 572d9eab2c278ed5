//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup: translating between the wire, at the
//! request's version, and the state machine in [`super::group`].

use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::member::{Answer, JoinOutcome, JoinRequest, SyncOutcome, SyncRequest};
use super::{check_coordinator, GroupIdRule};
use crate::handlers::{str_bytes, Context};
use crate::state::{millis, Shared};

/// Waits for a parked request's answer. `None` if the cluster shuts down first, or if the
/// request will never be answered (a second JoinGroup from the same member replaced it, as
/// Kafka leaves such a request unanswered): the connection is then closed.
async fn wait<T>(shared: &Shared, answer: Answer<T>) -> Option<T> {
    let rx: oneshot::Receiver<T> = match answer {
        Answer::Now(outcome) => return Some(outcome),
        Answer::Later(rx) => rx,
    };
    let mut shutdown = shared.shutdown.subscribe();
    tokio::select! {
        outcome = rx => outcome.ok(),
        _ = shutdown.wait_for(|closed| *closed) => None,
    }
}

pub(super) async fn join_group(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: JoinGroupRequest,
) -> Option<JoinGroupResponse> {
    let version = ctx.version;
    let group_id = request.group_id.0.to_string();
    let session_timeout = millis(request.session_timeout_ms);
    let group_instance_id = request
        .group_instance_id
        .as_ref()
        .filter(|_| version >= 5)
        .map(|i| i.to_string());
    let join = JoinRequest {
        member_id: request.member_id.to_string(),
        require_known_member_id: version >= 4 && group_instance_id.is_none(),
        group_instance_id,
        client_id: ctx.client_id.clone().unwrap_or_default(),
        session_timeout,
        // v0 has no rebalance timeout: the session timeout serves as one.
        rebalance_timeout: if version >= 1 {
            millis(request.rebalance_timeout_ms)
        } else {
            session_timeout
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        supports_skip_assignment: version >= 9,
    };
    let answer = {
        let mut state = shared.lock();
        match check_coordinator(&state, ctx, &group_id, GroupIdRule::NonEmpty) {
            Err(e) => Answer::Now(JoinOutcome::error(e, &join.member_id)),
            Ok(()) => state
                .groups
                .join(&group_id, join, &shared.config, Instant::now()),
        }
    };
    let outcome = wait(shared, answer).await?;
    Some(join_response(version, outcome))
}

fn join_response(version: i16, outcome: JoinOutcome) -> JoinGroupResponse {
    let members = outcome
        .members
        .into_iter()
        .map(|m| {
            let mut member = JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&m.member_id))
                .with_metadata(m.metadata);
            if version >= 5 {
                member.group_instance_id = m.group_instance_id.as_deref().map(str_bytes);
            }
            member
        })
        .collect();
    let mut response = JoinGroupResponse::default()
        .with_error_code(outcome.error.map_or(0, |e| e.code()))
        .with_generation_id(outcome.generation)
        .with_leader(str_bytes(&outcome.leader))
        .with_member_id(str_bytes(&outcome.member_id))
        .with_members(members);
    if version >= 7 {
        response.protocol_type = outcome.protocol_type.as_deref().map(str_bytes);
        response.protocol_name = outcome.protocol_name.as_deref().map(str_bytes);
    } else {
        // Not nullable before v7: "" stands for no protocol.
        response.protocol_name = Some(str_bytes(
            outcome.protocol_name.as_deref().unwrap_or_default(),
        ));
    }
    if version >= 9 {
        response.skip_assignment = outcome.skip_assignment;
    }
    response
}

pub(super) async fn sync_group(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: SyncGroupRequest,
) -> Option<SyncGroupResponse> {
    let version = ctx.version;
    let group_id = request.group_id.0.to_string();
    let string = |s: Option<&kafka_protocol::protocol::StrBytes>| s.map(|s| s.to_string());
    let sync = SyncRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: string(request.group_instance_id.as_ref().filter(|_| version >= 3)),
        generation: request.generation_id,
        protocol_type: string(request.protocol_type.as_ref().filter(|_| version >= 5)),
        protocol_name: string(request.protocol_name.as_ref().filter(|_| version >= 5)),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let answer = {
        let mut state = shared.lock();
        match check_coordinator(&state, ctx, &group_id, GroupIdRule::NonEmpty) {
            Err(e) => Answer::Now(SyncOutcome::error(e)),
            Ok(()) => state.groups.sync(&group_id, sync, Instant::now()),
        }
    };
    let outcome = wait(shared, answer).await?;
    let mut response = SyncGroupResponse::default()
        .with_error_code(outcome.error.map_or(0, |e| e.code()))
        .with_assignment(outcome.assignment);
    if version >= 5 {
        response.protocol_type = outcome.protocol_type.as_deref().map(str_bytes);
        response.protocol_name = outcome.protocol_name.as_deref().map(str_bytes);
    }
    Some(response)
}

pub(super) fn heartbeat(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: &HeartbeatRequest,
) -> HeartbeatResponse {
    let group_id = request.group_id.0.as_str();
    let instance = request
        .group_instance_id
        .as_ref()
        .filter(|_| ctx.version >= 3)
        .map(|i| i.as_str());
    let mut state = shared.lock();
    let result = check_coordinator(&state, ctx, group_id, GroupIdRule::NonEmpty).and_then(|()| {
        state.groups.heartbeat(
            group_id,
            request.member_id.as_str(),
            instance,
            request.generation_id,
            Instant::now(),
        )
    });
    HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| e.code()))
}

pub(super) fn leave_group(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: &LeaveGroupRequest,
) -> LeaveGroupResponse {
    let version = ctx.version;
    let group_id = request.group_id.0.as_str();
    // (member id, instance id) of each leaving member.
    let leaving: Vec<(&str, Option<&str>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| (m.member_id.as_str(), m.group_instance_id.as_deref()))
            .collect()
    } else {
        vec![(request.member_id.as_str(), None)]
    };
    let mut state = shared.lock();
    if let Err(e) = check_coordinator(&state, ctx, group_id, GroupIdRule::NonEmpty) {
        return LeaveGroupResponse::default().with_error_code(e.code());
    }
    let now = Instant::now();
    let results: Vec<Result<(), ResponseError>> = leaving
        .iter()
        .map(|(member_id, instance)| state.groups.leave(group_id, member_id, *instance, now))
        .collect();
    if version < 3 {
        // One member, its error at the top level.
        let code = results.iter().find_map(|r| r.err()).map_or(0, |e| e.code());
        return LeaveGroupResponse::default().with_error_code(code);
    }
    LeaveGroupResponse::default().with_members(
        leaving
            .iter()
            .zip(results)
            .map(|((member_id, instance), result)| {
                MemberResponse::default()
                    .with_member_id(str_bytes(member_id))
                    .with_group_instance_id(instance.map(str_bytes))
                    .with_error_code(result.err().map_or(0, |e| e.code()))
            })
            .collect(),
    )
}
