//! The parent side: a fresh broker per measurement, one child process per client phase, the
//! broker's CPU time around each child, then the report.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::broker::{create_topic, tansu_binary, Broker};
use crate::report::{self, Measured, MemoryRow, Row, Samples};
use crate::spec::{ChildSpec, Client, Codec, Role};
use crate::{parse_report, procfs, Args, Mode, Phase};

const TOPIC: &str = "throughput";

pub(crate) fn run(args: &Args) -> Result<()> {
    let binary = tansu_binary()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let tick_hz = procfs::ticks_per_second();
    let ctx = Ctx {
        args,
        binary: &binary,
        runtime: &runtime,
    };
    let mut rows = Vec::new();
    if matches!(args.mode, Mode::Throughput | Mode::All) {
        for &codec in &args.codec {
            for &client in &args.clients {
                let phase = |run: bool| run.then(Samples::default);
                rows.push(Row {
                    codec,
                    client,
                    produce: phase(args.phase != Phase::Consume && client.produces()),
                    consume: phase(args.phase != Phase::Produce && client.consumes()),
                });
            }
        }
        // Repetitions go round all clients, so that load from other processes on the machine
        // falls on every client alike.
        for _ in 0..args.repeat {
            for row in &mut rows {
                ctx.throughput_once(row, tick_hz);
            }
        }
    }
    let mut memory = Vec::new();
    if matches!(args.mode, Mode::Memory | Mode::All) {
        memory = ctx.memory_rows()?;
    }
    let command =
        std::iter::once("cargo run --release -p sluice-benches --bin throughput --".to_owned())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" ");
    print!(
        "{}",
        report::markdown(args, &command, &rows, &memory, tick_hz)
    );
    Ok(())
}

struct Ctx<'a> {
    args: &'a Args,
    binary: &'a Path,
    runtime: &'a tokio::runtime::Runtime,
}

impl Ctx<'_> {
    fn spec(&self, broker: &Broker, role: Role, client: Client, codec: Codec) -> ChildSpec {
        ChildSpec {
            role,
            client,
            codec,
            bootstrap: broker.bootstrap(),
            topic: TOPIC.to_owned(),
            partitions: self.args.partitions,
            messages: self.args.messages,
            size: self.args.size,
            prefetch_bytes: None,
            start_delay_ms: 0,
        }
    }

    /// A fresh broker with the (empty) topic.
    fn fresh_broker(&self) -> Result<Broker> {
        let broker = Broker::start(self.binary)?;
        self.runtime
            .block_on(create_topic(
                &broker.bootstrap(),
                TOPIC,
                self.args.partitions,
            ))
            .context("creating the topic")?;
        Ok(broker)
    }

    /// Measures each phase of `row` once, adding to its samples.
    fn throughput_once(&self, row: &mut Row, hz: u64) {
        let (codec, client) = (row.codec, row.client);
        let mut loaded = None;
        if let Some(samples) = &mut row.produce {
            let result = self.fresh_broker().and_then(|broker| {
                let spec = self.spec(&broker, Role::Produce, client, codec);
                let measured = self.measure(&broker, &spec)?;
                if client == Client::Sluice {
                    // What sluice wrote is the data set every consumer reads: keep it.
                    loaded = Some(broker);
                }
                Ok(measured)
            });
            eprintln!(
                "{}",
                report::progress(codec, client, "produce", &result, hz)
            );
            samples.push(result);
        }
        if let Some(samples) = &mut row.consume {
            let result = (|| {
                let broker = match loaded.take() {
                    Some(broker) => broker,
                    None => self.loaded_broker(codec)?,
                };
                let spec = self.spec(&broker, Role::Consume, client, codec);
                self.measure(&broker, &spec)
            })();
            eprintln!(
                "{}",
                report::progress(codec, client, "consume", &result, hz)
            );
            samples.push(result);
        }
    }

    /// A fresh broker holding the records every consumer reads, written by sluice's producer
    /// in its benchmarked configuration.
    fn loaded_broker(&self, codec: Codec) -> Result<Broker> {
        let broker = self.fresh_broker()?;
        let spec = self.spec(&broker, Role::Produce, Client::Sluice, codec);
        self.measure(&broker, &spec)
            .context("loading the records")?;
        Ok(broker)
    }

    /// Memory mode: ~1 GB written by sluice, read back by each consumer with a bounded
    /// prefetch that is left to fill before reading starts.
    fn memory_rows(&self) -> Result<Vec<MemoryRow>> {
        let args = self.args;
        let broker = self.fresh_broker()?;
        let mut load = self.spec(&broker, Role::Produce, Client::Sluice, Codec::None);
        load.messages = args.memory_messages;
        load.size = args.memory_size;
        eprintln!(
            "memory: writing {} x {} B with sluice",
            args.memory_messages, args.memory_size
        );
        let produce = self.measure(&broker, &load)?;
        let mut rows = Vec::new();
        let clients = args
            .clients
            .iter()
            .filter(|c| matches!(c, Client::Sluice | Client::SluiceRecv | Client::Librdkafka));
        for &client in clients {
            let mut spec = load.clone();
            spec.role = Role::Consume;
            spec.client = client;
            spec.prefetch_bytes = Some(args.prefetch_mib << 20);
            spec.start_delay_ms = args.start_delay_ms;
            eprintln!("memory: reading with {client}");
            let consume = self.measure(&broker, &spec).map_err(|e| format!("{e:#}"));
            rows.push(MemoryRow {
                client,
                produce: produce.clone(),
                consume,
            });
        }
        Ok(rows)
    }

    /// Runs `spec` in a child process; the broker's CPU time is read before and after it.
    fn measure(&self, broker: &Broker, spec: &ChildSpec) -> Result<Measured> {
        let role = match spec.role {
            Role::Produce => "produce",
            Role::Consume => "consume",
        };
        self.measure_as(broker, spec, role)
    }

    /// [`measure`](Self::measure), with `tag` naming its `--perf-dir` file.
    fn measure_as(&self, broker: &Broker, spec: &ChildSpec, tag: &str) -> Result<Measured> {
        let broker_before = procfs::cpu_ticks(&broker.pid())?;
        let exe = std::env::current_exe()?;
        let mut command = match &self.args.perf_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let out = dir.join(format!("{}-{}-{tag}.data", spec.codec, spec.client));
                let mut perf = Command::new("perf");
                perf.arg("record")
                    .args(self.args.perf_args.split_whitespace())
                    .arg("-o")
                    .arg(out)
                    .arg("--")
                    .arg(exe);
                perf
            }
            None => Command::new(exe),
        };
        let mut child = command
            .arg("--child")
            .arg(serde_json::to_string(spec)?)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the child")?;
        let mut stdout = child.stdout.take().context("no child stdout")?;
        let reader = thread::spawn(move || {
            let mut out = String::new();
            let _ = stdout.read_to_string(&mut out);
            out
        });
        let deadline = Instant::now() + Duration::from_secs(self.args.child_timeout_s);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} {:?} timed out", spec.client, spec.role);
            }
            thread::sleep(Duration::from_millis(5));
        };
        let broker_after = procfs::cpu_ticks(&broker.pid())?;
        let out = reader.join().unwrap_or_default();
        if !status.success() {
            bail!("{} {:?} failed with {status}", spec.client, spec.role);
        }
        let report = parse_report(&out).context("the child printed no report")?;
        Ok(Measured {
            report,
            broker_ticks: broker_after.saturating_sub(broker_before),
        })
    }
}
