//! [`Target`]: the cluster a scenario runs on, the mock cluster or the local broker, so that
//! one scenario's code runs on both and must give the same observable result on each.
//!
//! The local broker judges the mock where it supports the behaviour; where it does not
//! (tansu-notes.md lists the gaps), a scenario asks [`Target::mock_cluster`] for the mock and
//! says which gap keeps that part off Tansu.

use sluice_mock::{MockCluster, MockConfig};

use crate::{create_topic_with_rdkafka, TestBroker};

/// A cluster of the test's own.
#[derive(Debug)]
pub enum Target {
    /// An in-process `sluice-mock` cluster of three brokers.
    Mock(MockCluster),
    /// A Tansu process (one broker, in-memory storage).
    Tansu(TestBroker),
}

impl Target {
    /// Starts a mock cluster of three brokers.
    pub async fn mock() -> Target {
        let cluster = MockCluster::start(MockConfig::with_brokers(3))
            .await
            .expect("the mock cluster starts");
        Target::Mock(cluster)
    }

    /// Starts a Tansu broker.
    pub fn tansu() -> Target {
        Target::Tansu(TestBroker::start())
    }

    /// Its `bootstrap.servers` value.
    pub fn bootstrap(&self) -> String {
        match self {
            Target::Mock(cluster) => cluster.bootstrap(),
            Target::Tansu(broker) => broker.bootstrap(),
        }
    }

    /// Creates `topic` and returns once every partition has a leader.
    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        match self {
            Target::Mock(cluster) => cluster.create_topic(topic, partitions),
            Target::Tansu(broker) => {
                create_topic_with_rdkafka(&broker.bootstrap(), topic, partitions).await;
            }
        }
    }

    /// The mock cluster, for what only it offers: fault injection, coordinator moves and its
    /// own view of offsets and generations.
    pub fn mock_cluster(&self) -> Option<&MockCluster> {
        match self {
            Target::Mock(cluster) => Some(cluster),
            Target::Tansu(_) => None,
        }
    }

    /// Whether a read_committed fetch leaves out aborted transactions' records. Tansu's does
    /// not (tansu-notes.md gap 1): it still holds readers at the last stable offset.
    pub fn filters_aborted_records(&self) -> bool {
        matches!(self, Target::Mock(_))
    }
}

/// Runs each named scenario, an `async fn(Target)`, as two tests: `on_mock::NAME` on a fresh
/// [`Target::mock`] and `on_tansu::NAME` on a fresh [`Target::tansu`].
#[macro_export]
macro_rules! on_mock_and_tansu {
    ($($scenario:ident),+ $(,)?) => {
        mod on_mock {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::Target::mock().await).await;
                }
            )+
        }
        mod on_tansu {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::Target::tansu()).await;
                }
            )+
        }
    };
}
