//! [`ConsumerConfigBuilder`]: consumer defaults, the rules between settings, and the
//! consumer's property names.
//!
//! Like the producer's, the builder remembers which settings were given: Java turns
//! auto-commit off without a `group.id` when it was defaulted, and refuses an explicit
//! `enable.auto.commit=true` there, since there is no group to commit to. Fetch sizes go on
//! the wire as `i32`, so they are bounded by it; a fetch response larger than
//! `receive.message.max.bytes` would always fail the connection, so `fetch.max.bytes` must fit
//! under it (librdkafka checks the same).

use std::time::Duration;

use super::client_builder::{client_setters, ClientConfigBuilder};
use super::consumer::{
    Assignor, ConsumerConfig, GroupProtocol, IsolationLevel, OffsetReset, ASSIGNORS,
    GROUP_PROTOCOLS, ISOLATION_LEVELS, OFFSET_RESETS,
};
use super::parse::{self, invalid, GivenNames, MAX_I32_SIZE};
use super::properties::{unknown, Kind, Target};
use crate::Result;

/// Builds a [`ConsumerConfig`]. Setters never fail; [`build`](Self::build) checks everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfigBuilder {
    pub(super) client: ClientConfigBuilder,
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
    pub(super) enable_auto_commit: Option<bool>,
    pub(super) auto_commit_interval: Duration,
    pub(super) session_timeout: Duration,
    pub(super) heartbeat_interval: Duration,
    pub(super) max_poll_interval: Duration,
    pub(super) rebalance_timeout: Option<Duration>,
    pub(super) assignors: Vec<Assignor>,
    pub(super) client_rack: Option<String>,
    pub(super) group_protocol: GroupProtocol,
    pub(super) remote_assignor: Option<String>,
    pub(super) names: GivenNames,
}

impl Default for ConsumerConfigBuilder {
    fn default() -> Self {
        ConsumerConfigBuilder {
            client: ClientConfigBuilder::default(),
            group_id: None,
            group_instance_id: None,
            isolation_level: IsolationLevel::ReadUncommitted,
            auto_offset_reset: OffsetReset::Latest,
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            max_partition_fetch_bytes: 1024 * 1024,
            fetch_max_wait: Duration::from_millis(500),
            max_buffered_bytes: 64 * 1024 * 1024,
            check_crcs: true,
            enable_auto_commit: None,
            auto_commit_interval: Duration::from_secs(5),
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(5 * 60),
            rebalance_timeout: None,
            // Java 3.0+: range first, so a rolling upgrade to cooperative-sticky works.
            assignors: vec![Assignor::Range, Assignor::CooperativeSticky],
            client_rack: None,
            group_protocol: GroupProtocol::Classic,
            remote_assignor: None,
            names: GivenNames::default(),
        }
    }
}

/// Room for a fetch response's headers above `fetch.max.bytes` (librdkafka uses the same).
const FETCH_RESPONSE_OVERHEAD: usize = 512;

impl ConsumerConfigBuilder {
    client_setters!();

    /// Joins the consumer group `id`.
    pub fn group_id(mut self, id: impl Into<String>) -> Self {
        self.group_id = Some(id.into());
        self
    }

