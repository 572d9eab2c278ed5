//! The KIP-848 state machine, driven by hand: joins, incremental hand-overs, fencing, leaves
//! and timeouts.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use super::assignor::Assignment;
use super::{ConsumerGroup, Heartbeat, HeartbeatOutcome, TopicView, STATIC_LEAVE_EPOCH};

const TOPIC: Uuid = Uuid::from_u128(42);
const SESSION: Duration = Duration::from_secs(10);

fn topics() -> TopicView {
    BTreeMap::from([("orders".to_owned(), (TOPIC, 6))])
}

fn join(id: &str) -> Heartbeat {
    Heartbeat {
        member_id: id.to_owned(),
        epoch: 0,
        instance_id: None,
        rack_id: None,
        client_id: "test".to_owned(),
        rebalance_timeout_ms: 5000,
        subscribed: Some(BTreeSet::from(["orders".to_owned()])),
        assignor: None,
        owned: Some(Assignment::new()),
    }
}

/// A steady-state heartbeat reporting `owned`.
fn beat(id: &str, epoch: i32, owned: &Assignment) -> Heartbeat {
    Heartbeat {
        epoch,
        rebalance_timeout_ms: -1,
        subscribed: None,
        owned: Some(owned.clone()),
        ..join(id)
    }
}

fn partitions(a: &Option<Assignment>) -> BTreeSet<i32> {
    a.as_ref()
        .and_then(|a| a.get(&TOPIC))
        .cloned()
        .unwrap_or_default()
}

struct Driver {
    group: ConsumerGroup,
    now: Instant,
    /// member -> (epoch, owned)
    members: BTreeMap<String, (i32, Assignment)>,
}

impl Driver {
    fn new() -> Driver {
        Driver {
            group: ConsumerGroup::default(),
            now: Instant::now(),
            members: BTreeMap::new(),
        }
    }

    fn send(&mut self, hb: Heartbeat) -> Result<HeartbeatOutcome, ResponseError> {
        let id = hb.member_id.clone();
        let out = self.group.heartbeat(hb, &topics(), SESSION, self.now)?;
        let owned = out.assignment.clone().unwrap_or_else(|| {
            self.members
                .get(&id)
                .map(|m| m.1.clone())
                .unwrap_or_default()
        });
        self.members.insert(id, (out.epoch, owned));
        Ok(out)
    }

    fn join(&mut self, id: &str) -> HeartbeatOutcome {
        self.send(join(id)).unwrap()
    }

    /// A heartbeat of `id` with what it owns; it releases what it was asked to at once.
    fn beat(&mut self, id: &str) -> HeartbeatOutcome {
        let (epoch, owned) = self.members[id].clone();
        self.send(beat(id, epoch, &owned)).unwrap()
    }

    fn owned(&self, id: &str) -> BTreeSet<i32> {
        self.members[id].1.get(&TOPIC).cloned().unwrap_or_default()
    }

    /// Heartbeats every member until nothing changes.
    fn settle(&mut self) {
        for _ in 0..10 {
            let ids: Vec<String> = self.members.keys().cloned().collect();
            for id in ids {
                self.beat(&id);
            }
        }
    }
}

#[test]
fn two_then_three_members_split_six_partitions_without_overlap() {
    let mut d = Driver::new();
    let a = d.join("a");
    assert_eq!(a.epoch, 1);
    assert_eq!(partitions(&a.assignment).len(), 6);
    let b = d.join("b");
    // b's target has three partitions a still owns: it gets none until a releases them.
    assert_eq!(b.epoch, 2);
    assert!(partitions(&b.assignment).is_empty());
    let a = d.beat("a");
    // a must revoke first, at its old epoch.
    assert_eq!(a.epoch, 1);
    assert_eq!(partitions(&a.assignment).len(), 3);
    d.settle();
    assert_eq!(d.owned("a").len(), 3);
    assert_eq!(d.owned("b").len(), 3);
    assert!(d.owned("a").is_disjoint(&d.owned("b")));
    d.join("c");
    d.settle();
    let all: Vec<BTreeSet<i32>> = ["a", "b", "c"].iter().map(|m| d.owned(m)).collect();
    assert!(all.iter().all(|o| o.len() == 2), "{all:?}");
    let union: BTreeSet<i32> = all.iter().flatten().copied().collect();
    assert_eq!(union.len(), 6);
    assert_eq!(d.group.state_name(), "Stable");
}

#[test]
fn a_partition_moves_only_after_its_owner_released_it() {
    let mut d = Driver::new();
    d.join("a");
    d.join("b");
    // b heartbeats again before a acknowledged: still nothing for b.
    let b = d.beat("b");
    assert!(d.owned("b").is_empty(), "{b:?}");
    // a heartbeats without releasing (owned not given): still pending.
    let a = d.send(Heartbeat {
        owned: None,
        ..beat("a", 1, &Assignment::new())
    });
    assert_eq!(a.unwrap().epoch, 1);
    assert_eq!(d.owned("a").len(), 3);
    assert!(d.beat("b").assignment.is_none());
    // a releases: b can take them on its next heartbeat.
    d.beat("a");
    d.beat("b");
    assert_eq!(d.owned("b").len(), 3);
}

