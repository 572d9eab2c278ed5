//! An in-process Kafka cluster for tests: N brokers on loopback ports speaking the real wire
//! protocol, partition logs with high watermark, last stable offset and aborted-transaction
//! index, and a fault-injection API.
//!
//! Any Kafka client can use it (librdkafka and sluice are both tested against it), so a
//! program's own tests need no broker:
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use sluice_mock::{MockCluster, MockConfig};
//!
//! let cluster = MockCluster::start(MockConfig::with_brokers(3)).await?;
//! cluster.create_topic("orders", 6);
//! println!("bootstrap.servers={}", cluster.bootstrap());
//! # Ok(())
//! # }
//! ```
//!
//! What it does not implement is listed in its README.

mod config;
mod faults;
mod groups;
mod handlers;
mod log;
mod names;
mod server;
mod state;
mod txn;
mod versions;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::MockConfig;
pub use faults::Fault;
pub use groups::{
    ConsumerGroupDescription, ConsumerGroupMember, GroupDescription, GroupMember, GroupState,
    MemberState,
};
pub use kafka_protocol::messages::ApiKey;
pub use kafka_protocol::ResponseError;

use state::{Broker, CoordinatorKind, Shared};

/// A running mock cluster. Dropping it stops the brokers (open connections are closed as their
/// tasks notice).
#[derive(Debug)]
pub struct MockCluster {
    shared: Arc<Shared>,
    addrs: Vec<(i32, SocketAddr)>,
    listeners: Vec<JoinHandle<()>>,
}

