//! The group APIs as a client sees them: one member through every served version of every
//! API (each answer must encode at its version), NOT_COORDINATOR, require_stable, the
//! whole-request error shapes, and a KIP-848 group's heartbeats, commits and fetches.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, HeartbeatRequest, JoinGroupRequest,
    LeaveGroupRequest, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetFetchRequest, SyncGroupRequest, TopicName,
};

use super::*;
use crate::handlers::str_bytes;
use crate::state::Broker;

fn cluster() -> Arc<Shared> {
    let brokers = (1..=3)
        .map(|id| Broker {
            id,
            host: "127.0.0.1".to_owned(),
            port: 9000 + id,
            rack: None,
        })
        .collect();
    let shared = Shared::new(MockConfig::default(), brokers);
    shared
        .lock()
        .create_topic("t", 2, std::collections::BTreeMap::new());
    shared
}

fn api_of(request: &RequestKind) -> ApiKey {
    match request {
        RequestKind::JoinGroup(_) => ApiKey::JoinGroup,
        RequestKind::SyncGroup(_) => ApiKey::SyncGroup,
        RequestKind::Heartbeat(_) => ApiKey::Heartbeat,
        RequestKind::LeaveGroup(_) => ApiKey::LeaveGroup,
        RequestKind::OffsetCommit(_) => ApiKey::OffsetCommit,
        RequestKind::OffsetFetch(_) => ApiKey::OffsetFetch,
        RequestKind::DescribeGroups(_) => ApiKey::DescribeGroups,
        RequestKind::ListGroups(_) => ApiKey::ListGroups,
        RequestKind::DeleteGroups(_) => ApiKey::DeleteGroups,
        RequestKind::ConsumerGroupHeartbeat(_) => ApiKey::ConsumerGroupHeartbeat,
        RequestKind::ConsumerGroupDescribe(_) => ApiKey::ConsumerGroupDescribe,
        other => panic!("not a group request: {other:?}"),
    }
}

/// The version of `api` to use alongside JoinGroup `v`: `v` clamped to what is served.
fn at(api: ApiKey, v: i16) -> i16 {
    let (_, min, max) = SERVED.iter().copied().find(|s| s.0 == api).unwrap();
    v.clamp(min, max)
}

/// Sends `request` to `broker`; checks the answer encodes at its version.
async fn call(shared: &Arc<Shared>, broker: i32, v: i16, request: RequestKind) -> ResponseKind {
    let api = api_of(&request);
    let version = at(api, v);
    let ctx = Context {
        broker,
        api,
        version,
        client_id: Some("client".to_owned()),
    };
    let Ok(Reply::Respond(response)) = handle(shared, &ctx, request).await else {
        panic!("{api:?} v{version}: no response");
    };
    response
        .encode(&mut BytesMut::new(), version)
        .unwrap_or_else(|e| panic!("{api:?} v{version} does not encode: {e}"));
    *response
}

async fn list_groups(shared: &Arc<Shared>, broker: i32, v: i16) -> ListGroupsResponse {
    let request = RequestKind::ListGroups(ListGroupsRequest::default());
    let ResponseKind::ListGroups(r) = call(shared, broker, v, request).await else {
        panic!("not a ListGroups response")
    };
    r
}

fn group_id(name: &str) -> GroupId {
    GroupId(str_bytes(name))
}

fn join_request(group: &str, member_id: &str) -> RequestKind {
    RequestKind::JoinGroup(
        JoinGroupRequest::default()
            .with_group_id(group_id(group))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(str_bytes(member_id))
            .with_protocol_type(str_bytes("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(str_bytes("range"))
                .with_metadata(Bytes::from_static(b"meta"))]),
    )
}

