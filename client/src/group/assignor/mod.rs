//! Partition assignors: how a group leader spreads partitions over members.
//!
//! A member's subscription and its assignment travel inside JoinGroup and SyncGroup as the
//! bytes of the "consumer" embedded protocol (`ConsumerProtocolSubscription` and
//! `ConsumerProtocolAssignment`), which every Kafka client encodes the same way; the assignor
//! named in JoinGroup's protocol list decides how the leader computes assignments. Names and
//! results match the Java client's `RangeAssignor`, `RoundRobinAssignor` and
//! `CooperativeStickyAssignor` (and librdkafka's `range`, `roundrobin`, `cooperative-sticky`),
//! so a group can mix clients.

use std::collections::BTreeMap;
use std::fmt::Debug;

use bytes::Bytes;

/// How a rebalance hands partitions over (KIP-429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceProtocol {
    /// Every member gives up all its partitions before the assignment (range, round-robin).
    Eager,
    /// Members keep the partitions they keep; only moved partitions are revoked, in a second
    /// rebalance (cooperative-sticky).
    Cooperative,
}

/// Topic -> partitions, ordered, as assignments are written.
pub type TopicPartitions = BTreeMap<String, Vec<i32>>;

/// What one member told the leader in JoinGroup (its decoded subscription).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its `group.instance.id` (static membership, KIP-345).
    pub group_instance_id: Option<String>,
    /// The topics it subscribes to.
    pub topics: Vec<String>,
    /// The partitions it owns now (subscription v1+; what cooperative rebalancing keeps).
    pub owned_partitions: TopicPartitions,
    /// The generation its owned partitions are from (subscription v2+; -1 when unknown).
    pub generation_id: i32,
    /// Its `client.rack` (subscription v3+).
    pub rack_id: Option<String>,
    /// Assignor-specific bytes.
    pub user_data: Option<Bytes>,
}

/// Computes a group's assignment on the leader.
pub trait Assignor: Debug + Send + Sync {
    /// The protocol name in JoinGroup (`range`, `roundrobin`, `cooperative-sticky`).
    fn name(&self) -> &'static str;

    /// Eager or cooperative.
    fn rebalance_protocol(&self) -> RebalanceProtocol;

    /// Assigns the partitions of the subscribed topics (`partitions` gives each topic's
    /// partition count; topics missing from it are skipped) to `members`. Every member appears
    /// in the result, possibly with nothing.
    fn assign(
        &self,
        partitions: &BTreeMap<String, i32>,
        members: &[Subscription],
    ) -> BTreeMap<String, TopicPartitions>;
}
