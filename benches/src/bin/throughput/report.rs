//! The Markdown report: one table of results, one of ratios against the bars, the
//! memory bar, and the command that made them.

use std::fmt::Write;

use crate::spec::{ChildReport, Client, Codec};
use crate::Args;

/// One child's report and the broker's CPU ticks while it ran.
#[derive(Debug, Clone)]
pub(crate) struct Measured {
    pub(crate) report: ChildReport,
    pub(crate) broker_ticks: u64,
}

/// The runs of one phase of one client and codec (one per `--repeat`).
#[derive(Debug, Default)]
pub(crate) struct Samples {
    pub(crate) runs: Vec<Measured>,
    pub(crate) errors: Vec<String>,
}

impl Samples {
    pub(crate) fn push(&mut self, result: anyhow::Result<Measured>) {
        match result {
            Ok(m) => self.runs.push(m),
            Err(e) => self.errors.push(format!("{e:#}")),
        }
    }

    /// The median of `f` over the runs (the lower middle one for an even count).
    fn median(&self, f: impl Fn(&Measured) -> f64) -> Option<f64> {
        let mut values: Vec<f64> = self.runs.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len().saturating_sub(1) / 2).copied()
    }

    fn min_max(&self, f: impl Fn(&Measured) -> f64) -> Option<(f64, f64)> {
        let values: Vec<f64> = self.runs.iter().map(f).collect();
        let min = values.iter().copied().reduce(f64::min)?;
        Some((min, values.iter().copied().reduce(f64::max)?))
    }
}

/// One client and codec: its produce and consume phases (`None`: not run).
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) codec: Codec,
    pub(crate) client: Client,
    pub(crate) produce: Option<Samples>,
    pub(crate) consume: Option<Samples>,
}

