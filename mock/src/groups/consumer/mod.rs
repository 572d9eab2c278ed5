//! One KIP-848 consumer group (the "consumer" group protocol): group epoch, target assignment
//! epoch and member epochs, a server-side assignor, and incremental reconciliation, as a state
//! machine with time passed in.
//!
//! The coordinator drives everything from heartbeats: a join, a leave, a changed subscription
//! or a changed partition count bumps the group epoch; the next heartbeat computes a new
//! target assignment at that epoch, and each member then reconciles towards its target on its
//! own heartbeats ([`member`]). Nothing waits: every heartbeat is answered at once.
//!
//! The rules and error codes follow Kafka's `GroupMetadataManager.consumerGroupHeartbeat`
//! (3.7+/4.x). References: KIP-848 (the protocol), KIP-1082 (client-generated member ids,
//! ConsumerGroupHeartbeat v1).

pub(crate) mod assignor;
pub(crate) mod member;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use super::offsets::Offsets;
use assignor::{Assignment, AssignorMember};
use member::{is_subset, ConsumerMember, MemberState};

/// The topics as the coordinator sees them: name -> (id, partition count).
pub(crate) type TopicView = BTreeMap<String, (Uuid, i32)>;

/// Member epoch -1: the member leaves.
pub(crate) const LEAVE_EPOCH: i32 = -1;
/// Member epoch -2: a static member leaves for now and keeps its partitions (KIP-848).
pub(crate) const STATIC_LEAVE_EPOCH: i32 = -2;

/// A ConsumerGroupHeartbeat, as the state machine sees it (request shape already checked).
#[derive(Debug, Clone)]
pub(crate) struct Heartbeat {
    pub(crate) member_id: String,
    pub(crate) epoch: i32,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) client_id: String,
    /// -1: unchanged.
    pub(crate) rebalance_timeout_ms: i32,
    /// `None`: unchanged.
    pub(crate) subscribed: Option<BTreeSet<String>>,
    pub(crate) assignor: Option<String>,
    /// What the member owns; `None`: not said.
    pub(crate) owned: Option<Assignment>,
}

impl Heartbeat {
    /// Kafka's "full request": sent on joining and after errors; always answered with the
    /// assignment.
    fn is_full(&self) -> bool {
        self.rebalance_timeout_ms != -1 && self.subscribed.is_some() && self.owned.is_some()
    }
}

/// What a heartbeat is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeartbeatOutcome {
    pub(crate) member_id: String,
    pub(crate) epoch: i32,
    /// The member's assignment, when it must learn it.
    pub(crate) assignment: Option<Assignment>,
}

/// A KIP-848 consumer group.
#[derive(Debug, Default)]
pub(crate) struct ConsumerGroup {
    pub(crate) group_epoch: i32,
    pub(crate) assignment_epoch: i32,
    pub(crate) members: BTreeMap<String, ConsumerMember>,
    /// Member id -> its target assignment at `assignment_epoch`.
    pub(crate) target: BTreeMap<String, Assignment>,
    /// The subscribed topics the group epoch last accounted for.
    metadata: TopicView,
    pub(crate) offsets: Offsets,
}

