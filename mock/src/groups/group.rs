//! One classic group's membership: Kafka's `GroupMetadata` and the join, sync, heartbeat and
//! leave half of its `GroupCoordinator`, as a state machine with time passed in.
//!
//! Requests that Kafka parks in a purgatory (a JoinGroup waiting for the other members, a
//! follower's SyncGroup waiting for the leader's) get an [`Answer::Later`]: the member keeps
//! the sending half of a oneshot channel, and whichever later input completes the rebalance
//! (another member's request, or [`Group::tick`] at a deadline) answers through it. Nothing
//! here sleeps or reads a clock; the driver in `groups/mod.rs` passes `now` in.
//!
//! The rules, error codes and their order follow `GroupCoordinator.scala` (Kafka 3.x, the
//! classic protocol of KIP-62, KIP-345 static membership, KIP-394 MEMBER_ID_REQUIRED and
//! KIP-814 skip_assignment).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::member::{
    Answer, GroupState, JoinOutcome, JoinRequest, JoinedMember, Member, SyncOutcome, SyncRequest,
};
use super::offsets::Offsets;

/// How long a new member may sit in a JoinGroup before it is dropped (Kafka's
/// `NewMemberJoinTimeoutMs`): it cannot heartbeat before it knows its member id, and a client
/// that gave up on its request would otherwise stay a defunct member forever.
const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// Where the group is in its rebalance cycle.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Empty,
    /// Waiting for the members to (re)join, until `deadline` at the latest.
    PreparingRebalance {
        deadline: Instant,
        /// Set while an empty group waits out `group.initial.rebalance.delay.ms`; such a wait
        /// never ends early (Kafka's `InitialDelayedJoin`).
        initial: Option<InitialDelay>,
    },
    CompletingRebalance,
    Stable,
}

#[derive(Debug, Clone, Copy)]
struct InitialDelay {
    delay: Duration,
    remaining: Duration,
}

/// A classic group: its members, rebalance state and committed offsets.
#[derive(Debug)]
pub(crate) struct Group {
    phase: Phase,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) leader: Option<String>,
    pub(crate) members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, and when they lapse.
    pending: BTreeMap<String, Instant>,
    /// group.instance.id -> member id.
    statics: BTreeMap<String, String>,
    /// Members whose SyncGroup the current generation still waits for, and until when.
    pending_sync: BTreeSet<String>,
    sync_deadline: Option<Instant>,
    /// A new member joined while an empty group waited out its initial delay.
    new_member_added: bool,
    /// `group.initial.rebalance.delay.ms`, as the last JoinGroup passed it in.
    initial_delay: Duration,
    pub(crate) offsets: Offsets,
}

impl Group {
    /// An empty group.
    pub(crate) fn new() -> Group {
        Group {
            phase: Phase::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            statics: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            sync_deadline: None,
            new_member_added: false,
            initial_delay: Duration::ZERO,
            offsets: Offsets::default(),
        }
    }

    pub(crate) fn state(&self) -> GroupState {
        match self.phase {
            Phase::Empty => GroupState::Empty,
            Phase::PreparingRebalance { .. } => GroupState::PreparingRebalance,
            Phase::CompletingRebalance => GroupState::CompletingRebalance,
            Phase::Stable => GroupState::Stable,
        }
    }

    /// JoinGroup. The caller has checked the coordinator, the group id and the session
    /// timeout, and created the group if the member id is empty. `initial_delay` is the
    /// cluster's `group.initial.rebalance.delay.ms` (a JoinGroup is what starts an empty
    /// group's first rebalance).
    pub(crate) fn join(
        &mut self,
        request: JoinRequest,
        initial_delay: Duration,
        now: Instant,
    ) -> Answer<JoinOutcome> {
        self.initial_delay = initial_delay;
        let answer = if request.member_id.is_empty() {
            self.join_new(request, now)
        } else {
            self.join_known(request, now)
        };
        self.try_complete_join(now);
        answer
    }

