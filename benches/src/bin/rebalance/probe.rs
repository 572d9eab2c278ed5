//! What the members report: which partitions each owns and has read from, and, during a
//! measured leave, when each of the leaver's partitions first yielded a record to another
//! member.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// Shared by the members of one group and the orchestrator.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Per member slot: the partitions it owns.
    owned: BTreeMap<usize, BTreeSet<i32>>,
    /// Per member slot: the owned partitions it has read a record of since it got them.
    fed: BTreeMap<usize, BTreeSet<i32>>,
    watch: Option<Watch>,
}

/// A leave being measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Watch {
    pub(crate) leaver: usize,
    pub(crate) partitions: BTreeSet<i32>,
    /// When each watched partition first yielded a record to another member.
    pub(crate) first_record: BTreeMap<i32, Instant>,
}

impl Probe {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A member read a record of `partition` (at `at`, as its application saw it).
    pub(crate) fn record(&self, slot: usize, partition: i32, at: Instant) {
        let mut st = self.lock();
        st.fed.entry(slot).or_default().insert(partition);
        if let Some(w) = &mut st.watch {
            if slot != w.leaver && w.partitions.contains(&partition) {
                w.first_record.entry(partition).or_insert(at);
            }
        }
    }

    /// A member's partitions changed: it owns `owned` now.
    pub(crate) fn set_owned(&self, slot: usize, owned: BTreeSet<i32>) {
        let mut st = self.lock();
        let fed = st.fed.entry(slot).or_default();
        fed.retain(|p| owned.contains(p));
        st.owned.insert(slot, owned);
    }

    /// A member left.
    pub(crate) fn remove(&self, slot: usize) {
        let mut st = self.lock();
        st.owned.remove(&slot);
        st.fed.remove(&slot);
    }

    pub(crate) fn owned(&self, slot: usize) -> BTreeSet<i32> {
        self.lock().owned.get(&slot).cloned().unwrap_or_default()
    }

    /// Whether exactly `members` own every one of `partitions` partitions once, each owns
    /// some, and each has read from every partition it owns.
    pub(crate) fn steady(&self, members: &[usize], partitions: i32) -> bool {
        let st = self.lock();
        let mut union = BTreeSet::new();
        let mut total = 0;
        for slot in members {
            let owned = st.owned.get(slot).cloned().unwrap_or_default();
            let fed = st.fed.get(slot).cloned().unwrap_or_default();
            if owned.is_empty() || !owned.is_subset(&fed) {
                return false;
            }
            total += owned.len();
            union.extend(owned);
        }
        st.owned.len() == members.len()
            && total == partitions as usize
            && union.len() == partitions as usize
    }

    /// Starts measuring the leave of `leaver`.
    pub(crate) fn watch(&self, leaver: usize) {
        let mut st = self.lock();
        let partitions = st.owned.get(&leaver).cloned().unwrap_or_default();
        st.watch = Some(Watch {
            leaver,
            partitions,
            first_record: BTreeMap::new(),
        });
    }

    /// The measurement so far.
    pub(crate) fn watched(&self) -> Watch {
        self.lock().watch.clone().unwrap_or_default()
    }

    pub(crate) fn unwatch(&self) {
        self.lock().watch = None;
    }
}