/// One consumer of the memory mode.
#[derive(Debug)]
pub(crate) struct MemoryRow {
    pub(crate) client: Client,
    pub(crate) produce: Measured,
    pub(crate) consume: Result<Measured, String>,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Measured {
    fn rate(&self) -> f64 {
        self.report.timed_records as f64 / self.report.elapsed_s
    }

    fn mb_per_s(&self) -> f64 {
        let per_record = self.report.bytes as f64 / self.report.records.max(1) as f64;
        self.rate() * per_record / 1e6
    }

    fn startup_ms(&self) -> f64 {
        self.report.startup_s * 1e3
    }

    /// Client CPU seconds per million records.
    fn cpu_per_m(&self, hz: u64) -> f64 {
        self.report.cpu_ticks as f64 / hz as f64 / (self.report.records as f64 / 1e6)
    }

    fn broker_per_m(&self, hz: u64) -> f64 {
        self.broker_ticks as f64 / hz as f64 / (self.report.records as f64 / 1e6)
    }

    fn rss_mib(&self) -> f64 {
        self.report.peak_rss_kib as f64 / 1024.0
    }
}

/// One line per measurement, on stderr while the run goes on.
pub(crate) fn progress(
    codec: Codec,
    client: Client,
    phase: &str,
    m: &anyhow::Result<Measured>,
    hz: u64,
) -> String {
    match m {
        Ok(m) => format!(
            "[{codec} {client}] {phase} {:.0} msg/s, cpu {:.2} s/M, broker {:.2} s/M, rss {:.0} MiB, startup {:.0} ms",
            m.rate(),
            m.cpu_per_m(hz),
            m.broker_per_m(hz),
            m.rss_mib(),
            m.startup_ms()
        ),
        Err(e) => format!("[{codec} {client}] {phase} FAILED: {e:#}"),
    }
}

fn millions(rate: f64) -> String {
    format!("{:.2}M", rate / 1e6)
}

/// A cell: the median of `f` over a phase's runs, formatted.
fn cell(
    phase: &Option<Samples>,
    f: impl Fn(&Measured) -> f64,
    fmt: impl Fn(f64) -> String,
) -> String {
    match phase {
        None => "—".to_owned(),
        Some(samples) => samples.median(f).map_or("failed".to_owned(), fmt),
    }
}

/// A rate cell: the median, and the range when there are several runs.
fn rate_cell(phase: &Option<Samples>) -> String {
    let median = cell(phase, Measured::rate, millions);
    match phase
        .as_ref()
        .filter(|s| s.runs.len() > 1)
        .and_then(|s| s.min_max(Measured::rate))
    {
        Some((min, max)) => format!("{median} ({:.2}–{:.2})", min / 1e6, max / 1e6),
        None => median,
    }
}

pub(crate) fn markdown(
    args: &Args,
    command: &str,
    rows: &[Row],
    memory: &[MemoryRow],
    hz: u64,
) -> String {
    let mut out = String::new();
    if !rows.is_empty() {
        results_table(&mut out, args, rows, hz);
        ratios_table(&mut out, rows, hz);
    }
    if !memory.is_empty() {
        memory_table(&mut out, args, memory);
    }
    let _ = writeln!(out, "\nCommand: `{command}`");
    let _ = writeln!(
        out,
        "\nCPU is utime + stime from `/proc/<pid>/stat` of the client's own child process \
         (whole process: setup, client threads, runtime) and of the broker while that child ran, \
         in clock ticks of {hz}/s (10 ms resolution at 100/s). Peak RSS is the child's `VmHWM`. \
         msg/s and MB/s (value bytes, 10^6) are steady state: producers from the \
         acknowledgement of a first warm-up record (connections, metadata, producer id: the \
         startup column) to the last acknowledgement, consumers from the first record to the \
         last (startup: assign to first record). CPU and RSS cover the whole child, startup \
         included. One fresh Tansu (memory storage) per measurement, on the same 2 cores as the \
         client; every consumer reads the same records, written by sluice's producer."
    );
    for row in rows {
        for phase in [&row.produce, &row.consume].into_iter().flatten() {
            for e in &phase.errors {
                let _ = writeln!(out, "\n{} {} failed: {e}", row.codec, row.client);
            }
        }
    }
    out
}

fn results_table(out: &mut String, args: &Args, rows: &[Row], hz: u64) {
    let _ = writeln!(
        out,
        "### {} records × {} B, {} partitions, acks=all, Tansu on 127.0.0.1\n",
        args.messages, args.size, args.partitions
    );
    let _ = writeln!(
        out,
        "| codec | client | produce msg/s | produce MB/s | consume msg/s | consume MB/s | \
         client CPU s/M rec (prod / cons) | broker CPU s/M rec (prod / cons) | \
         client peak RSS MiB (prod / cons) | startup ms (prod / cons) |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let pair = |f: fn(&Measured, u64) -> f64, digits: usize| {
            let fmt = |v: f64| format!("{v:.digits$}");
            format!(
                "{} / {}",
                cell(&row.produce, |m| f(m, hz), fmt),
                cell(&row.consume, |m| f(m, hz), fmt)
            )
        };
        let mb = |m: &Measured| m.mb_per_s();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.codec,
            row.client,
            rate_cell(&row.produce),
            cell(&row.produce, mb, |v| format!("{v:.0}")),
            rate_cell(&row.consume),
            cell(&row.consume, mb, |v| format!("{v:.0}")),
            pair(|m, hz| m.cpu_per_m(hz), 2),
            pair(|m, hz| m.broker_per_m(hz), 2),
            pair(|m, _| m.rss_mib(), 0),
            pair(|m, _| m.startup_ms(), 0),
        );
    }
}

/// A measure compared across clients, with the bar against each peer.
struct Measure {
    name: &'static str,
    produce: bool,
    value: fn(&Measured, u64) -> f64,
    /// Bars as (peer, ratio, higher is better).
    bars: &'static [(Client, f64, bool)],
    format: fn(f64) -> String,
}

const MEASURES: &[Measure] = &[
    Measure {
        name: "produce msg/s",
        produce: true,
        value: |m, _| m.rate(),
        bars: &[
            (Client::Librdkafka, 1.3, true),
            (Client::Rskafka, 1.0, true),
        ],
        format: millions,
    },
    Measure {
        name: "consume msg/s",
        produce: false,
        value: |m, _| m.rate(),
        bars: &[
            (Client::Librdkafka, 1.5, true),
            (Client::Rskafka, 1.0, true),
        ],
        format: millions,
    },
    Measure {
        name: "produce client CPU s/M",
        produce: true,
        value: |m, hz| m.cpu_per_m(hz),
        bars: &[(Client::Librdkafka, 0.6, false)],
        format: |v| format!("{v:.2}"),
    },
    Measure {
        name: "consume client CPU s/M",
        produce: false,
        value: |m, hz| m.cpu_per_m(hz),
        bars: &[(Client::Librdkafka, 0.6, false)],
        format: |v| format!("{v:.2}"),
    },
];

