//! A scripted Kafka cluster on loopback for the consumer's tests: the real protocol (frames,
//! ApiVersions, Metadata, ListOffsets, Fetch), partition logs made of constructed batches, and
//! faults a test sets up.
//!
//! It exists for what the local broker cannot do (tansu-notes.md): answer OFFSET_OUT_OF_RANGE
//! (gap 4), list aborted transactions (gap 1), move a partition's leader, cut a response
//! inside a batch on demand. It behaves like Kafka where it answers: a fetch is served from
//! the first batch that ends at or after the fetch offset, cut at the partition's byte limit
//! but with its first batch always whole (KIP-74).
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, ProducerId, RequestKind, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::messages::{decode_request, encode_response, ApiKey};
use sluice_protocol::record::RecordBatch;
use sluice_protocol::versions::SUPPORTED;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const NONE: i16 = 0;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// One partition's log.
#[derive(Debug, Default)]
pub struct Partition {
    /// The leader's node id.
    pub leader: i32,
    /// Whole batches in offset order.
    pub batches: Vec<Bytes>,
    /// Offsets below this are gone: fetching them is OFFSET_OUT_OF_RANGE.
    pub log_start: i64,
    /// (producer id, first offset) of aborted transactions, sent to read_committed fetches.
    pub aborted: Vec<(i64, i64)>,
}

impl Partition {
    /// The offset after the last batch.
    pub fn end(&self) -> i64 {
        self.batches.last().map_or(self.log_start, |b| {
            RecordBatch::from_bytes(b.clone()).unwrap().last_offset() + 1
        })
    }
}

/// A fault the next fetch meets.
#[derive(Debug, Clone)]
pub enum Fault {
    /// The next fetch is not answered: the connection closes.
    Disconnect,
    /// The next fetch of this partition is answered with this error code.
    Error {
        topic: String,
        partition: i32,
        code: i16,
    },
}

/// A fetch as the broker saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenFetch {
    pub node: i32,
    pub version: i16,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub isolation: i8,
}

type Hook = Box<dyn FnMut(&str, i32, i64, &mut Partition) + Send>;

/// What the cluster serves, and what it saw. Tests change it between steps.
#[derive(Default)]
pub struct Script {
    /// Node ids and their ports.
    pub nodes: Vec<(i32, u16)>,
    pub partitions: BTreeMap<(String, i32), Partition>,
    pub faults: VecDeque<Fault>,
    /// Called before each partition fetch is served: (topic, partition, fetch offset, log).
    pub hook: Option<Hook>,
    pub fetches: Vec<SeenFetch>,
    /// ListOffsets lookups: (topic, partition, timestamp, isolation level).
    pub lookups: Vec<(String, i32, i64, i8)>,
}

/// The cluster: one listener task per node.
pub struct FakeCluster {
    script: Arc<Mutex<Script>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl FakeCluster {
    /// Starts `nodes` nodes, ids 1, 2, ...
    pub async fn start(nodes: i32) -> FakeCluster {
        let script = Arc::new(Mutex::new(Script::default()));
        let mut tasks = Vec::new();
        for id in 1..=nodes {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            script
                .lock()
                .unwrap()
                .nodes
                .push((id, listener.local_addr().unwrap().port()));
            let script = Arc::clone(&script);
            tasks.push(tokio::spawn(async move {
                let mut connections = Vec::new();
                while let Ok((stream, _)) = listener.accept().await {
                    connections.push(tokio::spawn(serve(stream, id, Arc::clone(&script))));
                }
            }));
        }
        FakeCluster { script, tasks }
    }

    /// The first node's address.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.script().nodes[0].1)
    }

