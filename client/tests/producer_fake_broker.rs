//! The producer's retry and idempotence paths against a scripted broker on loopback.
//!
//! The local broker cannot be made to fail at the bad moment, and it answers some of these
//! paths unlike Kafka (tansu-notes.md gap 5: no KIP-360 epoch bump, DUPLICATE_SEQUENCE_NUMBER
//! with offset -1). This broker speaks the real protocol (ApiVersions, Metadata,
//! InitProducerId, Produce) and keeps Kafka's idempotence rules per partition and producer:
//! a batch must continue the last sequence (else OUT_OF_ORDER_SEQUENCE_NUMBER), one of the last
//! five batches again is a duplicate, a new epoch starts at sequence 0, InitProducerId with an
//! id and epoch bumps the epoch. Tests script faults by produce request number: an error
//! instead of the write, a connection cut after the write, lost producer state.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, InitProducerIdResponse, MetadataResponse, ProduceRequest,
    ProduceResponse, ProducerId, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_client::config::{Compression, ProducerConfig};
use sluice_client::producer::{Producer, ProducerRecord};
use sluice_client::KafkaCode;
use sluice_protocol::messages::{decode_request, encode_response, ApiKey};
use sluice_protocol::record::RecordBatch;
use sluice_protocol::versions::SUPPORTED;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOPIC: &str = "t";

/// A fault met by produce request number `request` (from 1).
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Every partition of the request is answered with `code`; nothing is written.
    Error { request: usize, code: KafkaCode },
    /// The request is written, then the connection closes without an answer.
    DisconnectAfterWrite { request: usize },
    /// The broker forgets its producer state and answers UNKNOWN_PRODUCER_ID.
    ForgetProducer { request: usize },
}

/// A batch in a partition log.
#[derive(Debug, Clone)]
struct Stored {
    base_offset: i64,
    producer: (i64, i16),
    base_sequence: i32,
    values: Vec<Vec<u8>>,
}

#[derive(Debug, Default)]
struct ProducerState {
    epoch: i16,
    last_sequence: i32,
    /// (first sequence, last sequence, base offset) of the last five batches.
    recent: VecDeque<(i32, i32, i64)>,
}

#[derive(Debug, Default)]
struct Broker {
    port: u16,
    partitions: i32,
    logs: BTreeMap<i32, Vec<Stored>>,
    producers: HashMap<(i32, i64), ProducerState>,
    next_producer_id: i64,
    faults: Vec<Fault>,
    produce_requests: usize,
    /// InitProducerId requests seen: (producer id, epoch) asked with.
    inits: Vec<(i64, i16)>,
    /// OUT_OF_ORDER_SEQUENCE_NUMBER and duplicate answers given.
    out_of_order: usize,
    duplicates: usize,
    /// Answer duplicates as Tansu does (DUPLICATE_SEQUENCE_NUMBER, offset -1), not as Kafka.
    tansu_duplicates: bool,
}

#[derive(Clone)]
struct Fake(Arc<Mutex<Broker>>);

impl Fake {
    async fn start(partitions: i32, faults: Vec<Fault>) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let broker = Broker {
            port: listener.local_addr().unwrap().port(),
            partitions,
            faults,
            next_producer_id: 1000,
            ..Broker::default()
        };
        let fake = Fake(Arc::new(Mutex::new(broker)));
        let serving = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serving.clone().serve(stream));
            }
        });
        fake
    }

    fn lock(&self) -> MutexGuard<'_, Broker> {
        self.0.lock().unwrap()
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.lock().port)
    }

    /// Requests on one connection are handled one at a time, in order, as Kafka does.
    async fn serve(self, mut stream: TcpStream) {
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
            let response = match request {
                RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions()),
                RequestKind::Metadata(_) => ResponseKind::Metadata(self.lock().metadata()),
                RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(
                    self.lock().init(r.producer_id.0, r.producer_epoch),
                ),
                RequestKind::Produce(r) => match self.lock().produce(&r) {
                    Some(response) => ResponseKind::Produce(response),
                    None => return,
                },
                other => panic!("the fake broker does not serve {other:?}"),
            };
            let mut out = BytesMut::new();
            encode_response(&mut out, header.correlation_id, api, version, &response).unwrap();
            if stream.write_all(&out).await.is_err() {
                return;
            }
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

