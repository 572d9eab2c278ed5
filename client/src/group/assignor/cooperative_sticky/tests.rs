use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::*;
use crate::group::assignor::test_util::{counts, member, owning, tp};

fn assign(
    partitions: &BTreeMap<String, i32>,
    members: &[Subscription],
) -> BTreeMap<String, TopicPartitions> {
    CooperativeStickyAssignor.assign(partitions, members)
}

fn size(p: &TopicPartitions) -> usize {
    p.values().map(Vec::len).sum()
}

fn contains(p: &TopicPartitions, topic: &str, partition: i32) -> bool {
    p.get(topic).is_some_and(|ps| ps.contains(&partition))
}

/// The members' next subscriptions when nothing changes but the assignment: each owns what it
/// was given, from generation `generation`.
fn next_round(
    members: &[Subscription],
    result: &BTreeMap<String, TopicPartitions>,
    generation: i32,
) -> Vec<Subscription> {
    members
        .iter()
        .map(|m| Subscription {
            owned_partitions: result[&m.member_id].clone(),
            generation_id: generation,
            ..m.clone()
        })
        .collect()
}

#[test]
fn identity_and_protocol() {
    assert_eq!(CooperativeStickyAssignor.name(), "cooperative-sticky");
    assert_eq!(
        CooperativeStickyAssignor.rebalance_protocol(),
        RebalanceProtocol::Cooperative
    );
    // Java's user data: the generation as one big-endian INT32.
    assert_eq!(
        CooperativeStickyAssignor.subscription_user_data(&TopicPartitions::new(), 7),
        Some(Bytes::from_static(&[0, 0, 0, 7]))
    );
    assert_eq!(
        CooperativeStickyAssignor.subscription_user_data(&TopicPartitions::new(), -1),
        Some(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]))
    );
}

#[test]
fn fresh_group_is_balanced_and_complete() {
    let members = [
        member("a", &["t0", "t1"]),
        member("b", &["t0", "t1"]),
        member("c", &["t0", "t1"]),
    ];
    let result = assign(&counts(&[("t0", 3), ("t1", 4)]), &members);
    let sizes: Vec<usize> = result.values().map(size).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 7);
    assert!(sizes.iter().all(|&s| s == 2 || s == 3), "{result:?}");
}

#[test]
fn stable_membership_changes_nothing() {
    let members = [
        owning("a", &["t"], &[("t", &[0, 4])], 3),
        owning("b", &["t"], &[("t", &[1, 2])], 3),
        owning("c", &["t"], &[("t", &[3, 5])], 3),
    ];
    let result = assign(&counts(&[("t", 6)]), &members);
    for m in &members {
        assert_eq!(result[&m.member_id], m.owned_partitions);
    }
}

#[test]
fn leaving_member_partitions_spread_and_others_keep_theirs() {
    // c owned 4 and 5 and left; they are free at once (nobody claims them).
    let members = [
        owning("a", &["t"], &[("t", &[0, 1])], 3),
        owning("b", &["t"], &[("t", &[2, 3])], 3),
    ];
    let result = assign(&counts(&[("t", 6)]), &members);
    assert_eq!(size(&result["a"]), 3);
    assert_eq!(size(&result["b"]), 3);
    assert!(contains(&result["a"], "t", 0) && contains(&result["a"], "t", 1));
    assert!(contains(&result["b"], "t", 2) && contains(&result["b"], "t", 3));
    assert!(contains(&result["a"], "t", 4) != contains(&result["a"], "t", 5));
}

#[test]
fn joining_member_takes_only_what_is_needed_after_revocation() {
    let partitions = counts(&[("t", 6)]);
    let members = vec![
        owning("a", &["t"], &[("t", &[0, 1, 2])], 3),
        owning("b", &["t"], &[("t", &[3, 4, 5])], 3),
        member("c", &["t"]),
    ];
    // Round 1: a and b each give up one partition, which nobody gets yet.
    let first = assign(&partitions, &members);
    assert_eq!(first["a"], tp(&[("t", &[0, 1])]));
    assert_eq!(first["b"], tp(&[("t", &[3, 4])]));
    assert_eq!(first["c"], TopicPartitions::new());

    // Round 2 (after a and b revoked 2 and 5): c gets them, nobody else moves.
    let second = assign(&partitions, &next_round(&members, &first, 4));
    assert_eq!(second["a"], tp(&[("t", &[0, 1])]));
    assert_eq!(second["b"], tp(&[("t", &[3, 4])]));
    assert_eq!(second["c"], tp(&[("t", &[2, 5])]));
}

