//! Consumer groups seen from the outside: list them, describe their members and assignments,
//! read and reset their committed offsets.
//!
//! ListGroups goes to every broker (each lists the groups it coordinates); the rest goes to
//! the group's coordinator, found and re-found like a member finds it.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::{DescribeGroupsRequest, GroupId, ListGroupsRequest};
use tokio::time::Instant;

use super::Admin;
use crate::error::{Error, KafkaCode, Result};
use crate::group::assignor::wire;
use crate::group::coordinator::{Coordinator, CoordinatorType};
use crate::group::offsets::{self, str_bytes, Committer, Retry};
use crate::group::{CommittedOffset, OffsetToCommit};

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// `consumer` for consumer groups (empty for groups that only commit offsets).
    pub protocol_type: String,
    /// Its state (`Stable`, `Empty`, ...), when the broker reports it (ListGroups v4+).
    pub state: Option<String>,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Empty` or `Dead`.
    pub state: String,
    /// The embedded protocol type (`consumer`).
    pub protocol_type: String,
    /// The assignor the group uses (`range`, `cooperative-sticky`, ...).
    pub assignor: String,
    /// The members.
    pub members: Vec<MemberDescription>,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Its member id.
    pub member_id: String,
    /// Its static instance id.
    pub group_instance_id: Option<String>,
    /// Its `client.id`.
    pub client_id: String,
    /// The host it connects from.
    pub host: String,
    /// Its partitions (decoded from the consumer protocol; empty for other protocol types).
    pub assignment: Vec<(String, i32)>,
}

impl Admin {
    fn group_coordinator(&self, group: &str) -> Coordinator {
        Coordinator::new(self.cluster.clone(), group, CoordinatorType::Group)
    }

    fn group_retry(&self) -> Retry {
        let timeout = self.timeout();
        Retry {
            deadline: Instant::now() + timeout,
            request_timeout: self.cluster.options().request_timeout,
            backoff: self.backoff(),
        }
    }

    /// Every group of the cluster, from every broker.
    ///
    /// Cancel safety: cancel safe; it only reads.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let snapshot = self.cluster.refresh(&[]).await?;
        let mut found = BTreeMap::new();
        for &broker in snapshot.brokers.keys() {
            let response = self
                .send(broker, |_| Ok(ListGroupsRequest::default()))
                .await?;
            if response.error_code != 0 {
                return Err(Error::kafka(
                    KafkaCode(response.error_code),
                    format!("ListGroups on broker {broker}"),
                ));
            }
            for g in response.groups {
                let state = Some(g.group_state.to_string()).filter(|s| !s.is_empty());
                found.insert(
                    g.group_id.0.to_string(),
                    GroupListing {
                        group_id: g.group_id.0.to_string(),
                        protocol_type: g.protocol_type.to_string(),
                        state,
                    },
                );
            }
        }
        Ok(found.into_values().collect())
    }

    /// The state, assignor and members (with their partitions) of `group`.
    ///
    /// Cancel safety: cancel safe; it only reads.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let coordinator = self.group_coordinator(group);
        let deadline = Instant::now() + self.timeout();
        let mut failures = 0;
        let described = loop {
            let result = coordinator
                .send(self.cluster.options().request_timeout, |_| {
                    Ok(DescribeGroupsRequest::default()
                        .with_groups(vec![GroupId(str_bytes(group))]))
                })
                .await
                .and_then(|response| {
                    let g = response.groups.into_iter().next().ok_or_else(|| {
                        Error::kafka(
                            KafkaCode::UNKNOWN_SERVER_ERROR,
                            format!("DescribeGroups answered nothing for {group}"),
                        )
                    })?;
                    match KafkaCode(g.error_code) {
                        KafkaCode::NONE => Ok(g),
                        code => Err(Error::kafka(code, format!("DescribeGroups {group}"))),
                    }
                });
            match result {
                Ok(g) => break g,
                Err(e) => {
                    failures += 1;
                    if !coordinator.on_error(&e) || Instant::now() >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(self.backoff().delay(failures)).await;
                }
            }
        };
        let consumer = described.protocol_type.as_str() == "consumer";
        let members = described
            .members
            .into_iter()
            .map(|m| {
                let assignment = if consumer && !m.member_assignment.is_empty() {
                    wire::decode_assignment(m.member_assignment.clone())
                        .map(|(partitions, _)| {
                            partitions
                                .into_iter()
                                .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
                                .collect()
                        })
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                MemberDescription {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assignment,
                }
            })
            .collect();
        Ok(GroupDescription {
            group_id: described.group_id.0.to_string(),
            state: described.group_state.to_string(),
            protocol_type: described.protocol_type.to_string(),
            assignor: described.protocol_data.to_string(),
            members,
        })
    }

    /// The committed offsets of `group`: of `partitions`, or of every partition it has
    /// offsets for when `partitions` is `None`.
    ///
    /// Cancel safety: cancel safe; it only reads.
    pub async fn list_group_offsets(
        &self,
        group: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<BTreeMap<(String, i32), CommittedOffset>> {
        let found = offsets::fetch_committed(
            &self.group_coordinator(group),
            partitions,
            false,
            self.group_retry(),
        )
        .await?;
        Ok(found
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }

    /// Sets `group`'s committed offsets, as `kafka-consumer-groups --reset-offsets` does. The
    /// group must have no active members (the coordinator refuses a commit from outside a
    /// live generation with UNKNOWN_MEMBER_ID).
    pub async fn alter_group_offsets(&self, group: &str, offsets: &[OffsetToCommit]) -> Result<()> {
        let topics: BTreeSet<&str> = offsets.iter().map(|o| o.topic.as_str()).collect();
        if topics.is_empty() {
            return Ok(());
        }
        let committer = Committer {
            generation: -1,
            member_id: String::new(),
            instance_id: None,
        };
        offsets::commit(
            &self.group_coordinator(group),
            &committer,
            offsets,
            self.group_retry(),
        )
        .await
    }
}