impl Broker {
    fn metadata(&self) -> MetadataResponse {
        let partitions = (0..self.partitions)
            .map(|p| {
                MetadataResponsePartition::default()
                    .with_partition_index(p)
                    .with_leader_id(BrokerId(1))
                    .with_replica_nodes(vec![BrokerId(1)])
                    .with_isr_nodes(vec![BrokerId(1)])
            })
            .collect();
        MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(i32::from(self.port))])
            .with_controller_id(BrokerId(1))
            .with_topics(vec![MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))
                .with_partitions(partitions)])
    }

    /// KIP-360: an id and epoch asked with get the next epoch; none, a new id.
    fn init(&mut self, producer_id: i64, epoch: i16) -> InitProducerIdResponse {
        self.inits.push((producer_id, epoch));
        let (id, epoch) = if producer_id >= 0 {
            (producer_id, epoch + 1)
        } else {
            self.next_producer_id += 1;
            (self.next_producer_id, 0)
        };
        InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch)
    }

    /// `None`: close the connection without answering.
    fn produce(&mut self, request: &ProduceRequest) -> Option<ProduceResponse> {
        self.produce_requests += 1;
        let n = self.produce_requests;
        let fault = self.faults.iter().copied().find(|f| match *f {
            Fault::Error { request, .. }
            | Fault::DisconnectAfterWrite { request }
            | Fault::ForgetProducer { request } => request == n,
        });
        let mut topics = Vec::new();
        for topic in &request.topic_data {
            let mut answers = Vec::new();
            for data in &topic.partition_data {
                let batch = RecordBatch::from_bytes(data.records.clone().unwrap()).unwrap();
                batch.verify_crc().unwrap();
                let (code, offset) = match fault {
                    Some(Fault::Error { code, .. }) => (code, -1),
                    Some(Fault::ForgetProducer { .. }) => {
                        self.producers.retain(|(p, _), _| *p != data.index);
                        (KafkaCode::UNKNOWN_PRODUCER_ID, -1)
                    }
                    _ => self.append(data.index, &batch),
                };
                answers.push(
                    PartitionProduceResponse::default()
                        .with_index(data.index)
                        .with_error_code(code.0)
                        .with_base_offset(offset),
                );
            }
            topics.push(
                TopicProduceResponse::default()
                    .with_name(topic.name.clone())
                    .with_partition_responses(answers),
            );
        }
        if let Some(Fault::DisconnectAfterWrite { .. }) = fault {
            return None;
        }
        Some(ProduceResponse::default().with_responses(topics))
    }

    /// Kafka's checks (`ProducerStateManager`), then the write.
    fn append(&mut self, partition: i32, batch: &RecordBatch) -> (KafkaCode, i64) {
        let (id, epoch, first) = (
            batch.producer_id(),
            batch.producer_epoch(),
            batch.base_sequence(),
        );
        let last = first + batch.records_count() - 1;
        if id >= 0 {
            let state = self
                .producers
                .entry((partition, id))
                .or_insert(ProducerState {
                    epoch,
                    last_sequence: -1,
                    recent: VecDeque::new(),
                });
            if epoch < state.epoch {
                return (KafkaCode::INVALID_PRODUCER_EPOCH, -1);
            }
            if epoch > state.epoch {
                if first != 0 {
                    self.out_of_order += 1;
                    return (KafkaCode::OUT_OF_ORDER_SEQUENCE_NUMBER, -1);
                }
                *state = ProducerState {
                    epoch,
                    last_sequence: -1,
                    recent: VecDeque::new(),
                };
            }
            if let Some(&(_, _, offset)) = state.recent.iter().find(|r| r.0 == first && r.1 == last)
            {
                self.duplicates += 1;
                return if self.tansu_duplicates {
                    (KafkaCode::DUPLICATE_SEQUENCE_NUMBER, -1)
                } else {
                    (KafkaCode::NONE, offset)
                };
            }
            if first != state.last_sequence + 1 {
                self.out_of_order += 1;
                return (KafkaCode::OUT_OF_ORDER_SEQUENCE_NUMBER, -1);
            }
        }
        let log = self.logs.entry(partition).or_default();
        let base_offset = log
            .last()
            .map_or(0, |b| b.base_offset + b.values.len() as i64);
        let decoded = batch.records().unwrap();
        let values = decoded
            .iter()
            .map(|r| r.unwrap().value().unwrap().to_vec())
            .collect();
        log.push(Stored {
            base_offset,
            producer: (id, epoch),
            base_sequence: first,
            values,
        });
        if id >= 0 {
            let state = self.producers.get_mut(&(partition, id)).unwrap();
            state.last_sequence = last;
            state.recent.push_back((first, last, base_offset));
            if state.recent.len() > 5 {
                state.recent.pop_front();
            }
        }
        (KafkaCode::NONE, base_offset)
    }

    /// The values of a partition in log order.
    fn values(&self, partition: i32) -> Vec<String> {
        self.logs
            .get(&partition)
            .into_iter()
            .flatten()
            .flat_map(|b| {
                b.values
                    .iter()
                    .map(|v| String::from_utf8(v.clone()).unwrap())
            })
            .collect()
    }
}