    /// Makes the member static under `id` (KIP-345). Needs a group.
    pub fn group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }

    /// Sets the isolation level. Default [`IsolationLevel::ReadUncommitted`].
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation_level = level;
        self
    }

    /// Sets where to start without a committed offset. Default [`OffsetReset::Latest`].
    pub fn auto_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    /// Sets the least data a fetch waits for, in bytes. Default 1.
    pub fn fetch_min_bytes(mut self, bytes: usize) -> Self {
        self.fetch_min_bytes = bytes;
        self
    }

    /// Sets the most data per fetch response, in bytes. Default 50 MiB.
    pub fn fetch_max_bytes(mut self, bytes: usize) -> Self {
        self.fetch_max_bytes = bytes;
        self
    }

    /// Sets the most data per partition and fetch, in bytes. Default 1 MiB.
    pub fn max_partition_fetch_bytes(mut self, bytes: usize) -> Self {
        self.max_partition_fetch_bytes = bytes;
        self
    }

    /// Sets how long the broker may hold a fetch. Default 500 ms.
    pub fn fetch_max_wait(mut self, wait: Duration) -> Self {
        self.fetch_max_wait = wait;
        self
    }

    /// Sets the prefetch bound in bytes. Default 64 MiB.
    pub fn max_buffered_bytes(mut self, bytes: usize) -> Self {
        self.max_buffered_bytes = bytes;
        self
    }

    /// Sets whether batch CRCs are checked. Default true.
    pub fn check_crcs(mut self, check: bool) -> Self {
        self.check_crcs = check;
        self
    }

    /// Asks for auto-commit on or off. Left alone it is on when there is a group; asked for
    /// without a group it is an error.
    pub fn enable_auto_commit(mut self, enable: bool) -> Self {
        self.enable_auto_commit = Some(enable);
        self
    }

    /// Sets the auto-commit interval. Default 5 s.
    pub fn auto_commit_interval(mut self, interval: Duration) -> Self {
        self.auto_commit_interval = interval;
        self
    }

    /// Sets the session timeout. Default 45 s.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Sets the heartbeat interval. Default 3 s; must be below the session timeout.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Sets the most time between reads. Default 5 min.
    pub fn max_poll_interval(mut self, interval: Duration) -> Self {
        self.max_poll_interval = interval;
        self
    }

    /// Sets the rebalance timeout. Default `max_poll_interval`, as in Java. No property sets
    /// it, since Java has none.
    pub fn rebalance_timeout(mut self, timeout: Duration) -> Self {
        self.rebalance_timeout = Some(timeout);
        self
    }

    /// Sets the assignors, preferred first. Default range, then cooperative-sticky.
    pub fn assignors(mut self, assignors: impl IntoIterator<Item = Assignor>) -> Self {
        self.assignors = assignors.into_iter().collect();
        self
    }

    /// Sets the consumer's rack.
    pub fn client_rack(mut self, rack: impl Into<String>) -> Self {
        self.client_rack = Some(rack.into());
        self
    }

    /// Sets the group protocol. Default [`GroupProtocol::Classic`].
    pub fn group_protocol(mut self, protocol: GroupProtocol) -> Self {
        self.group_protocol = protocol;
        self
    }

    /// Asks a KIP-848 coordinator for this server-side assignor (`uniform`, `range`).
    pub fn remote_assignor(mut self, assignor: impl Into<String>) -> Self {
        self.remote_assignor = Some(assignor.into());
        self
    }

    /// Applies Java/librdkafka properties on top of what is set; see the
    /// [module docs](super). Shared client properties are accepted too.
    pub fn properties<K, V>(mut self, properties: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        super::properties::apply(&mut self, properties)?;
        Ok(self)
    }

    /// Checks the settings, each alone and against each other, and builds the config.
    pub fn build(self) -> Result<ConsumerConfig> {
        let response_size_name = self
            .client
            .names
            .name("receive.message.max.bytes")
            .to_owned();
        let client = self.client.build()?;
        let names = &self.names;
        let name = |canonical: &'static str| names.name(canonical);
        let (zero, one_ms) = (Duration::ZERO, Duration::from_millis(1));

        for (canonical, id) in [
            ("group.id", &self.group_id),
            ("group.instance.id", &self.group_instance_id),
        ] {
            if id.as_deref() == Some("") {
                return Err(parse::error(name(canonical), "must not be empty"));
            }
        }
        if let Some(instance) = &self.group_instance_id {
            let n = name("group.instance.id");
            if self.group_id.is_none() {
                return Err(parse::error(n, format!("{n} needs {}", name("group.id"))));
            }
            check_instance_id(n, instance)?;
        }
        let auto_commit = match (self.enable_auto_commit, &self.group_id) {
            (Some(true), None) => {
                let n = name("enable.auto.commit");
                return Err(parse::error(
                    n,
                    format!("{n}=true needs {}", name("group.id")),
                ));
            }
            (explicit, group) => explicit.unwrap_or(true) && group.is_some(),
        };

        for (canonical, bytes) in [
            ("fetch.min.bytes", self.fetch_min_bytes),
            ("fetch.max.bytes", self.fetch_max_bytes),
            ("max.partition.fetch.bytes", self.max_partition_fetch_bytes),
        ] {
            parse::check_size(name(canonical), bytes, 0, MAX_I32_SIZE)?;
        }
        if self.fetch_max_bytes + FETCH_RESPONSE_OVERHEAD > client.max_response_size() {
            let n = name("fetch.max.bytes");
            return Err(parse::error(
                n,
                format!(
                    "{n} ({}) must be at least {FETCH_RESPONSE_OVERHEAD} below \
                     {response_size_name} ({})",
                    self.fetch_max_bytes,
                    client.max_response_size()
                ),
            ));
        }
        if self.max_buffered_bytes == 0 {
            return Err(parse::error(
                name("queued.max.messages.kbytes"),
                "the prefetch bound must be above 0",
            ));
        }
        if self.assignors.is_empty() {
            return Err(parse::error(
                name("partition.assignment.strategy"),
                "needs at least one assignor",
            ));
        }
        if let Some((i, a)) = self
            .assignors
            .iter()
            .enumerate()
            .find(|(i, a)| self.assignors[..*i].contains(a))
        {
            let n = name("partition.assignment.strategy");
            return Err(parse::error(
                n,
                format!("{} is listed twice (item {})", a.name(), i + 1),
            ));
        }

        parse::check_duration(name("fetch.max.wait.ms"), self.fetch_max_wait, zero)?;
        parse::check_duration(
            name("auto.commit.interval.ms"),
            self.auto_commit_interval,
            zero,
        )?;
        parse::check_duration(name("session.timeout.ms"), self.session_timeout, one_ms)?;
        parse::check_duration(
            name("heartbeat.interval.ms"),
            self.heartbeat_interval,
            one_ms,
        )?;
        parse::check_duration(name("max.poll.interval.ms"), self.max_poll_interval, one_ms)?;
        if self.heartbeat_interval >= self.session_timeout {
            let (hb, st) = (name("heartbeat.interval.ms"), name("session.timeout.ms"));
            return Err(parse::error(
                hb,
                format!(
                    "{hb} ({:?}) must be below {st} ({:?}), or the member is evicted between \
                     heartbeats",
                    self.heartbeat_interval, self.session_timeout
                ),
            ));
        }
        let rebalance_timeout = self.rebalance_timeout.unwrap_or(self.max_poll_interval);
        parse::check_duration("rebalance_timeout", rebalance_timeout, one_ms)?;

        Ok(ConsumerConfig {
            client,
            group_id: self.group_id,
            group_instance_id: self.group_instance_id,
            isolation_level: self.isolation_level,
            auto_offset_reset: self.auto_offset_reset,
            fetch_min_bytes: self.fetch_min_bytes,
            fetch_max_bytes: self.fetch_max_bytes,
            max_partition_fetch_bytes: self.max_partition_fetch_bytes,
            fetch_max_wait: self.fetch_max_wait,
            max_buffered_bytes: self.max_buffered_bytes,
            check_crcs: self.check_crcs,
            auto_commit,
            auto_commit_interval: self.auto_commit_interval,
            session_timeout: self.session_timeout,
            heartbeat_interval: self.heartbeat_interval,
            max_poll_interval: self.max_poll_interval,
            rebalance_timeout,
            assignors: self.assignors,
            client_rack: self.client_rack.filter(|rack| !rack.is_empty()),
            group_protocol: self.group_protocol,
            remote_assignor: self.remote_assignor.filter(|a| !a.is_empty()),
        })
    }
}

