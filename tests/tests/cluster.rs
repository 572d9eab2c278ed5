//! The cluster layer on the real broker: bootstrap, version negotiation, topic metadata.
#![allow(clippy::unwrap_used)]

use sluice_client::cluster::{Cluster, ClusterOptions};
use sluice_client::{Error, KafkaCode};
use sluice_tests::{create_topic_with_rdkafka, TestBroker};

fn options(bootstrap: String) -> ClusterOptions {
    ClusterOptions {
        bootstrap: vec![bootstrap],
        ..ClusterOptions::default()
    }
}

#[tokio::test]
async fn bootstrap_learns_brokers_and_topic_partitions() {
    let broker = TestBroker::start();
    create_topic_with_rdkafka(&broker.bootstrap(), "clicks", 3).await;
    let cluster = Cluster::connect(options(broker.bootstrap())).await.unwrap();
    let snapshot = cluster.snapshot();
    assert_eq!(snapshot.brokers.len(), 1, "{:?}", snapshot.brokers);
    let only = snapshot.brokers.values().next().unwrap();
    assert_eq!(only.addr, broker.bootstrap(), "advertised address");
    let topic = cluster.topic("clicks").await.unwrap();
    assert_eq!(topic.partitions.len(), 3);
    for (i, p) in topic.partitions.iter().enumerate() {
        assert_eq!(p.partition, i as i32);
        assert_eq!(p.leader, only.id);
        assert_eq!(p.error, None);
    }
    assert_eq!(cluster.leader("clicks", 2).await.unwrap(), only.id);
}

#[tokio::test]
async fn a_missing_topic_is_a_typed_error() {
    let broker = TestBroker::start();
    let cluster = Cluster::connect(options(broker.bootstrap())).await.unwrap();
    let err = cluster.topic("no-such-topic").await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION),
        "{err}"
    );
    let err = cluster.leader("no-such-topic", 0).await.unwrap_err();
    assert!(matches!(err, Error::Kafka { .. }), "{err}");
}

#[tokio::test]
async fn an_unreachable_bootstrap_fails_within_the_connect_timeout() {
    // A port nothing listens on: bind, learn it, close it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let options = ClusterOptions {
        bootstrap: vec![addr.clone()],
        connect_timeout: std::time::Duration::from_millis(500),
        ..ClusterOptions::default()
    };
    let err = Cluster::connect(options).await.unwrap_err();
    assert!(
        matches!(&err, Error::NoBrokerReachable { tried, .. } if tried.contains(&addr)),
        "{err}"
    );
}