/// Sends `count` records to partition 0 in small batches with up to 5 in flight, and returns
/// the offsets the deliveries reported.
async fn produce(fake: &Fake, count: usize) -> Vec<i64> {
    produce_compressed(fake, count, Compression::None).await
}

/// [`produce`] with batches compressed by `codec`: they are compressed off the sender task,
/// and retries must resend them in the same order all the same.
async fn produce_compressed(fake: &Fake, count: usize, codec: Compression) -> Vec<i64> {
    let config = ProducerConfig::builder()
        .bootstrap(&fake.bootstrap())
        .compression(codec)
        .batch_size(200)
        .linger(Duration::ZERO)
        .retry_backoff(Duration::from_millis(5))
        .retry_backoff_max(Duration::from_millis(20))
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let producer = Producer::new(config).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..count {
        let record = ProducerRecord::new(TOPIC)
            .partition(0)
            .value(format!("{i:05}"));
        pending.push(producer.send(record).await.unwrap());
    }
    let mut offsets = Vec::new();
    for delivery in pending {
        let metadata = tokio::time::timeout(Duration::from_secs(20), delivery)
            .await
            .unwrap();
        offsets.push(
            metadata
                .unwrap_or_else(|e| panic!("delivery failed: {e}"))
                .offset,
        );
    }
    producer.close().await;
    offsets
}

fn expected(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{i:05}")).collect()
}

/// Sequences of the batches of one producer identity follow each other without a gap.
fn assert_gap_free(broker: &Broker) {
    let mut next: HashMap<(i64, i16), i32> = HashMap::new();
    for batch in &broker.logs[&0] {
        let expected = next.entry(batch.producer).or_insert(0);
        assert_eq!(batch.base_sequence, *expected, "{:?}", batch.producer);
        *expected += i32::try_from(batch.values.len()).unwrap();
    }
}

#[tokio::test]
async fn a_retriable_error_keeps_order_with_five_batches_in_flight() {
    // Request 3 fails; the requests after it, already in flight, are refused as out of order
    // by the broker and must be retried after it, in order.
    let fault = Fault::Error {
        request: 3,
        code: KafkaCode::NOT_LEADER_OR_FOLLOWER,
    };
    let fake = Fake::start(1, vec![fault]).await;
    let offsets = produce(&fake, 500).await;
    let broker = fake.lock();
    assert!(
        broker.produce_requests > 10,
        "{} requests",
        broker.produce_requests
    );
    assert_eq!(
        broker.values(0),
        expected(500),
        "every record once, in send order"
    );
    assert_eq!(
        offsets,
        (0..500).collect::<Vec<i64>>(),
        "offsets as written"
    );
    assert_gap_free(&broker);
    assert_eq!(
        broker.inits,
        [(-1, -1)],
        "one InitProducerId, no epoch bump"
    );
}

