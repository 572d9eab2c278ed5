//! CreateTopics and DeleteTopics, sent to the controller, then a wait until the cluster's
//! metadata agrees.
//!
//! Why wait: a broker answers CreateTopics once the controller has accepted the topic, before
//! every broker's metadata lists it with leaders. A producer started in that gap finds no
//! leader (Kafka) or has its records acknowledged and dropped (Tansu, tansu-notes gap 4).
//! Waiting for metadata here makes "create, then produce" work without a sleep.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{CreateTopicsRequest, DeleteTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use super::retry::{Batch, Rounds};
use super::{kafka_error, millis, Admin, Outcomes};
use crate::cluster::Snapshot;
use crate::error::{Error, KafkaCode, Result};

/// Codes retriable in general but final for topic creation and deletion. REQUEST_TIMED_OUT
/// means the controller is still applying the change: a retry would be answered with
/// TOPIC_ALREADY_EXISTS (or UNKNOWN_TOPIC_OR_PARTITION), hiding what happened. Deleting a
/// topic that does not exist does not start to succeed later.
const TOPIC_FINAL_CODES: &[KafkaCode] = &[
    KafkaCode::REQUEST_TIMED_OUT,
    KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
];

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// The topic name.
    pub name: String,
    /// The number of partitions, or -1 for the broker's `num.partitions` (Kafka 2.4+).
    pub partitions: i32,
    /// Copies of each partition, or -1 for the broker's `default.replication.factor`
    /// (Kafka 2.4+).
    pub replication_factor: i16,
    /// Topic configs (`retention.ms`, `cleanup.policy`...) as name and value.
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with no configs of its own.
    pub fn new(name: impl Into<String>, partitions: i32, replication_factor: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor,
            configs: Vec::new(),
        }
    }

    /// Adds a topic config.
    #[must_use]
    pub fn config(mut self, name: impl Into<String>, value: impl Into<String>) -> NewTopic {
        self.configs.push((name.into(), value.into()));
        self
    }
}

/// Options of [`Admin::create_topics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateTopicsOptions {
    /// Bound on the whole call, retries and the metadata wait included (default:
    /// `request.timeout.ms`).
    pub timeout: Option<Duration>,
    /// Only check the request (names, counts, configs); create nothing.
    pub validate_only: bool,
}

