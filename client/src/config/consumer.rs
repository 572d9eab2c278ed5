//! [`ConsumerConfig`]: fetching, offsets and consumer-group membership.
//!
//! The settings and their enums; defaults and the rules between settings are in
//! [`ConsumerConfigBuilder`].
//!
//! References: KIP-74 (`fetch.max.bytes`), KIP-62 (`max.poll.interval.ms`, rebalance
//! timeout), KIP-98 (`isolation.level`), KIP-345 (static membership), KIP-392 (`client.rack`),
//! KIP-429 (cooperative rebalancing).

use std::time::Duration;

use super::consumer_builder::ConsumerConfigBuilder;
use super::ClientConfig;
use crate::Result;

/// Which records a fetch returns (`isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IsolationLevel {
    /// Everything up to the high watermark, aborted transactions included. Java's default
    /// (librdkafka defaults to `read_committed`).
    #[default]
    ReadUncommitted,
    /// Only committed records, up to the last stable offset.
    ReadCommitted,
}

impl IsolationLevel {
    /// The value sent in FetchRequest.
    pub fn wire(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// Where to start when there is no committed offset, or it is out of range
/// (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OffsetReset {
    /// The log start (`earliest`; librdkafka also `smallest`, `beginning`).
    Earliest,
    /// The log end: only records produced from now on (`latest`, the default).
    #[default]
    Latest,
    /// Fail with an error instead (Java's `none`, librdkafka's `error`).
    Error,
}

/// The consumer group protocol (`group.protocol`).
///
/// The default is `classic`, as in Java up to 3.x and librdkafka 2.x: KIP-848 needs a broker
/// that offers it (Kafka 4.0+), and a group must run one protocol. Auto-detection was not
/// chosen because a group id belongs to one protocol: members that each pick what their
/// broker offers would split a group across protocols during a rolling broker upgrade.
/// With `consumer`, sluice still falls back to `classic` when the coordinator does not offer
/// ConsumerGroupHeartbeat (the classic settings, `session.timeout.ms`,
/// `heartbeat.interval.ms` and `partition.assignment.strategy`, then apply; with KIP-848 the
/// broker sets the timing and `group.remote.assignor` names the server-side assignor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum GroupProtocol {
    /// JoinGroup / SyncGroup / Heartbeat with a client-side assignor.
    #[default]
    Classic,
    /// KIP-848: ConsumerGroupHeartbeat, the coordinator assigns.
    Consumer,
}

/// `group.protocol` values.
pub(super) const GROUP_PROTOCOLS: &[(&str, GroupProtocol)] = &[
    ("classic", GroupProtocol::Classic),
    ("consumer", GroupProtocol::Consumer),
];

/// A partition assignment strategy (`partition.assignment.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Assignor {
    /// Contiguous ranges of each topic's partitions (Java's `RangeAssignor`).
    Range,
    /// All partitions dealt out in turn (`RoundRobinAssignor`).
    RoundRobin,
    /// Sticky and incremental: only moved partitions are revoked (KIP-429,
    /// `CooperativeStickyAssignor`).
    CooperativeSticky,
}

impl Assignor {
    /// The protocol name sent in JoinGroup, the same as Java's.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// Whether it rebalances incrementally (KIP-429).
    pub fn is_cooperative(self) -> bool {
        matches!(self, Assignor::CooperativeSticky)
    }
}

/// Settings of a consumer.
///
/// Built by [`ConsumerConfigBuilder::build`] or [`ConsumerConfig::from_properties`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    pub(super) client: ClientConfig,
    pub(super) group_id: Option<String>,
    pub(super) group_instance_id: Option<String>,
    pub(super) isolation_level: IsolationLevel,
    pub(super) auto_offset_reset: OffsetReset,
    pub(super) fetch_min_bytes: usize,
    pub(super) fetch_max_bytes: usize,
    pub(super) max_partition_fetch_bytes: usize,
    pub(super) fetch_max_wait: Duration,
    pub(super) max_buffered_bytes: usize,
    pub(super) check_crcs: bool,
    pub(super) auto_commit: bool,
    pub(super) auto_commit_interval: Duration,
    pub(super) session_timeout: Duration,
    pub(super) heartbeat_interval: Duration,
    pub(super) max_poll_interval: Duration,
    pub(super) rebalance_timeout: Duration,
    pub(super) assignors: Vec<Assignor>,
    pub(super) client_rack: Option<String>,
    pub(super) group_protocol: GroupProtocol,
    pub(super) remote_assignor: Option<String>,
}

impl ConsumerConfig {
    /// A builder with Java's defaults and no bootstrap servers.
    pub fn builder() -> ConsumerConfigBuilder {
        ConsumerConfigBuilder::default()
    }

    /// A config from Java/librdkafka property names; see the [module docs](super).
    pub fn from_properties<K, V>(properties: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        ConsumerConfig::builder().properties(properties)?.build()
    }

    /// The shared client settings.
    pub fn client(&self) -> &ClientConfig {
        &self.client
    }

