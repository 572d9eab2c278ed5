//! Builders shared by the assignor tests.

use std::collections::BTreeMap;

use super::{Subscription, TopicPartitions};

/// A dynamic member subscribed to `topics`, owning nothing.
pub(crate) fn member(id: &str, topics: &[&str]) -> Subscription {
    Subscription {
        member_id: id.to_owned(),
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        generation_id: -1,
        ..Subscription::default()
    }
}

/// A static member (with a `group.instance.id`).
pub(crate) fn static_member(id: &str, instance: &str, topics: &[&str]) -> Subscription {
    Subscription {
        group_instance_id: Some(instance.to_owned()),
        ..member(id, topics)
    }
}

/// A member owning `owned` from generation `generation`.
pub(crate) fn owning(
    id: &str,
    topics: &[&str],
    owned: &[(&str, &[i32])],
    generation: i32,
) -> Subscription {
    Subscription {
        owned_partitions: tp(owned),
        generation_id: generation,
        ..member(id, topics)
    }
}

/// Topic partition counts.
pub(crate) fn counts(topics: &[(&str, i32)]) -> BTreeMap<String, i32> {
    topics.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
}

/// A `TopicPartitions` literal.
pub(crate) fn tp(partitions: &[(&str, &[i32])]) -> TopicPartitions {
    partitions
        .iter()
        .map(|(t, p)| ((*t).to_owned(), p.to_vec()))
        .collect()
}