#[tokio::test(start_paused = true)]
async fn one_member_through_every_version() {
    let shared = cluster();
    tokio::spawn(run_timers(shared.clone()));
    for v in 0..=9 {
        let group = format!("g{v}");
        let home = shared.lock().coordinator(CoordinatorKind::Group, &group);
        let away = home % 3 + 1;

        let ResponseKind::JoinGroup(r) = call(&shared, away, v, join_request(&group, "")).await
        else {
            panic!()
        };
        assert_eq!(r.error_code, ResponseError::NotCoordinator.code());

        let ResponseKind::JoinGroup(mut r) = call(&shared, home, v, join_request(&group, "")).await
        else {
            panic!()
        };
        if v >= 4 {
            assert_eq!(r.error_code, ResponseError::MemberIdRequired.code(), "v{v}");
            let ResponseKind::JoinGroup(again) =
                call(&shared, home, v, join_request(&group, &r.member_id)).await
            else {
                panic!()
            };
            r = again;
        }
        assert_eq!(r.error_code, 0, "v{v}");
        let member = r.member_id.to_string();
        assert!(member.starts_with("client-"));
        assert_eq!(r.generation_id, 1);
        assert_eq!(r.leader.as_str(), member);
        assert_eq!(r.members.len(), 1);
        assert_eq!(r.protocol_name.as_deref(), Some("range"));
        if v >= 7 {
            assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
        }

        let sync = SyncGroupRequest::default()
            .with_group_id(group_id(&group))
            .with_generation_id(1)
            .with_member_id(str_bytes(&member))
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(str_bytes(&member))
                .with_assignment(Bytes::from_static(b"all"))]);
        let ResponseKind::SyncGroup(r) = call(&shared, home, v, RequestKind::SyncGroup(sync)).await
        else {
            panic!()
        };
        assert_eq!((r.error_code, &r.assignment[..]), (0, &b"all"[..]));

        let heartbeat = HeartbeatRequest::default()
            .with_group_id(group_id(&group))
            .with_generation_id(1)
            .with_member_id(str_bytes(&member));
        let ResponseKind::Heartbeat(r) =
            call(&shared, home, v, RequestKind::Heartbeat(heartbeat)).await
        else {
            panic!()
        };
        assert_eq!(r.error_code, 0);

        let commit = OffsetCommitRequest::default()
            .with_group_id(group_id(&group))
            .with_generation_id_or_member_epoch(1)
            .with_member_id(str_bytes(&member))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(str_bytes("t")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(1)
                    .with_committed_offset(42)
                    .with_committed_leader_epoch(3)])]);
        let ResponseKind::OffsetCommit(r) =
            call(&shared, home, v, RequestKind::OffsetCommit(commit)).await
        else {
            panic!()
        };
        assert_eq!(r.topics[0].partitions[0].error_code, 0);

        let fetch_version = at(ApiKey::OffsetFetch, v);
        let fetch = if fetch_version >= 8 {
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(group_id(&group))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(TopicName(str_bytes("t")))
                    .with_partition_indexes(vec![0, 1])]))])
        } else {
            OffsetFetchRequest::default()
                .with_group_id(group_id(&group))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(TopicName(str_bytes("t")))
                    .with_partition_indexes(vec![0, 1])]))
        };
        let ResponseKind::OffsetFetch(r) =
            call(&shared, home, v, RequestKind::OffsetFetch(fetch)).await
        else {
            panic!()
        };
        let offsets: Vec<(i64, i32)> = if fetch_version >= 8 {
            r.groups[0].topics[0]
                .partitions
                .iter()
                .map(|p| (p.committed_offset, p.committed_leader_epoch))
                .collect()
        } else {
            r.topics[0]
                .partitions
                .iter()
                .map(|p| (p.committed_offset, p.committed_leader_epoch))
                .collect()
        };
        let epoch = if at(ApiKey::OffsetCommit, v) >= 6 && fetch_version >= 5 {
            3
        } else {
            -1
        };
        assert_eq!(offsets, vec![(-1, -1), (42, epoch)], "v{v}");

        let describe = DescribeGroupsRequest::default().with_groups(vec![group_id(&group)]);
        let ResponseKind::DescribeGroups(r) =
            call(&shared, home, v, RequestKind::DescribeGroups(describe)).await
        else {
            panic!()
        };
        let described = &r.groups[0];
        assert_eq!(described.group_state.as_str(), "Stable");
        assert_eq!(described.protocol_data.as_str(), "range");
        assert_eq!(&described.members[0].member_assignment[..], b"all");

        let r = list_groups(&shared, home, v).await;
        assert!(r.groups.iter().any(|g| g.group_id.0.as_str() == group));

        let leave = if at(ApiKey::LeaveGroup, v) >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(group_id(&group))
                .with_members(vec![
                    MemberIdentity::default().with_member_id(str_bytes(&member)),
                    MemberIdentity::default().with_member_id(str_bytes("stranger")),
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(group_id(&group))
                .with_member_id(str_bytes(&member))
        };
        let ResponseKind::LeaveGroup(r) =
            call(&shared, home, v, RequestKind::LeaveGroup(leave)).await
        else {
            panic!()
        };
        assert_eq!(r.error_code, 0);
        if at(ApiKey::LeaveGroup, v) >= 3 {
            let codes: Vec<i16> = r.members.iter().map(|m| m.error_code).collect();
            assert_eq!(codes, vec![0, ResponseError::UnknownMemberId.code()]);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            shared.lock().groups.describe(&group).unwrap().state,
            GroupState::Empty
        );

        let delete = DeleteGroupsRequest::default().with_groups_names(vec![group_id(&group)]);
        let ResponseKind::DeleteGroups(r) =
            call(&shared, home, v, RequestKind::DeleteGroups(delete)).await
        else {
            panic!()
        };
        assert_eq!(r.results[0].error_code, 0);
        assert!(shared.lock().groups.describe(&group).is_none());
    }
}