impl Admin {
    /// Creates `topics`, one result per topic in the order given.
    ///
    /// Sent to the controller named by the metadata (any broker if none is; KRaft brokers
    /// forward it). A topic that fails gets its own typed error, e.g.
    /// `Error::Kafka { code: TOPIC_ALREADY_EXISTS, context: "topic X: ..." }`; a name given
    /// twice gets INVALID_REQUEST without being sent, as Kafka would answer it. NOT_CONTROLLER,
    /// a lost connection and other retriable errors are retried after a metadata refresh,
    /// with backoff, until the timeout.
    ///
    /// **Returns once the metadata lists each created topic with a leader for every
    /// partition**, so a producer (or consumer) started right after finds it. A topic created
    /// but not listed in time gets `Error::Timeout` (it does exist). The metadata is one
    /// broker's view; in a multi-broker cluster another may lag by a moment. Not done with
    /// `validate_only`.
    ///
    /// A retry after a lost response can report TOPIC_ALREADY_EXISTS for a topic this very
    /// call created (the first attempt was applied, its answer lost); the Java client has the
    /// same ambiguity.
    ///
    /// Cancel safety: dropping the future may leave any of the topics created, without
    /// waiting for their metadata; nothing is left half-done on the client side.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        options: &CreateTopicsOptions,
    ) -> Outcomes<String, ()> {
        let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        let mut batch = Batch::new(topics.len(), TOPIC_FINAL_CODES);
        batch.reject_duplicates(&names, |name| format!("topic {name}"));
        let mut rounds = self.rounds(options.timeout.unwrap_or_else(|| self.timeout()));
        while !batch.is_done() && rounds.next().await {
            let pending = batch.pending();
            let round = self.create_round(topics, &pending, options.validate_only, &rounds);
            match tokio::time::timeout_at(rounds.deadline(), round).await {
                Ok(Ok(results)) => settle_topics(&names, &pending, results, &mut batch),
                Ok(Err(e)) => batch.settle_all(&pending, &e),
                Err(_) => break,
            }
        }
        if !options.validate_only {
            let created = (0..topics.len())
                .filter(|&i| batch.is_ok(i))
                .map(|i| (i, names[i], topics[i].partitions))
                .collect();
            let what = "listed with a leader for every partition (it was created)";
            self.await_metadata(created, has_leaders, what, &rounds, &mut batch)
                .await;
        }
        outcomes(&names, batch, &rounds, "CreateTopics")
    }

    async fn create_round(
        &self,
        topics: &[NewTopic],
        pending: &[usize],
        validate_only: bool,
        rounds: &Rounds,
    ) -> Result<Vec<(String, Result<()>)>> {
        if rounds.attempt() > 1 {
            // The controller may have moved (NOT_CONTROLLER) or a broker gone away.
            self.cluster.refresh(&[]).await?;
        }
        let controller = self.controller().await?;
        let request = CreateTopicsRequest::default()
            .with_topics(pending.iter().map(|&i| creatable(&topics[i])).collect())
            .with_timeout_ms(millis(rounds.remaining()))
            .with_validate_only(validate_only);
        let response = self.send(controller, |_| Ok(request)).await?;
        Ok(response
            .topics
            .iter()
            .map(|t| {
                let name = t.name.0.as_str().to_owned();
                (
                    name.clone(),
                    topic_result(t.error_code, name, t.error_message.as_deref()),
                )
            })
            .collect())
    }

    /// Deletes `topics`, one result per topic in the order given.
    ///
    /// Sent to the controller, retried like [`Admin::create_topics`]; a topic that does not
    /// exist gets UNKNOWN_TOPIC_OR_PARTITION at once. Returns once the metadata no longer
    /// lists the deleted topics (bounded by `request.timeout.ms`; a topic deleted but still
    /// listed then gets `Error::Timeout`), so the name can be created again right after.
    /// A retry after a lost response can report UNKNOWN_TOPIC_OR_PARTITION for a topic this
    /// call deleted.
    ///
    /// Cancel safety: dropping the future may leave any of the topics deleted.
    pub async fn delete_topics<T: AsRef<str>>(&self, topics: &[T]) -> Outcomes<String, ()> {
        let names: Vec<&str> = topics.iter().map(AsRef::as_ref).collect();
        let mut batch = Batch::new(names.len(), TOPIC_FINAL_CODES);
        batch.reject_duplicates(&names, |name| format!("topic {name}"));
        let mut rounds = self.rounds(self.timeout());
        while !batch.is_done() && rounds.next().await {
            let pending = batch.pending();
            let round = self.delete_round(&names, &pending, &rounds);
            match tokio::time::timeout_at(rounds.deadline(), round).await {
                Ok(Ok(results)) => settle_topics(&names, &pending, results, &mut batch),
                Ok(Err(e)) => batch.settle_all(&pending, &e),
                Err(_) => break,
            }
        }
        let deleted = (0..names.len())
            .filter(|&i| batch.is_ok(i))
            .map(|i| (i, names[i], 0))
            .collect();
        let gone = |s: &Snapshot, name: &str, _| !s.topics.contains_key(name);
        self.await_metadata(
            deleted,
            gone,
            "gone from the metadata (it was deleted)",
            &rounds,
            &mut batch,
        )
        .await;
        outcomes(&names, batch, &rounds, "DeleteTopics")
    }

    async fn delete_round(
        &self,
        names: &[&str],
        pending: &[usize],
        rounds: &Rounds,
    ) -> Result<Vec<(String, Result<()>)>> {
        if rounds.attempt() > 1 {
            self.cluster.refresh(&[]).await?;
        }
        let controller = self.controller().await?;
        let topic_names: Vec<TopicName> = pending
            .iter()
            .map(|&i| TopicName(StrBytes::from_string(names[i].to_owned())))
            .collect();
        let timeout_ms = millis(rounds.remaining());
        let response = self
            .send(controller, |version| {
                // v6 (KIP-516) moved the names into `topics`, next to topic ids.
                let request = if version >= 6 {
                    let states = topic_names
                        .into_iter()
                        .map(|name| DeleteTopicState::default().with_name(Some(name)))
                        .collect();
                    DeleteTopicsRequest::default().with_topics(states)
                } else {
                    DeleteTopicsRequest::default().with_topic_names(topic_names)
                };
                Ok(request.with_timeout_ms(timeout_ms))
            })
            .await?;
        Ok(response
            .responses
            .iter()
            .filter_map(|t| {
                let name = t.name.as_ref()?.0.as_str().to_owned();
                let result = topic_result(t.error_code, name.clone(), t.error_message.as_deref());
                Some((name, result))
            })
            .collect())
    }

    /// Refreshes the metadata of `topics` (index, name, partitions) until `ready` holds for
    /// each or the deadline passes; those not ready by then fail with a timeout naming `what`.
    /// The refresh is rate-limited by `retry.backoff.ms`, which paces this loop.
    async fn await_metadata(
        &self,
        mut topics: Vec<(usize, &str, i32)>,
        ready: impl Fn(&Snapshot, &str, i32) -> bool,
        what: &str,
        rounds: &Rounds,
        batch: &mut Batch<()>,
    ) {
        while !topics.is_empty() && Instant::now() < rounds.deadline() {
            let names: Vec<String> = topics.iter().map(|(_, n, _)| (*n).to_owned()).collect();
            let refresh = self.cluster.refresh(&names);
            match tokio::time::timeout_at(rounds.deadline(), refresh).await {
                Ok(Ok(snapshot)) => topics.retain(|&(_, name, n)| !ready(&snapshot, name, n)),
                Ok(Err(_)) => {
                    let pause = self.config.client().retry_backoff();
                    tokio::time::sleep(pause.min(rounds.remaining())).await;
                }
                Err(_) => break,
            }
        }
        for (i, name, _) in topics {
            let error = rounds.timeout_error(&format!("topic {name} to be {what}"));
            batch.finish(i, Err(error));
        }
    }
}

