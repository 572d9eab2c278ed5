//! One member of a KIP-848 group and its reconciliation with its target assignment (Kafka's
//! `ConsumerGroupMember` and `CurrentAssignmentBuilder`).
//!
//! The rule that makes the protocol incremental: a member first gives up what its target no
//! longer has (it keeps its epoch until its heartbeat shows the partitions released), and only
//! then moves to the target epoch; a partition of its target that another member still holds
//! (assigned or pending revocation) is handed to it on a later heartbeat, once released.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::assignor::Assignment;

/// Where a member is in reconciling with its target (Kafka's `MemberState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberState {
    /// It owns its whole target at the target epoch.
    Stable,
    /// It must release partitions before it can move on.
    UnrevokedPartitions,
    /// It is at the target epoch but waits for partitions other members still hold.
    UnreleasedPartitions,
    /// A static member that left with epoch -2; it keeps its partitions until it comes back
    /// or its session ends.
    StaticLeft,
}

/// One member of a consumer group.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerMember {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) epoch: i32,
    pub(crate) previous_epoch: i32,
    pub(crate) state: MemberState,
    pub(crate) subscribed: BTreeSet<String>,
    pub(crate) server_assignor: Option<String>,
    pub(crate) rebalance_timeout: Duration,
    /// What it owns now (the heartbeat response's assignment).
    pub(crate) assigned: Assignment,
    /// What it must release before it moves on.
    pub(crate) revoking: Assignment,
    pub(crate) session_deadline: Instant,
    /// While partitions are pending revocation: when the member is fenced for holding them.
    pub(crate) revocation_deadline: Option<Instant>,
}

/// Whether `a` and `b` share a partition.
pub(crate) fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(topic, ps)| b.get(topic).is_some_and(|other| !ps.is_disjoint(other)))
}

/// Whether every partition of `a` is in `b`.
pub(crate) fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(topic, ps)| ps.is_empty() || b.get(topic).is_some_and(|other| ps.is_subset(other)))
}

/// Every (topic, partition) of an assignment.
pub(crate) fn flatten(a: &Assignment) -> impl Iterator<Item = (Uuid, i32)> + '_ {
    a.iter()
        .flat_map(|(topic, ps)| ps.iter().map(move |p| (*topic, *p)))
}

impl ConsumerMember {
    /// Moves the member towards `target` (of epoch `target_epoch`). `owned` is what its
    /// heartbeat says it owns (`None` if it did not say); `held` is every partition another
    /// member holds (assigned or pending revocation).
    pub(crate) fn reconcile(
        &mut self,
        owned: Option<&Assignment>,
        target: &Assignment,
        target_epoch: i32,
        held: &BTreeSet<(Uuid, i32)>,
        now: Instant,
    ) {
        match self.state {
            MemberState::StaticLeft => {}
            MemberState::UnrevokedPartitions => {
                // Moving on needs the member's word that the partitions are gone.
                let released = owned.is_some_and(|o| !intersects(o, &self.revoking));
                if released {
                    self.revoking.clear();
                    self.revocation_deadline = None;
                    self.next_assignment(target, target_epoch, held, now);
                }
            }
            MemberState::Stable if self.epoch == target_epoch => {}
            MemberState::Stable | MemberState::UnreleasedPartitions => {
                self.next_assignment(target, target_epoch, held, now);
            }
        }
    }

    fn next_assignment(
        &mut self,
        target: &Assignment,
        target_epoch: i32,
        held: &BTreeSet<(Uuid, i32)>,
        now: Instant,
    ) {
        let mut keep = Assignment::new();
        let mut revoke = Assignment::new();
        for (topic, p) in flatten(&self.assigned) {
            let stays = target.get(&topic).is_some_and(|ps| ps.contains(&p));
            let side = if stays { &mut keep } else { &mut revoke };
            side.entry(topic).or_default().insert(p);
        }
        if !revoke.is_empty() {
            // Revoke first, at the current epoch; nothing new until the member released them.
            self.assigned = keep;
            self.revoking = revoke;
            self.state = MemberState::UnrevokedPartitions;
            self.revocation_deadline = Some(now + self.rebalance_timeout);
            return;
        }
        let mut unreleased = false;
        for (topic, p) in flatten(target) {
            if keep.get(&topic).is_some_and(|ps| ps.contains(&p)) {
                continue;
            }
            if held.contains(&(topic, p)) {
                unreleased = true;
            } else {
                keep.entry(topic).or_default().insert(p);
            }
        }
        self.assigned = keep;
        if self.epoch != target_epoch {
            self.previous_epoch = self.epoch;
            self.epoch = target_epoch;
        }
        self.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
    }
}
