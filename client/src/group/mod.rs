//! Consumer groups: membership in a group (the classic protocol), partition assignors and
//! committed offsets.
//!
//! Scaling out the Kafka way: more processes join one group and the group coordinator (a
//! broker) spreads the partitions of the topics they subscribe to over them. One member, the
//! leader, computes the assignment with an [`assignor::Assignor`] all members support; the
//! assignors are wire-compatible with the Java client's and librdkafka's of the same names, so
//! sluice, Java and librdkafka members can share a group.

pub mod assignor;
