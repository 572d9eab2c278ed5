//! The producer's public API without a broker: records, errors that hand the record back,
//! and what `Producer::new` refuses.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::time::Duration;

use bytes::Bytes;
use sluice_client::config::ProducerConfig;
use sluice_client::producer::{Producer, ProducerRecord, SendError};
use sluice_client::{Error, KafkaCode};

#[test]
fn the_record_builder_keeps_null_and_empty_apart() {
    let record = ProducerRecord::new("t")
        .key("k")
        .value(Bytes::new())
        .partition(2)
        .timestamp(1_700_000_000_000)
        .header("dup", "a")
        .header("dup", "b")
        .null_header("n")
        .header("e", Bytes::new());
    assert_eq!(record.topic, "t");
    assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
    assert_eq!(record.value.as_deref(), Some(&b""[..]), "empty, not null");
    assert_eq!(
        (record.partition, record.timestamp),
        (Some(2), Some(1_700_000_000_000))
    );
    let headers: Vec<(&str, Option<&[u8]>)> = record
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect();
    assert_eq!(
        headers,
        [
            ("dup", Some(&b"a"[..])),
            ("dup", Some(&b"b"[..])),
            ("n", None),
            ("e", Some(&b""[..]))
        ]
    );
    let bare = ProducerRecord::new("t");
    assert_eq!(
        (bare.key, bare.value, bare.partition, bare.timestamp),
        (None, None, None, None)
    );
}

#[test]
fn send_error_names_the_cause_and_keeps_the_record() {
    let record = ProducerRecord::new("orders").value("v");
    let err = SendError {
        error: Error::kafka(KafkaCode::MESSAGE_TOO_LARGE, "too big"),
        record: record.clone(),
    };
    let text = err.to_string();
    assert!(
        text.contains("orders") && text.contains("MESSAGE_TOO_LARGE"),
        "{text}"
    );
    assert_eq!(err.record, record);
}

#[tokio::test]
async fn no_reachable_broker_fails_new() {
    // A port nobody listens on: bind, then release it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = ProducerConfig::builder()
        .bootstrap(&format!("127.0.0.1:{port}"))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let err = Producer::new(config).await.unwrap_err();
    assert!(err.is_retriable(), "{err}");
}
