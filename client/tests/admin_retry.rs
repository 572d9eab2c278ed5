//! The admin client's retry paths, against a one-node fake broker that answers with scripted
//! errors: what Tansu cannot be made to do (NOT_CONTROLLER, a leader election, a broker
//! without DescribeCluster).
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, CreateTopicsResponse, DeleteRecordsResponse,
    ListOffsetsResponse, MetadataResponse, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_client::admin::{Admin, CreateTopicsOptions, NewTopic, OffsetSpec};
use sluice_client::config::{AdminConfig, IsolationLevel};
use sluice_client::KafkaCode;
use sluice_protocol::messages::{decode_request, encode_response, ApiKey};
use sluice_protocol::versions::SUPPORTED;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const NODE: i32 = 7;
const NOT_CONTROLLER: i16 = KafkaCode::NOT_CONTROLLER.0;
const NOT_LEADER: i16 = KafkaCode::NOT_LEADER_OR_FOLLOWER.0;
const LEADER_NOT_AVAILABLE: i16 = KafkaCode::LEADER_NOT_AVAILABLE.0;

/// What the fake broker has seen and will answer.
#[derive(Debug, Default)]
struct Script {
    port: u16,
    /// Leave DescribeCluster out of the ApiVersions answer.
    no_describe_cluster: bool,
    /// Error codes for the next CreateTopics answers (then success).
    create_errors: Vec<i16>,
    create_requests: usize,
    /// Whether the topic exists; Metadata lists it with no leader this many more times.
    topic: Option<(String, i32)>,
    leaderless_metadata: usize,
    metadata_requests: usize,
    /// Error codes for the next ListOffsets answers (then offset 42).
    list_errors: Vec<i16>,
    list_requests: usize,
    /// DeleteRecords always answers with this code.
    delete_records_error: i16,
    delete_records_requests: usize,
}

type Shared = Arc<Mutex<Script>>;

async fn start(script: Script) -> (Shared, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = Arc::new(Mutex::new(Script { port, ..script }));
    let shared = Arc::clone(&script);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, Arc::clone(&shared)));
        }
    });
    (script, format!("127.0.0.1:{port}"))
}

async fn serve(mut stream: TcpStream, script: Shared) {
    loop {
        let mut size = [0u8; 4];
        if stream.read_exact(&mut size).await.is_err() {
            return;
        }
        let mut frame = vec![0u8; usize::try_from(i32::from_be_bytes(size)).unwrap()];
        if stream.read_exact(&mut frame).await.is_err() {
            return;
        }
        let (header, request) = decode_request(Bytes::from(frame)).unwrap();
        let api = ApiKey::try_from(header.request_api_key).unwrap();
        let response = answer(&mut script.lock().unwrap(), request);
        let mut out = BytesMut::new();
        let version = header.request_api_version;
        encode_response(&mut out, header.correlation_id, api, version, &response).unwrap();
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn answer(script: &mut Script, request: RequestKind) -> ResponseKind {
    match request {
        RequestKind::ApiVersions(_) => {
            let keys = SUPPORTED
                .iter()
                .filter(|r| !(script.no_describe_cluster && r.api == ApiKey::DescribeCluster))
                .map(|r| {
                    ApiVersion::default()
                        .with_api_key(r.api as i16)
                        .with_min_version(r.min)
                        .with_max_version(r.max)
                })
                .collect();
            ResponseKind::ApiVersions(ApiVersionsResponse::default().with_api_keys(keys))
        }
        RequestKind::Metadata(r) => {
            script.metadata_requests += 1;
            let broker = MetadataResponseBroker::default()
                .with_node_id(BrokerId(NODE))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(i32::from(script.port));
            let mut topics = Vec::new();
            let asked = |topic: &str| {
                r.topics.as_ref().is_none_or(|asked| {
                    asked
                        .iter()
                        .any(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
                })
            };
            if let Some((topic, partitions)) = script.topic.clone().filter(|(t, _)| asked(t)) {
                let leader = if script.leaderless_metadata > 0 {
                    script.leaderless_metadata -= 1;
                    -1
                } else {
                    NODE
                };
                let partitions = (0..partitions)
                    .map(|p| {
                        MetadataResponsePartition::default()
                            .with_partition_index(p)
                            .with_leader_id(BrokerId(leader))
                            .with_error_code(if leader < 0 { LEADER_NOT_AVAILABLE } else { 0 })
                    })
                    .collect();
                topics.push(
                    MetadataResponseTopic::default()
                        .with_name(Some(name(&topic)))
                        .with_partitions(partitions),
                );
            }
            ResponseKind::Metadata(
                MetadataResponse::default()
                    .with_brokers(vec![broker])
                    .with_controller_id(BrokerId(NODE))
                    .with_cluster_id(Some(StrBytes::from_static_str("fake")))
                    .with_topics(topics),
            )
        }
        RequestKind::CreateTopics(r) => {
            script.create_requests += 1;
            let code = if script.create_errors.is_empty() {
                0
            } else {
                script.create_errors.remove(0)
            };
            let results = r
                .topics
                .iter()
                .map(|t| {
                    if code == 0 {
                        script.topic = Some((t.name.0.to_string(), t.num_partitions));
                    }
                    CreatableTopicResult::default()
                        .with_name(t.name.clone())
                        .with_error_code(code)
                })
                .collect();
            ResponseKind::CreateTopics(CreateTopicsResponse::default().with_topics(results))
        }
        RequestKind::ListOffsets(r) => {
            script.list_requests += 1;
            let code = if script.list_errors.is_empty() {
                0
            } else {
                script.list_errors.remove(0)
            };
            let topics = r
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                                .with_offset(if code == 0 { 42 } else { -1 })
                                .with_timestamp(-1)
                                .with_leader_epoch(3)
                        })
                        .collect();
                    ListOffsetsTopicResponse::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            ResponseKind::ListOffsets(ListOffsetsResponse::default().with_topics(topics))
        }
        RequestKind::DeleteRecords(r) => {
            script.delete_records_requests += 1;
            let topics = r
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(script.delete_records_error)
                                .with_low_watermark(-1)
                        })
                        .collect();
                    DeleteRecordsTopicResult::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            ResponseKind::DeleteRecords(DeleteRecordsResponse::default().with_topics(topics))
        }
        other => panic!("the fake broker does not serve {other:?}"),
    }
}