/// Whether `snapshot` lists `name` with `partitions` partitions (any number if not positive),
/// each with a leader.
fn has_leaders(snapshot: &Snapshot, name: &str, partitions: i32) -> bool {
    snapshot.topics.get(name).is_some_and(|t| {
        !t.partitions.is_empty()
            && (partitions <= 0
                || usize::try_from(partitions).is_ok_and(|n| t.partitions.len() == n))
            && t.partitions.iter().all(|p| p.leader >= 0)
    })
}

fn creatable(topic: &NewTopic) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
        .with_num_partitions(topic.partitions)
        .with_replication_factor(topic.replication_factor)
        .with_configs(
            topic
                .configs
                .iter()
                .map(|(name, value)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(name.clone()))
                        .with_value(Some(StrBytes::from_string(value.clone())))
                })
                .collect(),
        )
}

fn topic_result(code: i16, name: String, message: Option<&str>) -> Result<()> {
    let code = KafkaCode(code);
    if code.is_ok() {
        Ok(())
    } else {
        Err(kafka_error(code, format!("topic {name}"), message))
    }
}

/// Settles the `pending` items from a response's per-topic results, matched by name.
fn settle_topics(
    names: &[&str],
    pending: &[usize],
    results: Vec<(String, Result<()>)>,
    batch: &mut Batch<()>,
) {
    let mut unanswered: HashMap<&str, usize> = pending.iter().map(|&i| (names[i], i)).collect();
    for (name, result) in results {
        if let Some(i) = unanswered.remove(name.as_str()) {
            batch.settle(i, result);
        }
    }
    for (name, i) in unanswered {
        let context = format!("topic {name}: missing from the broker's response");
        batch.finish(
            i,
            Err(Error::kafka(KafkaCode::UNKNOWN_SERVER_ERROR, context)),
        );
    }
}

fn outcomes(names: &[&str], batch: Batch<()>, rounds: &Rounds, api: &str) -> Outcomes<String, ()> {
    let results = batch.into_results(&rounds.timeout_error(api));
    Outcomes {
        entries: names.iter().map(|n| (*n).to_owned()).zip(results).collect(),
    }
}
