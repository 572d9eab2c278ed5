//! How a mock cluster is set up.

use std::time::Duration;

/// Settings of a [`crate::MockCluster`]. The defaults are Apache Kafka's, except where a test
/// cluster wants to be quicker (the initial rebalance delay).
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// How many brokers (ids 1..=N).
    pub brokers: usize,
    /// The port of the first broker; the others take the next ones. `None` picks free ports.
    pub base_port: Option<u16>,
    /// The id the cluster reports in Metadata and DescribeCluster.
    pub cluster_id: String,
    /// Create a topic when Metadata or Produce names one that does not exist
    /// (`auto.create.topics.enable`, true in Kafka).
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic, or of CreateTopics asking for -1 (`num.partitions`).
    pub default_partitions: i32,
    /// The largest record batch a partition accepts (`message.max.bytes`).
    pub max_message_bytes: usize,
    /// The largest request frame (`socket.request.max.bytes`); a larger one closes the
    /// connection, as Kafka does.
    pub max_request_bytes: usize,
    /// How long the first JoinGroup of an empty group waits for more members
    /// (`group.initial.rebalance.delay.ms`, 3 s in Kafka; short here so tests stay quick).
    pub group_initial_rebalance_delay: Duration,
    /// Bounds on a member's session timeout (`group.min/max.session.timeout.ms`).
    pub group_min_session_timeout: Duration,
    pub group_max_session_timeout: Duration,
    /// How long a KIP-848 member may go without a heartbeat before it is removed
    /// (`group.consumer.session.timeout.ms`, 45 s in Kafka).
    pub consumer_group_session_timeout: Duration,
    /// The heartbeat interval KIP-848 members are told to keep
    /// (`group.consumer.heartbeat.interval.ms`, 5 s in Kafka).
    pub consumer_group_heartbeat_interval: Duration,
    /// The longest transaction timeout a producer may ask for (`transaction.max.timeout.ms`).
    pub transaction_max_timeout: Duration,
    /// The finalized `transaction.version` feature ApiVersions reports. At 2 (a new Kafka 4
    /// cluster's level) the brokers serve transactions v2 (KIP-890 part 2: Produce v12 and
    /// TxnOffsetCommit v5 add to the transaction implicitly, EndTxn v5 bumps the epoch); below
    /// 2 they serve those APIs only up to the versions before it, as an older cluster does.
    pub transaction_version: i16,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            brokers: 3,
            base_port: None,
            cluster_id: "sluice-mock-cluster".to_owned(),
            auto_create_topics: true,
            default_partitions: 1,
            max_message_bytes: 1_048_588,
            max_request_bytes: 104_857_600,
            group_initial_rebalance_delay: Duration::from_millis(100),
            group_min_session_timeout: Duration::from_millis(100),
            group_max_session_timeout: Duration::from_secs(30 * 60),
            consumer_group_session_timeout: Duration::from_secs(45),
            consumer_group_heartbeat_interval: Duration::from_secs(5),
            transaction_max_timeout: Duration::from_secs(15 * 60),
            transaction_version: 2,
        }
    }
}

impl MockConfig {
    /// A cluster of `brokers` brokers, the rest default.
    pub fn with_brokers(brokers: usize) -> Self {
        MockConfig {
            brokers,
            ..MockConfig::default()
        }
    }
}
