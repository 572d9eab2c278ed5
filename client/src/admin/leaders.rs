//! Placing partition-level items (ListOffsets, DeleteRecords) on their leaders.
//!
//! Kafka answers these only on the partition's leader, and a request must not name a partition
//! twice (the broker fails duplicates with INVALID_REQUEST), so items are grouped by leader
//! and, per leader, split into as many requests as the most repeated partition needs. The
//! grouping is a pure function of a metadata snapshot, so it is tested without a broker.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;

use super::retry::Rounds;
use super::Admin;
use crate::cluster::Snapshot;
use crate::error::{Error, KafkaCode, Result};

/// A topic and partition number.
type Partition<'a> = (&'a str, i32);

/// Items placed on leaders, and the ones that could not be.
#[derive(Debug, Default)]
pub(super) struct Grouped {
    /// Per leader, the requests to send, each a list of item indices with no partition twice.
    pub(super) requests: BTreeMap<i32, Vec<Vec<usize>>>,
    /// Items with no leader to go to: the error, and whether a later round (after a metadata
    /// refresh) may place them.
    pub(super) unplaced: Vec<(usize, Error, bool)>,
}

/// The context of a partition's errors.
pub(super) fn partition_context(topic: &str, partition: i32) -> String {
    format!("topic {topic} partition {partition}")
}

impl Admin {
    /// A snapshot with current metadata for `topics`: refreshed on every round but the first
    /// (the last one saw an error that may mean a leader moved), and on the first for topics
    /// not cached.
    pub(super) async fn partition_metadata<'a>(
        &self,
        topics: impl Iterator<Item = &'a str>,
        rounds: &Rounds,
    ) -> Result<Arc<Snapshot>> {
        let mut topics: Vec<String> = topics.map(str::to_owned).collect();
        topics.sort_unstable();
        topics.dedup();
        let snapshot = self.cluster.snapshot();
        let missing = topics.iter().any(|t| !snapshot.topics.contains_key(t));
        if rounds.attempt() > 1 || missing {
            return self.cluster.refresh(&topics).await;
        }
        Ok(snapshot)
    }
}

