//! The server-side assignors of KIP-848 groups: `uniform` (the default) and `range`.
//!
//! With KIP-848 the coordinator, not a leader member, computes the target assignment. Both
//! assignors here are deterministic (members and partitions in sorted order), so a test can
//! predict them; neither looks at racks.
//!
//! - `uniform` spreads all subscribed partitions as evenly as the subscriptions allow and keeps
//!   each member's current partitions where it can (Kafka's `UniformAssignor`: a member gives
//!   up only what balance needs).
//! - `range` splits each topic's partitions into contiguous ranges over the members subscribed
//!   to it, in member id order (Kafka's server-side `RangeAssignor`, without its stickiness).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id.
pub(crate) type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// The assignors the mock offers, first is the default.
pub(crate) const ASSIGNORS: &[&str] = &["uniform", "range"];

/// What an assignor sees of one member.
#[derive(Debug, Clone)]
pub(crate) struct AssignorMember<'a> {
    /// The topic ids it subscribes to (only topics that exist).
    pub(crate) topics: BTreeSet<Uuid>,
    /// Its current target assignment, for stickiness.
    pub(crate) current: Option<&'a Assignment>,
}

/// Computes every member's target assignment. `partitions` holds each subscribed topic's
/// partition count; an unknown assignor name gets the default.
pub(crate) fn assign(
    assignor: &str,
    members: &BTreeMap<String, AssignorMember<'_>>,
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    match assignor {
        "range" => range(members, partitions),
        _ => uniform(members, partitions),
    }
}

fn range(
    members: &BTreeMap<String, AssignorMember<'_>>,
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    for (&topic, &count) in partitions {
        let subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, m)| m.topics.contains(&topic))
            .map(|(id, _)| id)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let count = usize::try_from(count).unwrap_or(0);
        let (each, extra) = (count / subscribers.len(), count % subscribers.len());
        let mut next = 0usize;
        for (index, id) in subscribers.into_iter().enumerate() {
            let take = each + usize::from(index < extra);
            let range: BTreeSet<i32> = (next..next + take).map(|p| p as i32).collect();
            next += take;
            if !range.is_empty() {
                out.entry(id.clone()).or_default().insert(topic, range);
            }
        }
    }
    out
}

fn uniform(
    members: &BTreeMap<String, AssignorMember<'_>>,
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut owner: BTreeMap<(Uuid, i32), String> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = members.keys().map(|id| (id.clone(), 0)).collect();
    let subscribed =
        |id: &str, topic: &Uuid| members.get(id).is_some_and(|m| m.topics.contains(topic));
    let exists = |topic: &Uuid, p: i32| partitions.get(topic).is_some_and(|&n| p >= 0 && p < n);
    // The least loaded member subscribed to `topic` with fewer than `below` partitions.
    let least = |counts: &BTreeMap<String, usize>, topic: &Uuid, below: usize| {
        counts
            .iter()
            .filter(|(id, n)| subscribed(id, topic) && **n < below)
            .min_by_key(|(id, n)| (**n, (*id).clone()))
            .map(|(id, _)| id.clone())
    };
    // Stickiness: every member keeps what it had that is still valid.
    for (id, member) in members {
        for (topic, ps) in member.current.into_iter().flatten() {
            for &p in ps {
                if subscribed(id, topic) && exists(topic, p) && !owner.contains_key(&(*topic, p)) {
                    owner.insert((*topic, p), id.clone());
                    *counts.entry(id.clone()).or_default() += 1;
                }
            }
        }
    }
    // Unowned partitions go to the least loaded subscriber.
    for (&topic, &count) in partitions {
        for p in 0..count.max(0) {
            if owner.contains_key(&(topic, p)) {
                continue;
            }
            if let Some(id) = least(&counts, &topic, usize::MAX) {
                *counts.entry(id.clone()).or_default() += 1;
                owner.insert((topic, p), id);
            }
        }
    }
    // Balance: move a partition from a member to a subscriber with at least two fewer, until
    // no such move is left (each move narrows the spread, so this ends).
    loop {
        let mut moved = false;
        let keys: Vec<(Uuid, i32)> = owner.keys().rev().copied().collect();
        for key in keys {
            let Some(from) = owner.get(&key).cloned() else {
                continue;
            };
            let from_count = counts.get(&from).copied().unwrap_or(0);
            if let Some(to) = least(&counts, &key.0, from_count.saturating_sub(1)) {
                *counts.entry(from).or_default() -= 1;
                *counts.entry(to.clone()).or_default() += 1;
                owner.insert(key, to);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    for ((topic, p), id) in owner {
        out.entry(id)
            .or_default()
            .entry(topic)
            .or_default()
            .insert(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members<'a>(
        ids: &[&str],
        topic: Uuid,
        current: &'a BTreeMap<String, Assignment>,
    ) -> BTreeMap<String, AssignorMember<'a>> {
        ids.iter()
            .map(|id| {
                (
                    (*id).to_owned(),
                    AssignorMember {
                        topics: BTreeSet::from([topic]),
                        current: current.get(*id),
                    },
                )
            })
            .collect()
    }

    fn sizes(out: &BTreeMap<String, Assignment>) -> Vec<usize> {
        out.values()
            .map(|a| a.values().map(BTreeSet::len).sum())
            .collect()
    }

    #[test]
    fn uniform_balances_and_keeps_what_it_can() {
        let topic = Uuid::from_u128(7);
        let counts = BTreeMap::from([(topic, 6)]);
        let none = BTreeMap::new();
        let two = assign("uniform", &members(&["a", "b"], topic, &none), &counts);
        assert_eq!(sizes(&two), vec![3, 3]);
        let three = assign("uniform", &members(&["a", "b", "c"], topic, &two), &counts);
        assert_eq!(sizes(&three), vec![2, 2, 2]);
        // a and b each gave up one partition and kept the other two.
        for id in ["a", "b"] {
            let kept = three[id][&topic].intersection(&two[id][&topic]).count();
            assert_eq!(kept, 2, "{id} kept {kept}");
        }
    }

    #[test]
    fn range_splits_contiguously_in_member_order() {
        let topic = Uuid::from_u128(7);
        let counts = BTreeMap::from([(topic, 5)]);
        let none = BTreeMap::new();
        let out = assign("range", &members(&["b", "a"], topic, &none), &counts);
        assert_eq!(out["a"][&topic], BTreeSet::from([0, 1, 2]));
        assert_eq!(out["b"][&topic], BTreeSet::from([3, 4]));
    }

    #[test]
    fn only_subscribers_get_a_topic() {
        let (t1, t2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let counts = BTreeMap::from([(t1, 2), (t2, 2)]);
        let mut members = BTreeMap::new();
        members.insert(
            "a".to_owned(),
            AssignorMember {
                topics: BTreeSet::from([t1]),
                current: None,
            },
        );
        members.insert(
            "b".to_owned(),
            AssignorMember {
                topics: BTreeSet::from([t1, t2]),
                current: None,
            },
        );
        for name in ASSIGNORS {
            let out = assign(name, &members, &counts);
            assert!(!out["a"].contains_key(&t2), "{name}");
            assert_eq!(out["b"].get(&t2).map(BTreeSet::len), Some(2), "{name}");
        }
    }
}
