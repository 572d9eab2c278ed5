//! Interop with librdkafka, both ways and with every codec: what `sluice produce` writes an
//! rdkafka consumer reads unchanged, and what an rdkafka producer writes `sluice consume
//! --format json` prints faithfully (null versus empty keys, values and header values,
//! duplicate headers, binary data).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{json, Value};
use sluice_tests::{rdkafka_config, TestBroker};
use support::{create_topic, json_lines, sluice_ok};

const PARTITIONS: i32 = 2;
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A record as bytes: key, value, headers.
type Rec = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
);

/// Reads `count` records of every partition of `topic` from the start with librdkafka.
fn rdkafka_read(broker: &TestBroker, topic: &str, count: usize) -> Vec<(i32, Rec)> {
    let consumer: BaseConsumer = rdkafka_config(&broker.bootstrap())
        // librdkafka refuses `assign` without a group id, although it never contacts it here.
        .set("group.id", "sluice-cli-interop-unused")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut read = Vec::new();
    while read.len() < count {
        assert!(
            Instant::now() < deadline,
            "{topic}: only {} of {count}",
            read.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = message.unwrap();
        let headers = m.headers().map_or_else(Vec::new, |hs| {
            hs.iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        });
        let rec = (
            m.key().map(<[u8]>::to_vec),
            m.payload().map(<[u8]>::to_vec),
            headers,
        );
        read.push((m.partition(), rec));
    }
    read
}

#[test]
fn rdkafka_reads_what_sluice_produce_wrote() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    let mut input = Vec::new();
    let mut written: Vec<Rec> = Vec::new();
    let headers = vec![
        ("h".to_owned(), Some(b"1".to_vec())),
        ("n".to_owned(), None),
        ("h".to_owned(), Some(Vec::new())),
    ];
    for i in 0..50 {
        input.extend_from_slice(format!("k{i}|v{i}\n").as_bytes());
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        written.push((Some(k.into_bytes()), Some(v.into_bytes()), headers.clone()));
    }
    input.extend_from_slice(b"|\nvalue only\n\x80\x81|\xfe\n");
    written.push((Some(Vec::new()), Some(Vec::new()), headers.clone()));
    written.push((None, Some(b"value only".to_vec()), headers.clone()));
    written.push((Some(vec![0x80, 0x81]), Some(vec![0xfe]), headers.clone()));
    for codec in CODECS {
        let topic = format!("to-rdkafka-{codec}");
        create_topic(&broker, &topic, PARTITIONS);
        sluice_ok(
            &[
                "produce", "-b", &b, "-t", &topic, "-K", "|", "-z", codec, "-H", "h=1", "-H", "n",
                "-H", "h=",
            ],
            &input,
        );
        let mut read: Vec<Rec> = rdkafka_read(&broker, &topic, written.len())
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        let mut expected = written.clone();
        read.sort();
        expected.sort();
        assert_eq!(read, expected, "{codec}");
    }
}

/// Records for rdkafka to write: null and empty keys and values, binary data, and headers
/// with duplicates, null and empty values.
fn rdkafka_records() -> Vec<(i32, Rec)> {
    (0..40)
        .map(|i: usize| {
            let key = match i % 4 {
                0 => None,
                1 => Some(Vec::new()),
                2 => Some(vec![0xff, i as u8]),
                _ => Some(format!("key-{i}").into_bytes()),
            };
            let value = match i % 5 {
                0 => None,
                1 => Some(Vec::new()),
                2 => Some(vec![0xc3, 0x28, i as u8]),
                _ => Some(format!("value {i} ✓").into_bytes()),
            };
            let mut headers = vec![("i".to_owned(), Some(i.to_string().into_bytes()))];
            if i.is_multiple_of(3) {
                headers.push(("dup".to_owned(), Some(b"a".to_vec())));
                headers.push(("dup".to_owned(), Some(b"b".to_vec())));
                headers.push(("null".to_owned(), None));
                headers.push(("empty".to_owned(), Some(Vec::new())));
            }
            ((i % 2) as i32, (key, value, headers))
        })
        .collect()
}

fn rdkafka_write(broker: &TestBroker, topic: &str, codec: &str, records: &[(i32, Rec)]) {
    let producer: FutureProducer = rdkafka_config(&broker.bootstrap())
        .set("compression.type", codec)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut pending = Vec::new();
        for (partition, (key, value, headers)) in records {
            let headers = headers.iter().fold(OwnedHeaders::new(), |all, (k, v)| {
                all.insert(Header {
                    key: k,
                    value: v.as_deref(),
                })
            });
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
                .partition(*partition)
                .headers(headers);
            if let Some(key) = key {
                record = record.key(key.as_slice());
            }
            if let Some(value) = value {
                record = record.payload(value.as_slice());
            }
            pending.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
        }
        for delivery in pending {
            delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    });
}

/// How `consume --format json` prints bytes: text when UTF-8, else `{"base64": ...}`.
fn printed(bytes: &Option<Vec<u8>>) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => json!(text),
            Err(_) => json!({"base64": base64::engine::general_purpose::STANDARD.encode(b)}),
        },
    }
}

#[test]
fn sluice_consume_prints_what_rdkafka_produced() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    let records = rdkafka_records();
    for codec in CODECS {
        let topic = format!("from-rdkafka-{codec}");
        create_topic(&broker, &topic, PARTITIONS);
        rdkafka_write(&broker, &topic, codec, &records);
        let lines = json_lines(&sluice_ok(
            &["consume", "-b", &b, "-t", &topic, "-e", "--format", "json"],
            b"",
        ));
        assert_eq!(lines.len(), records.len(), "{codec}");
        for line in &lines {
            let i: usize = line["headers"][0][1].as_str().unwrap().parse().unwrap();
            let (partition, (key, value, headers)) = &records[i];
            assert_eq!(line["topic"], json!(topic));
            assert_eq!(line["partition"], json!(partition), "{codec} {i}");
            assert_eq!(line["key"], printed(key), "{codec} {i}");
            assert_eq!(line["value"], printed(value), "{codec} {i}");
            let expected: Vec<Value> = headers
                .iter()
                .map(|(k, v)| json!([k, printed(v)]))
                .collect();
            assert_eq!(line["headers"], json!(expected), "{codec} {i}");
            assert_eq!(line["compression"], json!(codec), "{codec} {i}");
        }
        // Within a partition, in the order written.
        for p in 0..PARTITIONS {
            let order: Vec<&Value> = lines
                .iter()
                .filter(|l| l["partition"] == p)
                .map(|l| &l["headers"][0][1])
                .collect();
            let written: Vec<Value> = records
                .iter()
                .enumerate()
                .filter(|(_, (q, _))| *q == p)
                .map(|(i, _)| json!(i.to_string()))
                .collect();
            assert_eq!(order, written.iter().collect::<Vec<_>>(), "{codec} {p}");
        }
    }
}