/// Groups `items` (index, topic, partition) by the leader `snapshot` names.
pub(super) fn group_by_leader<'a>(
    snapshot: &Snapshot,
    items: impl IntoIterator<Item = (usize, &'a str, i32)>,
) -> Grouped {
    let mut grouped = Grouped::default();
    let mut by_leader: BTreeMap<i32, Vec<(usize, Partition<'a>)>> = BTreeMap::new();
    for (i, topic, partition) in items {
        match place(snapshot, topic, partition) {
            Ok(leader) => by_leader
                .entry(leader)
                .or_default()
                .push((i, (topic, partition))),
            Err((error, retry)) => grouped.unplaced.push((i, error, retry)),
        }
    }
    for (leader, items) in by_leader {
        grouped.requests.insert(leader, layers(items));
    }
    grouped
}

/// The leader of `topic`/`partition`, or why there is none (and whether to try again).
fn place(snapshot: &Snapshot, topic: &str, partition: i32) -> Result<i32, (Error, bool)> {
    if let Some(info) = snapshot.topics.get(topic) {
        let context = partition_context(topic, partition);
        let Some(p) = info.partition(partition) else {
            // The topic exists and the partition does not: no refresh will change that.
            let error = Error::kafka(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION, context);
            return Err((error, false));
        };
        if p.leader < 0 {
            let code = p.error.unwrap_or(KafkaCode::LEADER_NOT_AVAILABLE);
            return Err((Error::kafka(code, context), true));
        }
        return Ok(p.leader);
    }
    let context = format!("topic {topic}");
    match snapshot.topic_errors.get(topic) {
        // A freshly refreshed snapshot says the topic does not exist: final, like Java's
        // admin client, rather than retried until the deadline.
        Some(&code) if code == KafkaCode::UNKNOWN_TOPIC_OR_PARTITION => {
            Err((Error::kafka(code, context), false))
        }
        Some(&code) => Err((Error::kafka(code, context), code.is_retriable())),
        // Not asked for yet: the next refresh will ask.
        None => Err((
            Error::kafka(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION, context),
            true,
        )),
    }
}

/// Splits `items` into lists where no key occurs twice, keeping their order; the n-th
/// occurrence of a key goes to list n.
pub(super) fn layers<K: Eq + Hash>(items: impl IntoIterator<Item = (usize, K)>) -> Vec<Vec<usize>> {
    let mut seen: HashMap<K, usize> = HashMap::new();
    let mut out: Vec<Vec<usize>> = Vec::new();
    for (i, key) in items {
        let n = seen.entry(key).or_insert(0);
        if out.len() <= *n {
            out.push(Vec::new());
        }
        out[*n].push(i);
        *n += 1;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cluster::{BrokerInfo, PartitionInfo, TopicInfo};

    fn partition(partition: i32, leader: i32) -> PartitionInfo {
        PartitionInfo {
            partition,
            leader,
            leader_epoch: 0,
            replicas: vec![leader],
            isr: vec![leader],
            error: None,
        }
    }

    fn snapshot() -> Snapshot {
        let mut s = Snapshot::default();
        for id in [1, 2] {
            let addr = format!("b{id}:9092");
            s.brokers.insert(
                id,
                BrokerInfo {
                    id,
                    addr,
                    rack: None,
                },
            );
        }
        let mut electing = partition(2, -1);
        electing.error = Some(KafkaCode::LEADER_NOT_AVAILABLE);
        let clicks = TopicInfo {
            name: "clicks".into(),
            id: [0; 16],
            internal: false,
            partitions: vec![partition(0, 1), partition(1, 2), electing],
        };
        s.topics.insert("clicks".into(), Arc::new(clicks));
        let views = TopicInfo {
            name: "views".into(),
            id: [0; 16],
            internal: false,
            partitions: vec![partition(0, 2)],
        };
        s.topics.insert("views".into(), Arc::new(views));
        s.topic_errors
            .insert("gone".into(), KafkaCode::UNKNOWN_TOPIC_OR_PARTITION);
        s.topic_errors
            .insert("creating".into(), KafkaCode::LEADER_NOT_AVAILABLE);
        s
    }

    #[test]
    fn items_are_grouped_by_leader_and_repeats_go_to_later_requests() {
        let items = [
            ("clicks", 0), // 0 -> broker 1
            ("clicks", 1), // 1 -> broker 2
            ("views", 0),  // 2 -> broker 2
            ("clicks", 0), // 3 -> broker 1, second request
            ("clicks", 0), // 4 -> broker 1, third request
            ("views", 0),  // 5 -> broker 2, second request
        ];
        let grouped = group_by_leader(
            &snapshot(),
            items.iter().enumerate().map(|(i, &(t, p))| (i, t, p)),
        );
        assert!(grouped.unplaced.is_empty(), "{:?}", grouped.unplaced);
        assert_eq!(grouped.requests.len(), 2);
        assert_eq!(grouped.requests[&1], vec![vec![0], vec![3], vec![4]]);
        assert_eq!(grouped.requests[&2], vec![vec![1, 2], vec![5]]);
    }

    #[test]
    fn items_without_a_leader_say_why_and_whether_to_retry() {
        let items = [
            ("clicks", 2),   // no leader: retry
            ("clicks", 9),   // no such partition: final
            ("gone", 0),     // no such topic: final
            ("creating", 0), // topic-level retriable error
            ("unasked", 0),  // not in the snapshot: retry after a refresh
            ("views", 0),
        ];
        let grouped = group_by_leader(
            &snapshot(),
            items.iter().enumerate().map(|(i, &(t, p))| (i, t, p)),
        );
        assert_eq!(grouped.requests[&2], vec![vec![5]]);
        let unplaced: Vec<(usize, Option<KafkaCode>, bool)> = grouped
            .unplaced
            .iter()
            .map(|(i, e, retry)| (*i, e.code(), *retry))
            .collect();
        assert_eq!(
            unplaced,
            vec![
                (0, Some(KafkaCode::LEADER_NOT_AVAILABLE), true),
                (1, Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION), false),
                (2, Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION), false),
                (3, Some(KafkaCode::LEADER_NOT_AVAILABLE), true),
                (4, Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION), true),
            ]
        );
        let (_, error, _) = &grouped.unplaced[1];
        assert!(
            error.to_string().contains("topic clicks partition 9"),
            "{error}"
        );
    }

    #[test]
    fn layers_keep_order_and_never_repeat_a_key() {
        let got = layers([(0, "a"), (1, "b"), (2, "a"), (3, "a"), (4, "b"), (5, "c")]);
        assert_eq!(got, vec![vec![0, 1, 5], vec![2, 4], vec![3]]);
        assert!(layers(std::iter::empty::<(usize, u8)>()).is_empty());
    }
}
