//! The member side of the KIP-848 heartbeat, as a state machine with no I/O: what the next
//! ConsumerGroupHeartbeat says, and what an answer or an error changes.
//!
//! Heartbeats are deltas: a field the coordinator already has is left null. The member sends
//! everything ("full") when it joins and after a failed heartbeat (the coordinator may have
//! missed the last one), its subscription when it changed, and the partitions it owns when it
//! finished reconciling (that is how it tells the coordinator it released partitions).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use uuid::Uuid;

/// Partitions by topic id.
pub(crate) type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// Member epoch -1: leaving.
pub(crate) const LEAVE_EPOCH: i32 = -1;
/// Member epoch -2: a static member leaving for now, keeping its partitions.
pub(crate) const STATIC_LEAVE_EPOCH: i32 = -2;

/// One heartbeat's content; `None` fields are sent as null ("unchanged").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Beat {
    pub(crate) member_id: String,
    pub(crate) epoch: i32,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    /// -1: unchanged.
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) subscription: Option<Vec<String>>,
    pub(crate) assignor: Option<String>,
    pub(crate) owned: Option<Assignment>,
}

/// A successful heartbeat answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) member_id: Option<String>,
    pub(crate) epoch: i32,
    pub(crate) interval: Option<Duration>,
    pub(crate) assignment: Option<Assignment>,
}

/// What the member is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Profile {
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) assignor: Option<String>,
    pub(crate) rebalance_timeout: Duration,
}

/// The member's protocol state.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    profile: Profile,
    /// Chosen by the client (ConsumerGroupHeartbeat v1, KIP-1082), kept for the consumer's
    /// lifetime; a v0 coordinator may replace it.
    pub(crate) member_id: String,
    /// 0 while joining.
    pub(crate) epoch: i32,
    subscription: BTreeSet<String>,
    subscription_sent: bool,
    /// What the application owns now, as last reported by [`Member::ack`].
    owned: Assignment,
    owned_sent: bool,
    full: bool,
    /// The heartbeat interval the coordinator asks for.
    pub(crate) interval: Duration,
    /// The latest assignment from the coordinator the application has not taken yet.
    target: Option<Assignment>,
    /// Fenced or unknown: the application must give everything up, then [`Member::rejoin`].
    pub(crate) lost: bool,
}

impl Member {
    pub(crate) fn new(profile: Profile) -> Member {
        Member {
            profile,
            member_id: Uuid::from_u128(fastrand::u128(..)).to_string(),
            epoch: 0,
            subscription: BTreeSet::new(),
            subscription_sent: false,
            owned: Assignment::new(),
            owned_sent: false,
            full: true,
            interval: Duration::from_secs(5),
            target: None,
            lost: false,
        }
    }

    pub(crate) fn subscribe(&mut self, topics: &BTreeSet<String>) {
        if *topics != self.subscription {
            self.subscription = topics.clone();
            self.subscription_sent = false;
        }
    }

    /// Whether to heartbeat at all: once subscribed, and while in the group even with an
    /// empty subscription (the coordinator then takes every partition back, in order).
    pub(crate) fn wants_heartbeats(&self) -> bool {
        !self.subscription.is_empty() || self.epoch > 0
    }

    /// The next heartbeat.
    pub(crate) fn beat(&self) -> Beat {
        let full = self.full || self.epoch == 0;
        let rebalance_ms =
            i32::try_from(self.profile.rebalance_timeout.as_millis()).unwrap_or(i32::MAX);
        Beat {
            member_id: self.member_id.clone(),
            epoch: self.epoch,
            instance_id: self.profile.instance_id.clone().filter(|_| full),
            rack_id: self.profile.rack_id.clone().filter(|_| full),
            rebalance_timeout_ms: if full { rebalance_ms } else { -1 },
            subscription: (full || !self.subscription_sent)
                .then(|| self.subscription.iter().cloned().collect()),
            assignor: self.profile.assignor.clone().filter(|_| full),
            owned: (full || !self.owned_sent).then(|| {
                // Joining, the member owns nothing (and must say so).
                if self.epoch == 0 {
                    Assignment::new()
                } else {
                    self.owned.clone()
                }
            }),
        }
    }

    /// The heartbeat that leaves: -1, or -2 for a static member (its partitions wait for it).
    pub(crate) fn leave_beat(&self) -> Beat {
        let epoch = if self.profile.instance_id.is_some() {
            STATIC_LEAVE_EPOCH
        } else {
            LEAVE_EPOCH
        };
        Beat {
            epoch,
            rebalance_timeout_ms: -1,
            subscription: None,
            assignor: None,
            owned: None,
            rack_id: None,
            ..self.beat()
        }
    }

