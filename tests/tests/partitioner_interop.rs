//! Keyed records land on the same partition whether sluice or librdkafka produces them.
//!
//! librdkafka's `murmur2_random` (its default) and `murmur2` partitioners hash keys exactly as
//! the Java client's default does; sluice's Java-compatible partitioner must agree, or a mixed
//! fleet of producers would split one key over two partitions and lose its ordering.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_client::config::ProducerConfig;
use sluice_client::producer::{Producer, ProducerRecord};
use sluice_tests::{create_topic_with_rdkafka, rdkafka_config, TestBroker};

const PARTITIONS: i32 = 6;
const KEYS: usize = 300;

fn key(i: usize) -> String {
    // Lengths 1.. to cover murmur2's tail handling; a few non-ASCII keys too.
    match i % 10 {
        0 => format!("ключ-{i}"),
        _ => format!("user-{}", "x".repeat(i % 7)) + &i.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_and_librdkafka_put_every_key_on_the_same_partition() {
    let broker = TestBroker::start();
    create_topic_with_rdkafka(&broker.bootstrap(), "keys", PARTITIONS).await;
    for partitioner in ["murmur2_random", "murmur2"] {
        let rd: FutureProducer = rdkafka_config(&broker.bootstrap())
            .set("partitioner", partitioner)
            .create()
            .unwrap();
        let config = ProducerConfig::builder()
            .bootstrap(&broker.bootstrap())
            .build()
            .unwrap();
        let ours = Producer::new(config).await.unwrap();
        for i in 0..KEYS {
            let k = key(i);
            let rd_partition = rd
                .send(
                    FutureRecord::to("keys").key(k.as_bytes()).payload("v"),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
            let delivery = ours
                .send(
                    ProducerRecord::new("keys")
                        .key(k.clone().into_bytes())
                        .value("v"),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            assert_eq!(
                delivery.partition, rd_partition.partition,
                "key {k:?} with librdkafka's {partitioner}"
            );
        }
        ours.close().await;
    }
}