/// Java's `JoinGroupRequest.validateGroupInstanceId`: at most 249 of `[a-zA-Z0-9._-]`, since
/// brokers use the id in names.
fn check_instance_id(property: &str, id: &str) -> Result<()> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.len() > 249 || !id.chars().all(legal) {
        return Err(parse::invalid(
            property,
            id,
            "at most 249 characters of a-z, A-Z, 0-9, '.', '_' and '-'",
        ));
    }
    Ok(())
}

/// The property names this kind takes besides the shared client ones (aliases are in
/// `properties.rs`).
pub(super) const PROPERTIES: &[&str] = &[
    "group.id",
    "group.instance.id",
    "isolation.level",
    "auto.offset.reset",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.max.wait.ms",
    "queued.max.messages.kbytes",
    "check.crcs",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "client.rack",
    "group.protocol",
    "group.remote.assignor",
];

impl Target for ConsumerConfigBuilder {
    const KIND: Kind = Kind::Consumer;

    fn client(&mut self) -> &mut ClientConfigBuilder {
        &mut self.client
    }

    fn apply_own(&mut self, canonical: &'static str, name: &str, value: &str) -> Result<()> {
        self.names.record(canonical, name)?;
        let ms = || parse::millis(name, value);
        let bytes = || parse::size(name, value, 0, MAX_I32_SIZE);
        match canonical {
            "group.id" => self.group_id = Some(parse::non_empty(name, value)?),
            "group.instance.id" => self.group_instance_id = Some(parse::non_empty(name, value)?),
            "isolation.level" => {
                let expected = "read_uncommitted or read_committed";
                self.isolation_level = parse::one_of(name, value, ISOLATION_LEVELS, expected)?;
            }
            "auto.offset.reset" => {
                let expected = "earliest, latest or none (librdkafka: smallest, largest, error)";
                self.auto_offset_reset = parse::one_of(name, value, OFFSET_RESETS, expected)?;
            }
            "fetch.min.bytes" => self.fetch_min_bytes = bytes()?,
            "fetch.max.bytes" => self.fetch_max_bytes = bytes()?,
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = bytes()?,
            "fetch.max.wait.ms" => self.fetch_max_wait = ms()?,
            "queued.max.messages.kbytes" => {
                // librdkafka's range for the same setting.
                self.max_buffered_bytes = parse::size(name, value, 1, 2_097_151)? * 1024;
            }
            "check.crcs" => self.check_crcs = parse::boolean(name, value)?,
            "enable.auto.commit" => self.enable_auto_commit = Some(parse::boolean(name, value)?),
            "auto.commit.interval.ms" => self.auto_commit_interval = ms()?,
            "session.timeout.ms" => self.session_timeout = ms()?,
            "heartbeat.interval.ms" => self.heartbeat_interval = ms()?,
            "max.poll.interval.ms" => self.max_poll_interval = ms()?,
            "partition.assignment.strategy" => {
                let expected =
                    "a comma-separated list of range, roundrobin and cooperative-sticky \
                    (or their Java class names)";
                let assignors = parse::list(value)
                    .map(|item| parse::one_of(name, item, ASSIGNORS, expected))
                    .collect::<Result<Vec<_>>>()?;
                if assignors.is_empty() {
                    return Err(invalid(name, value, expected));
                }
                self.assignors = assignors;
            }
            "client.rack" => self.client_rack = Some(value.to_owned()).filter(|r| !r.is_empty()),
            "group.protocol" => {
                self.group_protocol =
                    parse::one_of(name, value, GROUP_PROTOCOLS, "classic or consumer")?;
            }
            "group.remote.assignor" => {
                self.remote_assignor = Some(value.to_owned()).filter(|a| !a.is_empty());
            }
            _ => return Err(unknown(Self::KIND, name, canonical)),
        }
        Ok(())
    }
}