    /// `sent` was answered with `answer`.
    pub(crate) fn on_answer(&mut self, sent: &Beat, answer: Answer) {
        if sent.epoch != self.epoch || self.lost {
            // Answer to a heartbeat from before a rejoin: stale.
            return;
        }
        if let Some(list) = &sent.subscription {
            let current: Vec<String> = self.subscription.iter().cloned().collect();
            self.subscription_sent = *list == current;
        }
        // Joining it said "nothing", which is what it owns until it acknowledges more.
        if sent.owned.is_some() && (sent.epoch == 0 || sent.owned.as_ref() == Some(&self.owned)) {
            self.owned_sent = true;
        }
        self.full = false;
        if let Some(id) = answer.member_id.filter(|id| !id.is_empty()) {
            self.member_id = id;
        }
        self.epoch = answer.epoch;
        if let Some(interval) = answer.interval {
            self.interval = interval;
        }
        if let Some(assignment) = answer.assignment {
            self.target = Some(assignment);
        }
    }

    /// FENCED_MEMBER_EPOCH or UNKNOWN_MEMBER_ID: the partitions are gone.
    pub(crate) fn on_fenced(&mut self) {
        self.lost = true;
        self.target = None;
    }

    /// A heartbeat failed in a way a retry may fix: the next one is full.
    pub(crate) fn on_failure(&mut self) {
        self.full = true;
    }

    /// The application gave everything up after a loss: join again with epoch 0, same id.
    pub(crate) fn rejoin(&mut self) {
        self.lost = false;
        self.epoch = 0;
        self.owned.clear();
        self.owned_sent = false;
        self.full = true;
        self.target = None;
    }

    /// The assignment the application has not taken yet.
    pub(crate) fn take_target(&mut self) -> Option<Assignment> {
        self.target.take()
    }

    /// Gives a target back (it could not be applied yet), unless a newer one came.
    pub(crate) fn put_back(&mut self, target: Assignment) {
        self.target.get_or_insert(target);
    }

    /// The application owns `owned` now; the next heartbeat reports it.
    pub(crate) fn ack(&mut self, owned: Assignment) {
        self.owned = owned;
        self.owned_sent = false;
    }

    /// Whether a heartbeat should go now rather than at the interval.
    pub(crate) fn is_urgent(&self) -> bool {
        self.full || !self.subscription_sent || !self.owned_sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> Member {
        let mut m = Member::new(Profile {
            instance_id: None,
            rack_id: None,
            assignor: Some("range".to_owned()),
            rebalance_timeout: Duration::from_secs(30),
        });
        m.subscribe(&BTreeSet::from(["orders".to_owned()]));
        m
    }

    fn answer(epoch: i32, assignment: Option<Assignment>) -> Answer {
        Answer {
            member_id: None,
            epoch,
            interval: Some(Duration::from_millis(200)),
            assignment,
        }
    }

    #[test]
    fn joins_with_everything_then_sends_deltas() {
        let mut m = member();
        let join = m.beat();
        assert_eq!(join.epoch, 0);
        assert_eq!(join.rebalance_timeout_ms, 30_000);
        assert_eq!(join.subscription, Some(vec!["orders".to_owned()]));
        assert_eq!(join.owned, Some(Assignment::new()));
        assert_eq!(join.assignor.as_deref(), Some("range"));
        let topic = Uuid::from_u128(1);
        let given = Assignment::from([(topic, BTreeSet::from([0, 1]))]);
        m.on_answer(&join, answer(3, Some(given.clone())));
        assert_eq!(m.epoch, 3);
        assert_eq!(m.interval, Duration::from_millis(200));
        assert_eq!(m.take_target(), Some(given.clone()));
        let steady = m.beat();
        assert_eq!(steady.rebalance_timeout_ms, -1);
        assert_eq!(steady.subscription, None);
        assert_eq!(steady.assignor, None);
        // Reconciled: the next heartbeat says what it owns, once.
        m.ack(given.clone());
        assert!(m.is_urgent());
        let ack = m.beat();
        assert_eq!(ack.owned, Some(given));
        m.on_answer(&ack, answer(3, None));
        assert!(!m.is_urgent());
        assert_eq!(m.beat().owned, None);
    }

    #[test]
    fn fencing_loses_everything_and_rejoins_with_the_same_id() {
        let mut m = member();
        let id = m.member_id.clone();
        let join = m.beat();
        m.on_answer(&join, answer(2, Some(Assignment::new())));
        m.on_fenced();
        assert!(m.lost);
        assert_eq!(m.take_target(), None);
        m.rejoin();
        let again = m.beat();
        assert_eq!((again.epoch, again.member_id.as_str()), (0, id.as_str()));
        assert_eq!(again.owned, Some(Assignment::new()));
    }

    #[test]
    fn a_failure_makes_the_next_heartbeat_full_and_leaving_says_minus_one() {
        let mut m = member();
        let join = m.beat();
        m.on_answer(&join, answer(1, None));
        m.on_failure();
        let full = m.beat();
        assert!(full.subscription.is_some() && full.owned.is_some());
        assert_eq!(m.leave_beat().epoch, LEAVE_EPOCH);
        assert_eq!(m.leave_beat().owned, None);
    }
}