#[tokio::test]
async fn compressed_batches_keep_order_through_retries_and_an_epoch_bump() {
    for codec in [Compression::Lz4, Compression::Gzip] {
        let faults = vec![
            Fault::Error {
                request: 3,
                code: KafkaCode::NOT_LEADER_OR_FOLLOWER,
            },
            Fault::DisconnectAfterWrite { request: 9 },
            Fault::ForgetProducer { request: 15 },
        ];
        let fake = Fake::start(1, faults).await;
        let offsets = produce_compressed(&fake, 1000, codec).await;
        let broker = fake.lock();
        assert_eq!(
            broker.values(0),
            expected(1000),
            "{codec:?}: once each, in order"
        );
        assert_eq!(offsets, (0..1000).collect::<Vec<i64>>(), "{codec:?}");
        assert_gap_free(&broker);
        assert_eq!(broker.inits.len(), 2, "{codec:?}: {:?}", broker.inits);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_loop_of_sends_yields_to_other_tasks() {
    // One thread: the sender task, and anything beside the loop, run only when `send`
    // yields. Appending never waits here (memory and metadata are there), so only the
    // cooperative budget makes it yield.
    let fake = Fake::start(1, Vec::new()).await;
    let config = ProducerConfig::builder()
        .bootstrap(&fake.bootstrap())
        .build()
        .unwrap();
    let producer = Producer::new(config).await.unwrap();
    let sent = std::cell::Cell::new(0usize);
    let (pending, seen_at) = tokio::join!(
        async {
            let mut pending = Vec::new();
            for i in 0..10_000 {
                let record = ProducerRecord::new(TOPIC)
                    .partition(0)
                    .value(format!("{i:05}"));
                pending.push(producer.send(record).await.unwrap());
                sent.set(i + 1);
            }
            pending
        },
        async {
            tokio::task::yield_now().await;
            sent.get()
        }
    );
    assert!(seen_at < 10_000, "the loop never yielded");
    for delivery in pending {
        delivery.await.unwrap();
    }
    producer.close().await;
    assert_eq!(fake.lock().values(0), expected(10_000));
}

#[tokio::test]
async fn a_connection_cut_after_the_write_is_deduplicated() {
    let fake = Fake::start(1, vec![Fault::DisconnectAfterWrite { request: 4 }]).await;
    let offsets = produce(&fake, 500).await;
    let broker = fake.lock();
    assert_eq!(
        broker.values(0),
        expected(500),
        "the retry of a written batch is not written twice"
    );
    // Kafka answers the duplicate with its original offset.
    assert_eq!(offsets, (0..500).collect::<Vec<i64>>());
    assert_gap_free(&broker);
}

#[tokio::test]
async fn tansu_style_duplicates_are_success_with_unknown_offsets() {
    let fake = Fake::start(1, vec![Fault::DisconnectAfterWrite { request: 2 }]).await;
    fake.lock().tansu_duplicates = true;
    let offsets = produce(&fake, 300).await;
    let broker = fake.lock();
    assert_eq!(broker.values(0), expected(300));
    // The written batch's records come back with -1 (tansu-notes.md gap 5), the rest exact.
    let unknown = offsets.iter().filter(|&&o| o == -1).count();
    assert!(unknown > 0, "the duplicate was answered");
    for (i, &offset) in offsets.iter().enumerate() {
        assert!(offset == -1 || offset == i as i64, "record {i} at {offset}");
    }
}

#[tokio::test]
async fn unknown_producer_id_bumps_the_epoch_and_restarts_sequences() {
    let fake = Fake::start(1, vec![Fault::ForgetProducer { request: 3 }]).await;
    let offsets = produce(&fake, 500).await;
    let broker = fake.lock();
    assert_eq!(
        broker.values(0),
        expected(500),
        "every record once, in send order"
    );
    assert_eq!(offsets, (0..500).collect::<Vec<i64>>());
    // The first identity, then a KIP-360 bump asked with it.
    assert_eq!(broker.inits.len(), 2, "{:?}", broker.inits);
    assert_eq!(broker.inits[0], (-1, -1));
    let first = broker.logs[&0][0].producer;
    assert_eq!(broker.inits[1], first);
    let last = broker.logs[&0].last().unwrap().producer;
    assert_eq!(
        last,
        (first.0, first.1 + 1),
        "later batches use the bumped epoch"
    );
    let restarted = broker.logs[&0].iter().find(|b| b.producer == last).unwrap();
    assert_eq!(
        restarted.base_sequence, 0,
        "a new epoch starts at sequence 0"
    );
    assert_gap_free(&broker);
}

#[tokio::test]
async fn a_non_retriable_error_fails_only_its_records() {
    let fault = Fault::Error {
        request: 2,
        code: KafkaCode::MESSAGE_TOO_LARGE,
    };
    let fake = Fake::start(1, vec![fault]).await;
    let config = ProducerConfig::builder()
        .bootstrap(&fake.bootstrap())
        .batch_size(200)
        .linger(Duration::ZERO)
        .retry_backoff(Duration::from_millis(5))
        .build()
        .unwrap();
    let producer = Producer::new(config).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..200 {
        let record = ProducerRecord::new(TOPIC)
            .partition(0)
            .value(format!("{i:05}"));
        pending.push(producer.send(record).await.unwrap());
    }
    let mut failed = Vec::new();
    for (i, delivery) in pending.into_iter().enumerate() {
        if let Err(e) = tokio::time::timeout(Duration::from_secs(20), delivery)
            .await
            .unwrap()
        {
            assert_eq!(e.code(), Some(KafkaCode::MESSAGE_TOO_LARGE), "{e}");
            failed.push(i);
        }
    }
    producer.close().await;
    let broker = fake.lock();
    assert!(!failed.is_empty(), "request 2's records fail");
    let written = broker.values(0);
    assert_eq!(
        written.len() + failed.len(),
        200,
        "the rest is written, once each"
    );
    let mut sorted = written.clone();
    sorted.sort();
    assert_eq!(written, sorted, "in send order");
    // The failed batch left a hole in the sequences: the batches after it were re-sequenced
    // under a new epoch.
    assert_eq!(broker.inits.len(), 2, "{:?}", broker.inits);
    assert_gap_free(&broker);
}