#[test]
fn higher_generation_wins_a_conflict_and_keeps_the_partition() {
    // b is stale (generation 4) and still claims 1, which a owns in generation 5.
    let members = [
        owning("a", &["t"], &[("t", &[0, 1])], 5),
        owning("b", &["t"], &[("t", &[1, 2])], 4),
    ];
    let result = assign(&counts(&[("t", 4)]), &members);
    assert_eq!(result["a"], tp(&[("t", &[0, 1])]));
    assert_eq!(result["b"], tp(&[("t", &[2, 3])]));
}

#[test]
fn a_same_generation_conflict_invalidates_both_claims() {
    let partitions = counts(&[("t", 4)]);
    let members = vec![
        owning("a", &["t"], &[("t", &[0, 1])], 5),
        owning("b", &["t"], &[("t", &[1, 2])], 5),
    ];
    // 1 is owned by nobody, so it is withheld from both; each keeps its other partition.
    let first = assign(&partitions, &members);
    assert!(!contains(&first["a"], "t", 1) && !contains(&first["b"], "t", 1));
    assert!(contains(&first["a"], "t", 0) && contains(&first["b"], "t", 2));
    // Once both have revoked it, it is assigned.
    let second = assign(&partitions, &next_round(&members, &first, 6));
    assert_eq!(size(&second["a"]) + size(&second["b"]), 4);
    assert_eq!(size(&second["a"]), 2);
}

#[test]
fn generation_from_user_data_when_the_field_is_missing() {
    // a speaks subscription v1: generation -1 in the field, 7 in Java's user data.
    let a = Subscription {
        user_data: Some(Bytes::from_static(&[0, 0, 0, 7])),
        ..owning("a", &["t"], &[("t", &[0])], -1)
    };
    let b = owning("b", &["t"], &[("t", &[0, 1])], 5);
    assert_eq!(member_generation(&a), 7);
    let result = assign(&counts(&[("t", 2)]), &[a, b]);
    assert_eq!(result["a"], tp(&[("t", &[0])]));
    assert_eq!(result["b"], tp(&[("t", &[1])]));
    // Too short for an INT32: Java's default generation.
    let short = Subscription {
        user_data: Some(Bytes::from_static(&[1, 2])),
        ..member("x", &["t"])
    };
    assert_eq!(member_generation(&short), NO_GENERATION);
}

#[test]
fn unsubscribed_topic_is_revoked_before_it_moves() {
    let partitions = counts(&[("t0", 2), ("t1", 2)]);
    let members = vec![
        owning("a", &["t1"], &[("t0", &[0, 1])], 2),
        owning("b", &["t0", "t1"], &[("t1", &[0, 1])], 2),
    ];
    let first = assign(&partitions, &members);
    // b would take t0, but a still claims it; a keeps nothing of t0.
    assert!(!first["a"].contains_key("t0") && !first["b"].contains_key("t0"));
    let second = assign(&partitions, &next_round(&members, &first, 3));
    assert_eq!(second["b"]["t0"], vec![0, 1]);
    assert!(second["a"].contains_key("t1"));
}

#[test]
fn unequal_subscriptions_are_balanced_where_possible() {
    // Java's javadoc for StickyAssignor: c0 on t0, c1 on t0 and t1, c2 on all three; the
    // balanced result gives c1 and c2 more of the topics only they can take.
    let members = [
        member("c0", &["t0"]),
        member("c1", &["t0", "t1"]),
        member("c2", &["t0", "t1", "t2"]),
    ];
    let result = assign(&counts(&[("t0", 1), ("t1", 2), ("t2", 3)]), &members);
    assert_eq!(result["c0"], tp(&[("t0", &[0])]));
    assert_eq!(result["c1"], tp(&[("t1", &[0, 1])]));
    assert_eq!(result["c2"], tp(&[("t2", &[0, 1, 2])]));
}

