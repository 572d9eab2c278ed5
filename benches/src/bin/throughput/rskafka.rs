//! The rskafka side of a child: one `PartitionClient` per partition. Producing, records are
//! split evenly over the partitions and sent as ~1 MB `produce` calls, two in flight per
//! partition (rskafka has no idempotent producer: it always sends producer id -1). Consuming,
//! one `StreamConsumer` per partition (its defaults: 50 MB max per fetch, 500 ms wait), each
//! in its own task, stopping at the high watermark.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::{bail, Result};
use chrono::Utc;
use futures::stream::{FuturesOrdered, StreamExt};
use rskafka::client::consumer::{StartOffset, StreamConsumerBuilder};
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;

use crate::spec::{payloads, ChildReport, ChildSpec, Codec, BATCH_BYTES};

/// `produce` calls in flight per partition: the next batch is built while one is on the wire.
const IN_FLIGHT: usize = 2;
/// A record's framing around its value in a v2 batch (length, attributes, deltas, key, headers).
const RECORD_OVERHEAD: usize = 8;

async fn partition_clients(spec: &ChildSpec) -> Result<Vec<Arc<PartitionClient>>> {
    let client = ClientBuilder::new(vec![spec.bootstrap.clone()])
        .build()
        .await?;
    let mut clients = Vec::new();
    for p in 0..spec.partitions {
        let pc = client
            .partition_client(spec.topic.clone(), p, UnknownTopicHandling::Retry)
            .await?;
        clients.push(Arc::new(pc));
    }
    Ok(clients)
}

pub(crate) async fn produce(spec: &ChildSpec) -> Result<ChildReport> {
    let created = Instant::now();
    // Connects to the leader: rskafka has no producer id to wait for.
    let clients = partition_clients(spec).await?;
    let startup_s = created.elapsed().as_secs_f64();
    let values = Arc::new(payloads(spec.size));
    let compression = match spec.codec {
        Codec::None => Compression::NoCompression,
        Codec::Lz4 => Compression::Lz4,
    };
    let per_batch = (BATCH_BYTES / (spec.size + RECORD_OVERHEAD)).max(1);
    let partitions = clients.len() as u64;

    let start = Instant::now();
    let mut tasks = Vec::new();
    for (p, client) in clients.into_iter().enumerate() {
        let count = spec.messages / partitions + u64::from((p as u64) < spec.messages % partitions);
        let values = Arc::clone(&values);
        tasks.push(tokio::spawn(async move {
            let mut in_flight = FuturesOrdered::new();
            let (mut sent, mut acked, mut bytes) = (0u64, 0u64, 0u64);
            while sent < count || !in_flight.is_empty() {
                if sent < count && in_flight.len() < IN_FLIGHT {
                    let n = (count - sent).min(per_batch as u64);
                    let records: Vec<Record> = (sent..sent + n)
                        .map(|i| {
                            let value = values[(i as usize * 3 + p) % values.len()].clone();
                            bytes += value.len() as u64;
                            Record {
                                key: None,
                                value: Some(value),
                                headers: BTreeMap::new(),
                                timestamp: Utc::now(),
                            }
                        })
                        .collect();
                    sent += n;
                    let client = Arc::clone(&client);
                    in_flight.push_back(async move { client.produce(records, compression).await });
                    continue;
                }
                if let Some(result) = in_flight.next().await {
                    acked += result?.len() as u64;
                }
            }
            anyhow::Ok((acked, bytes))
        }));
    }
    let (mut records, mut bytes) = (0, 0);
    for task in tasks {
        let (r, b) = task.await??;
        records += r;
        bytes += b;
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    if records != spec.messages {
        bail!("{records} acknowledged, expected {}", spec.messages);
    }
    Ok(ChildReport {
        records,
        timed_records: records,
        bytes,
        elapsed_s,
        startup_s,
        ..ChildReport::default()
    })
}

pub(crate) async fn consume(spec: &ChildSpec) -> Result<ChildReport> {
    let clients = partition_clients(spec).await?;
    let assigned = Instant::now();
    let first = Arc::new(OnceLock::new());
    let mut tasks = Vec::new();
    for client in clients {
        let mut stream = StreamConsumerBuilder::new(client, StartOffset::Earliest).build();
        let delay = spec.start_delay_ms;
        let first = Arc::clone(&first);
        tasks.push(tokio::spawn(async move {
            if delay > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            }
            let (mut records, mut bytes) = (0u64, 0u64);
            while let Some(item) = stream.next().await {
                let (record, high_watermark) = item?;
                if records == 0 {
                    first.get_or_init(Instant::now);
                }
                records += 1;
                bytes += record.record.value.as_ref().map_or(0, |v| v.len() as u64);
                if record.offset + 1 >= high_watermark {
                    break;
                }
            }
            anyhow::Ok((records, bytes))
        }));
    }
    let (mut records, mut bytes) = (0, 0);
    for task in tasks {
        let (r, b) = task.await??;
        records += r;
        bytes += b;
    }
    let first = first.get().copied().unwrap_or(assigned);
    let elapsed_s = first.elapsed().as_secs_f64();
    if records != spec.messages {
        bail!("read {records} records, expected {}", spec.messages);
    }
    Ok(ChildReport {
        records,
        timed_records: records - 1,
        bytes,
        elapsed_s,
        startup_s: (first - assigned).as_secs_f64(),
        ..ChildReport::default()
    })
}
