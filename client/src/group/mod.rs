//! Consumer groups: membership in a group (the classic protocol, or KIP-848's consumer
//! protocol where the coordinator offers it), partition assignors and committed offsets.
//!
//! Scaling out the Kafka way: more processes join one group and the group coordinator (a
//! broker) spreads the partitions of the topics they subscribe to over them. One member, the
//! leader, computes the assignment with an [`assignor::Assignor`] all members support; the
//! assignors are wire-compatible with the Java client's and librdkafka's of the same names, so
//! sluice, Java and librdkafka members can share a group.

pub mod assignor;
mod consumer;
pub(crate) mod coordinator;
mod kip848;
mod membership;
pub(crate) mod offsets;

pub use consumer::{GroupConsumer, GroupEvent, GroupMetadata};
pub use offsets::{CommittedOffset, OffsetToCommit};

/// The assignor a config names.
fn assignor_for(choice: crate::config::Assignor) -> Box<dyn assignor::Assignor> {
    use crate::config::Assignor as Choice;
    match choice {
        Choice::Range => Box::new(assignor::RangeAssignor),
        Choice::RoundRobin => Box::new(assignor::RoundRobinAssignor),
        Choice::CooperativeSticky => Box::new(assignor::CooperativeStickyAssignor),
    }
}