#[test]
fn claims_on_unknown_topics_and_partitions_are_ignored() {
    let members = [owning(
        "a",
        &["t"],
        &[("t", &[-1, 0, 9]), ("gone", &[0])],
        1,
    )];
    let result = assign(&counts(&[("t", 2)]), &members);
    assert_eq!(result["a"], tp(&[("t", &[0, 1])]));
}

/// A random group: partition counts, each member's topics and what it claims, with a
/// generation per member.
#[derive(Debug, Clone)]
struct Scenario {
    partitions: BTreeMap<String, i32>,
    members: Vec<Subscription>,
}

fn scenario(equal: bool) -> impl Strategy<Value = Scenario> {
    (1usize..4, 1usize..7)
        .prop_flat_map(move |(topic_count, member_count)| {
            let counts = prop::collection::vec(1i32..9, topic_count);
            let subs = prop::collection::vec(
                prop::collection::vec(any::<bool>(), topic_count),
                member_count,
            );
            // Per partition slot (up to 8 per topic): an owner index (or none) and maybe a
            // second claimant.
            let claims = prop::collection::vec(
                (0usize..member_count + 2, 0usize..member_count + 4),
                topic_count * 8,
            );
            let generations = prop::collection::vec(-1i32..4, member_count);
            (Just(topic_count), counts, subs, claims, generations)
        })
        .prop_map(move |(topic_count, counts, subs, claims, generations)| {
            let topics: Vec<String> = (0..topic_count).map(|t| format!("t{t}")).collect();
            let partitions = topics.iter().cloned().zip(counts.iter().copied()).collect();
            let mut members: Vec<Subscription> = subs
                .iter()
                .enumerate()
                .map(|(i, wants)| {
                    let mut mine: Vec<&str> = topics
                        .iter()
                        .zip(wants)
                        .filter(|(_, w)| equal || **w)
                        .map(|(t, _)| t.as_str())
                        .collect();
                    if mine.is_empty() {
                        mine.push(topics[i % topics.len()].as_str());
                    }
                    Subscription {
                        generation_id: generations[i],
                        ..member(&format!("m{i}"), &mine)
                    }
                })
                .collect();
            for (slot, &(first, second)) in claims.iter().enumerate() {
                let (t, p) = (slot / 8, i32::try_from(slot % 8).unwrap_or(0));
                if p >= counts[t] {
                    continue;
                }
                for claimant in [first, second] {
                    if let Some(m) = members.get_mut(claimant) {
                        m.owned_partitions
                            .entry(topics[t].clone())
                            .or_default()
                            .push(p);
                    }
                }
            }
            for m in &mut members {
                for ps in m.owned_partitions.values_mut() {
                    ps.sort_unstable();
                    ps.dedup();
                }
            }
            Scenario {
                partitions,
                members,
            }
        })
}

/// Checks what must hold after any round; returns each member's count.
fn check_round(s: &Scenario, result: &BTreeMap<String, TopicPartitions>) -> HashMap<String, usize> {
    let by_id: HashMap<&str, &Subscription> = s
        .members
        .iter()
        .map(|m| (m.member_id.as_str(), m))
        .collect();
    assert_eq!(result.len(), s.members.len());
    let mut seen = HashMap::new();
    for (id, partitions) in result {
        let m = by_id[id.as_str()];
        for (topic, ps) in partitions {
            assert!(
                m.topics.contains(topic),
                "{id} got {topic} it does not want"
            );
            assert!(!ps.is_empty());
            for &p in ps {
                assert!(
                    (0..s.partitions[topic]).contains(&p),
                    "{topic}-{p} does not exist"
                );
                assert!(
                    seen.insert((topic.clone(), p), id.clone()).is_none(),
                    "{topic}-{p} assigned twice"
                );
                // The cooperative rule: if anyone else claims it, this member must be its
                // rightful owner (claims it with a generation above every other claimant's).
                let others: Vec<i32> = s
                    .members
                    .iter()
                    .filter(|o| o.member_id != *id && contains(&o.owned_partitions, topic, p))
                    .map(member_generation)
                    .collect();
                if let Some(&highest_other) = others.iter().max() {
                    assert!(
                        contains(&m.owned_partitions, topic, p)
                            && member_generation(m) > highest_other,
                        "{topic}-{p} given to {id} while another member still owns it"
                    );
                }
            }
        }
    }
    result.iter().map(|(id, p)| (id.clone(), size(p))).collect()
}

