//! The librdkafka side of a child, through the `rdkafka` crate's non-async clients (the
//! fastest it offers: no future per message): `BaseProducer` polled by this thread for
//! delivery reports, `BaseConsumer` polled for messages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use crate::spec::{payloads, ChildReport, ChildSpec, Codec, BATCH_BYTES};

const FLUSH_TIMEOUT: Duration = Duration::from_secs(300);
/// Serve delivery reports every this many sends (and whenever the queue is full).
const POLL_EVERY: usize = 1024;

/// Counts delivery reports.
#[derive(Debug, Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err((error, _)) => {
                if self.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("librdkafka delivery failed: {error}");
                }
                0
            }
        };
    }
}

fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::None => "none",
        Codec::Lz4 => "lz4",
    }
}

pub(crate) fn produce(spec: &ChildSpec) -> Result<ChildReport> {
    let values = payloads(spec.size);
    let created = Instant::now();
    let producer: BaseProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", &spec.bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.size", BATCH_BYTES.to_string())
        // Let batch.size decide, not the 10,000-message default.
        .set("batch.num.messages", "1000000")
        .set("compression.codec", codec_name(spec.codec))
        .create_with_context(Deliveries::default())
        .context("creating the librdkafka producer")?;
    // Warm-up: the first record waits for metadata and the producer id.
    producer
        .send(BaseRecord::<(), [u8]>::to(&spec.topic).payload(values[0].as_slice()))
        .map_err(|(error, _)| error)?;
    producer.flush(FLUSH_TIMEOUT)?;
    let startup_s = created.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut bytes = values[0].len() as u64;
    for i in 1..spec.messages as usize {
        let value = values[i % values.len()].as_slice();
        bytes += value.len() as u64;
        let mut record = BaseRecord::<(), [u8]>::to(&spec.topic).payload(value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
                Err((error, _)) => bail!("librdkafka send failed: {error}"),
            }
        }
        if i % POLL_EVERY == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(FLUSH_TIMEOUT)?;
    let elapsed_s = start.elapsed().as_secs_f64();
    let context = producer.context();
    let (ok, failed) = (
        context.ok.load(Ordering::Relaxed),
        context.failed.load(Ordering::Relaxed),
    );
    if ok != spec.messages || failed != 0 {
        bail!("{ok} delivered, {failed} failed, of {}", spec.messages);
    }
    Ok(ChildReport {
        records: ok,
        timed_records: ok - 1,
        bytes,
        elapsed_s,
        startup_s,
        ..ChildReport::default()
    })
}

pub(crate) fn consume(spec: &ChildSpec) -> Result<ChildReport> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &spec.bootstrap)
        .set("group.id", "sluice-throughput")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // perf-notes: the default stalls on fetch back-off against Tansu.
        .set("queued.min.messages", "1000000");
    if let Some(bound) = spec.prefetch_bytes {
        // librdkafka's prefetch bound (default 64 MiB) for the one consumer queue.
        config.set("queued.max.messages.kbytes", (bound / 1024).to_string());
    }
    let consumer: BaseConsumer = config
        .create()
        .context("creating the librdkafka consumer")?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..spec.partitions {
        assignment.add_partition_offset(&spec.topic, p, Offset::Beginning)?;
    }

    let assigned = Instant::now();
    consumer.assign(&assignment)?;
    if spec.start_delay_ms > 0 {
        std::thread::sleep(Duration::from_millis(spec.start_delay_ms));
    }
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut first: Option<Instant> = None;
    while records < spec.messages {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                first.get_or_insert_with(Instant::now);
                bytes += message.payload().map_or(0, |v| v.len() as u64);
                records += 1;
            }
            Some(Err(error)) => bail!("librdkafka consume failed: {error}"),
            None => {}
        }
    }
    let first = first.unwrap_or(assigned);
    Ok(ChildReport {
        records,
        timed_records: records - 1,
        bytes,
        elapsed_s: first.elapsed().as_secs_f64(),
        startup_s: (first - assigned).as_secs_f64(),
        ..ChildReport::default()
    })
}