    fn join_new(&mut self, request: JoinRequest, now: Instant) -> Answer<JoinOutcome> {
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            return Answer::Now(JoinOutcome::error(
                ResponseError::InconsistentGroupProtocol,
                "",
            ));
        }
        let prefix = request
            .group_instance_id
            .as_deref()
            .unwrap_or(&request.client_id);
        let member_id = format!("{prefix}-{}", uuid::Uuid::from_u128(fastrand::u128(..)));
        match request.group_instance_id.clone() {
            Some(instance) => match self.statics.get(&instance).cloned() {
                Some(old) => self.replace_static_member(&old, member_id, request, now),
                None => self.add_member_and_rebalance(member_id, request, now),
            },
            None if request.require_known_member_id => {
                // The member must come back with this id; until it does (or the session
                // timeout passes) the group waits for it (KIP-394).
                self.pending
                    .insert(member_id.clone(), now + request.session_timeout);
                Answer::Now(JoinOutcome::error(
                    ResponseError::MemberIdRequired,
                    &member_id,
                ))
            }
            None => self.add_member_and_rebalance(member_id, request, now),
        }
    }

    fn join_known(&mut self, request: JoinRequest, now: Instant) -> Answer<JoinOutcome> {
        let member_id = request.member_id.clone();
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            return Answer::Now(JoinOutcome::error(
                ResponseError::InconsistentGroupProtocol,
                &member_id,
            ));
        }
        if self.pending.contains_key(&member_id) {
            if request.group_instance_id.is_some() {
                // Pending ids are only handed to dynamic members; Kafka treats this as a bug.
                return Answer::Now(JoinOutcome::error(
                    ResponseError::InvalidRequest,
                    &member_id,
                ));
            }
            return self.add_member_and_rebalance(member_id, request, now);
        }
        if let Err(e) = self.validate_member(&member_id, request.group_instance_id.as_deref()) {
            return Answer::Now(JoinOutcome::error(e, &member_id));
        }
        let unchanged = self
            .members
            .get(&member_id)
            .is_some_and(|m| m.protocols == request.protocols);
        let is_leader = self.leader.as_deref() == Some(member_id.as_str());
        match self.phase {
            Phase::PreparingRebalance { .. } => self.update_member_and_rebalance(request, now),
            Phase::CompletingRebalance if unchanged => {
                // It did not get its JoinGroup answer: send this generation's again.
                Answer::Now(self.current_join_outcome(&member_id, is_leader))
            }
            Phase::Stable if unchanged && !is_leader => {
                Answer::Now(self.current_join_outcome(&member_id, false))
            }
            // A leader's rejoin always rebalances: it is how a leader reacts to changes its
            // metadata does not show (topic partition counts).
            Phase::CompletingRebalance | Phase::Stable => {
                self.update_member_and_rebalance(request, now)
            }
            Phase::Empty => Answer::Now(JoinOutcome::error(
                ResponseError::UnknownMemberId,
                &member_id,
            )),
        }
    }

    /// This generation's JoinGroup answer for `member_id`.
    fn current_join_outcome(&self, member_id: &str, with_members: bool) -> JoinOutcome {
        JoinOutcome {
            error: None,
            member_id: member_id.to_owned(),
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: false,
            members: if with_members {
                self.member_metadata()
            } else {
                Vec::new()
            },
        }
    }

    fn member_metadata(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        request: JoinRequest,
        now: Instant,
    ) -> Answer<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if matches!(self.phase, Phase::PreparingRebalance { .. }) && self.generation == 0 {
            self.new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member_id.clone());
        }
        if let Some(instance) = &request.group_instance_id {
            self.statics.insert(instance.clone(), member_id.clone());
        }
        self.pending.remove(&member_id);
        self.members.insert(
            member_id.clone(),
            Member {
                id: member_id,
                group_instance_id: request.group_instance_id,
                client_id: request.client_id,
                session_timeout: request.session_timeout,
                rebalance_timeout: request.rebalance_timeout,
                protocols: request.protocols,
                assignment: Bytes::new(),
                join_waiter: Some(tx),
                sync_waiter: None,
                deadline: now + NEW_MEMBER_JOIN_TIMEOUT,
                is_new: true,
            },
        );
        self.maybe_prepare_rebalance(now);
        Answer::Later(rx)
    }

    /// Updates a member from its JoinGroup and parks the request until the rebalance ends.
    fn update_member_and_rebalance(
        &mut self,
        request: JoinRequest,
        now: Instant,
    ) -> Answer<JoinOutcome> {
        let rx = self.update_member(&request.member_id.clone(), request);
        self.maybe_prepare_rebalance(now);
        rx
    }

    fn update_member(&mut self, member_id: &str, request: JoinRequest) -> Answer<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        let Some(member) = self.members.get_mut(member_id) else {
            return Answer::Now(JoinOutcome::error(
                ResponseError::UnknownMemberId,
                member_id,
            ));
        };
        member.protocols = request.protocols;
        member.session_timeout = request.session_timeout;
        member.rebalance_timeout = request.rebalance_timeout;
        // A second JoinGroup from the same member replaces the first, which Kafka never
        // answers (dropping the sender closes that request's connection here).
        member.join_waiter = Some(tx);
        Answer::Later(rx)
    }

    /// A static member (KIP-345) came back with a new incarnation: it takes over the old
    /// member id's place, assignment included, and fences the old one.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        request: JoinRequest,
        now: Instant,
    ) -> Answer<JoinOutcome> {
        let old_leader = self.leader.clone();
        let Some(mut member) = self.members.remove(old_id) else {
            return self.add_member_and_rebalance(new_id, request, now);
        };
        member.answer_join(JoinOutcome::error(ResponseError::FencedInstanceId, old_id));
        member.answer_sync(SyncOutcome::error(ResponseError::FencedInstanceId));
        member.id = new_id.clone();
        member.deadline = now + member.session_timeout;
        self.members.insert(new_id.clone(), member);
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        if let Some(instance) = &request.group_instance_id {
            self.statics.insert(instance.clone(), new_id.clone());
        }
        let supports_skip = request.supports_skip_assignment;
        let answer = self.update_member(&new_id, request);
        match self.phase {
            Phase::Stable if self.protocol == self.select_protocol() => {
                // Nothing the assignment depends on changed: no rebalance. The answer names
                // the old leader id, so that a returning leader does not think it must assign
                // (a stable group would not pass a new assignment on), unless it can say so
                // with skip_assignment (v9+).
                let is_leader = self.leader.as_deref() == Some(new_id.as_str());
                let skip = supports_skip && is_leader;
                let outcome = JoinOutcome {
                    error: None,
                    member_id: new_id.clone(),
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol.clone(),
                    leader: old_leader.unwrap_or_default(),
                    skip_assignment: skip,
                    members: if skip {
                        self.member_metadata()
                    } else {
                        Vec::new()
                    },
                };
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.join_waiter = None;
                }
                return Answer::Now(outcome);
            }
            Phase::Stable => self.maybe_prepare_rebalance(now),
            // The leader may already have assigned to the old member id, which the new one
            // would never get: assign again.
            Phase::CompletingRebalance => self.prepare_rebalance(now),
            Phase::PreparingRebalance { .. } | Phase::Empty => {}
        }
        answer
    }

    /// SyncGroup. The caller has checked the coordinator and that the group exists.
    pub(crate) fn sync(&mut self, request: SyncRequest, now: Instant) -> Answer<SyncOutcome> {
        let error = self
            .validate_member(&request.member_id, request.group_instance_id.as_deref())
            .err()
            .or_else(|| {
                if request.generation != self.generation {
                    Some(ResponseError::IllegalGeneration)
                } else if (request.protocol_type.is_some()
                    && request.protocol_type != self.protocol_type)
                    || (request.protocol_name.is_some() && request.protocol_name != self.protocol)
                {
                    Some(ResponseError::InconsistentGroupProtocol)
                } else {
                    None
                }
            });
        if let Some(error) = error {
            return Answer::Now(SyncOutcome::error(error));
        }
        match self.phase {
            Phase::Empty => Answer::Now(SyncOutcome::error(ResponseError::UnknownMemberId)),
            Phase::PreparingRebalance { .. } => {
                Answer::Now(SyncOutcome::error(ResponseError::RebalanceInProgress))
            }
            Phase::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(member) = self.members.get_mut(&request.member_id) {
                    member.sync_waiter = Some(tx);
                }
                self.pending_sync.remove(&request.member_id);
                if self.leader.as_deref() == Some(request.member_id.as_str()) {
                    let assignments: BTreeMap<String, Bytes> =
                        request.assignments.into_iter().collect();
                    for member in self.members.values_mut() {
                        // Members the leader left out get an empty assignment.
                        member.assignment =
                            assignments.get(&member.id).cloned().unwrap_or_default();
                    }
                    self.propagate_assignment(None, now);
                    self.phase = Phase::Stable;
                }
                Answer::Later(rx)
            }
            Phase::Stable => {
                self.pending_sync.remove(&request.member_id);
                let Some(member) = self.members.get_mut(&request.member_id) else {
                    return Answer::Now(SyncOutcome::error(ResponseError::UnknownMemberId));
                };
                member.deadline = now + member.session_timeout;
                Answer::Now(SyncOutcome {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol.clone(),
                    assignment: member.assignment.clone(),
                })
            }
        }
    }

    /// Answers every parked SyncGroup with its assignment, or with `error` (and no
    /// assignment).
    fn propagate_assignment(&mut self, error: Option<ResponseError>, now: Instant) {
        let (protocol_type, protocol_name) = match error {
            None => (self.protocol_type.clone(), self.protocol.clone()),
            Some(_) => (None, None),
        };
        for member in self.members.values_mut() {
            let outcome = SyncOutcome {
                error,
                protocol_type: protocol_type.clone(),
                protocol_name: protocol_name.clone(),
                assignment: member.assignment.clone(),
            };
            if member.answer_sync(outcome) {
                // Its session may have lapsed while it waited for the leader.
                member.deadline = now + member.session_timeout;
            }
        }
    }

    /// Heartbeat: Ok is error NONE.
    pub(crate) fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        self.validate_member(member_id, group_instance_id)?;
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        if matches!(self.phase, Phase::Empty) {
            return Err(ResponseError::UnknownMemberId);
        }
        if let Some(member) = self.members.get_mut(member_id) {
            member.deadline = now + member.session_timeout;
        }
        match self.phase {
            Phase::PreparingRebalance { .. } => Err(ResponseError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// LeaveGroup for one member. An empty member id with an instance id removes that static
    /// member (an administrator's removal).
    pub(crate) fn leave(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if member_id.is_empty() {
            let current = group_instance_id.and_then(|i| self.statics.get(i).cloned());
            let current = current.ok_or(ResponseError::UnknownMemberId)?;
            self.remove_member_and_update(&current, now);
        } else if self.pending.remove(member_id).is_some() {
            self.try_complete_join(now);
        } else {
            self.validate_member(member_id, group_instance_id)?;
            self.remove_member_and_update(member_id, now);
        }
        Ok(())
    }

    /// Who may commit offsets (Kafka's `validateOffsetCommit`): a member of the current
    /// generation, or anyone with generation -1 and no member id while the group is empty (or,
    /// for transactional commits, always).
    pub(crate) fn validate_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
        transactional: bool,
    ) -> Result<(), ResponseError> {
        if generation >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            self.validate_member(member_id, group_instance_id)?;
            if generation != self.generation {
                return Err(ResponseError::IllegalGeneration);
            }
        } else if !transactional && !matches!(self.phase, Phase::Empty) {
            return Err(ResponseError::UnknownMemberId);
        }
        Ok(())
    }

    /// The group-state half of an OffsetCommit, after [`Group::validate_commit`]: refused
    /// while the leader assigns, and a commit counts as a heartbeat.
    pub(crate) fn accept_commit(
        &mut self,
        member_id: &str,
        now: Instant,
    ) -> Result<(), ResponseError> {
        match self.phase {
            Phase::CompletingRebalance => Err(ResponseError::RebalanceInProgress),
            Phase::Empty => Ok(()),
            Phase::PreparingRebalance { .. } | Phase::Stable => {
                if let Some(member) = self.members.get_mut(member_id) {
                    member.deadline = now + member.session_timeout;
                }
                Ok(())
            }
        }
    }

    /// Kafka's `validateCurrentMember`: a given instance id must map to this member id, and the
    /// member id must be in the group.
    fn validate_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = group_instance_id {
            match self.statics.get(instance) {
                Some(current) if current != member_id => {
                    return Err(ResponseError::FencedInstanceId)
                }
                Some(_) => {}
                None => return Err(ResponseError::UnknownMemberId),
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(ResponseError::UnknownMemberId)
        }
    }

    /// Whether a member with these protocols may join: an empty group takes any non-empty
    /// protocol type and list; otherwise the type must match and one protocol must be
    /// supported by every current member.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if matches!(self.phase, Phase::Empty) {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| self.all_support(name))
    }

    fn all_support(&self, protocol: &str) -> bool {
        self.members
            .values()
            .all(|m| m.protocols.iter().any(|(name, _)| name == protocol))
    }

    /// Kafka's vote: among the protocols every member supports, each member votes for the one
    /// it lists first; most votes wins. Kafka breaks ties arbitrarily; here the leader's
    /// preference does, so the outcome is deterministic.
    fn select_protocol(&self) -> Option<String> {
        let candidates = |m: &Member| -> Vec<String> {
            m.protocols
                .iter()
                .map(|(name, _)| name.clone())
                .filter(|name| self.all_support(name))
                .collect()
        };
        let mut votes: BTreeMap<String, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(first) = candidates(member).into_iter().next() {
                *votes.entry(first).or_default() += 1;
            }
        }
        let most = votes.values().copied().max()?;
        let preference = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .or_else(|| self.members.values().next())
            .map(candidates)
            .unwrap_or_default();
        preference
            .into_iter()
            .find(|p| votes.get(p) == Some(&most))
            .or_else(|| votes.into_iter().find(|(_, v)| *v == most).map(|(p, _)| p))
    }

    /// The longest rebalance timeout of the members: how long a rebalance waits for them.
    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    fn maybe_prepare_rebalance(&mut self, now: Instant) {
        if matches!(
            self.phase,
            Phase::Empty | Phase::Stable | Phase::CompletingRebalance
        ) {
            self.prepare_rebalance(now);
        }
    }

    fn prepare_rebalance(&mut self, now: Instant) {
        if matches!(self.phase, Phase::CompletingRebalance) {
            // The leader's assignment is for the old member set: everyone rejoins.
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
            }
            self.propagate_assignment(Some(ResponseError::RebalanceInProgress), now);
        }
        self.sync_deadline = None;
        self.phase = if matches!(self.phase, Phase::Empty) {
            Phase::PreparingRebalance {
                deadline: now + self.initial_delay,
                initial: Some(InitialDelay {
                    delay: self.initial_delay,
                    remaining: self.rebalance_timeout().saturating_sub(self.initial_delay),
                }),
            }
        } else {
            Phase::PreparingRebalance {
                deadline: now + self.rebalance_timeout(),
                initial: None,
            }
        };
        self.try_complete_join(now);
    }

    /// Ends the join phase early once every member has rejoined (Kafka's `DelayedJoin`
    /// completing), except during the initial delay.
    fn try_complete_join(&mut self, now: Instant) {
        if let Phase::PreparingRebalance { initial: None, .. } = self.phase {
            let all_joined =
                self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some());
            if all_joined {
                self.complete_join(now);
            }
        }
    }

    /// The join phase is over: members that did not rejoin are dropped (static members stay
    /// until their session times out), the next generation starts and every parked JoinGroup
    /// is answered.
    fn complete_join(&mut self, now: Instant) {
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.group_instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in missing {
            self.remove(&id);
        }
        if !self.elect_joined_leader() && !self.members.is_empty() {
            // Only static members that did not rejoin are left: wait another round for them
            // (or for their sessions to end).
            self.phase = Phase::PreparingRebalance {
                deadline: now + self.rebalance_timeout(),
                initial: None,
            };
            return;
        }
        self.generation += 1;
        self.pending_sync.clear();
        if self.members.is_empty() {
            self.protocol = None;
            self.phase = Phase::Empty;
            return;
        }
        self.protocol = self.select_protocol();
        self.phase = Phase::CompletingRebalance;
        let leader = self.leader.clone().unwrap_or_default();
        let generation = self.generation;
        let metadata = self.member_metadata();
        for member in self.members.values_mut() {
            member.answer_join(JoinOutcome {
                error: None,
                member_id: member.id.clone(),
                generation,
                protocol_type: self.protocol_type.clone(),
                protocol_name: self.protocol.clone(),
                leader: leader.clone(),
                skip_assignment: false,
                members: if member.id == leader {
                    metadata.clone()
                } else {
                    Vec::new()
                },
            });
            member.deadline = now + member.session_timeout;
            member.is_new = false;
            self.pending_sync.insert(member.id.clone());
        }
        self.sync_deadline = Some(now + self.rebalance_timeout());
    }

    /// Keeps the leader if it rejoined, else picks a member that did. False if none did.
    fn elect_joined_leader(&mut self) -> bool {
        let Some(leader) = &self.leader else {
            return false;
        };
        if self
            .members
            .get(leader)
            .is_some_and(|m| m.join_waiter.is_some())
        {
            return true;
        }
        match self.members.values().find(|m| m.join_waiter.is_some()) {
            Some(m) => {
                self.leader = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    /// Takes a member out of the group (Kafka's `GroupMetadata.remove`).
    fn remove(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id);
        if let Some(instance) = member.as_ref().and_then(|m| m.group_instance_id.as_ref()) {
            self.statics.remove(instance);
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        self.pending.remove(member_id);
        self.pending_sync.remove(member_id);
        member
    }

    /// A member left or its session ended: its parked JoinGroup is told it is unknown, and the
    /// others rebalance.
    fn remove_member_and_update(&mut self, member_id: &str, now: Instant) {
        if let Some(mut member) = self.remove(member_id) {
            member.answer_join(JoinOutcome::error(ResponseError::UnknownMemberId, ""));
        }
        match self.phase {
            Phase::Stable | Phase::CompletingRebalance => self.maybe_prepare_rebalance(now),
            Phase::PreparingRebalance { .. } => self.try_complete_join(now),
            Phase::Empty => {}
        }
    }

    /// Applies every deadline that has passed by `now`: lapsed MEMBER_ID_REQUIRED ids, ended
    /// sessions, the end of the join phase, and members that never sent SyncGroup. Returns
    /// whether anything changed.
    pub(crate) fn tick(&mut self, now: Instant) -> bool {
        let mut changed = false;
        let lapsed: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in lapsed {
            self.pending.remove(&id);
            changed = true;
        }
        // A member waiting in JoinGroup or SyncGroup cannot heartbeat and is not expired,
        // unless it is new (then it has the new-member timeout).
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.deadline <= now
                    && (m.is_new || (m.join_waiter.is_none() && m.sync_waiter.is_none()))
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            self.remove_member_and_update(&id, now);
            changed = true;
        }
        if let Phase::PreparingRebalance { deadline, initial } = self.phase {
            if deadline <= now {
                match initial {
                    Some(i) if self.new_member_added && !i.remaining.is_zero() => {
                        // More members arrived during the delay: wait a little longer for
                        // the rest of them, within the rebalance timeout.
                        self.new_member_added = false;
                        let delay = self.initial_delay.min(i.remaining);
                        self.phase = Phase::PreparingRebalance {
                            deadline: now + delay,
                            initial: Some(InitialDelay {
                                delay,
                                remaining: i.remaining.saturating_sub(i.delay),
                            }),
                        };
                    }
                    _ => self.complete_join(now),
                }
                changed = true;
            }
        }
        if let Some(deadline) = self.sync_deadline {
            if deadline <= now && matches!(self.phase, Phase::CompletingRebalance | Phase::Stable) {
                self.sync_deadline = None;
                if !self.pending_sync.is_empty() {
                    let lagging: Vec<String> = self.pending_sync.iter().cloned().collect();
                    for id in lagging {
                        self.remove(&id);
                    }
                    self.prepare_rebalance(now);
                }
                changed = true;
            }
        }
        self.try_complete_join(now);
        changed
    }

    /// Whether the group is in state Empty (no members; DeleteGroups may drop it).
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self.phase, Phase::Empty)
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