impl MockCluster {
    /// Binds every broker's port on 127.0.0.1 and starts serving, on the current tokio
    /// runtime.
    pub async fn start(config: MockConfig) -> io::Result<MockCluster> {
        if config.brokers == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a cluster needs at least one broker",
            ));
        }
        let mut bound = Vec::with_capacity(config.brokers);
        for index in 0..config.brokers {
            let port = match config.base_port {
                Some(base) => u16::try_from(usize::from(base) + index).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, "broker ports run past 65535")
                })?,
                None => 0,
            };
            let listener = TcpListener::bind(("127.0.0.1", port)).await?;
            let addr = listener.local_addr()?;
            bound.push((index as i32 + 1, addr, listener));
        }
        let brokers = bound
            .iter()
            .map(|(id, addr, _)| Broker {
                id: *id,
                host: addr.ip().to_string(),
                port: i32::from(addr.port()),
                rack: None,
            })
            .collect();
        let shared = Shared::new(config, brokers);
        let addrs = bound.iter().map(|(id, addr, _)| (*id, *addr)).collect();
        let mut listeners: Vec<JoinHandle<()>> = bound
            .into_iter()
            .map(|(id, _, listener)| tokio::spawn(server::serve(shared.clone(), id, listener)))
            .collect();
        listeners.push(tokio::spawn(groups::run_timers(shared.clone())));
        listeners.push(tokio::spawn(txn::run_timers(shared.clone())));
        Ok(MockCluster {
            shared,
            addrs,
            listeners,
        })
    }

    /// The `bootstrap.servers` string: every broker's `host:port`, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.addrs
            .iter()
            .map(|(_, a)| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The brokers' ids and addresses.
    pub fn brokers(&self) -> Vec<(i32, SocketAddr)> {
        self.addrs.clone()
    }

    /// Creates a topic (a no-op if it exists) with leaders spread over the brokers.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.shared
            .lock()
            .create_topic(name, partitions, BTreeMap::new());
    }

    /// The leader of a partition, if the partition exists.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        self.shared
            .lock()
            .partition(topic, partition)
            .map(|p| p.leader)
    }

    /// A partition's high watermark, last stable offset and log start offset.
    pub fn offsets(&self, topic: &str, partition: i32) -> Option<PartitionOffsets> {
        let state = self.shared.lock();
        let log = &state.partition(topic, partition)?.log;
        Some(PartitionOffsets {
            high_watermark: log.high_watermark(),
            last_stable_offset: log.last_stable_offset(),
            log_start_offset: log.log_start_offset(),
        })
    }

    /// Moves a partition's leadership to `broker`, bumping its leader epoch, as a controller
    /// does after a failure. Returns false if the partition or broker does not exist.
    pub fn move_leader(&self, topic: &str, partition: i32, broker: i32) -> bool {
        let mut state = self.shared.lock();
        if !state.brokers.iter().any(|b| b.id == broker) {
            return false;
        }
        let Some(p) = state.partition_mut(topic, partition) else {
            return false;
        };
        p.move_leader(broker);
        drop(state);
        self.shared.notify();
        true
    }

    /// Makes `broker` the coordinator of consumer group `group`.
    pub fn move_group_coordinator(&self, group: &str, broker: i32) {
        self.move_coordinator(CoordinatorKind::Group, group, broker);
    }

    /// Makes `broker` the coordinator of transactional id `transactional_id`.
    pub fn move_transaction_coordinator(&self, transactional_id: &str, broker: i32) {
        self.move_coordinator(CoordinatorKind::Transaction, transactional_id, broker);
    }

    fn move_coordinator(&self, kind: CoordinatorKind, key: &str, broker: i32) {
        self.shared
            .lock()
            .coordinator_moves
            .insert((kind, key.to_owned()), broker);
        self.shared.notify();
    }

    /// The broker coordinating consumer group `group`.
    pub fn group_coordinator(&self, group: &str) -> i32 {
        self.shared
            .lock()
            .coordinator(CoordinatorKind::Group, group)
    }

    /// The broker coordinating transactional id `transactional_id`.
    pub fn transaction_coordinator(&self, transactional_id: &str) -> i32 {
        self.shared
            .lock()
            .coordinator(CoordinatorKind::Transaction, transactional_id)
    }

    /// The producer id and epoch the transaction coordinator holds for `transactional_id`, if
    /// it was ever initialised. For assertions; clients use DescribeTransactions.
    pub fn producer_identity(&self, transactional_id: &str) -> Option<(i64, i16)> {
        let state = self.shared.lock();
        let txn = state.txns.get(transactional_id)?;
        Some((txn.producer_id, txn.epoch))
    }

    /// A consumer group's state, generation and members (with their assignments), or `None`
    /// if the group does not exist. For assertions; clients use DescribeGroups.
    pub fn describe_group(&self, group: &str) -> Option<GroupDescription> {
        self.shared.lock().groups.describe(group)
    }

    /// A KIP-848 consumer group's epochs and members (with what they own, must release, and
    /// their targets), or `None` if `group` is not one. For assertions; clients use
    /// ConsumerGroupDescribe.
    pub fn describe_consumer_group(&self, group: &str) -> Option<ConsumerGroupDescription> {
        let state = self.shared.lock();
        state.groups.describe_consumer(&state, group)
    }

    /// The offset `group` committed for a partition, if any (offsets a transaction holds are
    /// not committed until it commits).
    pub fn committed_offset(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        self.shared.lock().groups.committed(group, topic, partition)
    }

    /// Adds a fault rule; rules apply in the order they were added.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.add(fault);
    }

    /// How many requests of `api` the brokers have received so far (any broker), so a test
    /// can wait until a client is in the middle of a step, then act (kill it, move a leader).
    pub fn requests_seen(&self, api: ApiKey) -> u64 {
        self.shared.lock().faults.seen(api)
    }

    /// How many fault rules have not run out yet (a test can check its faults really fired).
    pub fn pending_faults(&self) -> usize {
        self.shared.lock().faults.pending()
    }

    /// Removes every fault rule that has not run out yet.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Stops (`true`) or resumes (`false`) answering on `broker`: requests wait, connections
    /// stay open, as during a long pause or a network partition.
    pub fn pause_broker(&self, broker: i32, paused: bool) {
        self.shared.lock().faults.pause(broker, paused);
    }
}

impl Drop for MockCluster {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
        for listener in &self.listeners {
            listener.abort();
        }
    }
}

/// A partition's offsets, for assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The offset after the last committed record.
    pub high_watermark: i64,
    /// The offset before which no transaction is open.
    pub last_stable_offset: i64,
    /// The first offset still in the log.
    pub log_start_offset: i64,
}