#[test]
fn fencing_and_unknown_members() {
    let mut d = Driver::new();
    d.join("a");
    let too_high = d.send(beat("a", 7, &Assignment::new()));
    assert_eq!(too_high, Err(ResponseError::FencedMemberEpoch));
    let unknown = d.send(beat("x", 1, &Assignment::new()));
    assert_eq!(unknown, Err(ResponseError::UnknownMemberId));
    // Committing with an older epoch is stale, a newer one fenced.
    assert_eq!(d.group.validate_commit("a", None, 1, false, 9), Ok(()));
    assert_eq!(
        d.group.validate_commit("a", None, 0, false, 9),
        Err(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(
        d.group.validate_commit("a", None, 2, false, 9),
        Err(ResponseError::FencedMemberEpoch)
    );
    assert_eq!(
        d.group.validate_commit("", None, -1, false, 9),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn leaving_and_session_expiry_free_partitions() {
    let mut d = Driver::new();
    d.join("a");
    d.join("b");
    d.join("c");
    d.settle();
    let left = d.send(beat("c", -1, &Assignment::new())).unwrap();
    assert_eq!(left.epoch, -1);
    d.members.remove("c");
    d.settle();
    assert_eq!(d.owned("a").len() + d.owned("b").len(), 6);
    // b stops heartbeating: after the session timeout a owns everything.
    d.members.remove("b");
    d.now += SESSION / 2;
    d.beat("a");
    d.now += SESSION / 2 + Duration::from_millis(1);
    assert!(d.group.tick(d.now));
    d.settle();
    assert_eq!(d.owned("a").len(), 6);
    assert_eq!(
        d.send(beat("b", 3, &Assignment::new())),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn a_member_that_does_not_revoke_in_time_is_removed() {
    let mut d = Driver::new();
    d.join("a");
    d.join("b");
    // a learns it must revoke but never acknowledges.
    d.group
        .heartbeat(
            Heartbeat {
                owned: None,
                ..beat("a", 1, &Assignment::new())
            },
            &topics(),
            SESSION,
            d.now,
        )
        .unwrap();
    d.now += Duration::from_millis(5001);
    d.beat("b");
    assert!(d.group.tick(d.now));
    assert!(!d.group.members.contains_key("a"));
    d.members.remove("a");
    d.settle();
    assert_eq!(d.owned("b").len(), 6);
}

#[test]
fn a_lost_response_is_tolerated_with_the_previous_epoch() {
    let mut d = Driver::new();
    d.join("a");
    d.join("b");
    d.settle();
    let epoch = d.members["a"].0;
    let owned = d.members["a"].1.clone();
    d.join("c");
    d.settle();
    // a's last answers were lost: it still says epoch `epoch` with a subset of what it has.
    let subset: Assignment = d.members["a"].1.clone();
    assert!(d.group.members["a"].epoch > epoch);
    let prev = d.group.members["a"].previous_epoch;
    assert!(d.send(beat("a", prev, &subset)).is_ok());
    // Owning more than it has at an older epoch is fenced.
    assert_eq!(
        d.send(beat("a", prev, &owned)).err(),
        (owned != subset).then_some(ResponseError::FencedMemberEpoch)
    );
}

#[test]
fn a_static_member_comes_back_to_its_partitions() {
    let mut d = Driver::new();
    let static_join = |id: &str| Heartbeat {
        instance_id: Some("box-1".to_owned()),
        ..join(id)
    };
    d.send(static_join("s1")).unwrap();
    d.join("b");
    d.settle();
    let owned = d.owned("s1");
    assert_eq!(owned.len(), 3);
    let epoch = d.group.group_epoch;
    // Another incarnation may not take the instance id while s1 is active.
    assert_eq!(
        d.send(static_join("s2")),
        Err(ResponseError::UnreleasedInstanceId)
    );
    // s1 leaves for a restart (-2): its partitions wait for it, the group does not move.
    let left = d
        .send(Heartbeat {
            instance_id: Some("box-1".to_owned()),
            ..beat("s1", STATIC_LEAVE_EPOCH, &Assignment::new())
        })
        .unwrap();
    assert_eq!(left.epoch, STATIC_LEAVE_EPOCH);
    d.members.remove("s1");
    d.beat("b");
    assert_eq!(d.owned("b").len(), 3);
    // The new incarnation gets the same partitions at once, without a new group epoch.
    let back = d.send(static_join("s2")).unwrap();
    assert_eq!(partitions(&back.assignment), owned);
    assert!(back.epoch > 0);
    assert_eq!(d.group.group_epoch, epoch);
    assert!(!d.group.members.contains_key("s1"));
}
