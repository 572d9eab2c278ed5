//! The sluice side of a child: produce with `Producer::send` (every delivery checked), consume
//! with `poll_batch` (every record's value read) or `recv`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::Bytes;
use sluice_client::config::{Compression, ConsumerConfig, ProducerConfig};
use sluice_client::consumer::{Consumer, Offset};
use sluice_client::producer::{DeliveryFuture, Producer, ProducerRecord};

use crate::spec::{payloads, ChildReport, ChildSpec, Client, Codec, BATCH_BYTES};

fn compression(codec: Codec) -> Compression {
    match codec {
        Codec::None => Compression::None,
        Codec::Lz4 => Compression::Lz4,
    }
}

pub(crate) async fn produce(spec: &ChildSpec) -> Result<ChildReport> {
    let mut config = ProducerConfig::builder()
        .bootstrap(&spec.bootstrap)
        .compression(compression(spec.codec));
    if spec.client != Client::SluiceDefaults {
        config = config.batch_size(BATCH_BYTES);
    }
    let values: Vec<Bytes> = payloads(spec.size).into_iter().map(Bytes::from).collect();
    let created = Instant::now();
    let producer = Producer::new(config.build()?).await?;
    // Warm-up: the first record waits for metadata and the producer id.
    let first = ProducerRecord::new(spec.topic.as_str()).value(values[0].clone());
    producer.send(first).await.map_err(|e| e.error)?.await?;
    let startup_s = created.elapsed().as_secs_f64();

    let start = Instant::now();
    // On the runtime's `block_on` thread, as an application's send loop would run; the sender
    // task and connections run on the worker threads. (Sending from 2 or 3 tasks was no
    // faster: they contend on the accumulator and use more CPU.)
    let indexes = 1..spec.messages as usize;
    let bytes = values[0].len() as u64 + send_all(&producer, &values, &spec.topic, indexes).await?;
    producer.flush().await;
    let elapsed_s = start.elapsed().as_secs_f64();
    producer.close().await;
    Ok(ChildReport {
        records: spec.messages,
        timed_records: spec.messages - 1,
        bytes,
        elapsed_s,
        startup_s,
        ..ChildReport::default()
    })
}

pub(crate) async fn consume(spec: &ChildSpec) -> Result<ChildReport> {
    let mut config = ConsumerConfig::builder().bootstrap(&spec.bootstrap);
    if let Some(bound) = spec.prefetch_bytes {
        config = config.max_buffered_bytes(bound);
    }
    let mut consumer = Consumer::new(config.build()?).await?;
    let partitions: Vec<(&str, i32, Offset)> = (0..spec.partitions)
        .map(|p| (spec.topic.as_str(), p, Offset::Beginning))
        .collect();

    let assigned = Instant::now();
    consumer.assign_with_offsets(&partitions);
    if spec.start_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(spec.start_delay_ms)).await;
    }
    let (mut records, mut bytes, mut batches) = (0u64, 0u64, 0u64);
    let mut first: Option<Instant> = None;
    if spec.client == Client::SluiceRecv {
        while records < spec.messages {
            let record = consumer.recv().await?;
            first.get_or_insert_with(Instant::now);
            bytes += record.value.as_ref().map_or(0, |v| v.len() as u64);
            records += 1;
        }
    } else {
        while records < spec.messages {
            let batch = consumer.poll_batch().await?;
            first.get_or_insert_with(Instant::now);
            batches += 1;
            for record in batch.records() {
                bytes += record?.value().map_or(0, |v| v.len() as u64);
                records += 1;
            }
        }
    }
    let first = first.unwrap_or(assigned);
    let elapsed_s = first.elapsed().as_secs_f64();
    if records != spec.messages {
        bail!("read {records} records, expected {}", spec.messages);
    }
    let stats = consumer.buffer_stats();
    Ok(ChildReport {
        records,
        timed_records: records - 1,
        bytes,
        elapsed_s,
        startup_s: (first - assigned).as_secs_f64(),
        batches: (batches > 0).then_some(batches),
        buffer_peak_bytes: Some(stats.peak_bytes),
        buffer_max_bytes: Some(stats.max_bytes),
        ..ChildReport::default()
    })
}

/// Sends record `i` for every `i` in `indexes`, checking every acknowledgement; returns the
/// value bytes sent.
async fn send_all(
    producer: &Producer,
    values: &[Bytes],
    topic: &str,
    indexes: impl Iterator<Item = usize>,
) -> Result<u64> {
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut bytes = 0;
    for i in indexes {
        let value = values[i % values.len()].clone();
        bytes += value.len() as u64;
        let record = ProducerRecord::new(topic).value(value);
        let delivery = producer.send(record).await.map_err(|e| e.error)?;
        sluice_benches::drain_acknowledged(&mut pending).await?;
        pending.push_back(delivery);
    }
    for delivery in pending {
        delivery.await?;
    }
    Ok(bytes)
}
