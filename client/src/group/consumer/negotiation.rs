//! The classic protocol's JoinGroup / SyncGroup exchange ([`Negotiation`]), owning all it
//! needs so that a cooperative member can run it beside its reads ([`Joining`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use super::{Shared, PROTOCOL_VERSION};
use crate::cluster::Cluster;
use crate::error::{Error, KafkaCode, Result};
use crate::group::assignor::{wire, Assignor, RebalanceProtocol, Subscription, TopicPartitions};
use crate::group::membership::{self, rejoin_reason, JoinSettings, Joined, Rejoin};

/// A JoinGroup / SyncGroup exchange, owning all it needs so that it can run beside reads.
/// (In a `Mutex` only to be `Sync`, as `GroupConsumer` is: it is polled through `get_mut`.)
pub(super) struct Joining(pub(super) Mutex<JoinFuture>);

type JoinFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<bytes::Bytes>> + Send>>;

impl std::fmt::Debug for Joining {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Joining")
    }
}

/// What JoinGroup, the leader's assignment and SyncGroup need from the member.
pub(super) struct Negotiation {
    pub(super) shared: Arc<Shared>,
    pub(super) assignors: Arc<[Box<dyn Assignor>]>,
    pub(super) topics: BTreeSet<String>,
    pub(super) owned: TopicPartitions,
    pub(super) cluster: Cluster,
}

impl Negotiation {
    /// JoinGroup, the leader's assignment, SyncGroup (again while the coordinator asks):
    /// this member's encoded assignment.
    pub(super) async fn run(self) -> Result<bytes::Bytes> {
        let shared = Arc::clone(&self.shared);
        let settings = &shared.settings;
        let mut failures = 0u32;
        loop {
            if failures > 0 {
                tokio::time::sleep(settings.backoff.delay(failures)).await;
            }
            let mut id = {
                let mut st = shared.lock();
                st.stable = false;
                st.id.clone()
            };
            let join_settings = JoinSettings {
                session_timeout: settings.session_timeout,
                rebalance_timeout: settings.rebalance_timeout,
                request_timeout: settings.request_timeout,
                protocols: self.protocols(id.generation)?,
                reason: "joining".into(),
            };
            let joined = membership::join(&shared.coordinator, &mut id, &join_settings).await;
            shared.lock().id = id.clone();
            let joined = match joined {
                Ok(joined) => joined,
                Err(e) => {
                    failures += 1;
                    self.on_join_error(&e)?;
                    continue;
                }
            };
            let assignments = match self.leader_assignments(&joined).await {
                Ok(a) => a,
                Err(e) => {
                    failures += 1;
                    if e.is_retriable() {
                        continue;
                    }
                    return Err(e);
                }
            };
            match membership::sync(
                &shared.coordinator,
                &id,
                assignments,
                settings.request_timeout,
            )
            .await
            {
                Ok(bytes) => return Ok(bytes),
                Err(e) => {
                    failures += 1;
                    self.on_join_error(&e)?;
                }
            }
        }
    }

    /// What a join or sync error means: rejoin (Ok), or give up (Err).
    fn on_join_error(&self, error: &Error) -> Result<()> {
        match rejoin_reason(error) {
            Some(Rejoin::Rebalance) => Ok(()),
            Some(reason) => {
                let mut st = self.shared.lock();
                st.id.reset(reason == Rejoin::NewMember);
                Ok(())
            }
            None if self.shared.coordinator.on_error(error) => Ok(()),
            None => {
                if error.is_fatal() || error.code() == Some(KafkaCode::FENCED_INSTANCE_ID) {
                    self.shared.lock().fatal = Some(error.clone());
                }
                Err(error.clone())
            }
        }
    }

    /// The subscription each offered assignor sends in JoinGroup.
    fn protocols(&self, generation: i32) -> Result<Vec<(String, bytes::Bytes)>> {
        self.assignors
            .iter()
            .map(|a| {
                let owned = match a.rebalance_protocol() {
                    RebalanceProtocol::Cooperative => self.owned.clone(),
                    RebalanceProtocol::Eager => TopicPartitions::new(),
                };
                let subscription = Subscription {
                    member_id: String::new(),
                    group_instance_id: None,
                    topics: self.topics.iter().cloned().collect(),
                    user_data: a.subscription_user_data(&owned, generation),
                    owned_partitions: owned,
                    generation_id: generation,
                    rack_id: self.shared.settings.rack.clone(),
                };
                Ok((
                    a.name().to_owned(),
                    wire::encode_subscription(&subscription, PROTOCOL_VERSION)?,
                ))
            })
            .collect()
    }

    /// As leader: every member's assignment, encoded; empty for a follower.
    async fn leader_assignments(&self, joined: &Joined) -> Result<Vec<(String, bytes::Bytes)>> {
        let Some(members) = &joined.members else {
            return Ok(Vec::new());
        };
        let assignor = self
            .assignors
            .iter()
            .find(|a| a.name() == joined.protocol)
            .ok_or_else(|| {
                Error::kafka(
                    KafkaCode::INCONSISTENT_GROUP_PROTOCOL,
                    format!(
                        "the group chose assignor {:?}, which this member did not offer",
                        joined.protocol
                    ),
                )
            })?;
        let mut subscriptions = Vec::with_capacity(members.len());
        for (member_id, instance_id, metadata) in members {
            subscriptions.push(wire::decode_subscription(
                member_id,
                instance_id.as_deref(),
                metadata.clone(),
            )?);
        }
        let topics: BTreeSet<&String> =
            subscriptions.iter().flat_map(|s| s.topics.iter()).collect();
        let cluster = &self.cluster;
        let mut counts = BTreeMap::new();
        for topic in topics {
            match cluster.topic(topic).await {
                Ok(info) => {
                    counts.insert(topic.clone(), info.partitions.len() as i32);
                }
                Err(e) if e.code() == Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION) => {
                    tracing::debug!(topic = %topic, "subscribed topic does not exist; skipped");
                }
                Err(e) => return Err(e),
            }
        }
        let result = assignor.assign(&counts, &subscriptions);
        members
            .iter()
            .map(|(member_id, _, _)| {
                let partitions = result.get(member_id).cloned().unwrap_or_default();
                Ok((
                    member_id.clone(),
                    wire::encode_assignment(&partitions, None, PROTOCOL_VERSION)?,
                ))
            })
            .collect()
    }
}