impl ConsumerGroup {
    /// A group holding `offsets` (those of an empty group of the other type, converted).
    pub(crate) fn with_offsets(offsets: Offsets) -> ConsumerGroup {
        ConsumerGroup {
            offsets,
            ..ConsumerGroup::default()
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Kafka's state names for a consumer group.
    pub(crate) fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// The assignor the members asked for most (the default if none asked).
    pub(crate) fn assignor(&self) -> &str {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.server_assignor.as_deref() {
                *votes.entry(a).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(name, n)| (*n, std::cmp::Reverse(*name)))
            .map_or(assignor::ASSIGNORS[0], |(name, _)| name)
    }

    /// One heartbeat. `topics` is the cluster's topics now; `session_timeout` the
    /// coordinator's `group.consumer.session.timeout.ms`.
    pub(crate) fn heartbeat(
        &mut self,
        hb: Heartbeat,
        topics: &TopicView,
        session_timeout: Duration,
        now: Instant,
    ) -> Result<HeartbeatOutcome, ResponseError> {
        if hb.epoch == LEAVE_EPOCH || hb.epoch == STATIC_LEAVE_EPOCH {
            return self.leave(&hb);
        }
        // Everything this heartbeat changes makes one new group epoch.
        let mut bump = false;
        let before = if hb.epoch == 0 {
            let (before, joined) = self.join(&hb, session_timeout, now)?;
            bump |= joined;
            before
        } else {
            self.check_epoch(&hb)?
        };
        let member_id = hb.member_id.clone();
        if let Some(member) = self.members.get_mut(&member_id) {
            member.session_deadline = now + session_timeout;
            if let Some(topics) = &hb.subscribed {
                bump |= *topics != member.subscribed;
                member.subscribed = topics.clone();
            }
            if let Some(assignor) = &hb.assignor {
                bump |= member.server_assignor.as_ref() != Some(assignor);
                member.server_assignor = Some(assignor.clone());
            }
            if hb.rebalance_timeout_ms > 0 {
                member.rebalance_timeout = Duration::from_millis(hb.rebalance_timeout_ms as u64);
            }
            if hb.rack_id.is_some() {
                member.rack_id = hb.rack_id.clone();
            }
        }
        bump |= self.refresh_metadata(topics);
        if bump {
            self.group_epoch += 1;
        }
        self.maybe_compute_target();
        let held = self.held_by_others(&member_id);
        let target = self.target.get(&member_id).cloned().unwrap_or_default();
        let Some(member) = self.members.get_mut(&member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        member.reconcile(
            hb.owned.as_ref(),
            &target,
            self.assignment_epoch,
            &held,
            now,
        );
        let changed = before.as_ref() != Some(&member.assigned);
        Ok(HeartbeatOutcome {
            member_id,
            epoch: member.epoch,
            assignment: (hb.epoch == 0 || hb.is_full() || changed).then(|| member.assigned.clone()),
        })
    }

    /// Epoch 0: a new member, a member that lost its partitions and rejoins with its id, or a
    /// static member coming back. Returns the assignment it had (for a returning static one)
    /// and whether the group changed.
    fn join(
        &mut self,
        hb: &Heartbeat,
        session_timeout: Duration,
        now: Instant,
    ) -> Result<(Option<Assignment>, bool), ResponseError> {
        let mut fresh = ConsumerMember {
            id: hb.member_id.clone(),
            instance_id: hb.instance_id.clone(),
            rack_id: hb.rack_id.clone(),
            client_id: hb.client_id.clone(),
            epoch: 0,
            previous_epoch: -1,
            state: MemberState::Stable,
            subscribed: BTreeSet::new(),
            server_assignor: None,
            rebalance_timeout: Duration::from_millis(hb.rebalance_timeout_ms.max(0) as u64),
            assigned: Assignment::new(),
            revoking: Assignment::new(),
            session_deadline: now + session_timeout,
            revocation_deadline: None,
        };
        let previous = hb.instance_id.as_ref().and_then(|instance| {
            self.members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(instance) && m.id != hb.member_id)
                .cloned()
        });
        if let Some(previous) = previous {
            if previous.state != MemberState::StaticLeft {
                return Err(ResponseError::UnreleasedInstanceId);
            }
            // The static member is back: it takes over the old incarnation's place, epoch
            // and partitions, and nobody else notices (no new group epoch).
            self.members.remove(&previous.id);
            let target = self.target.remove(&previous.id);
            fresh.epoch = previous.previous_epoch;
            fresh.previous_epoch = previous.previous_epoch;
            fresh.assigned = previous.assigned.clone();
            fresh.subscribed = previous.subscribed;
            fresh.server_assignor = previous.server_assignor;
            if let Some(target) = target {
                self.target.insert(hb.member_id.clone(), target);
            }
            self.members.insert(hb.member_id.clone(), fresh);
            return Ok((Some(previous.assigned), false));
        }
        // A known id at epoch 0: the member lost its partitions and starts over.
        self.remove(&hb.member_id);
        self.members.insert(hb.member_id.clone(), fresh);
        Ok((None, true))
    }

    /// A heartbeat at epoch > 0: the member must exist and be at its epoch, or at the previous
    /// one owning no more than it has (the answer that bumped it may have been lost).
    fn check_epoch(&self, hb: &Heartbeat) -> Result<Option<Assignment>, ResponseError> {
        let member = self
            .members
            .get(&hb.member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if hb.instance_id.is_some() && hb.instance_id != member.instance_id {
            return Err(ResponseError::FencedInstanceId);
        }
        if hb.epoch > member.epoch {
            return Err(ResponseError::FencedMemberEpoch);
        }
        if hb.epoch < member.epoch {
            let owned_ok = hb
                .owned
                .as_ref()
                .is_none_or(|owned| is_subset(owned, &member.assigned));
            if hb.epoch != member.previous_epoch || !owned_ok {
                return Err(ResponseError::FencedMemberEpoch);
            }
        }
        Ok(Some(member.assigned.clone()))
    }

    fn leave(&mut self, hb: &Heartbeat) -> Result<HeartbeatOutcome, ResponseError> {
        let member = self
            .members
            .get_mut(&hb.member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if hb.epoch == STATIC_LEAVE_EPOCH && member.instance_id.is_some() {
            // Its partitions wait for it until its session ends.
            if member.state != MemberState::StaticLeft {
                member.previous_epoch = member.epoch;
            }
            member.epoch = STATIC_LEAVE_EPOCH;
            member.state = MemberState::StaticLeft;
            member.revoking.clear();
            member.revocation_deadline = None;
        } else {
            self.remove_and_bump(&hb.member_id);
        }
        Ok(HeartbeatOutcome {
            member_id: hb.member_id.clone(),
            epoch: hb.epoch,
            assignment: None,
        })
    }

    fn remove(&mut self, member_id: &str) -> bool {
        self.target.remove(member_id);
        self.members.remove(member_id).is_some()
    }

    fn remove_and_bump(&mut self, member_id: &str) {
        if self.remove(member_id) {
            self.group_epoch += 1;
        }
    }

    /// Whether a subscribed topic appeared, went or changed its partition count (a new group
    /// epoch is due).
    fn refresh_metadata(&mut self, topics: &TopicView) -> bool {
        let subscribed: BTreeSet<&String> = self
            .members
            .values()
            .flat_map(|m| m.subscribed.iter())
            .collect();
        let view: TopicView = subscribed
            .into_iter()
            .filter_map(|name| topics.get(name).map(|t| (name.clone(), *t)))
            .collect();
        if view == self.metadata {
            return false;
        }
        self.metadata = view;
        !self.members.is_empty()
    }

    /// Computes the target assignment if the group epoch moved past it.
    fn maybe_compute_target(&mut self) {
        if self.assignment_epoch >= self.group_epoch {
            return;
        }
        let counts: BTreeMap<Uuid, i32> = self.metadata.values().copied().collect();
        let members: BTreeMap<String, AssignorMember<'_>> = self
            .members
            .iter()
            .map(|(id, m)| {
                let topics = m
                    .subscribed
                    .iter()
                    .filter_map(|name| self.metadata.get(name).map(|(id, _)| *id))
                    .collect();
                let current = self.target.get(id);
                (id.clone(), AssignorMember { topics, current })
            })
            .collect();
        let target = assignor::assign(self.assignor(), &members, &counts);
        self.target = target;
        self.assignment_epoch = self.group_epoch;
    }

    /// Every partition a member other than `member_id` holds (assigned or being revoked).
    fn held_by_others(&self, member_id: &str) -> BTreeSet<(Uuid, i32)> {
        self.members
            .values()
            .filter(|m| m.id != member_id)
            .flat_map(|m| member::flatten(&m.assigned).chain(member::flatten(&m.revoking)))
            .collect()
    }

    /// Who may commit or fetch offsets: anyone with epoch -1 while the group is empty (and,
    /// transactionally, anyone naming no member), else a member at its epoch; a lower epoch
    /// is STALE_MEMBER_EPOCH, a higher one FENCED_MEMBER_EPOCH (Kafka's
    /// `ConsumerGroup.validateOffsetCommit`). `version` is the OffsetCommit's.
    pub(crate) fn validate_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        epoch: i32,
        transactional: bool,
        version: i16,
    ) -> Result<(), ResponseError> {
        if epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        if transactional && epoch == -1 && member_id.is_empty() && group_instance_id.is_none() {
            return Ok(());
        }
        let member = self
            .members
            .get(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        // Only OffsetCommit v9+ carries a member epoch rather than a generation.
        if !transactional && version < 9 {
            return Err(ResponseError::UnsupportedVersion);
        }
        Self::validate_epoch(epoch, member.epoch)
    }

    /// OffsetFetch v9+: epoch -1 is an admin's fetch; a member must be at its epoch.
    pub(crate) fn validate_fetch(&self, member_id: &str, epoch: i32) -> Result<(), ResponseError> {
        if epoch == -1 {
            return Ok(());
        }
        let member = self
            .members
            .get(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        Self::validate_epoch(epoch, member.epoch)
    }

    fn validate_epoch(received: i32, expected: i32) -> Result<(), ResponseError> {
        match received.cmp(&expected) {
            std::cmp::Ordering::Greater => Err(ResponseError::FencedMemberEpoch),
            std::cmp::Ordering::Less => Err(ResponseError::StaleMemberEpoch),
            std::cmp::Ordering::Equal => Ok(()),
        }
    }

    /// Removes members whose session ended, and members that held partitions pending
    /// revocation past their rebalance timeout; true if any went.
    pub(crate) fn tick(&mut self, now: Instant) -> bool {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline <= now || m.revocation_deadline.is_some_and(|d| d <= now)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            self.remove_and_bump(id);
        }
        !expired.is_empty()
    }
}

#[cfg(test)]
mod tests;
