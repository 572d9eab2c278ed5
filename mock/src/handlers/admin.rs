//! CreateTopics, DeleteTopics, CreatePartitions and DescribeConfigs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    TopicName,
};
use kafka_protocol::ResponseError;

use super::{str_bytes, Context};
use crate::state::Shared;

/// Topic configs the mock knows, with Kafka's defaults. Others are INVALID_CONFIG.
const TOPIC_DEFAULTS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("delete.retention.ms", "86400000"),
    ("max.message.bytes", "1048588"),
    ("message.timestamp.type", "CreateTime"),
    ("min.insync.replicas", "1"),
    ("retention.bytes", "-1"),
    ("retention.ms", "604800000"),
    ("segment.bytes", "1073741824"),
    ("segment.ms", "604800000"),
];

/// DescribeConfigs' config sources and resource types.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

pub(super) fn create_topics(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let version = ctx.version;
    let mut state = shared.lock();
    let mut seen = BTreeSet::new();
    let duplicated: BTreeSet<String> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    let results = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let mut out = CreatableTopicResult::default().with_name(topic.name.clone());
            let partitions = if topic.num_partitions == -1 && topic.assignments.is_empty() {
                shared.config.default_partitions
            } else if topic.assignments.is_empty() {
                topic.num_partitions
            } else {
                topic.assignments.len() as i32
            };
            let replication = if topic.replication_factor == -1 {
                1
            } else {
                topic.replication_factor
            };
            let configs: Result<BTreeMap<String, String>, String> = topic
                .configs
                .iter()
                .map(|c| {
                    let key = c.name.to_string();
                    if TOPIC_DEFAULTS.iter().any(|(k, _)| *k == key) {
                        Ok((
                            key,
                            c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                        ))
                    } else {
                        Err(key)
                    }
                })
                .collect();
            let error = if duplicated.contains(&name) {
                Some((
                    ResponseError::InvalidRequest,
                    format!("topic {name} appears twice"),
                ))
            } else if !crate::names::valid_topic(&name) {
                Some((
                    ResponseError::InvalidTopicException,
                    format!("{name:?} is not a legal topic name"),
                ))
            } else if state.topics.contains_key(&name) {
                Some((
                    ResponseError::TopicAlreadyExists,
                    format!("topic {name} already exists"),
                ))
            } else if partitions <= 0 {
                Some((
                    ResponseError::InvalidPartitions,
                    "the number of partitions must be positive".to_owned(),
                ))
            } else if replication <= 0 || replication as usize > state.brokers.len() {
                Some((
                    ResponseError::InvalidReplicationFactor,
                    format!(
                        "replication factor {replication} with {} brokers",
                        state.brokers.len()
                    ),
                ))
            } else if let Err(key) = &configs {
                Some((
                    ResponseError::InvalidConfig,
                    format!("unknown topic config {key}"),
                ))
            } else {
                None
            };
            if let Some((code, message)) = error {
                out.error_code = code.code();
                if version >= 1 {
                    out.error_message = Some(str_bytes(&message));
                }
                return out;
            }
            let configs = configs.unwrap_or_default();
            if version >= 5 {
                out.num_partitions = partitions;
                out.replication_factor = replication;
                out.configs = Some(
                    describe_topic_configs(&configs, None)
                        .into_iter()
                        .map(|c| {
                            CreatableTopicConfigs::default()
                                .with_name(c.name)
                                .with_value(c.value)
                                .with_config_source(c.config_source)
                        })
                        .collect(),
                );
            }
            if !request.validate_only {
                let leaders: Vec<i32> = topic
                    .assignments
                    .iter()
                    .map(|a| a.broker_ids.first().map_or(-1, |b| b.0))
                    .collect();
                let created = state.create_topic(&name, partitions, configs);
                for (partition, leader) in created.partitions.iter_mut().zip(leaders) {
                    partition.leader = leader;
                }
                if version >= 7 {
                    out.topic_id = created.id;
                }
            }
            out
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

pub(super) fn delete_topics(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let version = ctx.version;
    let mut state = shared.lock();
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let name = name.or_else(|| state.topic_name_by_id(id).map(str::to_owned));
            let mut out = DeletableTopicResult::default();
            if version >= 6 {
                out.topic_id = id;
            }
            out.name = name.as_deref().map(|n| TopicName(str_bytes(n)));
            match name.and_then(|n| state.topics.remove(&n)) {
                Some(topic) => {
                    if version >= 6 {
                        out.topic_id = topic.id;
                    }
                }
                None => {
                    out.error_code = if id.is_nil() {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        ResponseError::UnknownTopicId.code()
                    };
                }
            }
            out
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub(super) fn create_partitions(
    shared: &Arc<Shared>,
    _ctx: &Context,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut state = shared.lock();
    let results = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let mut out = CreatePartitionsTopicResult::default().with_name(topic.name);
            let current = state.topics.get(&name).map(|t| t.partitions.len());
            let error = match current {
                None => Some(ResponseError::UnknownTopicOrPartition),
                Some(n) if topic.count <= n as i32 => Some(ResponseError::InvalidPartitions),
                Some(_) => None,
            };
            match error {
                Some(e) => {
                    out.error_code = e.code();
                    out.error_message = Some(str_bytes(&format!(
                        "cannot grow {name} to {} partitions",
                        topic.count
                    )));
                }
                None if !request.validate_only => {
                    state.add_partitions(&name, topic.count as usize);
                }
                None => {}
            }
            out
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

pub(super) fn describe_configs(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let state = shared.lock();
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let keys = resource
                .configuration_keys
                .as_ref()
                .map(|keys| keys.iter().map(|k| k.to_string()).collect::<BTreeSet<_>>());
            let mut out = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name);
            match resource.resource_type {
                RESOURCE_TOPIC => match state.topics.get(&name) {
                    Some(topic) => {
                        out.configs = describe_topic_configs(&topic.configs, keys.as_ref())
                    }
                    None => {
                        out.error_code = ResponseError::UnknownTopicOrPartition.code();
                        out.error_message =
                            Some(str_bytes(&format!("topic {name} does not exist")));
                    }
                },
                RESOURCE_BROKER => out.configs = broker_configs(shared, keys.as_ref()),
                _ => {
                    out.error_code = ResponseError::InvalidRequest.code();
                    out.error_message =
                        Some(str_bytes("the mock describes topics and brokers only"));
                }
            }
            if ctx.version < 3 {
                // config_type and documentation are v3+.
                for c in &mut out.configs {
                    c.config_type = 0;
                }
            }
            out
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe_topic_configs(
    set: &BTreeMap<String, String>,
    keys: Option<&BTreeSet<String>>,
) -> Vec<DescribeConfigsResourceResult> {
    TOPIC_DEFAULTS
        .iter()
        .filter(|(k, _)| keys.is_none_or(|keys| keys.contains(*k)))
        .map(|&(key, default)| {
            let (value, source) = match set.get(key) {
                Some(v) => (v.as_str(), SOURCE_TOPIC),
                None => (default, SOURCE_DEFAULT),
            };
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(key))
                .with_value(Some(str_bytes(value)))
                .with_config_source(source)
        })
        .collect()
}

fn broker_configs(
    shared: &Shared,
    keys: Option<&BTreeSet<String>>,
) -> Vec<DescribeConfigsResourceResult> {
    let config = &shared.config;
    let values = [
        (
            "auto.create.topics.enable",
            config.auto_create_topics.to_string(),
        ),
        ("num.partitions", config.default_partitions.to_string()),
        ("message.max.bytes", config.max_message_bytes.to_string()),
        (
            "socket.request.max.bytes",
            config.max_request_bytes.to_string(),
        ),
        (
            "transaction.max.timeout.ms",
            config.transaction_max_timeout.as_millis().to_string(),
        ),
    ];
    values
        .iter()
        .filter(|(k, _)| keys.is_none_or(|keys| keys.contains(*k)))
        .map(|(key, value)| {
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(key))
                .with_value(Some(str_bytes(value)))
                .with_config_source(SOURCE_STATIC_BROKER)
                .with_read_only(true)
        })
        .collect()
}