/// Java's `isBalanced`: no member could take a partition of its topics from a member holding
/// two or more partitions more than it.
fn check_balanced(s: &Scenario, result: &BTreeMap<String, TopicPartitions>) {
    let counts: HashMap<&str, usize> = result
        .iter()
        .map(|(id, p)| (id.as_str(), size(p)))
        .collect();
    for m in &s.members {
        for (other, partitions) in result {
            for topic in partitions.keys() {
                if m.topics.contains(topic) {
                    assert!(
                        counts[other.as_str()] <= counts[m.member_id.as_str()] + 1,
                        "{} could take {topic} from {other}: {result:?}",
                        m.member_id
                    );
                }
            }
        }
    }
}

fn run_rounds(s: &Scenario) -> Vec<BTreeMap<String, TopicPartitions>> {
    let mut rounds = Vec::new();
    let mut current = s.clone();
    for generation in 10..13 {
        let result = assign(&current.partitions, &current.members);
        check_round(&current, &result);
        current.members = next_round(&current.members, &result, generation);
        rounds.push(result);
    }
    rounds
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rounds_converge_and_stay_valid(s in scenario(false)) {
        let rounds = run_rounds(&s);
        // After the second round with stable membership, every partition someone wants is out.
        let wanted: usize = s
            .partitions
            .iter()
            .filter(|(t, _)| s.members.iter().any(|m| m.topics.contains(t)))
            .map(|(_, &n)| usize::try_from(n).unwrap_or(0))
            .sum();
        let assigned: usize = rounds[1].values().map(size).sum();
        prop_assert_eq!(assigned, wanted);
        check_balanced(&s, &rounds[1]);
        // And then nothing moves any more.
        prop_assert_eq!(&rounds[2], &rounds[1]);
    }

    #[test]
    fn equal_subscriptions_balance_within_one(s in scenario(true)) {
        let rounds = run_rounds(&s);
        let sizes: Vec<usize> = rounds[1].values().map(size).collect();
        let (min, max) = (sizes.iter().min(), sizes.iter().max());
        prop_assert!(max.zip(min).is_some_and(|(max, min)| max - min <= 1), "{:?}", rounds[1]);
    }

    #[test]
    fn equal_subscriptions_revoke_no_more_than_needed(
        s in scenario(true),
    ) {
        // Only meaningful without conflicts: keep each partition's first claimant alone.
        let mut s = s;
        let mut taken = std::collections::HashSet::new();
        for m in &mut s.members {
            m.generation_id = 1;
            for (topic, ps) in m.owned_partitions.iter_mut() {
                ps.retain(|&p| taken.insert((topic.clone(), p)));
            }
            m.owned_partitions.retain(|_, ps| !ps.is_empty());
        }
        let result = assign(&s.partitions, &s.members);
        check_round(&s, &result);
        let total: usize = s.partitions.values().map(|&n| usize::try_from(n).unwrap_or(0)).sum();
        let n = s.members.len();
        let (quota, extra) = (total / n, total % n);
        // The fewest revocations: the `extra` members owning most may keep quota + 1.
        let mut owned: Vec<usize> = s.members.iter().map(|m| size(&m.owned_partitions)).collect();
        owned.sort_unstable_by(|a, b| b.cmp(a));
        let needed: usize = owned
            .iter()
            .enumerate()
            .map(|(i, &o)| o.saturating_sub(quota + usize::from(i < extra)))
            .sum();
        let revoked: usize = s
            .members
            .iter()
            .map(|m| {
                m.owned_partitions
                    .iter()
                    .flat_map(|(t, ps)| ps.iter().map(move |&p| (t, p)))
                    .filter(|(t, p)| !contains(&result[&m.member_id], t, *p))
                    .count()
            })
            .sum();
        prop_assert_eq!(revoked, needed, "{:?}", result);
    }
}

