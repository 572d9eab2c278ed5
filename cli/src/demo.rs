//! `sluice demo`: the whole pipeline in one command, nothing installed. It starts an embedded
//! mock cluster (or uses `-b HOST:PORT`), produces a click stream, copies it exactly once into
//! an upper-cased topic with `sluice copy`'s consume-transform-produce loop (one transaction
//! per 100 ms with the consumed offsets), reads the result back under read_committed to check
//! every event arrived once, and says how fast each step was.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_client::admin::{Admin, CreateTopicsOptions, NewTopic};
use sluice_client::config::{AdminConfig, ConsumerConfig, ProducerConfig};
use sluice_client::consumer::{Consumer, Offset};
use sluice_client::producer::{Producer, ProducerRecord};
use sluice_client::KafkaCode;
use sluice_mock::{MockCluster, MockConfig};

use crate::bench::Progress;
use crate::copy::{run_job, Job, Map, Stop};
use crate::CliError;

/// Arguments of `sluice demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A real cluster to run against (default: an embedded mock cluster of 3 brokers).
    #[arg(short = 'b', long = "brokers", value_name = "HOST:PORT")]
    brokers: Option<String>,
    /// How many click events.
    #[arg(long = "records", default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    records: u64,
    /// Partitions of the two topics.
    #[arg(long = "partitions", default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..=1000))]
    partitions: i32,
}

pub(crate) async fn run(args: &Args) -> Result<(), CliError> {
    let _mock;
    let bootstrap = match &args.brokers {
        Some(b) => {
            println!("cluster     {b}");
            b.clone()
        }
        None => {
            let cluster = MockCluster::start(MockConfig::with_brokers(3)).await?;
            let b = cluster.bootstrap();
            println!("cluster     embedded mock, 3 brokers at {b}");
            _mock = cluster;
            b
        }
    };
    // Fresh names per run, so a real cluster's earlier runs do not count.
    let run = format!("{:08x}", fastrand::u32(..));
    let (clicks, upper) = (format!("clicks-{run}"), format!("clicks-upper-{run}"));
    let admin = Admin::new(AdminConfig::from_properties([(
        "bootstrap.servers",
        bootstrap.as_str(),
    )])?)
    .await?;
    let topics = [
        NewTopic::new(&clicks, args.partitions, 1),
        NewTopic::new(&upper, args.partitions, 1),
    ];
    for (name, result) in admin
        .create_topics(&topics, &CreateTopicsOptions::default())
        .await
    {
        match result {
            Ok(_) => {}
            Err(e) if e.code() == Some(KafkaCode::TOPIC_ALREADY_EXISTS) => {}
            Err(e) => return Err(CliError::Failed(format!("cannot create topic {name}: {e}"))),
        }
    }
    println!(
        "topics      {clicks} -> {upper}, {} partitions each",
        args.partitions
    );

    let n = args.records;
    let started = Instant::now();
    produce_clicks(&bootstrap, &clicks, n).await?;
    let produced = started.elapsed();
    println!(
        "produced    {n} click events in {:.2} s ({})",
        produced.as_secs_f64(),
        rate(n, produced)
    );

    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(n, Arc::clone(&done));
    let started = Instant::now();
    let job = Job {
        properties: vec![("bootstrap.servers".into(), bootstrap.clone())],
        from: clicks.clone(),
        to: upper.clone(),
        group: format!("demo-{run}"),
        transactional_id: format!("demo-{run}"),
        map: Map::Upper,
        commit_interval: Duration::from_millis(100),
        stop: Stop::Count(n),
    };
    let copied = run_job(job, Some(done)).await;
    progress.finish();
    let copied = copied?;
    let took = started.elapsed();
    let mut line = format!(
        "copied      {} exactly once in {:.2} s ({})",
        copied.records,
        took.as_secs_f64(),
        rate(copied.records, took)
    );
    if let Some(m) = &copied.metrics {
        let p = |q| {
            m.commit_latency_quantile(q).map_or("-".to_owned(), |d| {
                format!("{:.1} ms", d.as_secs_f64() * 1e3)
            })
        };
        line.push_str(&format!(
            ", {} transactions, commit p50 ≤ {} p99 ≤ {}",
            m.commits,
            p(0.5),
            p(0.99)
        ));
    }
    println!("{line}");

    let started = Instant::now();
    let read = verify(&bootstrap, &upper, args.partitions, n).await?;
    println!(
        "verified    {read} events read back under read_committed in {:.2} s: each once, upper-cased, keys kept",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// "n msgs/s".
fn rate(n: u64, took: Duration) -> String {
    format!("{:.0} msgs/s", n as f64 / took.as_secs_f64().max(1e-9))
}

/// Click event `i`: keyed by user, the value a small JSON object.
fn click(i: u64) -> (String, String) {
    let user = format!("user-{}", i % 1000);
    let page = ["home", "search", "item", "cart", "checkout"][(i % 5) as usize];
    let value = format!(r#"{{"event":{i},"user":"{user}","page":"/{page}","action":"click"}}"#);
    (user, value)
}

async fn produce_clicks(bootstrap: &str, topic: &str, n: u64) -> Result<(), CliError> {
    let producer = Producer::new(ProducerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("linger.ms", "5"),
        ("compression.type", "lz4"),
    ])?)
    .await?;
    let done = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(n, Arc::clone(&done));
    let mut pending = Vec::new();
    for i in 0..n {
        let (key, value) = click(i);
        let delivery = producer
            .send(ProducerRecord::new(topic).key(key).value(value))
            .await
            .map_err(|e| CliError::Kafka(e.error))?;
        pending.push(delivery);
        done.store(i + 1, Ordering::Relaxed);
    }
    for delivery in pending {
        delivery.await?;
    }
    progress.finish();
    producer.close().await;
    Ok(())
}

/// Reads the output under read_committed and checks that every event is there exactly once,
/// upper-cased, under its user's key.
async fn verify(bootstrap: &str, topic: &str, partitions: i32, n: u64) -> Result<u64, CliError> {
    let mut consumer = Consumer::new(ConsumerConfig::from_properties([
        ("bootstrap.servers", bootstrap),
        ("isolation.level", "read_committed"),
    ])?)
    .await?;
    let all: Vec<(&str, i32, Offset)> = (0..partitions)
        .map(|p| (topic, p, Offset::Beginning))
        .collect();
    consumer.assign_with_offsets(&all);
    let mut seen = HashSet::with_capacity(n as usize);
    while (seen.len() as u64) < n {
        let Ok(batch) = tokio::time::timeout(Duration::from_secs(10), consumer.poll_batch()).await
        else {
            break;
        };
        for record in batch?.to_records()? {
            let value = record.value.as_deref().unwrap_or_default();
            let text = std::str::from_utf8(value)
                .map_err(|_| CliError::Failed("an output value is not UTF-8".into()))?;
            let event: u64 = text
                .strip_prefix(r#"{"EVENT":"#)
                .and_then(|rest| rest.split(',').next())
                .and_then(|e| e.parse().ok())
                .ok_or_else(|| CliError::Failed(format!("unexpected output value {text}")))?;
            let (key, value) = click(event);
            if record.key.as_deref() != Some(key.as_bytes()) || text != value.to_uppercase() {
                return Err(CliError::Failed(format!(
                    "event {event} came out wrong: {text}"
                )));
            }
            if !seen.insert(event) {
                return Err(CliError::Failed(format!("event {event} came out twice")));
            }
        }
    }
    if seen.len() as u64 != n {
        return Err(CliError::Failed(format!(
            "only {} of {n} events came out",
            seen.len()
        )));
    }
    Ok(n)
}
