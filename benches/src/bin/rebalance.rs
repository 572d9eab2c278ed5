//! The rebalance bar: time from a member's clean leave until its partitions are consumed again
//! by the others, on the in-process mock cluster, for sluice and librdkafka members.
//!
//! ```text
//! cargo run --release -p sluice-benches --bin rebalance -- \
//!     [--reps 20] [--members 3] [--partitions 12] [--heartbeat-ms 3000,100] \
//!     [--assignors range,cooperative-sticky] [--clients sluice,librdkafka]
//! ```
//!
//! Each configuration gets a fresh mock cluster (3 brokers, `group.initial.rebalance.delay.ms`
//! as Kafka's default, 3 s) and one topic under continuous production. `--members` members of
//! one client join a group and settle (every partition owned once and read from). Then, per
//! repetition, one member (in turn, so the leader leaves too) commits, waits three production
//! intervals (so records are waiting in each of its partitions: the time measured is the
//! hand-over's, not the producer's) and closes; the clock starts when `close()` is called and
//! stops when every partition it owned has yielded a record to another member's application. A new member then joins to restore the group, and
//! the next repetition waits until it settles.
//!
//! The time is split with what the coordinator saw ([`monitor`]):
//!
//! - leave: `close()` until the coordinator starts the rebalance (LeaveGroup processed);
//! - heartbeat wait: until the last remaining member's heartbeat arrives and is answered
//!   REBALANCE_IN_PROGRESS. The classic protocol has no other way to tell a member, so this is
//!   bounded by `heartbeat.interval.ms` (uniform over it when the leave is at a random moment).
//!   It is time on the protocol's schedule, set by the member's config: neither the broker's
//!   nor the client implementation's;
//! - rejoin: until the join phase ends (the last JoinGroup arrived; the coordinator answers at
//!   once, as Kafka's `DelayedJoin` does; the initial rebalance delay applies only to an empty
//!   group, so the broker adds nothing here);
//! - sync: until the group is Stable (leader's assignment, SyncGroups);
//! - fetch: until the last partition's first record reached a member's application
//!   (committed offsets, Fetch).
//!
//! With `REBALANCE_DEBUG=1` each leave's timeline is printed (group states, heartbeat
//! arrivals and first records, in ms from `close()`; heartbeats watched from before it).
//!
//! "Client time" is the total minus the heartbeat wait; the broker-owned part is zero for a
//! clean leave from a non-empty group (shown as the measured join-phase hold beyond the last
//! JoinGroup, which the mock cannot observe separately: it is within "rejoin").

#[path = "rebalance/members.rs"]
mod members;
#[path = "rebalance/monitor.rs"]
mod monitor;
#[path = "rebalance/probe.rs"]
mod probe;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use sluice_client::config::ProducerConfig;
use sluice_client::producer::{Producer, ProducerRecord};
use sluice_mock::{GroupState, MockCluster, MockConfig};

use crate::members::{GroupSettings, Member};
use crate::monitor::Monitor;
use crate::probe::Probe;

const TOPIC: &str = "rebalance";
/// How long a group may take to settle, or a leave to be taken over, before the run fails.
const SETTLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Client {
    Sluice,
    Librdkafka,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Sluice => "sluice",
            Client::Librdkafka => "librdkafka",
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "Time from a member's clean leave until its partitions are consumed again")]
struct Args {
    /// Leaves measured per configuration.
    #[arg(long, default_value_t = 20)]
    reps: usize,
    /// Members in the group before each leave.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 12)]
    partitions: i32,
    /// `heartbeat.interval.ms` of the members, comma-separated (each is a configuration).
    #[arg(long, value_delimiter = ',', default_value = "3000,100")]
    heartbeat_ms: Vec<u64>,
    /// Assignors, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "range,cooperative-sticky"
    )]
    assignors: Vec<String>,
    /// Clients, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "sluice,librdkafka")]
    clients: Vec<Client>,
    /// The mock's `group.initial.rebalance.delay.ms` (Kafka's default: 3000).
    #[arg(long, default_value_t = 3000)]
    initial_delay_ms: u64,
    /// One record per partition every this many milliseconds.
    #[arg(long, default_value_t = 10)]
    produce_interval_ms: u64,
}

/// One measured leave, in milliseconds from `close()`.
#[derive(Debug, Clone, Copy)]
struct Sample {
    leave: f64,
    heartbeat_wait: f64,
    rejoin: f64,
    sync: f64,
    fetch: f64,
    first: f64,
    total: f64,
}