async fn admin(bootstrap: &str, timeout: Duration) -> Admin {
    let config = AdminConfig::builder()
        .bootstrap(bootstrap)
        .request_timeout(timeout)
        .retry_backoff(Duration::from_millis(10))
        .retry_backoff_max(Duration::from_millis(50))
        .build()
        .unwrap();
    Admin::new(config).await.unwrap()
}

#[tokio::test]
async fn create_topics_retries_not_controller_and_waits_for_leaders() {
    let (script, bootstrap) = start(Script {
        create_errors: vec![NOT_CONTROLLER, NOT_CONTROLLER],
        leaderless_metadata: 3,
        ..Script::default()
    })
    .await;
    let admin = admin(&bootstrap, Duration::from_secs(10)).await;
    let outcomes = admin
        .create_topics(&[NewTopic::new("t", 2, 1)], &CreateTopicsOptions::default())
        .await;
    outcomes.into_result().unwrap();
    let seen = script.lock().unwrap();
    assert_eq!(
        seen.create_requests, 3,
        "two NOT_CONTROLLER answers, then success"
    );
    assert_eq!(
        seen.leaderless_metadata, 0,
        "waited through the leaderless metadata"
    );
    let topic = admin.cluster().snapshot().topics["t"].clone();
    assert!(
        topic.partitions.iter().all(|p| p.leader == NODE),
        "{topic:?}"
    );
}

#[tokio::test]
async fn create_topics_gives_the_last_retriable_error_at_the_deadline() {
    let (script, bootstrap) = start(Script {
        create_errors: vec![NOT_CONTROLLER; 1000],
        ..Script::default()
    })
    .await;
    let admin = admin(&bootstrap, Duration::from_millis(500)).await;
    let started = Instant::now();
    let outcomes = admin
        .create_topics(&[NewTopic::new("t", 1, 1)], &CreateTopicsOptions::default())
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let error = outcomes.get("t").unwrap().as_ref().unwrap_err();
    assert_eq!(error.code(), Some(KafkaCode::NOT_CONTROLLER), "{error}");
    assert!(error.to_string().contains("topic t"), "{error}");
    assert!(script.lock().unwrap().create_requests > 2);
}

#[tokio::test]
async fn list_offsets_retries_not_leader_after_a_refresh() {
    let (script, bootstrap) = start(Script {
        topic: Some(("t".into(), 1)),
        list_errors: vec![NOT_LEADER],
        ..Script::default()
    })
    .await;
    let admin = admin(&bootstrap, Duration::from_secs(10)).await;
    let before = script.lock().unwrap().metadata_requests;
    let outcomes = admin
        .list_offsets(
            &[("t", 0, OffsetSpec::Latest)],
            IsolationLevel::ReadCommitted,
        )
        .await;
    let listed = outcomes.into_result().unwrap()[0].1;
    assert_eq!((listed.offset, listed.leader_epoch), (42, Some(3)));
    let seen = script.lock().unwrap();
    assert_eq!(seen.list_requests, 2);
    // One refresh to learn the topic, one after NOT_LEADER_OR_FOLLOWER.
    assert!(
        seen.metadata_requests >= before + 2,
        "{}",
        seen.metadata_requests
    );
}

#[tokio::test]
async fn delete_records_stops_retrying_at_the_deadline() {
    let (script, bootstrap) = start(Script {
        topic: Some(("t".into(), 1)),
        delete_records_error: LEADER_NOT_AVAILABLE,
        ..Script::default()
    })
    .await;
    let admin = admin(&bootstrap, Duration::from_millis(400)).await;
    let started = Instant::now();
    let outcomes = admin.delete_records(&[("t", 0, 5)]).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let error = outcomes
        .get(&("t".to_owned(), 0))
        .unwrap()
        .as_ref()
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(KafkaCode::LEADER_NOT_AVAILABLE),
        "{error}"
    );
    assert!(error.to_string().contains("topic t partition 0"), "{error}");
    assert!(script.lock().unwrap().delete_records_requests > 1);
}

#[tokio::test]
async fn describe_cluster_falls_back_to_metadata() {
    let (_script, bootstrap) = start(Script {
        no_describe_cluster: true,
        ..Script::default()
    })
    .await;
    let admin = admin(&bootstrap, Duration::from_secs(10)).await;
    let cluster = admin.describe_cluster().await.unwrap();
    assert_eq!(cluster.cluster_id.as_deref(), Some("fake"));
    assert_eq!(cluster.controller, Some(NODE));
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(cluster.brokers[0].addr, bootstrap);
}