#[test]
fn a_better_balance_than_single_moves_find() {
    // Found by the proptest. m1 can only take t1, which m0 owns; m1 still claims t0 it no
    // longer wants. Single moves from fuller to emptier members stop at counts 5/3/4 in the
    // second round; a path (m2 -> m0 -> m1) reaches 4/4/4.
    let s = Scenario {
        partitions: counts(&[("t0", 8), ("t1", 4)]),
        members: vec![
            owning(
                "m0",
                &["t0", "t1"],
                &[("t0", &[0, 1, 2]), ("t1", &[0, 1, 2, 3])],
                0,
            ),
            owning("m1", &["t1"], &[("t0", &[3, 4, 5, 6, 7])], 0),
            owning("m2", &["t0"], &[], 0),
        ],
    };
    let rounds = run_rounds(&s);
    // Round 1: t1 moves to m1 and t0 3-7 to m0 and m2, all withheld until revoked.
    assert_eq!(rounds[0]["m0"], tp(&[("t0", &[0, 1, 2])]));
    assert!(rounds[0]["m1"].is_empty() && rounds[0]["m2"].is_empty());
    assert_eq!(rounds[1]["m0"], tp(&[("t0", &[0, 1, 2, 6])]));
    assert_eq!(rounds[1]["m1"], tp(&[("t1", &[0, 1, 2, 3])]));
    assert_eq!(rounds[1]["m2"], tp(&[("t0", &[3, 4, 5, 7])]));
    assert_eq!(rounds[2], rounds[1]);
}

#[test]
fn a_chain_of_moves_balances_what_single_moves_cannot() {
    // a takes only t0, b only t1, c both. Counts 5/4/3 pass Java's isBalanced (no single
    // move helps), but a -> c -> b gives 4/4/4 at the price of two revocations.
    let partitions = counts(&[("t0", 6), ("t1", 6)]);
    let members = vec![
        owning("a", &["t0"], &[("t0", &[0, 1, 2, 3, 4])], 1),
        owning("b", &["t1"], &[("t1", &[3, 4, 5])], 1),
        owning("c", &["t0", "t1"], &[("t0", &[5]), ("t1", &[0, 1, 2])], 1),
    ];
    let first = assign(&partitions, &members);
    assert_eq!(first["a"], tp(&[("t0", &[0, 1, 2, 3])]));
    assert_eq!(first["b"], tp(&[("t1", &[3, 4, 5])]));
    assert_eq!(first["c"], tp(&[("t0", &[5]), ("t1", &[0, 1])]));
    let second = assign(&partitions, &next_round(&members, &first, 2));
    assert_eq!(second["a"], tp(&[("t0", &[0, 1, 2, 3])]));
    assert_eq!(second["b"], tp(&[("t1", &[2, 3, 4, 5])]));
    assert_eq!(second["c"], tp(&[("t0", &[4, 5]), ("t1", &[0, 1])]));
}

#[test]
fn a_large_group_is_assigned_quickly() {
    // 2000 partitions owned by 10 members when 90 more join: the worst case for moves.
    let topics: Vec<String> = (0..20).map(|t| format!("t{t}")).collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let partitions: BTreeMap<String, i32> = topics.iter().map(|t| (t.clone(), 100)).collect();
    let mut members: Vec<Subscription> = (0..100)
        .map(|i| owning(&format!("m{i:03}"), &names, &[], 1))
        .collect();
    for (k, (t, p)) in topics
        .iter()
        .flat_map(|t| (0..100).map(move |p| (t, p)))
        .enumerate()
    {
        members[k % 10]
            .owned_partitions
            .entry(t.clone())
            .or_default()
            .push(p);
    }
    let first = assign(&partitions, &members);
    // Each old member keeps 20 of its 200; the 1800 others wait for their revocation.
    assert!(members[..10]
        .iter()
        .all(|m| size(&first[&m.member_id]) == 20));
    let second = assign(&partitions, &next_round(&members, &first, 2));
    assert!(second.values().all(|p| size(p) == 20));
}