impl Sample {
    fn client(&self) -> f64 {
        self.total - self.heartbeat_wait
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "load average before: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut rows = Vec::new();
    for &heartbeat_ms in &args.heartbeat_ms {
        for assignor in &args.assignors {
            for &client in &args.clients {
                let samples = run(&args, client, assignor, heartbeat_ms).await?;
                rows.push((client, assignor.clone(), heartbeat_ms, samples));
            }
        }
    }
    print!("{}", report(&args, &rows));
    Ok(())
}

fn start(
    client: Client,
    settings: &GroupSettings,
    slot: usize,
    probe: &Arc<Probe>,
) -> Result<Member> {
    match client {
        Client::Sluice => members::sluice(settings, slot, Arc::clone(probe)),
        Client::Librdkafka => members::librdkafka(settings, slot, Arc::clone(probe)),
    }
}

/// One configuration: a fresh cluster, a settled group, `reps` measured leaves.
async fn run(
    args: &Args,
    client: Client,
    assignor: &str,
    heartbeat_ms: u64,
) -> Result<Vec<Sample>> {
    let mut config = MockConfig::with_brokers(3);
    config.group_initial_rebalance_delay = Duration::from_millis(args.initial_delay_ms);
    let cluster = Arc::new(MockCluster::start(config).await?);
    cluster.create_topic(TOPIC, args.partitions);
    let producing = tokio::spawn(produce(
        cluster.bootstrap(),
        args.partitions,
        Duration::from_millis(args.produce_interval_ms),
    ));
    let settings = GroupSettings {
        bootstrap: cluster.bootstrap(),
        group: format!("{}-{assignor}-{heartbeat_ms}", client.name()),
        topic: TOPIC.to_owned(),
        assignor: assignor.to_owned(),
        heartbeat_ms,
        backlog: Duration::from_millis(3 * args.produce_interval_ms),
    };
    let probe = Arc::new(Probe::default());
    let mut members = Vec::new();
    for slot in 0..args.members {
        members.push((slot, start(client, &settings, slot, &probe)?));
    }
    let mut next_slot = args.members;
    settle(&cluster, &settings.group, &probe, &members, args.partitions).await?;

    let mut samples = Vec::with_capacity(args.reps);
    for rep in 0..args.reps {
        // Steady consumption for a moment, and a leave at no particular point of the
        // members' heartbeat cycles.
        let early = std::env::var_os("REBALANCE_DEBUG")
            .is_some()
            .then(|| Monitor::start(Arc::clone(&cluster), &settings.group));
        tokio::time::sleep(Duration::from_millis(
            200 + fastrand::u64(0..heartbeat_ms.max(1)),
        ))
        .await;
        let (slot, leaver) = members.remove(rep % members.len());
        probe.watch(slot);
        let watched = probe.watched().partitions;
        let monitor =
            early.unwrap_or_else(|| Monitor::start(Arc::clone(&cluster), &settings.group));
        let (called, _closed) = leaver.leave().await?;
        probe.remove(slot);
        let deadline = Instant::now() + SETTLE;
        while probe.watched().first_record.len() < watched.len() {
            if Instant::now() > deadline {
                bail!(
                    "{} {assignor}: partitions {watched:?} of a leaver not taken over: {:?}",
                    client.name(),
                    probe.watched()
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let observed = monitor.stop();
        let first_records = probe.watched().first_record;
        probe.unwatch();
        let sample = decompose(called, &observed, &first_records, members.len());
        if std::env::var_os("REBALANCE_DEBUG").is_some() {
            let rel = |t: &Instant| t.saturating_duration_since(called).as_secs_f64() * 1e3;
            eprintln!(
                "  states {:?}\n  heartbeats {:?}\n  first records {:?}",
                observed
                    .states
                    .iter()
                    .map(|(t, s)| (format!("{:.1}", rel(t)), *s))
                    .collect::<Vec<_>>(),
                observed
                    .heartbeats
                    .iter()
                    .map(|t| format!("{:.1}", rel(t)))
                    .collect::<Vec<_>>(),
                first_records
                    .iter()
                    .map(|(p, t)| (*p, format!("{:.1}", rel(t))))
                    .collect::<Vec<_>>(),
            );
        }
        match sample {
            Some(s) => {
                eprintln!(
                    "{} {assignor} hb={heartbeat_ms} rep {rep}: total {:.1} ms (heartbeat wait {:.1}, client {:.1})",
                    client.name(),
                    s.total,
                    s.heartbeat_wait,
                    s.client()
                );
                samples.push(s);
            }
            None => eprintln!(
                "{} {assignor} rep {rep}: the coordinator's view was incomplete ({} states, {} heartbeats); skipped",
                client.name(),
                observed.states.len(),
                observed.heartbeats.len()
            ),
        }
        members.push((next_slot, start(client, &settings, next_slot, &probe)?));
        next_slot += 1;
        settle(&cluster, &settings.group, &probe, &members, args.partitions).await?;
    }
    for (slot, member) in members {
        member.leave().await?;
        probe.remove(slot);
    }
    producing.abort();
    Ok(samples)
}

/// Splits one leave into its phases; `None` if the monitor missed a step.
fn decompose(
    called: Instant,
    observed: &monitor::Observed,
    first_records: &std::collections::BTreeMap<i32, Instant>,
    remaining: usize,
) -> Option<Sample> {
    let ms = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64() * 1e3;
    let rebalancing = observed.entered(
        called,
        &[
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
        ],
    )?;
    // Each remaining member's first heartbeat after the rebalance began is the one answered
    // REBALANCE_IN_PROGRESS (it then stops heartbeating until it has rejoined).
    let told = *observed
        .heartbeats
        .iter()
        .filter(|t| **t >= rebalancing)
        .nth(remaining.checked_sub(1)?)?;
    let joined = observed.entered(told, &[GroupState::CompletingRebalance, GroupState::Stable])?;
    let stable = observed.entered(joined, &[GroupState::Stable])?;
    let last = *first_records.values().max()?;
    let first = *first_records.values().min()?;
    Some(Sample {
        leave: ms(called, rebalancing),
        heartbeat_wait: ms(rebalancing, told),
        rejoin: ms(told, joined),
        sync: ms(joined, stable),
        fetch: ms(stable, last),
        first: ms(called, first),
        total: ms(called, last),
    })
}

/// Waits until the members own every partition once, each has read from all it owns, and the
/// coordinator sees a stable group of exactly them.
async fn settle(
    cluster: &MockCluster,
    group: &str,
    probe: &Probe,
    members: &[(usize, Member)],
    partitions: i32,
) -> Result<()> {
    let slots: Vec<usize> = members.iter().map(|(s, _)| *s).collect();
    let deadline = Instant::now() + SETTLE;
    loop {
        let stable = cluster
            .describe_group(group)
            .is_some_and(|g| g.state == GroupState::Stable && g.members.len() == slots.len());
        if stable && probe.steady(&slots, partitions) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let owned: Vec<_> = slots.iter().map(|s| (*s, probe.owned(*s))).collect();
            bail!("the group did not settle: owned {owned:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One record per partition every `interval`, until aborted.
async fn produce(bootstrap: String, partitions: i32, interval: Duration) -> Result<()> {
    let producer = Producer::new(ProducerConfig::from_properties([
        ("bootstrap.servers", bootstrap.as_str()),
        ("linger.ms", "1"),
    ])?)
    .await?;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for partition in 0..partitions {
            // The delivery is not awaited: the record is sent either way.
            let _delivery = producer
                .send(ProducerRecord::new(TOPIC).value("x").partition(partition))
                .await
                .map_err(|e| anyhow::anyhow!("produce: {}", e.error))?;
        }
    }
}

fn percentile(values: &mut [f64], p: usize) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) * p + 50) / 100]
}

fn report(args: &Args, rows: &[(Client, String, u64, Vec<Sample>)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nRebalance after a clean leave: {} members, {} partitions, {} leaves per row; ms from \
         close() (p50 / p90)\n",
        args.members, args.partitions, args.reps
    );
    let _ = writeln!(
        out,
        "| client | assignor | heartbeat.interval | total | heartbeat wait | client time | leave | rejoin | sync | fetch | first partition |"
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (client, assignor, heartbeat_ms, samples) in rows {
        let col = |f: fn(&Sample) -> f64| {
            let mut v: Vec<f64> = samples.iter().map(f).collect();
            let p50 = percentile(&mut v, 50);
            let p90 = percentile(&mut v, 90);
            format!("{p50:.1} / {p90:.1}")
        };
        let med = |f: fn(&Sample) -> f64| {
            let mut v: Vec<f64> = samples.iter().map(f).collect();
            format!("{:.1}", percentile(&mut v, 50))
        };
        let _ = writeln!(
            out,
            "| {} | {assignor} | {heartbeat_ms} ms | {} | {} | **{}** | {} | {} | {} | {} | {} |",
            client.name(),
            col(|s| s.total),
            col(|s| s.heartbeat_wait),
            col(Sample::client),
            med(|s| s.leave),
            med(|s| s.rejoin),
            med(|s| s.sync),
            med(|s| s.fetch),
            med(|s| s.first),
        );
    }
    let _ = writeln!(
        out,
        "\nclient time = total - heartbeat wait. Broker-owned delay: none applies (the initial \
         rebalance delay, {} ms here, is for an empty group; the coordinator ends the join \
         phase at the last JoinGroup). leave, rejoin, sync, fetch, first partition: medians.",
        args.initial_delay_ms
    );
    out
}
