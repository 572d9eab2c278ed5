//! The [`GroupConsumer`] side of KIP-848: choosing the protocol at the first join, and
//! reconciling the coordinator's assignments with what the member owns.
//!
//! Reconciliation follows Kafka's `ConsumerMembershipManager`: partitions to give up first
//! (a `Revoked` event, with an auto-commit before it; the application may commit until its
//! next `poll`), then, on that next `poll`, the partitions gained (their committed offsets
//! fetched, an `Assigned` event), and only then the heartbeat reporting what the member owns,
//! which is what lets the coordinator hand the released partitions to their next owner.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use tokio::time::Instant;

use super::super::kip848::member::{Assignment, Profile};
use super::super::kip848::{self, Change, Kip848};
use super::{flatten, GroupConsumer, GroupEvent, Need, Shared};
use crate::config::{ConsumerConfig, GroupProtocol};
use crate::error::{KafkaCode, Result};
use crate::group::coordinator::{Coordinator, CoordinatorType};

/// How long to wait before trying again to name an assignment's topic ids.
const UNKNOWN_TOPIC_RETRY: Duration = Duration::from_millis(100);

/// The KIP-848 profile when the config asks for `group.protocol=consumer`.
pub(super) fn profile(config: &ConsumerConfig) -> Option<Profile> {
    (config.group_protocol() == GroupProtocol::Consumer).then(|| Profile {
        instance_id: config.group_instance_id().map(str::to_owned),
        rack_id: config.client_rack().map(str::to_owned),
        assignor: config.remote_assignor().map(str::to_owned),
        rebalance_timeout: config.rebalance_timeout(),
    })
}

impl kip848::App for Shared {
    fn wake(&self) {
        self.app_wake.notify_one();
    }

    fn last_poll(&self) -> Instant {
        self.lock().last_poll
    }
}

impl GroupConsumer {
    /// Whether the member is in the group, under either protocol.
    pub(super) fn in_group(&self) -> bool {
        match &self.kip848 {
            Some(k) => k.is_member(),
            None => self.shared.lock().stable,
        }
    }

    /// Handles a join `need` with KIP-848 if the config asks for it and the coordinator
    /// offers it: true if it did (the heartbeat task joins), false to go on with classic.
    pub(super) async fn use_kip848(&mut self, need: Need) -> Result<bool> {
        if let Some(k) = &self.kip848 {
            k.subscribe(&self.topics);
            return Ok(true);
        }
        let Some(profile) = self.kip848_wanted.take() else {
            return Ok(false);
        };
        let offered = match Kip848::offered(&self.shared.coordinator).await {
            Ok(offered) => offered,
            Err(e) if self.shared.coordinator.on_error(&e) => {
                // The coordinator is not known yet: ask again on the next round.
                self.kip848_wanted = Some(profile);
                self.shared.lock().need.get_or_insert(need);
                tokio::time::sleep(self.shared.settings.backoff.delay(1)).await;
                return Ok(true);
            }
            Err(e) => return Err(e),
        };
        if !offered {
            tracing::info!(
                group = %self.group_id,
                "group.protocol=consumer, but the coordinator does not offer \
                 ConsumerGroupHeartbeat: using the classic protocol"
            );
            return Ok(false);
        }
        let settings = &self.shared.settings;
        let coordinator = Coordinator::new(
            self.consumer.cluster().clone(),
            &self.group_id,
            CoordinatorType::Group,
        )
        .with_own_connection();
        let k = Kip848::start(
            coordinator,
            profile,
            kip848::Settings {
                max_poll_interval: settings.max_poll_interval,
                request_timeout: settings.request_timeout,
                backoff: settings.backoff,
            },
            Arc::clone(&self.shared) as Arc<dyn kip848::App>,
        );
        k.subscribe(&self.topics);
        self.kip848 = Some(k);
        Ok(true)
    }

    /// Acts on the next KIP-848 change, if any; true if it did something.
    pub(super) async fn kip848_step(&mut self) -> Result<bool> {
        let Some(change) = self.kip848.as_ref().and_then(Kip848::take_change) else {
            return Ok(false);
        };
        match change {
            Change::Fatal(e) => {
                self.shared.lock().fatal = Some(e.clone());
                Err(e)
            }
            Change::Lost => {
                self.revoking.clear();
                let owned = flatten(&self.owned);
                if !owned.is_empty() {
                    self.events.push_back(GroupEvent::Lost(owned.clone()));
                    self.give_up(&owned);
                }
                if let Some(k) = &self.kip848 {
                    k.rejoin();
                }
                Ok(true)
            }
            Change::Target(target) => {
                self.reconcile(target).await?;
                Ok(true)
            }
        }
    }

    /// Moves towards `target`: revoke first; assign and acknowledge once nothing is left to
    /// revoke.
    async fn reconcile(&mut self, target: Assignment) -> Result<()> {
        let Some(named) = self.name_partitions(&target).await? else {
            if let Some(k) = &self.kip848 {
                k.put_back(target);
            }
            tokio::time::sleep(UNKNOWN_TOPIC_RETRY).await;
            return Ok(());
        };
        let owned: BTreeSet<(String, i32)> = flatten(&self.owned).into_iter().collect();
        let revoked: Vec<(String, i32)> = owned.difference(&named).cloned().collect();
        if !revoked.is_empty() {
            self.auto_commit_now(&revoked).await;
            self.events.push_back(GroupEvent::Revoked(revoked.clone()));
            self.revoking.extend(revoked);
            // Applied again once the revoked partitions are given up (next poll).
            if let Some(k) = &self.kip848 {
                k.put_back(target);
            }
            return Ok(());
        }
        let added: Vec<(String, i32)> = named.difference(&owned).cloned().collect();
        self.take_on(&added).await?;
        if !added.is_empty() {
            self.events.push_back(GroupEvent::Assigned(added));
        }
        let ids: BTreeMap<&str, Uuid> = self
            .topic_names
            .iter()
            .map(|(id, name)| (name.as_str(), *id))
            .collect();
        let mut acked = Assignment::new();
        for (topic, partitions) in &self.owned {
            if let Some(id) = ids.get(topic.as_str()) {
                acked
                    .entry(*id)
                    .or_default()
                    .extend(partitions.iter().copied());
            }
        }
        if let Some(k) = &self.kip848 {
            k.ack(acked);
        }
        Ok(())
    }

    /// The assignment's partitions by topic name; `None` if a topic id is not known yet
    /// (metadata is refreshed for the subscribed topics first).
    async fn name_partitions(
        &mut self,
        target: &Assignment,
    ) -> Result<Option<BTreeSet<(String, i32)>>> {
        if target.keys().any(|id| !self.topic_names.contains_key(id)) {
            let cluster = self.consumer.cluster().clone();
            let topics: Vec<String> = self.topics.iter().cloned().collect();
            if let Err(e) = cluster.refresh(&topics).await {
                tracing::debug!(error = %e, "metadata refresh for topic ids failed");
            }
            for topic in &topics {
                match cluster.topic(topic).await {
                    Ok(info) => {
                        self.topic_names
                            .insert(Uuid::from_bytes(info.id), info.name.clone());
                    }
                    Err(e) if e.code() == Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let mut named = BTreeSet::new();
        for (id, partitions) in target {
            let Some(name) = self.topic_names.get(id) else {
                return Ok(None);
            };
            named.extend(partitions.iter().map(|p| (name.clone(), *p)));
        }
        Ok(Some(named))
    }
}
