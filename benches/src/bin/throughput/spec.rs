//! What a child process is asked to do ([`ChildSpec`]), what it reports back ([`ChildReport`]),
//! and the records every client sends ([`payloads`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A client under test, with the configuration it is benchmarked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Client {
    /// sluice, defaults except `batch.size` 1,000,000 (librdkafka's default and what the peers
    /// get); the consumer with its defaults, reading whole batches (`poll_batch`).
    Sluice,
    /// sluice's consumer handing out one owned record at a time (`recv`). Consume only.
    SluiceRecv,
    /// sluice's producer with every default (16 KiB batches, linger 5 ms). Produce only.
    SluiceDefaults,
    /// librdkafka through the `rdkafka` crate: BaseProducer with `linger.ms=5`,
    /// `batch.size=1000000`, `batch.num.messages=1000000`; BaseConsumer with
    /// `queued.min.messages=1000000`.
    Librdkafka,
    /// rskafka 0.6: one PartitionClient per partition, ~1 MB `produce` batches, two in
    /// flight per partition; one StreamConsumer per partition (its defaults).
    Rskafka,
}

impl Client {
    pub(crate) fn produces(self) -> bool {
        self != Client::SluiceRecv
    }

    pub(crate) fn consumes(self) -> bool {
        self != Client::SluiceDefaults
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Client::Sluice => "sluice",
            Client::SluiceRecv => "sluice-recv",
            Client::SluiceDefaults => "sluice-defaults",
            Client::Librdkafka => "librdkafka",
            Client::Rskafka => "rskafka",
        }
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The batch codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Codec {
    None,
    Lz4,
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::None => "none",
            Codec::Lz4 => "lz4",
        })
    }
}

/// Which half of the round trip a child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Role {
    Produce,
    Consume,
}

/// One child process's job, passed as JSON after `--child`, so that a single phase can be
/// re-run by hand (under `perf record`, say) against a broker started with
/// `scripts/broker.sh start`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChildSpec {
    pub(crate) role: Role,
    pub(crate) client: Client,
    pub(crate) codec: Codec,
    pub(crate) bootstrap: String,
    pub(crate) topic: String,
    pub(crate) partitions: i32,
    pub(crate) messages: u64,
    pub(crate) size: usize,
    /// sluice consumer only: `max_buffered_bytes` (default: the consumer's default).
    pub(crate) prefetch_bytes: Option<usize>,
    /// Consumers: wait this long after assigning before reading, so the prefetch fills up.
    pub(crate) start_delay_ms: u64,
}

/// What a child measured, printed as one JSON line after [`REPORT_PREFIX`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ChildReport {
    pub(crate) records: u64,
    /// Value bytes produced or consumed (keys are null).
    pub(crate) bytes: u64,
    /// Records sent or read within `elapsed_s`: all but the warm-up record (producers that
    /// have one) or the first record (consumers).
    pub(crate) timed_records: u64,
    /// Steady state: producers from after the warm-up record's acknowledgement (which waits
    /// for connections, metadata and the producer id) to the last acknowledgement; consumers
    /// from the first record to the last.
    pub(crate) elapsed_s: f64,
    /// Producers: from creating the client to the warm-up record's acknowledgement.
    /// Consumers: from assigning partitions to the first record.
    pub(crate) startup_s: f64,
    /// utime + stime of the whole child process, from `/proc/self/stat`, in clock ticks.
    pub(crate) cpu_ticks: u64,
    /// `VmHWM` from `/proc/self/status`, in KiB.
    pub(crate) peak_rss_kib: u64,
    /// Record batches seen (sluice consumers only).
    pub(crate) batches: Option<u64>,
    /// sluice consumer only: the most bytes its prefetch buffer held at once.
    pub(crate) buffer_peak_bytes: Option<usize>,
    /// sluice consumer only: the prefetch bound.
    pub(crate) buffer_max_bytes: Option<usize>,
}

pub(crate) const REPORT_PREFIX: &str = "THROUGHPUT-REPORT ";

/// How many distinct values the clients cycle through. At 100 B that is 400 KiB, far more
/// than lz4's 64 KiB window, so compression sees no repeats that real data would not have.
const DISTINCT_VALUES: usize = 4096;

/// `DISTINCT_VALUES` values of `size` bytes: JSON click events (as in the codec bench), so lz4
/// compresses them about as well as real event streams (~3-4x).
pub(crate) fn payloads(size: usize) -> Vec<Vec<u8>> {
    (0..DISTINCT_VALUES)
        .map(|i| {
            let mut value = Vec::with_capacity(size + 128);
            let mut n = i * 64;
            while value.len() < size {
                value.extend_from_slice(&event(n));
                n += 1;
            }
            value.truncate(size);
            value
        })
        .collect()
}

/// A ~95-byte JSON event whose ids and timestamps vary with `i`, padded to 100 bytes.
fn event(i: usize) -> Vec<u8> {
    const PAGES: [&str; 6] = ["home", "item", "search", "cart", "checkout", "account"];
    let h = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut v = format!(
        "{{\"user\":{},\"session\":\"{:08x}\",\"page\":\"/{}/{}\",\"ts\":{},\"dwell\":{}}}",
        h % 100_000,
        h >> 32,
        PAGES[(h >> 8) as usize % PAGES.len()],
        (h >> 16) % 5000,
        1_700_000_000_000u64 + (i as u64) * 37 + (h % 29),
        (h >> 40) % 60_000,
    )
    .into_bytes();
    v.resize(100, b' ');
    v
}

/// Bytes per producer batch for every client: librdkafka's default `batch.size`.
pub(crate) const BATCH_BYTES: usize = 1_000_000;