    /// The consumer group (`group.id`); `None` for a consumer that only assigns partitions.
    pub fn group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    /// The static member id (`group.instance.id`, KIP-345).
    pub fn group_instance_id(&self) -> Option<&str> {
        self.group_instance_id.as_deref()
    }

    /// Which records fetches return (`isolation.level`).
    pub fn isolation_level(&self) -> IsolationLevel {
        self.isolation_level
    }

    /// Where to start without a valid committed offset (`auto.offset.reset`).
    pub fn auto_offset_reset(&self) -> OffsetReset {
        self.auto_offset_reset
    }

    /// The least data a fetch waits for (`fetch.min.bytes`).
    pub fn fetch_min_bytes(&self) -> usize {
        self.fetch_min_bytes
    }

    /// The most data one fetch response should carry (`fetch.max.bytes`); the broker still
    /// returns a first batch larger than this, so that the consumer makes progress.
    pub fn fetch_max_bytes(&self) -> usize {
        self.fetch_max_bytes
    }

    /// The most data per partition in one fetch (`max.partition.fetch.bytes`).
    pub fn max_partition_fetch_bytes(&self) -> usize {
        self.max_partition_fetch_bytes
    }

    /// How long the broker may hold a fetch waiting for `fetch_min_bytes`
    /// (`fetch.max.wait.ms`).
    pub fn fetch_max_wait(&self) -> Duration {
        self.fetch_max_wait
    }

    /// How many fetched bytes may wait to be consumed before prefetching pauses
    /// (librdkafka's `queued.max.messages.kbytes`, given in KiB there).
    pub fn max_buffered_bytes(&self) -> usize {
        self.max_buffered_bytes
    }

    /// Whether batch CRCs are checked (`check.crcs`).
    pub fn check_crcs(&self) -> bool {
        self.check_crcs
    }

    /// Whether offsets are committed in the background (`enable.auto.commit`); always false
    /// without a group.
    pub fn auto_commit(&self) -> bool {
        self.auto_commit
    }

    /// How often offsets are auto-committed (`auto.commit.interval.ms`).
    pub fn auto_commit_interval(&self) -> Duration {
        self.auto_commit_interval
    }

    /// How long the coordinator waits for a heartbeat before evicting the member
    /// (`session.timeout.ms`).
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// How often heartbeats are sent (`heartbeat.interval.ms`).
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    /// How long the application may go without reading before the member leaves the group
    /// (`max.poll.interval.ms`).
    pub fn max_poll_interval(&self) -> Duration {
        self.max_poll_interval
    }

    /// How long the coordinator waits for members to rejoin during a rebalance; Java uses
    /// `max_poll_interval`, and so does sluice unless told otherwise.
    pub fn rebalance_timeout(&self) -> Duration {
        self.rebalance_timeout
    }

    /// The assignors offered to the group, preferred first (`partition.assignment.strategy`).
    pub fn assignors(&self) -> &[Assignor] {
        &self.assignors
    }

    /// The consumer's rack, for fetching from the closest replica (`client.rack`, KIP-392).
    pub fn client_rack(&self) -> Option<&str> {
        self.client_rack.as_deref()
    }

    /// The group protocol asked for (`group.protocol`); see [`GroupProtocol`].
    pub fn group_protocol(&self) -> GroupProtocol {
        self.group_protocol
    }

    /// The server-side assignor a KIP-848 member asks for (`group.remote.assignor`, e.g.
    /// `uniform` or `range`); `None` lets the coordinator choose.
    pub fn remote_assignor(&self) -> Option<&str> {
        self.remote_assignor.as_deref()
    }
}

/// `isolation.level` values.
pub(super) const ISOLATION_LEVELS: &[(&str, IsolationLevel)] = &[
    ("read_uncommitted", IsolationLevel::ReadUncommitted),
    ("read_committed", IsolationLevel::ReadCommitted),
];

/// `auto.offset.reset` values, Java's and librdkafka's.
pub(super) const OFFSET_RESETS: &[(&str, OffsetReset)] = &[
    ("earliest", OffsetReset::Earliest),
    ("smallest", OffsetReset::Earliest),
    ("beginning", OffsetReset::Earliest),
    ("latest", OffsetReset::Latest),
    ("largest", OffsetReset::Latest),
    ("end", OffsetReset::Latest),
    ("none", OffsetReset::Error),
    ("error", OffsetReset::Error),
];

/// `partition.assignment.strategy` items: short names and Java class names.
pub(super) const ASSIGNORS: &[(&str, Assignor)] = &[
    ("range", Assignor::Range),
    (
        "org.apache.kafka.clients.consumer.RangeAssignor",
        Assignor::Range,
    ),
    ("roundrobin", Assignor::RoundRobin),
    (
        "org.apache.kafka.clients.consumer.RoundRobinAssignor",
        Assignor::RoundRobin,
    ),
    ("cooperative-sticky", Assignor::CooperativeSticky),
    (
        "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
        Assignor::CooperativeSticky,
    ),
];
