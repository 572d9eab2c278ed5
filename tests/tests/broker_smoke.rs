//! The harness, the local broker and librdkafka work together: 1,000 records with keys and
//! headers, written in every codec, come back from Tansu exactly once and unchanged.
//!
//! If this fails, every other integration test is suspect; start here.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use sluice_tests::{create_topic_with_rdkafka, rdkafka_config, TestBroker};

const TOPIC: &str = "smoke";
const PARTITIONS: i32 = 3;
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
const RECORDS_PER_CODEC: usize = 200;
const CONSUME_TIMEOUT: Duration = Duration::from_secs(30);

/// A record as written, or as read back.
#[derive(Debug, PartialEq)]
struct Record {
    partition: i32,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Where a record landed: (partition, offset).
type Position = (i32, i64);

fn record(codec: &str, i: usize) -> Record {
    // Every 50th record has no key: a null key must come back null, not empty.
    let key = (!i.is_multiple_of(50)).then(|| format!("{codec}-key-{i}").into_bytes());
    // Repetitive, so that the codecs have something to compress, and of varying length.
    let value = format!("{codec} record {i}; ")
        .repeat(1 + i % 20)
        .into_bytes();
    let headers = vec![
        ("codec".to_owned(), Some(codec.as_bytes().to_vec())),
        ("index".to_owned(), Some(i.to_string().into_bytes())),
        // Repeated keys keep their order; a null value is not an empty one.
        ("dup".to_owned(), Some(b"first".to_vec())),
        ("dup".to_owned(), Some(b"second".to_vec())),
        ("null".to_owned(), None),
        ("empty".to_owned(), Some(Vec::new())),
    ];
    Record {
        partition: i32::try_from(i).unwrap() % PARTITIONS,
        key,
        value,
        headers,
    }
}

/// Writes [`RECORDS_PER_CODEC`] records with `codec` and returns them by where they landed.
async fn produce(broker: &TestBroker, codec: &str) -> Vec<(Position, Record)> {
    let producer: FutureProducer = rdkafka_config(&broker.bootstrap())
        .set("acks", "all")
        .set("compression.type", codec)
        // All records are queued before the first delivery is awaited, so this forms batches
        // of many records: compression is applied per batch.
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap_or_else(|e| panic!("no rdkafka producer with compression.type={codec}: {e}"));
    let mut pending = Vec::with_capacity(RECORDS_PER_CODEC);
    for i in 0..RECORDS_PER_CODEC {
        let expected = record(codec, i);
        let headers = expected
            .headers
            .iter()
            .fold(OwnedHeaders::new(), |all, (key, value)| {
                all.insert(Header {
                    key,
                    value: value.as_deref(),
                })
            });
        let mut future_record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(TOPIC)
            .partition(expected.partition)
            .payload(expected.value.as_slice())
            .headers(headers);
        if let Some(key) = &expected.key {
            future_record = future_record.key(key.as_slice());
        }
        let delivery = producer
            .send_result(future_record)
            .map_err(|(error, _)| error)
            .unwrap();
        pending.push((delivery, expected));
    }
    let mut written = Vec::with_capacity(RECORDS_PER_CODEC);
    for (delivery, expected) in pending {
        let delivered = delivery.await.unwrap().unwrap_or_else(|(error, _)| {
            panic!(
                "{codec}: delivery failed: {error}; broker log {}:\n{}",
                broker.log_path().display(),
                broker.log_tail()
            )
        });
        assert_eq!(
            delivered.partition, expected.partition,
            "{codec}: wrong partition"
        );
        written.push(((delivered.partition, delivered.offset), expected));
    }
    written
}

/// Reads every partition from the start, without a consumer group, until `count` records came.
async fn consume(broker: &TestBroker, count: usize) -> BTreeMap<Position, Record> {
    let consumer: StreamConsumer = rdkafka_config(&broker.bootstrap())
        // librdkafka refuses `assign` without a group id ("Unknown group"), although with
        // assign and no commits it never contacts the group coordinator.
        .set("group.id", "sluice-smoke-unused")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(TOPIC, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();

    let mut read = BTreeMap::new();
    while read.len() < count {
        let message = tokio::time::timeout(CONSUME_TIMEOUT, consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {count} records came back within {CONSUME_TIMEOUT:?}; \
                     broker log {}:\n{}",
                    read.len(),
                    broker.log_path().display(),
                    broker.log_tail()
                )
            })
            .unwrap();
        let headers = message.headers().map_or_else(Vec::new, |headers| {
            headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        });
        let position = (message.partition(), message.offset());
        let record = Record {
            partition: message.partition(),
            key: message.key().map(<[u8]>::to_vec),
            value: message
                .payload()
                .expect("a record without a value")
                .to_vec(),
            headers,
        };
        if let Some(earlier) = read.insert(position, record) {
            panic!("the record at {position:?} came back twice: {earlier:?}");
        }
    }
    read
}

#[tokio::test]
async fn every_codec_round_trips_through_tansu_with_keys_and_headers() {
    let broker = TestBroker::start();
    create_topic_with_rdkafka(&broker.bootstrap(), TOPIC, PARTITIONS).await;

    let mut written = BTreeMap::new();
    for codec in CODECS {
        for (position, record) in produce(&broker, codec).await {
            if let Some(earlier) = written.insert(position, record) {
                panic!("two deliveries reported {position:?}; the first was {earlier:?}");
            }
        }
    }
    assert_eq!(written.len(), CODECS.len() * RECORDS_PER_CODEC);

    let mut read = consume(&broker, written.len()).await;
    for (position, expected) in &written {
        let got = read
            .remove(position)
            .unwrap_or_else(|| panic!("the record written at {position:?} did not come back"));
        assert_eq!(&got, expected, "the record at {position:?} changed");
    }
    assert!(read.is_empty(), "records nobody wrote came back: {read:?}");
}

#[test]
fn dropping_the_broker_kills_and_reaps_it() {
    let broker = TestBroker::start();
    let address = broker.bootstrap();
    let pid = broker.pid();
    TcpStream::connect(&address).expect("a started broker accepts connections");

    drop(broker);

    assert!(
        TcpStream::connect(&address).is_err(),
        "broker {pid} at {address} still accepts connections after it was dropped"
    );
    // Reaped: not even a zombie is left in the process table.
    #[cfg(target_os = "linux")]
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "broker process {pid} still exists after drop"
    );
}
