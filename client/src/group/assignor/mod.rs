//! Partition assignors: how a group leader spreads partitions over members.
//!
//! A member's subscription and its assignment travel inside JoinGroup and SyncGroup as the
//! bytes of the "consumer" embedded protocol (`ConsumerProtocolSubscription` and
//! `ConsumerProtocolAssignment`), which every Kafka client encodes the same way; the assignor
//! named in JoinGroup's protocol list decides how the leader computes assignments. Names and
//! results match the Java client's `RangeAssignor`, `RoundRobinAssignor` and
//! `CooperativeStickyAssignor` (and librdkafka's `range`, `roundrobin`, `cooperative-sticky`),
//! so a group can mix clients.
//!
//! Only the leader runs an assignor, so two clients need not compute the same assignment for the
//! same input; what must agree is the wire format ([`wire`]), the protocol names, the rebalance
//! protocol, and for cooperative-sticky the rule that a partition moving between members is
//! revoked before it is handed out. Range and round-robin do reproduce Java's results exactly
//! (without rack information, see [`range`]).
//!
//! References: KIP-62 (the consumer embedded protocol), KIP-54 (sticky), KIP-345 (static
//! membership and member ordering), KIP-429 (incremental cooperative rebalancing), KIP-792
//! (generation in the subscription), KIP-881 (rack-aware assignment).

pub mod cooperative_sticky;
pub mod range;
pub mod round_robin;
pub mod wire;

#[cfg(test)]
mod test_util;

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;

use bytes::Bytes;

pub use cooperative_sticky::CooperativeStickyAssignor;
pub use range::RangeAssignor;
pub use round_robin::RoundRobinAssignor;

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
    ///
    /// Member ids are unique in a JoinGroup response; should one repeat, its first subscription
    /// counts and the others are ignored.
    fn assign(
        &self,
        partitions: &BTreeMap<String, i32>,
        members: &[Subscription],
    ) -> BTreeMap<String, TopicPartitions>;

    /// The assignor-specific `user_data` a member puts in its subscription, given the
    /// partitions it owns and the generation they were assigned in (-1 before its first
    /// assignment). `None` (the default) writes null user data, as Java's range and round-robin
    /// do. Only cooperative-sticky writes something: the generation, as Java's
    /// `CooperativeStickyAssignor` does for leaders that read subscriptions older than v2.
    fn subscription_user_data(&self, owned: &TopicPartitions, generation: i32) -> Option<Bytes> {
        let _ = (owned, generation);
        None
    }
}

/// Java's `String.compareTo`: lexicographic over UTF-16 code units. It differs from Rust's
/// byte order only where a character above U+FFFF is compared with one in U+E000..=U+FFFF,
/// but member ids embed the user's `client.id`, so results match Java's only in Java's order.
pub(crate) fn java_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// The order Java's range and round-robin assignors put members in (`MemberInfo.compareTo`):
/// static members first, by `group.instance.id`, then dynamic ones by member id. Keying on
/// the instance id keeps the assignment stable across restarts, which give a static member a
/// new member id (KIP-345). The member id breaks ties that Java leaves to its sort's stability
/// (two members with one instance id, which the coordinator does not allow).
pub(crate) fn member_order(a: &Subscription, b: &Subscription) -> Ordering {
    match (&a.group_instance_id, &b.group_instance_id) {
        (Some(x), Some(y)) => java_cmp(x, y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
    .then_with(|| java_cmp(&a.member_id, &b.member_id))
}

/// The members with their first subscription only, should a member id repeat.
pub(crate) fn unique_members(members: &[Subscription]) -> Vec<&Subscription> {
    let mut seen = HashSet::with_capacity(members.len());
    members
        .iter()
        .filter(|m| seen.insert(m.member_id.as_str()))
        .collect()
}

/// An assignment giving every member nothing yet.
pub(crate) fn empty_assignment(members: &[&Subscription]) -> BTreeMap<String, TopicPartitions> {
    members
        .iter()
        .map(|m| (m.member_id.clone(), TopicPartitions::new()))
        .collect()
}