    pub fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap()
    }

    /// Adds a topic of `partitions` empty partitions led by `leader`.
    pub fn topic(&self, topic: &str, partitions: i32, leader: i32) {
        let mut script = self.script();
        for p in 0..partitions {
            script.partitions.insert(
                (topic.to_owned(), p),
                Partition {
                    leader,
                    ..Partition::default()
                },
            );
        }
    }

    /// Appends batches to a partition.
    pub fn append(&self, topic: &str, partition: i32, batches: impl IntoIterator<Item = Bytes>) {
        let mut script = self.script();
        script
            .partitions
            .get_mut(&(topic.to_owned(), partition))
            .unwrap()
            .batches
            .extend(batches);
    }
}

async fn serve(mut stream: TcpStream, node: i32, script: Arc<Mutex<Script>>) {
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
        let version = header.request_api_version;
        let (response, wait) = match request {
            RequestKind::ApiVersions(_) => {
                (ResponseKind::ApiVersions(api_versions()), Duration::ZERO)
            }
            RequestKind::Metadata(r) => (
                ResponseKind::Metadata(metadata(&script.lock().unwrap(), &r)),
                Duration::ZERO,
            ),
            RequestKind::ListOffsets(r) => (
                ResponseKind::ListOffsets(list_offsets(&mut script.lock().unwrap(), node, &r)),
                Duration::ZERO,
            ),
            RequestKind::Fetch(r) => {
                let answer = fetch(&mut script.lock().unwrap(), node, version, &r);
                let Some((response, empty)) = answer else {
                    return;
                };
                let wait = if empty {
                    Duration::from_millis(u64::try_from(r.max_wait_ms).unwrap().min(50))
                } else {
                    Duration::ZERO
                };
                (ResponseKind::Fetch(response), wait)
            }
            other => panic!("the fake cluster does not serve {other:?}"),
        };
        tokio::time::sleep(wait).await;
        let mut out = BytesMut::new();
        encode_response(&mut out, header.correlation_id, api, version, &response).unwrap();
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn api_versions() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        SUPPORTED
            .iter()
            .map(|r| {
                ApiVersion::default()
                    .with_api_key(r.api as i16)
                    .with_min_version(r.min)
                    .with_max_version(r.max)
            })
            .collect(),
    )
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn metadata(script: &Script, request: &MetadataRequest) -> MetadataResponse {
    let brokers = script
        .nodes
        .iter()
        .map(|&(id, port)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(i32::from(port))
        })
        .collect();
    let mut names: Vec<String> = script.partitions.keys().map(|(t, _)| t.clone()).collect();
    names.dedup();
    if let Some(asked) = &request.topics {
        names = asked
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
    }
    let topics = names
        .iter()
        .map(|topic| {
            let partitions: Vec<MetadataResponsePartition> = script
                .partitions
                .iter()
                .filter(|((t, _), _)| t == topic)
                .map(|((_, p), log)| {
                    MetadataResponsePartition::default()
                        .with_partition_index(*p)
                        .with_leader_id(BrokerId(log.leader))
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![BrokerId(log.leader)])
                        .with_isr_nodes(vec![BrokerId(log.leader)])
                })
                .collect();
            let code = if partitions.is_empty() { 3 } else { NONE };
            MetadataResponseTopic::default()
                .with_name(Some(name(topic)))
                .with_error_code(code)
                .with_partitions(partitions)
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_controller_id(BrokerId(1))
        .with_topics(topics)
}

