//! ApiVersions, Metadata, DescribeCluster and FindCoordinator: what the cluster looks like.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, BrokerId, DescribeClusterRequest,
    DescribeClusterResponse, FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::{str_bytes, Context};
use crate::state::{CoordinatorKind, Shared, State};

pub(super) fn api_versions(
    shared: &Shared,
    ctx: &Context,
    _request: &ApiVersionsRequest,
) -> ApiVersionsResponse {
    crate::versions::api_versions(ctx.version, shared.config.transaction_version)
}

/// The broker every broker names as controller (the lowest id).
fn controller(state: &State) -> i32 {
    state.brokers.iter().map(|b| b.id).min().unwrap_or(-1)
}

pub(super) fn metadata(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: MetadataRequest,
) -> MetadataResponse {
    let version = ctx.version;
    let mut state = shared.lock();
    // v0 has no null list: an empty list means all topics there.
    let all = request.topics.is_none()
        || (version == 0 && request.topics.as_ref().is_some_and(Vec::is_empty));
    // Auto-creation is asked for explicitly from v4; before, it always applied.
    let may_create =
        shared.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let mut names: Vec<Result<String, uuid::Uuid>> = Vec::new();
    if all {
        names.extend(state.topics.keys().cloned().map(Ok));
    } else {
        for topic in request.topics.unwrap_or_default() {
            match topic.name {
                Some(name) => names.push(Ok(name.0.to_string())),
                None => names.push(match state.topic_name_by_id(topic.topic_id) {
                    Some(name) => Ok(name.to_owned()),
                    None => Err(topic.topic_id),
                }),
            }
        }
    }
    let mut topics = Vec::with_capacity(names.len());
    for name in names {
        let name = match name {
            Ok(name) => name,
            Err(id) => {
                topics.push(
                    MetadataResponseTopic::default()
                        .with_error_code(ResponseError::UnknownTopicId.code())
                        .with_topic_id(id),
                );
                continue;
            }
        };
        if !state.topics.contains_key(&name) && may_create && crate::names::valid_topic(&name) {
            let partitions = shared.config.default_partitions;
            state.create_topic(&name, partitions, BTreeMap::new());
        }
        topics.push(topic_metadata(&state, &name, version));
    }
    let brokers = state
        .brokers
        .iter()
        .map(|b| {
            let broker = MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(&b.host))
                .with_port(b.port);
            if version >= 1 {
                broker.with_rack(b.rack.as_deref().map(str_bytes))
            } else {
                broker
            }
        })
        .collect();
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_topics(topics);
    if version >= 1 {
        response.controller_id = BrokerId(controller(&state));
    }
    if version >= 2 {
        response.cluster_id = Some(str_bytes(&shared.config.cluster_id));
    }
    response
}

fn topic_metadata(state: &State, name: &str, version: i16) -> MetadataResponseTopic {
    let mut out = MetadataResponseTopic::default().with_name(Some(TopicName(str_bytes(name))));
    let Some(topic) = state.topics.get(name) else {
        let code = if crate::names::valid_topic(name) {
            ResponseError::UnknownTopicOrPartition
        } else {
            ResponseError::InvalidTopicException
        };
        return out.with_error_code(code.code());
    };
    if version >= 10 {
        out.topic_id = topic.id;
    }
    out.is_internal = false;
    out.partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let mut partition = MetadataResponsePartition::default()
                .with_partition_index(index as i32)
                .with_leader_id(BrokerId(p.leader))
                .with_replica_nodes(vec![BrokerId(p.leader)])
                .with_isr_nodes(vec![BrokerId(p.leader)]);
            if version >= 7 {
                partition.leader_epoch = p.leader_epoch;
            }
            partition
        })
        .collect();
    out
}

pub(super) fn describe_cluster(
    shared: &Arc<Shared>,
    _ctx: &Context,
    _request: &DescribeClusterRequest,
) -> DescribeClusterResponse {
    let state = shared.lock();
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&shared.config.cluster_id))
        .with_controller_id(BrokerId(controller(&state)))
        .with_brokers(
            state
                .brokers
                .iter()
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.id))
                        .with_host(str_bytes(&b.host))
                        .with_port(b.port)
                        .with_rack(b.rack.as_deref().map(str_bytes))
                })
                .collect(),
        )
}

pub(super) fn find_coordinator(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: &FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let state = shared.lock();
    let kind = match request.key_type {
        0 => Some(CoordinatorKind::Group),
        1 => Some(CoordinatorKind::Transaction),
        _ => None,
    };
    let find = |key: &str| -> Coordinator {
        let Some(kind) = kind else {
            return Coordinator::default()
                .with_key(str_bytes(key))
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(ResponseError::InvalidRequest.code());
        };
        let id = state.coordinator(kind, key);
        match state.brokers.iter().find(|b| b.id == id) {
            Some(b) => Coordinator::default()
                .with_key(str_bytes(key))
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(&b.host))
                .with_port(b.port),
            None => Coordinator::default()
                .with_key(str_bytes(key))
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(ResponseError::CoordinatorNotAvailable.code()),
        }
    };
    if ctx.version >= 4 {
        let coordinators = request.coordinator_keys.iter().map(|k| find(k)).collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = find(&request.key);
    let mut response = FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port);
    if ctx.version >= 1 && c.error_code != 0 {
        response.error_message = Some(str_bytes("the coordinator is not available"));
    }
    response
}