fn ratios_table(out: &mut String, rows: &[Row], hz: u64) {
    let _ = writeln!(
        out,
        "\n| codec | measure | sluice | librdkafka | rskafka | sluice/librdkafka | \
         sluice/rskafka | bar | met |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---|---|");
    let sluices = [Client::Sluice, Client::SluiceRecv, Client::SluiceDefaults];
    let codecs: Vec<Codec> = rows.iter().fold(Vec::new(), |mut v, r| {
        if !v.contains(&r.codec) {
            v.push(r.codec);
        }
        v
    });
    for codec in codecs {
        let get = |client: Client, measure: &Measure| {
            rows.iter()
                .find(|r| r.codec == codec && r.client == client)
                .and_then(|r| {
                    if measure.produce {
                        r.produce.as_ref()
                    } else {
                        r.consume.as_ref()
                    }
                })
                .and_then(|s| s.median(|m| (measure.value)(m, hz)))
        };
        for measure in MEASURES {
            for sluice in sluices {
                let Some(ours) = get(sluice, measure) else {
                    continue;
                };
                let fmt = |v: Option<f64>| v.map_or("—".to_owned(), measure.format);
                let ratio = |peer| get(peer, measure).map(|p| ours / p);
                let ratio_cell =
                    |peer| ratio(peer).map_or("—".to_owned(), |r| format!("{r:.2}x"));
                let mut bars = Vec::new();
                let mut met = Vec::new();
                for &(peer, bar, higher) in measure.bars {
                    let (sign, pass) = match ratio(peer) {
                        Some(r) if higher => ("≥", Some(r >= bar)),
                        Some(r) => ("≤", Some(r <= bar)),
                        None => (if higher { "≥" } else { "≤" }, None),
                    };
                    bars.push(format!("{sign} {bar}x {peer}"));
                    met.push(match pass {
                        Some(true) => "yes",
                        Some(false) => "**no**",
                        None => "—",
                    });
                }
                let name = if sluice == Client::Sluice {
                    measure.name.to_owned()
                } else {
                    format!("{} ({sluice})", measure.name)
                };
                let _ = writeln!(
                    out,
                    "| {codec} | {name} | {} | {} | {} | {} | {} | {} | {} |",
                    (measure.format)(ours),
                    fmt(get(Client::Librdkafka, measure)),
                    fmt(get(Client::Rskafka, measure)),
                    ratio_cell(Client::Librdkafka),
                    ratio_cell(Client::Rskafka),
                    bars.join(", "),
                    met.join(", "),
                );
            }
        }
    }
}

fn memory_table(out: &mut String, args: &Args, memory: &[MemoryRow]) {
    let bound = (args.prefetch_mib << 20) as f64;
    let limit = bound + 64.0 * MIB;
    let data = args.memory_messages as f64 * args.memory_size as f64;
    let _ = writeln!(
        out,
        "\n### Memory: {} records × {} B ({:.2} GB) read back with a {} MiB prefetch bound \
         (reading starts after {} ms, so the prefetch fills first)\n",
        args.memory_messages,
        args.memory_size,
        data / 1e9,
        args.prefetch_mib,
        args.start_delay_ms
    );
    let _ = writeln!(
        out,
        "| consumer | consume msg/s | consume MB/s | prefetch buffer peak MiB | client peak RSS MiB | \
         bar: < bound + 64 MiB = {:.0} MiB | met |",
        limit / MIB
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---|");
    for row in memory {
        match &row.consume {
            Ok(m) => {
                let rss = m.report.peak_rss_kib as f64 * 1024.0;
                let peak = m
                    .report
                    .buffer_peak_bytes
                    .map_or("n/a".to_owned(), |b| format!("{:.1}", b as f64 / MIB));
                let note = if row.client == Client::Librdkafka {
                    " (reference: `queued.max.messages.kbytes` = bound)"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "| {}{note} | {} | {:.0} | {peak} | {:.0} | {:.0} < {:.0} | {} |",
                    row.client,
                    millions(m.rate()),
                    m.mb_per_s(),
                    m.rss_mib(),
                    m.rss_mib(),
                    limit / MIB,
                    if rss < limit { "yes" } else { "**no**" },
                );
            }
            Err(e) => {
                let _ = writeln!(out, "| {} | failed: {e} | | | | | |", row.client);
            }
        }
    }
    let p = &row_produce(memory);
    if let Some(p) = p {
        let _ = writeln!(
            out,
            "\n(Loaded by sluice's producer at {} msg/s, {:.0} MB/s.)",
            millions(p.rate()),
            p.mb_per_s()
        );
    }
}

fn row_produce(memory: &[MemoryRow]) -> Option<Measured> {
    memory.first().map(|r| r.produce.clone())
}