fn list_offsets(
    script: &mut Script,
    node: i32,
    request: &ListOffsetsRequest,
) -> ListOffsetsResponse {
    let mut topics = Vec::new();
    for t in &request.topics {
        let topic = t.name.0.to_string();
        let mut partitions = Vec::new();
        for p in &t.partitions {
            script.lookups.push((
                topic.clone(),
                p.partition_index,
                p.timestamp,
                request.isolation_level,
            ));
            let mut answer =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            match script.partitions.get(&(topic.clone(), p.partition_index)) {
                None => answer = answer.with_error_code(3),
                Some(log) if log.leader != node => {
                    answer = answer.with_error_code(NOT_LEADER_OR_FOLLOWER)
                }
                Some(log) => {
                    let offset = match p.timestamp {
                        -2 => log.log_start,
                        -1 => log.end(),
                        ts => log
                            .batches
                            .iter()
                            .map(|b| RecordBatch::from_bytes(b.clone()).unwrap())
                            .find(|b| b.max_timestamp() >= ts)
                            .map_or(-1, |b| b.base_offset()),
                    };
                    answer = answer.with_offset(offset).with_timestamp(if offset < 0 {
                        -1
                    } else {
                        p.timestamp.max(0)
                    });
                }
            }
            partitions.push(answer);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// Answers a fetch; `None` closes the connection. The flag says the answer has no records.
fn fetch(
    script: &mut Script,
    node: i32,
    version: i16,
    request: &FetchRequest,
) -> Option<(FetchResponse, bool)> {
    if matches!(script.faults.front(), Some(Fault::Disconnect)) {
        script.faults.pop_front();
        return None;
    }
    let mut left = usize::try_from(request.max_bytes).unwrap();
    let mut empty = true;
    let mut responses = Vec::new();
    for t in &request.topics {
        let topic = t.topic.0.to_string();
        let mut partitions = Vec::new();
        for p in &t.partitions {
            script.fetches.push(SeenFetch {
                node,
                version,
                topic: topic.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                isolation: request.isolation_level,
            });
            let key = (topic.clone(), p.partition);
            let fault = script.faults.iter().position(
                |f| matches!(f, Fault::Error { topic: ft, partition, .. } if *ft == topic && *partition == p.partition),
            );
            let answer = PartitionData::default().with_partition_index(p.partition);
            if let Some(i) = fault {
                let Some(Fault::Error { code, .. }) = script.faults.remove(i) else {
                    unreachable!()
                };
                partitions.push(answer.with_error_code(code));
                continue;
            }
            if let (Some(hook), Some(log)) = (script.hook.as_mut(), script.partitions.get_mut(&key))
            {
                hook(&topic, p.partition, p.fetch_offset, log);
            }
            let Some(log) = script.partitions.get(&key) else {
                partitions.push(answer.with_error_code(3));
                continue;
            };
            if log.leader != node {
                partitions.push(answer.with_error_code(NOT_LEADER_OR_FOLLOWER));
                continue;
            }
            let end = log.end();
            if p.fetch_offset < log.log_start || p.fetch_offset > end {
                partitions.push(answer.with_error_code(OFFSET_OUT_OF_RANGE));
                continue;
            }
            let limit = usize::try_from(p.partition_max_bytes).unwrap().min(left);
            let mut records = BytesMut::new();
            for b in &log.batches {
                let batch = RecordBatch::from_bytes(b.clone()).unwrap();
                if batch.last_offset() < p.fetch_offset {
                    continue;
                }
                if records.is_empty() && b.len() > limit {
                    // KIP-74: the response's first batch goes whole, however large; a later
                    // partition whose first batch does not fit gets nothing this time (Kafka
                    // sends no partial-only partition).
                    if empty {
                        records.extend_from_slice(b);
                    }
                    break;
                } else if records.len() + b.len() <= limit {
                    records.extend_from_slice(b);
                } else {
                    // Cut inside the batch, as a broker does at the size limit.
                    let room = limit.saturating_sub(records.len());
                    records.extend_from_slice(&b[..room.min(b.len())]);
                    break;
                }
            }
            left = left.saturating_sub(records.len());
            empty &= records.is_empty();
            let aborted = (request.isolation_level == 1).then(|| {
                log.aborted
                    .iter()
                    .map(|&(pid, first)| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(pid))
                            .with_first_offset(first)
                    })
                    .collect()
            });
            partitions.push(
                answer
                    .with_high_watermark(end)
                    .with_last_stable_offset(end)
                    .with_log_start_offset(log.log_start)
                    .with_aborted_transactions(aborted)
                    .with_records(Some(records.freeze())),
            );
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions),
        );
    }
    Some((FetchResponse::default().with_responses(responses), empty))
}
