//! The `range` assignor: each topic's partitions cut into contiguous ranges, one per member
//! subscribed to it.
//!
//! Per topic, the members subscribed to it are put in Java's `MemberInfo` order (static members
//! first by `group.instance.id`, then the others by member id) and the partitions in numeric
//! order; with `n` partitions and `m` members each gets `n / m` and the first `n % m` one more.
//! Topics are independent, so members subscribed to the same topics with the same partition
//! counts get the same partition numbers of each (co-partitioning, what joins rely on), and the
//! first members get the extras of every topic.
//!
//! This is Java's `RangeAssignor` when no rack information is used. Java's rack-aware pass
//! (KIP-881) needs the racks of every partition's replicas, which [`super::Assignor::assign`]
//! is not given; without it Java also takes the path implemented here.

use std::collections::BTreeMap;

use super::{
    empty_assignment, member_order, unique_members, Assignor, RebalanceProtocol, Subscription,
    TopicPartitions,
};

/// Java's and librdkafka's `range` assignor (eager).
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
    }

    fn rebalance_protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Eager
    }

    fn assign(
        &self,
        partitions: &BTreeMap<String, i32>,
        members: &[Subscription],
    ) -> BTreeMap<String, TopicPartitions> {
        let members = unique_members(members);
        let mut assignment = empty_assignment(&members);
        for (topic, &count) in partitions {
            if count <= 0 {
                continue;
            }
            let mut consumers: Vec<&Subscription> = members
                .iter()
                .copied()
                .filter(|m| m.topics.iter().any(|t| t == topic))
                .collect();
            if consumers.is_empty() {
                continue;
            }
            consumers.sort_by(|a, b| member_order(a, b));
            let m = i32::try_from(consumers.len()).unwrap_or(i32::MAX);
            let (per_member, mut extra) = (count / m, count % m);
            let mut next = 0;
            for member in consumers {
                let len = per_member + i32::from(extra > 0);
                extra -= 1;
                if len == 0 {
                    break;
                }
                if let Some(owned) = assignment.get_mut(&member.member_id) {
                    owned.insert(topic.clone(), (next..next + len).collect());
                }
                next += len;
            }
        }
        assignment
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::assignor::test_util::{counts, member, static_member, tp};

    #[test]
    fn javadoc_example_two_members_two_topics() {
        // RangeAssignor's javadoc: C0 gets [t0p0, t0p1, t1p0, t1p1], C1 [t0p2, t1p2].
        let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
        let result = RangeAssignor.assign(&counts(&[("t0", 3), ("t1", 3)]), &members);
        assert_eq!(result["C0"], tp(&[("t0", &[0, 1]), ("t1", &[0, 1])]));
        assert_eq!(result["C1"], tp(&[("t0", &[2]), ("t1", &[2])]));
    }

    #[test]
    fn more_members_than_partitions() {
        let members = [
            member("c", &["t"]),
            member("a", &["t"]),
            member("b", &["t"]),
        ];
        let result = RangeAssignor.assign(&counts(&[("t", 2)]), &members);
        assert_eq!(result["a"], tp(&[("t", &[0])]));
        assert_eq!(result["b"], tp(&[("t", &[1])]));
        assert_eq!(result["c"], TopicPartitions::new());
    }

    #[test]
    fn uneven_subscriptions() {
        // Java's RangeAssignorTest.testTwoConsumersOneTopicOnePartition-style shapes: each topic
        // is split among its own subscribers only.
        let members = [
            member("c1", &["t1"]),
            member("c2", &["t1", "t2"]),
            member("c3", &["t2"]),
        ];
        let result = RangeAssignor.assign(&counts(&[("t1", 3), ("t2", 5)]), &members);
        assert_eq!(result["c1"], tp(&[("t1", &[0, 1])]));
        assert_eq!(result["c2"], tp(&[("t1", &[2]), ("t2", &[0, 1, 2])]));
        assert_eq!(result["c3"], tp(&[("t2", &[3, 4])]));
    }

    #[test]
    fn java_test_multiple_consumers_mixed_topics() {
        // RangeAssignorTest.testMultipleConsumersMixedTopics.
        let members = [
            member("consumer1", &["topic1"]),
            member("consumer2", &["topic1", "topic2"]),
            member("consumer3", &["topic1"]),
        ];
        let result = RangeAssignor.assign(&counts(&[("topic1", 3), ("topic2", 2)]), &members);
        assert_eq!(result["consumer1"], tp(&[("topic1", &[0])]));
        assert_eq!(
            result["consumer2"],
            tp(&[("topic1", &[1]), ("topic2", &[0, 1])])
        );
        assert_eq!(result["consumer3"], tp(&[("topic1", &[2])]));
    }

    #[test]
    fn java_test_static_member_assignment_persistent() {
        // RangeAssignorTest.testStaticMemberRangeAssignmentPersistent: topics of 5 and 4
        // partitions, three static members and a dynamic one, which is then replaced.
        let both = ["topic1", "topic2"];
        let partitions = counts(&[("topic1", 5), ("topic2", 4)]);
        let mut members = vec![
            static_member("consumer1", "instance1", &both),
            static_member("consumer2", "instance2", &both),
            static_member("consumer3", "instance3", &both),
            member("consumer4", &both),
        ];
        let result = RangeAssignor.assign(&partitions, &members);
        assert_eq!(
            result["consumer1"],
            tp(&[("topic1", &[0, 1]), ("topic2", &[0])])
        );
        assert_eq!(
            result["consumer2"],
            tp(&[("topic1", &[2]), ("topic2", &[1])])
        );
        assert_eq!(
            result["consumer3"],
            tp(&[("topic1", &[3]), ("topic2", &[2])])
        );
        assert_eq!(
            result["consumer4"],
            tp(&[("topic1", &[4]), ("topic2", &[3])])
        );
        members[3] = member("consumer5", &both);
        let again = RangeAssignor.assign(&partitions, &members);
        assert_eq!(again["consumer5"], result["consumer4"]);
        for id in ["consumer1", "consumer2", "consumer3"] {
            assert_eq!(again[id], result[id]);
        }
    }

    #[test]
    fn unknown_topics_and_empty_topics_are_skipped() {
        let members = [member("a", &["t", "missing", "empty"])];
        let result = RangeAssignor.assign(&counts(&[("t", 2), ("empty", 0)]), &members);
        assert_eq!(result["a"], tp(&[("t", &[0, 1])]));
    }

    #[test]
    fn static_members_are_ordered_by_instance_id() {
        // The javadoc's rolling bounce: new member ids C3 (was C0, instance I0) and C2 (was C1,
        // instance I1) keep their ranges because the instance ids order them.
        let members = [
            static_member("C3", "I0", &["t0", "t1"]),
            static_member("C2", "I1", &["t0", "t1"]),
        ];
        let result = RangeAssignor.assign(&counts(&[("t0", 3), ("t1", 3)]), &members);
        assert_eq!(result["C3"], tp(&[("t0", &[0, 1]), ("t1", &[0, 1])]));
        assert_eq!(result["C2"], tp(&[("t0", &[2]), ("t1", &[2])]));
    }

    #[test]
    fn static_members_come_before_dynamic_ones() {
        // Java's MemberInfo.compareTo: a member with an instance id sorts first.
        let members = [member("a", &["t"]), static_member("z", "instance", &["t"])];
        let result = RangeAssignor.assign(&counts(&[("t", 3)]), &members);
        assert_eq!(result["z"], tp(&[("t", &[0, 1])]));
        assert_eq!(result["a"], tp(&[("t", &[2])]));
    }

    #[test]
    fn member_ids_compare_as_java_strings() {
        // U+1F600 sorts after U+FF5E in UTF-8 byte order but before it in UTF-16 (a surrogate
        // pair, 0xD83D 0xDE00), which is Java's order.
        let members = [member("\u{1F600}", &["t"]), member("\u{FF5E}", &["t"])];
        let result = RangeAssignor.assign(&counts(&[("t", 3)]), &members);
        assert_eq!(result["\u{1F600}"], tp(&[("t", &[0, 1])]));
        assert_eq!(result["\u{FF5E}"], tp(&[("t", &[2])]));
    }

    #[test]
    fn duplicate_members_and_topics_do_not_double_count() {
        let members = [
            member("a", &["t", "t"]),
            member("b", &["t"]),
            member("a", &["t"]),
        ];
        let result = RangeAssignor.assign(&counts(&[("t", 4)]), &members);
        assert_eq!(result.len(), 2);
        assert_eq!(result["a"], tp(&[("t", &[0, 1])]));
        assert_eq!(result["b"], tp(&[("t", &[2, 3])]));
    }
}
