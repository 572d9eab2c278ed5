//! Shared harness for sluice's integration tests: a fresh local broker per test, and helpers
//! that use librdkafka (the `rdkafka` crate) as a reference peer.
//!
//! Every test starts its own [`TestBroker`] (Tansu, in-memory storage, ready in ~0.1 s), so
//! tests share no topics, offsets or groups and can run in parallel. The broker binary comes
//! from `scripts/broker.sh` (pinned in `scripts/broker-requirements.txt`). Tansu has known gaps
//! (for one, a `read_committed` fetch does not filter aborted transactions): a test that meets
//! one says so and covers that path another way (recorded broker bytes, or the mock cluster).
//! [`Target`] and [`on_mock_and_tansu!`] run one scenario on both the mock cluster and Tansu.

mod broker;
mod group_members;
mod listen;
mod proxy;
mod rdkafka_peer;
mod target;

pub use broker::TestBroker;
pub use group_members::{
    next_seq, produce_values, read_counts, settle, Change, RdkafkaMember, Seen, SluiceMember,
};
pub use proxy::{ByteRange, FaultProxy, ProxyStats};
pub use rdkafka_peer::{create_topic_with_rdkafka, rdkafka_config};
pub use target::Target;