#[tokio::test(start_paused = true)]
async fn require_stable_waits_for_transactional_offsets() {
    let shared = cluster();
    let home = shared.lock().coordinator(CoordinatorKind::Group, "g");
    shared.lock().groups.stage_txn_offsets(
        "g",
        7,
        vec![TxnOffset {
            topic: "t".to_owned(),
            partition: 0,
            offset: 5,
            leader_epoch: -1,
            metadata: None,
        }],
    );
    let fetch = |stable: bool| {
        RequestKind::OffsetFetch(
            OffsetFetchRequest::default()
                .with_group_id(group_id("g"))
                .with_topics(None)
                .with_require_stable(stable),
        )
    };
    let codes = |r: ResponseKind| -> Vec<(i64, i16)> {
        let ResponseKind::OffsetFetch(r) = r else {
            panic!()
        };
        r.topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| (p.committed_offset, p.error_code))
            .collect()
    };
    // Nothing committed yet; the pending offset is not listed among "all".
    assert_eq!(codes(call(&shared, home, 7, fetch(true)).await), vec![]);
    let listed = RequestKind::OffsetFetch(
        OffsetFetchRequest::default()
            .with_group_id(group_id("g"))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(str_bytes("t")))
                .with_partition_indexes(vec![0])]))
            .with_require_stable(true),
    );
    assert_eq!(
        codes(call(&shared, home, 7, listed.clone()).await),
        vec![(-1, ResponseError::UnstableOffsetCommit.code())]
    );
    shared.lock().groups.complete_txn("g", 7, true);
    assert_eq!(codes(call(&shared, home, 7, listed).await), vec![(5, 0)]);
    assert_eq!(
        codes(call(&shared, home, 7, fetch(false)).await),
        vec![(5, 0)]
    );
}

#[tokio::test(start_paused = true)]
async fn standalone_commits_and_their_limits() {
    let shared = cluster();
    let home = shared.lock().coordinator(CoordinatorKind::Group, "solo");
    let commit = |generation: i32, topic: &str, metadata: Option<&str>| {
        RequestKind::OffsetCommit(
            OffsetCommitRequest::default()
                .with_group_id(group_id("solo"))
                .with_generation_id_or_member_epoch(generation)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(str_bytes(topic)))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(9)
                        .with_committed_metadata(metadata.map(str_bytes))])]),
        )
    };
    let code = |r: ResponseKind| {
        let ResponseKind::OffsetCommit(r) = r else {
            panic!()
        };
        r.topics[0].partitions[0].error_code
    };
    // A group that does not exist: only a commit without a generation may create it.
    assert_eq!(
        code(call(&shared, home, 8, commit(3, "t", None)).await),
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(code(call(&shared, home, 8, commit(-1, "t", None)).await), 0);
    assert_eq!(shared.lock().groups.committed("solo", "t", 0), Some(9));
    assert_eq!(
        code(call(&shared, home, 8, commit(-1, "nope", None)).await),
        ResponseError::UnknownTopicOrPartition.code()
    );
    let long = "x".repeat(5000);
    assert_eq!(
        code(call(&shared, home, 8, commit(-1, "t", Some(&long))).await),
        ResponseError::OffsetMetadataTooLarge.code()
    );
    let away = home % 3 + 1;
    assert_eq!(
        code(call(&shared, away, 8, commit(-1, "t", None)).await),
        ResponseError::NotCoordinator.code()
    );
}

