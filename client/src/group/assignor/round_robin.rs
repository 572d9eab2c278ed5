//! The `roundrobin` assignor: all subscribed partitions dealt to the members in turn.
//!
//! The partitions of every topic some member subscribes to are laid out sorted by topic, then
//! partition, and dealt one at a time to the members in Java's `MemberInfo` order (static
//! members first by `group.instance.id`, then the others by member id), skipping a member not
//! subscribed to the partition's topic. With identical subscriptions the counts differ by at
//! most one; with different ones the result can be unbalanced, exactly as Java's (see the
//! javadoc example in the tests). This is Java's `RoundRobinAssignor`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::{
    empty_assignment, member_order, unique_members, Assignor, RebalanceProtocol, Subscription,
    TopicPartitions,
};

/// Java's and librdkafka's `roundrobin` assignor (eager).
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn rebalance_protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Eager
    }

    fn assign(
        &self,
        partitions: &BTreeMap<String, i32>,
        members: &[Subscription],
    ) -> BTreeMap<String, TopicPartitions> {
        let mut members = unique_members(members);
        let mut assignment = empty_assignment(&members);
        members.sort_by(|a, b| member_order(a, b));
        let subscribed: Vec<HashSet<&str>> = members
            .iter()
            .map(|m| m.topics.iter().map(String::as_str).collect())
            .collect();
        // Topic names are ASCII (`[a-zA-Z0-9._-]`), so byte order is Java's TreeSet order.
        let topics: BTreeSet<&str> = subscribed.iter().flatten().copied().collect();

        // The dealer's position survives from one topic to the next (Java's CircularIterator).
        let mut next = 0;
        for topic in topics {
            let Some(&count) = partitions.get(topic) else {
                continue;
            };
            for partition in 0..count {
                // Some member subscribes to `topic`, so this finds one within a lap.
                let Some(offset) = (0..members.len())
                    .find(|i| subscribed[(next + i) % members.len()].contains(topic))
                else {
                    break;
                };
                let chosen = (next + offset) % members.len();
                next = (chosen + 1) % members.len();
                if let Some(owned) = assignment.get_mut(&members[chosen].member_id) {
                    owned.entry(topic.to_owned()).or_default().push(partition);
                }
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
    fn javadoc_example_identical_subscriptions() {
        // RoundRobinAssignor's javadoc: C0 [t0p0, t0p2, t1p1], C1 [t0p1, t1p0, t1p2].
        let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
        let result = RoundRobinAssignor.assign(&counts(&[("t0", 3), ("t1", 3)]), &members);
        assert_eq!(result["C0"], tp(&[("t0", &[0, 2]), ("t1", &[1])]));
        assert_eq!(result["C1"], tp(&[("t0", &[1]), ("t1", &[0, 2])]));
    }

    #[test]
    fn javadoc_example_different_subscriptions() {
        // The javadoc's unbalanced case: C0 [t0p0], C1 [t1p0], C2 [t1p1, t2p0, t2p1, t2p2].
        let members = [
            member("C0", &["t0"]),
            member("C1", &["t0", "t1"]),
            member("C2", &["t0", "t1", "t2"]),
        ];
        let result =
            RoundRobinAssignor.assign(&counts(&[("t0", 1), ("t1", 2), ("t2", 3)]), &members);
        assert_eq!(result["C0"], tp(&[("t0", &[0])]));
        assert_eq!(result["C1"], tp(&[("t1", &[0])]));
        assert_eq!(result["C2"], tp(&[("t1", &[1]), ("t2", &[0, 1, 2])]));
    }

    #[test]
    fn javadoc_example_static_members_survive_a_rolling_bounce() {
        // After a bounce the member ids C5 (was C0 = I0), C3 (was C1 = I1), C4 (was C2 = I2)
        // would reshuffle everything; ordering by instance id keeps each member's partitions.
        let members = [
            static_member("C5", "I0", &["t0", "t1"]),
            static_member("C3", "I1", &["t0", "t1"]),
            static_member("C4", "I2", &["t0", "t1"]),
        ];
        let result = RoundRobinAssignor.assign(&counts(&[("t0", 3), ("t1", 3)]), &members);
        assert_eq!(result["C5"], tp(&[("t0", &[0]), ("t1", &[0])]));
        assert_eq!(result["C3"], tp(&[("t0", &[1]), ("t1", &[1])]));
        assert_eq!(result["C4"], tp(&[("t0", &[2]), ("t1", &[2])]));
    }

    #[test]
    fn java_test_multiple_consumers_mixed_topics() {
        // RoundRobinAssignorTest.testMultipleConsumersMixedTopics.
        let members = [
            member("consumer1", &["topic1"]),
            member("consumer2", &["topic1", "topic2"]),
            member("consumer3", &["topic1"]),
        ];
        let result = RoundRobinAssignor.assign(&counts(&[("topic1", 3), ("topic2", 2)]), &members);
        assert_eq!(result["consumer1"], tp(&[("topic1", &[0])]));
        assert_eq!(
            result["consumer2"],
            tp(&[("topic1", &[1]), ("topic2", &[0, 1])])
        );
        assert_eq!(result["consumer3"], tp(&[("topic1", &[2])]));
    }

    #[test]
    fn java_test_static_and_dynamic_members() {
        // testTwoStaticConsumersTwoTopicsSixPartitions: instance ids order, not member ids.
        let both = ["topic1", "topic2"];
        let partitions = counts(&[("topic1", 3), ("topic2", 3)]);
        let members = [
            static_member("consumer-b", "instance1", &both),
            static_member("consumer-a", "instance2", &both),
        ];
        let result = RoundRobinAssignor.assign(&partitions, &members);
        let first = tp(&[("topic1", &[0, 2]), ("topic2", &[1])]);
        let second = tp(&[("topic1", &[1]), ("topic2", &[0, 2])]);
        assert_eq!(result["consumer-b"], first);
        assert_eq!(result["consumer-a"], second);
        // testOneStaticConsumerAndOneDynamicConsumerTwoTopicsSixPartitions: static first.
        let members = [
            static_member("consumer-b", "instance1", &both),
            member("consumer-a", &both),
        ];
        let result = RoundRobinAssignor.assign(&partitions, &members);
        assert_eq!(result["consumer-b"], first);
        assert_eq!(result["consumer-a"], second);
    }

    #[test]
    fn java_test_static_member_assignment_persistent() {
        // testStaticMemberRoundRobinAssignmentPersistent: three static members and a dynamic
        // one; replacing the dynamic one changes nobody else's partitions.
        let both = ["topic1", "topic2"];
        let partitions = counts(&[("topic1", 3), ("topic2", 3)]);
        let mut members = vec![
            static_member("consumer1", "instance1", &both),
            static_member("consumer2", "instance2", &both),
            static_member("consumer3", "instance3", &both),
            member("consumer4", &both),
        ];
        let result = RoundRobinAssignor.assign(&partitions, &members);
        assert_eq!(
            result["consumer1"],
            tp(&[("topic1", &[0]), ("topic2", &[1])])
        );
        assert_eq!(
            result["consumer2"],
            tp(&[("topic1", &[1]), ("topic2", &[2])])
        );
        assert_eq!(result["consumer3"], tp(&[("topic1", &[2])]));
        assert_eq!(result["consumer4"], tp(&[("topic2", &[0])]));
        members[3] = member("consumer5", &both);
        let again = RoundRobinAssignor.assign(&partitions, &members);
        assert_eq!(again["consumer5"], result["consumer4"]);
        assert_eq!(again["consumer1"], result["consumer1"]);
    }

    #[test]
    fn java_test_static_assignment_survives_member_id_changes() {
        // testStaticMemberRoundRobinAssignmentPersistentAfterMemberIdChanges (5 + 5).
        let both = ["topic1", "topic2"];
        let partitions = counts(&[("topic1", 5), ("topic2", 5)]);
        let expected = [
            tp(&[("topic1", &[0, 3]), ("topic2", &[1, 4])]),
            tp(&[("topic1", &[1, 4]), ("topic2", &[2])]),
            tp(&[("topic1", &[2]), ("topic2", &[0, 3])]),
        ];
        for ids in [
            ["consumer1", "consumer2", "consumer3"],
            ["consumer9", "consumer5", "consumer4"],
        ] {
            let members: Vec<Subscription> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| static_member(id, &format!("instance{}", i + 1), &both))
                .collect();
            let result = RoundRobinAssignor.assign(&partitions, &members);
            for (id, want) in ids.iter().zip(&expected) {
                assert_eq!(&result[*id], want);
            }
        }
    }

    #[test]
    fn dynamic_members_sort_by_member_id() {
        // The same bounce without instance ids: the new ids' order decides.
        let members = [
            member("C5", &["t0", "t1"]),
            member("C3", &["t0", "t1"]),
            member("C4", &["t0", "t1"]),
        ];
        let result = RoundRobinAssignor.assign(&counts(&[("t0", 3), ("t1", 3)]), &members);
        assert_eq!(result["C3"], tp(&[("t0", &[0]), ("t1", &[0])]));
        assert_eq!(result["C4"], tp(&[("t0", &[1]), ("t1", &[1])]));
        assert_eq!(result["C5"], tp(&[("t0", &[2]), ("t1", &[2])]));
    }

    #[test]
    fn dealer_position_carries_over_between_topics() {
        // t0 has one partition: a gets it, so t1 starts at b.
        let members = [member("a", &["t0", "t1"]), member("b", &["t0", "t1"])];
        let result = RoundRobinAssignor.assign(&counts(&[("t0", 1), ("t1", 3)]), &members);
        assert_eq!(result["a"], tp(&[("t0", &[0]), ("t1", &[1])]));
        assert_eq!(result["b"], tp(&[("t1", &[0, 2])]));
    }

    #[test]
    fn topics_without_metadata_are_skipped_and_members_kept() {
        let members = [member("a", &["gone"]), member("b", &["t"])];
        let result = RoundRobinAssignor.assign(&counts(&[("t", 2)]), &members);
        assert_eq!(result["a"], TopicPartitions::new());
        assert_eq!(result["b"], tp(&[("t", &[0, 1])]));
    }

    #[test]
    fn no_members_no_assignment() {
        let result = RoundRobinAssignor.assign(&counts(&[("t", 2)]), &[]);
        assert!(result.is_empty());
    }
}
