//! `-e`: when every partition read has reached its end.
//!
//! A partition's end is its high watermark (under `read_committed`, its last stable offset),
//! as ListOffsets lists it when reading starts and as later fetch responses report it, so
//! records that arrive while it reads are read too, as kcat's end-of-partition events do. A
//! partition is at its end once the position reading would go on from reaches that end; the
//! position is checked, not the last record, because a transaction marker can be a
//! partition's last offset with no record to show for it.

use std::collections::HashMap;

use sluice_client::admin::{Admin, OffsetSpec};
use sluice_client::config::IsolationLevel;
use sluice_client::consumer::FetchedBatch;

use crate::consume::Lookup;
use crate::CliError;

/// A topic and partition.
pub(crate) type Key = (String, i32);

/// The known end of each partition being read.
#[derive(Debug)]
pub(crate) struct Ends {
    known: HashMap<Key, i64>,
    isolation: IsolationLevel,
}

impl Ends {
    pub(crate) fn new(isolation: IsolationLevel) -> Self {
        Ends {
            known: HashMap::new(),
            isolation,
        }
    }

    /// Adds a partition whose end is already known.
    pub(crate) fn insert(&mut self, key: Key, end: i64) {
        self.known.insert(key, end);
    }

    /// Looks up the current ends of `partitions` (ListOffsets, latest) and adds them.
    pub(crate) async fn look_up(
        &mut self,
        admin: &Admin,
        partitions: &[Key],
    ) -> Result<(), CliError> {
        let mut by_topic: HashMap<&str, Vec<i32>> = HashMap::new();
        for (topic, partition) in partitions {
            by_topic.entry(topic).or_default().push(*partition);
        }
        for (topic, partitions) in by_topic {
            let lookup = Lookup {
                admin,
                topic,
                partitions: &partitions,
                isolation: self.isolation,
            };
            for (partition, end) in lookup.offsets(OffsetSpec::Latest).await? {
                self.known.insert((topic.to_owned(), partition), end);
            }
        }
        Ok(())
    }

    /// Stops tracking a partition (it was revoked).
    pub(crate) fn forget(&mut self, key: &Key) {
        self.known.remove(key);
    }

    /// Moves a partition's end up to what a fetch response reported.
    pub(crate) fn saw(&mut self, batch: &FetchedBatch) {
        let end =
            if self.isolation == IsolationLevel::ReadCommitted && batch.last_stable_offset() >= 0 {
                batch.last_stable_offset()
            } else {
                batch.high_watermark()
            };
        let key = (batch.topic().to_owned(), batch.partition());
        if let Some(known) = self.known.get_mut(&key) {
            *known = (*known).max(end);
        }
    }

    /// Whether every one of `partitions` was read to its end, `position` saying where
    /// reading goes on from in each (`None`: not known yet). A partition whose end is not
    /// known is not at its end.
    pub(crate) fn all_reached<'a>(
        &self,
        mut partitions: impl Iterator<Item = &'a Key>,
        position: impl Fn(&Key) -> Option<i64>,
    ) -> bool {
        partitions.all(|key| {
            self.known
                .get(key)
                .is_some_and(|end| position(key).is_some_and(|at| at >= *end))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> Key {
        ("t".to_owned(), p)
    }

    #[test]
    fn every_partition_must_reach_a_known_end() {
        let mut ends = Ends::new(IsolationLevel::ReadUncommitted);
        ends.insert(key(0), 10);
        ends.insert(key(1), 0);
        let owned = [key(0), key(1)];
        let at = |positions: [Option<i64>; 2]| {
            move |k: &Key| positions[usize::try_from(k.1).unwrap_or(0)]
        };
        assert!(!ends.all_reached(owned.iter(), at([Some(9), Some(0)])));
        assert!(!ends.all_reached(owned.iter(), at([Some(10), None])));
        assert!(ends.all_reached(owned.iter(), at([Some(10), Some(0)])));
        assert!(
            !ends.all_reached([key(2)].iter(), |_| Some(100)),
            "an end never looked up"
        );
        ends.forget(&key(0));
        assert!(!ends.all_reached(owned.iter(), at([Some(10), Some(0)])));
    }
}