#[test]
fn whole_request_errors_encode_at_every_served_version() {
    let requests = [
        RequestKind::OffsetCommit(OffsetCommitRequest::default()),
        RequestKind::OffsetFetch(OffsetFetchRequest::default()),
        RequestKind::JoinGroup(JoinGroupRequest::default()),
        RequestKind::Heartbeat(HeartbeatRequest::default()),
        RequestKind::LeaveGroup(LeaveGroupRequest::default()),
        RequestKind::SyncGroup(SyncGroupRequest::default()),
        RequestKind::DescribeGroups(DescribeGroupsRequest::default()),
        RequestKind::ListGroups(ListGroupsRequest::default()),
        RequestKind::DeleteGroups(DeleteGroupsRequest::default()),
        RequestKind::ConsumerGroupHeartbeat(Default::default()),
        RequestKind::ConsumerGroupDescribe(Default::default()),
    ];
    assert_eq!(requests.len(), SERVED.len());
    for request in &requests {
        let api = api_of(request);
        let (_, min, max) = SERVED.iter().copied().find(|s| s.0 == api).unwrap();
        for version in min..=max {
            let response = error_response(version, request, 16).unwrap();
            response
                .encode(&mut BytesMut::new(), version)
                .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
        }
    }
}

fn consumer_heartbeat(group: &str, member: &str, epoch: i32) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group_id(group))
        .with_member_id(str_bytes(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(-1)
}

fn joining(group: &str, member: &str) -> RequestKind {
    RequestKind::ConsumerGroupHeartbeat(
        consumer_heartbeat(group, member, 0)
            .with_rebalance_timeout_ms(5000)
            .with_subscribed_topic_names(Some(vec![TopicName(str_bytes("t"))]))
            .with_topic_partitions(Some(Vec::new())),
    )
}

async fn beat(
    shared: &Arc<Shared>,
    broker: i32,
    v: i16,
    r: RequestKind,
) -> ConsumerGroupHeartbeatResponse {
    let ResponseKind::ConsumerGroupHeartbeat(r) = call(shared, broker, v, r).await else {
        panic!()
    };
    r
}

/// A steady heartbeat of `member` at `epoch` (nothing else said).
async fn steady(
    shared: &Arc<Shared>,
    broker: i32,
    member: &str,
    epoch: i32,
) -> ConsumerGroupHeartbeatResponse {
    let request = RequestKind::ConsumerGroupHeartbeat(consumer_heartbeat("k", member, epoch));
    beat(shared, broker, 1, request).await
}

#[tokio::test(start_paused = true)]
async fn consumer_group_protocol_on_the_wire() {
    let shared = cluster();
    tokio::spawn(run_timers(shared.clone()));
    let home = shared.lock().coordinator(CoordinatorKind::Group, "k");
    let topic_id = shared.lock().topics["t"].id;
    // v1: the member names itself; it gets both partitions at epoch 1.
    let r = beat(&shared, home, 1, joining("k", "m1")).await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert_eq!(r.member_id.as_deref(), Some("m1"));
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.heartbeat_interval_ms, 5000);
    let assignment = r.assignment.unwrap();
    assert_eq!(assignment.topic_partitions[0].topic_id, topic_id);
    assert_eq!(assignment.topic_partitions[0].partitions, vec![0, 1]);
    // A steady heartbeat with nothing new carries no assignment.
    let r = steady(&shared, home, "m1", 1).await;
    assert_eq!((r.error_code, r.member_epoch), (0, 1));
    assert!(r.assignment.is_none());
    // v1 needs a member id; v0 hands one out.
    let r = beat(&shared, home, 1, joining("k", "")).await;
    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
    let r = beat(&shared, home, 0, joining("k", "")).await;
    assert_eq!(r.error_code, 0);
    let generated = r.member_id.unwrap().to_string();
    assert!(!generated.is_empty());
    let bad = RequestKind::ConsumerGroupHeartbeat(
        consumer_heartbeat("k", "m1", 1).with_server_assignor(Some(str_bytes("sticky"))),
    );
    let r = beat(&shared, home, 1, bad).await;
    assert_eq!(r.error_code, ResponseError::UnsupportedAssignor.code());
    let r = steady(&shared, home, "m1", 9).await;
    assert_eq!(r.error_code, ResponseError::FencedMemberEpoch.code());

    // A classic member cannot join a consumer group.
    let ResponseKind::JoinGroup(j) = call(&shared, home, 9, join_request("k", "")).await else {
        panic!()
    };
    assert_eq!(j.error_code, ResponseError::GroupIdNotFound.code());

    // Commits: v9 with the member epoch; older versions or epochs are refused.
    let commit = |member: &str, epoch: i32| {
        RequestKind::OffsetCommit(
            OffsetCommitRequest::default()
                .with_group_id(group_id("k"))
                .with_member_id(str_bytes(member))
                .with_generation_id_or_member_epoch(epoch)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(str_bytes("t")))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(4)])]),
        )
    };
    let code = |r: ResponseKind| {
        let ResponseKind::OffsetCommit(r) = r else {
            panic!()
        };
        r.topics[0].partitions[0].error_code
    };
    assert_eq!(
        code(call(&shared, home, 8, commit("m1", 1)).await),
        ResponseError::UnsupportedVersion.code()
    );
    let m1_epoch = shared.lock().groups.consumer["k"].members["m1"].epoch;
    assert_eq!(
        code(call(&shared, home, 9, commit("m1", m1_epoch - 1)).await),
        ResponseError::StaleMemberEpoch.code()
    );
    assert_eq!(
        code(call(&shared, home, 9, commit("nobody", 1)).await),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(
        code(call(&shared, home, 9, commit("m1", m1_epoch)).await),
        0
    );
    assert_eq!(shared.lock().groups.committed("k", "t", 0), Some(4));
    let fetch = |epoch: i32| {
        RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(
            vec![OffsetFetchRequestGroup::default()
                .with_group_id(group_id("k"))
                .with_member_id(Some(str_bytes("m1")))
                .with_member_epoch(epoch)
                .with_topics(None)],
        ))
    };
    let ResponseKind::OffsetFetch(f) = call(&shared, home, 9, fetch(m1_epoch + 1)).await else {
        panic!()
    };
    assert_eq!(
        f.groups[0].error_code,
        ResponseError::FencedMemberEpoch.code()
    );
    let ResponseKind::OffsetFetch(f) = call(&shared, home, 9, fetch(m1_epoch)).await else {
        panic!()
    };
    assert_eq!(f.groups[0].error_code, 0);
    assert_eq!(f.groups[0].topics[0].partitions[0].committed_offset, 4);

    // Listed and described as a consumer group.
    let l = list_groups(&shared, home, 5).await;
    let listed = l
        .groups
        .iter()
        .find(|g| g.group_id.0.as_str() == "k")
        .unwrap();
    assert_eq!(listed.group_type.as_str(), "consumer");
    let describe = RequestKind::ConsumerGroupDescribe(
        ConsumerGroupDescribeRequest::default().with_group_ids(vec![group_id("k")]),
    );
    let ResponseKind::ConsumerGroupDescribe(d) = call(&shared, home, 1, describe).await else {
        panic!()
    };
    assert_eq!(d.groups[0].error_code, 0);
    assert_eq!(d.groups[0].members.len(), 2);
    assert_eq!(d.groups[0].assignor_name.as_str(), "uniform");

    // Both leave; the empty group may become a classic one, offsets kept.
    for member in ["m1", generated.as_str()] {
        let r = steady(&shared, home, member, -1).await;
        assert_eq!((r.error_code, r.member_epoch), (0, -1));
    }
    let r = steady(&shared, home, "m1", 1).await;
    assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
    let ResponseKind::JoinGroup(j) = call(&shared, home, 3, join_request("k", "")).await else {
        panic!()
    };
    assert_eq!(j.error_code, 0);
    assert_eq!(shared.lock().groups.committed("k", "t", 0), Some(4));
}
