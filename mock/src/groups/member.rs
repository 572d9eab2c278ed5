//! What a group's members are and what they ask and are answered: the inputs and outputs
//! of the state machine in [`super::group`], free of wire formats and versions.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// A group's state, as DescribeGroups and ListGroups name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupState {
    /// No members (a group that only stores offsets is always empty).
    Empty,
    /// Collecting JoinGroups for the next generation.
    PreparingRebalance,
    /// JoinGroups answered; waiting for the leader's assignment in SyncGroup.
    CompletingRebalance,
    /// Every member has (or can fetch) its assignment.
    Stable,
    /// The group does not exist (what Kafka answers for an unknown group).
    Dead,
}

impl GroupState {
    /// Kafka's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// An answer to a request: now, or once the rebalance gets far enough.
#[derive(Debug)]
pub(crate) enum Answer<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// A JoinGroup, as the state machine sees it.
#[derive(Debug, Clone)]
pub(crate) struct JoinRequest {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) protocol_type: String,
    /// (name, metadata), most preferred first.
    pub(crate) protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ from a dynamic member: a first join gets MEMBER_ID_REQUIRED (KIP-394).
    pub(crate) require_known_member_id: bool,
    /// JoinGroup v9+: a static leader rejoining a stable group may skip the assignment
    /// (KIP-814).
    pub(crate) supports_skip_assignment: bool,
}

/// What a JoinGroup is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinOutcome {
    pub(crate) error: Option<ResponseError>,
    pub(crate) member_id: String,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader: String,
    pub(crate) skip_assignment: bool,
    /// Only the leader gets the members (with their metadata for the chosen protocol).
    pub(crate) members: Vec<JoinedMember>,
}

impl JoinOutcome {
    pub(crate) fn error(error: ResponseError, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error: Some(error),
            member_id: member_id.to_owned(),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// A member as the leader sees it in its JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinedMember {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) metadata: Bytes,
}

/// A SyncGroup, as the state machine sees it.
#[derive(Debug, Clone)]
pub(crate) struct SyncRequest {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) generation: i32,
    /// v5+: must match the group's.
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    /// The leader's assignment: member id -> bytes.
    pub(crate) assignments: Vec<(String, Bytes)>,
}

/// What a SyncGroup is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyncOutcome {
    pub(crate) error: Option<ResponseError>,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) assignment: Bytes,
}

impl SyncOutcome {
    pub(crate) fn error(error: ResponseError) -> SyncOutcome {
        SyncOutcome {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// One member of a group.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(super) session_timeout: Duration,
    pub(super) rebalance_timeout: Duration,
    /// (name, metadata), most preferred first.
    pub(super) protocols: Vec<(String, Bytes)>,
    pub(crate) assignment: Bytes,
    /// Set while the member's JoinGroup is parked ("awaiting join").
    pub(super) join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    /// Set while the member's SyncGroup is parked.
    pub(super) sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    /// When the session expires without a heartbeat.
    pub(super) deadline: Instant,
    /// Joined during the current rebalance (expires on the new-member timeout instead).
    pub(super) is_new: bool,
}

impl Member {
    /// The member's metadata for `protocol`.
    pub(crate) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    /// Answers the member's parked JoinGroup, if it has one.
    pub(super) fn answer_join(&mut self, outcome: JoinOutcome) {
        if let Some(tx) = self.join_waiter.take() {
            // The requester may have gone (its connection closed): nobody to answer then.
            let _ = tx.send(outcome);
        }
    }

    /// Answers the member's parked SyncGroup, if it has one; true if it had.
    pub(super) fn answer_sync(&mut self, outcome: SyncOutcome) -> bool {
        match self.sync_waiter.take() {
            Some(tx) => {
                let _ = tx.send(outcome);
                true
            }
            None => false,
        }
    }
}
