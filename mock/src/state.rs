//! The cluster's shared state: brokers, topics and their partition logs, producer ids, and the
//! coordinators, behind one lock.
//!
//! One lock for everything keeps the mock simple and every request atomic, which a test
//! cluster wants more than parallelism. Waiters (long-polling fetches, joining group members)
//! sleep on [`Shared::changed`] and re-check after any change.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{watch, Notify};
use uuid::Uuid;

use crate::config::MockConfig;
use crate::faults::Faults;
use crate::groups::Groups;
use crate::log::PartitionLog;
use crate::txn::Transactions;

/// Everything the brokers of one cluster share.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Notified after every change a waiter may care about (appends, markers, group changes).
    pub(crate) changed: Notify,
    pub(crate) config: MockConfig,
    /// Set when the cluster is dropped; connections close when they see it.
    pub(crate) shutdown: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn new(config: MockConfig, brokers: Vec<Broker>) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State {
                brokers,
                topics: BTreeMap::new(),
                next_producer_id: 1000,
                coordinator_moves: BTreeMap::new(),
                groups: Groups::default(),
                txns: Transactions::default(),
                faults: Faults::default(),
            }),
            changed: Notify::new(),
            config,
            shutdown: watch::Sender::new(false),
        })
    }

    /// Locks the state. A panic while holding the lock (a bug) does not poison the cluster for
    /// the other connections: the state is still consistent between requests.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes every waiter so it re-checks the state.
    pub(crate) fn notify(&self) {
        self.changed.notify_waiters();
    }
}

/// One broker of the cluster.
#[derive(Debug, Clone)]
pub(crate) struct Broker {
    pub(crate) id: i32,
    pub(crate) host: String,
    pub(crate) port: i32,
    pub(crate) rack: Option<String>,
}

/// A topic: its id, partitions and the configs set on it.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) id: Uuid,
    pub(crate) partitions: Vec<Partition>,
    pub(crate) configs: BTreeMap<String, String>,
}

/// A partition: where its leader is, and its log.
#[derive(Debug, Default)]
pub(crate) struct Partition {
    pub(crate) leader: i32,
    pub(crate) leader_epoch: i32,
    pub(crate) log: PartitionLog,
    /// Leader epochs after the first (0, from offset 0): (epoch, its first offset).
    epoch_starts: Vec<(i32, i64)>,
}

impl Partition {
    /// Moves leadership to `broker` and starts a new leader epoch at the log end.
    pub(crate) fn move_leader(&mut self, broker: i32) {
        self.leader = broker;
        self.leader_epoch += 1;
        self.epoch_starts
            .push((self.leader_epoch, self.log.high_watermark()));
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` and the offset where it
    /// ended (the log end for the current epoch); (-1, -1) for an epoch this log never had.
    pub(crate) fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        if epoch < 0 || epoch > self.leader_epoch {
            return (-1, -1);
        }
        let mut known = 0;
        for &(e, start) in &self.epoch_starts {
            if e > epoch {
                return (known, start);
            }
            known = e;
        }
        (known, self.log.high_watermark())
    }
}

/// Which coordinator a key names (FindCoordinator's key type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum CoordinatorKind {
    Group,
    Transaction,
}

/// The mutable state of the cluster.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) brokers: Vec<Broker>,
    pub(crate) topics: BTreeMap<String, Topic>,
    pub(crate) next_producer_id: i64,
    /// Coordinators moved by fault injection; the rest follow a hash of the key.
    pub(crate) coordinator_moves: BTreeMap<(CoordinatorKind, String), i32>,
    pub(crate) groups: Groups,
    pub(crate) txns: Transactions,
    pub(crate) faults: Faults,
}

impl State {
    /// Creates a topic with partition leaders spread over the brokers, round robin.
    pub(crate) fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> &mut Topic {
        let start = fastrand::usize(..self.brokers.len().max(1));
        let leaders: Vec<i32> = (0..partitions.max(0) as usize)
            .map(|i| self.broker_at(start + i))
            .collect();
        self.topics.entry(name.to_owned()).or_insert_with(|| Topic {
            id: Uuid::from_u128(fastrand::u128(1..)),
            partitions: leaders
                .into_iter()
                .map(|leader| Partition {
                    leader,
                    ..Partition::default()
                })
                .collect(),
            configs,
        })
    }

    /// Adds partitions to an existing topic (CreatePartitions).
    pub(crate) fn add_partitions(&mut self, name: &str, total: usize) {
        let start = fastrand::usize(..self.brokers.len().max(1));
        let leaders: Vec<i32> = (0..total).map(|i| self.broker_at(start + i)).collect();
        if let Some(topic) = self.topics.get_mut(name) {
            let existing = topic.partitions.len();
            topic
                .partitions
                .extend(leaders.into_iter().skip(existing).map(|leader| Partition {
                    leader,
                    ..Partition::default()
                }));
        }
    }

    fn broker_at(&self, index: usize) -> i32 {
        self.brokers
            .get(index % self.brokers.len().max(1))
            .map_or(-1, |b| b.id)
    }

    pub(crate) fn partition(&self, topic: &str, partition: i32) -> Option<&Partition> {
        self.topics
            .get(topic)?
            .partitions
            .get(usize::try_from(partition).ok()?)
    }

    pub(crate) fn partition_mut(&mut self, topic: &str, partition: i32) -> Option<&mut Partition> {
        self.topics
            .get_mut(topic)?
            .partitions
            .get_mut(usize::try_from(partition).ok()?)
    }

    pub(crate) fn topic_name_by_id(&self, id: Uuid) -> Option<&str> {
        self.topics
            .iter()
            .find(|(_, t)| t.id == id)
            .map(|(name, _)| name.as_str())
    }

    /// The broker that coordinates `key`: a stable hash of it over the brokers, unless a fault
    /// moved it.
    pub(crate) fn coordinator(&self, kind: CoordinatorKind, key: &str) -> i32 {
        if let Some(&broker) = self.coordinator_moves.get(&(kind, key.to_owned())) {
            return broker;
        }
        // FNV-1a: stable across runs and platforms, unlike std's SipHash keys.
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        self.broker_at((hash % self.brokers.len().max(1) as u64) as usize)
    }

    pub(crate) fn allocate_producer_id(&mut self) -> i64 {
        let id = self.next_producer_id;
        self.next_producer_id += 1;
        id
    }
}

/// Milliseconds since the Unix epoch, as record timestamps and ListOffsets use.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A duration from a request's milliseconds field (negative means zero).
pub(crate) fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
