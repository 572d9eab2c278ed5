//! The group state machine without a network or a clock: each test feeds requests and
//! instants in and checks the answers against Kafka's coordinator.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::*;

const SESSION: Duration = Duration::from_secs(10);
const REBALANCE: Duration = Duration::from_secs(30);
const DELAY: Duration = Duration::from_millis(100);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn join_request(member_id: &str, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_owned(),
        group_instance_id: None,
        client_id: "client".to_owned(),
        session_timeout: SESSION,
        rebalance_timeout: REBALANCE,
        protocol_type: "consumer".to_owned(),
        protocols: protocols
            .iter()
            .map(|p| ((*p).to_owned(), Bytes::from(format!("meta-{p}"))))
            .collect(),
        require_known_member_id: true,
        supports_skip_assignment: false,
    }
}

fn static_request(instance: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance.to_owned()),
        require_known_member_id: false,
        ..join_request("", &["range"])
    }
}

fn join(group: &mut Group, request: JoinRequest, t: Instant) -> Answer<JoinOutcome> {
    group.join(request, DELAY, t)
}

fn now<T: std::fmt::Debug>(answer: Answer<T>) -> T {
    match answer {
        Answer::Now(outcome) => outcome,
        Answer::Later(_) => panic!("expected an immediate answer"),
    }
}

fn later<T: std::fmt::Debug>(answer: Answer<T>) -> oneshot::Receiver<T> {
    match answer {
        Answer::Later(rx) => rx,
        Answer::Now(outcome) => panic!("expected a parked request, got {outcome:?}"),
    }
}

fn answered<T>(rx: &mut oneshot::Receiver<T>) -> Option<T> {
    rx.try_recv().ok()
}

fn sync_request(member_id: &str, generation: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        member_id: member_id.to_owned(),
        group_instance_id: None,
        generation,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(m, a)| ((*m).to_owned(), Bytes::from((*a).to_owned())))
            .collect(),
    }
}

/// A dynamic member's first JoinGroup (v4+): the id it must come back with.
fn member_id(group: &mut Group, t: Instant) -> String {
    let outcome = now(join(group, join_request("", &["range"]), t));
    assert_eq!(outcome.error, Some(ResponseError::MemberIdRequired));
    assert!(outcome.member_id.starts_with("client-"));
    outcome.member_id
}

/// Two members through a whole first rebalance: (group, leader, follower, t).
fn stable_pair() -> (Group, String, String, Instant) {
    let t = Instant::now();
    let mut group = Group::new();
    let a = member_id(&mut group, t);
    let b = member_id(&mut group, t);
    let mut ja = later(join(&mut group, join_request(&a, &["range"]), t));
    let mut jb = later(join(&mut group, join_request(&b, &["range"]), t + ms(10)));
    // The initial delay holds the join even though both are in, and b's arrival during it
    // extends it once.
    group.tick(t + ms(50));
    group.tick(t + DELAY);
    assert!(answered(&mut ja).is_none());
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    group.tick(t + DELAY * 2);
    let (oa, ob) = (answered(&mut ja).unwrap(), answered(&mut jb).unwrap());
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    assert_eq!((oa.generation, ob.generation), (1, 1));
    assert_eq!(oa.leader, a, "the first member leads");
    assert_eq!(ob.leader, a);
    assert_eq!(oa.members.len(), 2, "the leader gets the members");
    assert!(ob.members.is_empty(), "followers do not");
    assert_eq!(oa.protocol_name.as_deref(), Some("range"));
    assert_eq!(oa.members[0].metadata, Bytes::from("meta-range"));

    let t = t + DELAY * 2;
    let mut sb = later(group.sync(sync_request(&b, 1, &[]), t));
    assert!(
        answered(&mut sb).is_none(),
        "a follower waits for the leader"
    );
    let mut sa = later(group.sync(sync_request(&a, 1, &[(&a, "A"), (&b, "B")]), t));
    assert_eq!(answered(&mut sa).unwrap().assignment, Bytes::from("A"));
    let b_sync = answered(&mut sb).unwrap();
    assert_eq!(b_sync.assignment, Bytes::from("B"));
    assert_eq!(b_sync.protocol_name.as_deref(), Some("range"));
    assert_eq!(group.state(), GroupState::Stable);
    (group, a, b, t)
}

#[test]
fn two_members_join_sync_and_heartbeat() {
    let (mut group, a, b, t) = stable_pair();
    assert_eq!(group.heartbeat(&a, None, 1, t), Ok(()));
    assert_eq!(
        group.heartbeat(&b, None, 0, t),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        group.heartbeat("stranger", None, 0, t),
        Err(ResponseError::UnknownMemberId),
        "the member check comes before the generation check"
    );
    // A stable group answers a late SyncGroup from what the leader assigned.
    let outcome = now(group.sync(sync_request(&b, 1, &[]), t));
    assert_eq!(outcome.assignment, Bytes::from("B"));
    // A follower rejoining unchanged gets this generation back at once.
    let outcome = now(join(&mut group, join_request(&b, &["range"]), t));
    assert_eq!(outcome.generation, 1);
    assert!(outcome.members.is_empty());
}

#[test]
fn a_leaving_member_makes_the_others_rejoin() {
    let (mut group, a, b, t) = stable_pair();
    assert_eq!(group.leave(&b, None, t), Ok(()));
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        group.heartbeat(&a, None, 1, t),
        Err(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        now(group.sync(sync_request(&a, 1, &[]), t)).error,
        Some(ResponseError::RebalanceInProgress)
    );
    // Everyone left in the group has rejoined: no need to wait for the timeout.
    let mut ja = later(join(&mut group, join_request(&a, &["range"]), t));
    let outcome = answered(&mut ja).unwrap();
    assert_eq!(outcome.generation, 2);
    assert_eq!(outcome.members.len(), 1);
    assert_eq!(
        group.leave(&b, None, t),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
    let (mut group, a, b, t) = stable_pair();
    // The leader's rejoin starts a rebalance; b never rejoins (but keeps heartbeating).
    let mut ja = later(join(&mut group, join_request(&a, &["range"]), t));
    let t2 = t + REBALANCE - ms(10);
    assert_eq!(
        group.heartbeat(&b, None, 1, t2),
        Err(ResponseError::RebalanceInProgress)
    );
    group.tick(t2);
    assert!(answered(&mut ja).is_none());
    group.tick(t + REBALANCE);
    let outcome = answered(&mut ja).unwrap();
    assert_eq!(outcome.generation, 2);
    assert_eq!(outcome.members.len(), 1);
    assert!(!group.members.contains_key(&b));
}

#[test]
fn a_silent_member_expires_after_its_session_timeout() {
    let (mut group, a, b, t) = stable_pair();
    let mut t = t;
    // a heartbeats, b does not.
    for _ in 0..4 {
        t += Duration::from_secs(3);
        assert_eq!(group.heartbeat(&a, None, 1, t), Ok(()));
        group.tick(t);
    }
    assert!(!group.members.contains_key(&b));
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        group.heartbeat(&b, None, 1, t),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn a_member_that_never_syncs_is_dropped() {
    let t = Instant::now();
    let mut group = Group::new();
    let a = member_id(&mut group, t);
    let b = member_id(&mut group, t);
    let _ja = later(join(&mut group, join_request(&a, &["range"]), t));
    let _jb = later(join(&mut group, join_request(&b, &["range"]), t));
    group.tick(t + DELAY);
    group.tick(t + DELAY * 2);
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    // Only a syncs, and it is the leader: the group is stable, b still owes its SyncGroup.
    let t = t + DELAY * 2;
    let _sa = group.sync(sync_request(&a, 1, &[(&a, "A"), (&b, "B")]), t);
    assert_eq!(group.state(), GroupState::Stable);
    // Both heartbeat (so no session ends), but b never syncs.
    let mut at = t;
    while at + Duration::from_secs(5) < t + REBALANCE {
        at += Duration::from_secs(5);
        assert_eq!(group.heartbeat(&a, None, 1, at), Ok(()));
        assert_eq!(group.heartbeat(&b, None, 1, at), Ok(()));
        group.tick(at);
    }
    assert!(group.members.contains_key(&b));
    group.tick(t + REBALANCE);
    assert!(!group.members.contains_key(&b));
    assert_eq!(group.state(), GroupState::PreparingRebalance);
}

#[test]
fn a_pending_member_id_holds_the_rebalance_until_it_lapses() {
    let (mut group, a, _b, t) = stable_pair();
    // A third consumer got its id but has not come back with it yet.
    let c = member_id(&mut group, t);
    let mut ja = later(join(&mut group, join_request(&a, &["range"]), t));
    let _lb = group.leave(&_b, None, t);
    assert!(answered(&mut ja).is_none(), "waits for the pending member");
    group.tick(t + SESSION);
    let outcome = answered(&mut ja).unwrap();
    assert_eq!(outcome.members.len(), 1);
    // Too late now: the id is unknown.
    assert_eq!(
        now(join(&mut group, join_request(&c, &["range"]), t + SESSION)).error,
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn new_members_during_the_initial_delay_extend_it() {
    let t = Instant::now();
    let mut group = Group::new();
    let a = member_id(&mut group, t);
    let mut ja = later(join(&mut group, join_request(&a, &["range"]), t));
    let b = member_id(&mut group, t + ms(50));
    let mut jb = later(join(&mut group, join_request(&b, &["range"]), t + ms(50)));
    group.tick(t + DELAY);
    assert!(
        answered(&mut ja).is_none(),
        "b joined during the delay: wait once more"
    );
    group.tick(t + DELAY * 2);
    assert_eq!(answered(&mut ja).unwrap().members.len(), 2);
    assert_eq!(answered(&mut jb).unwrap().generation, 1);
}

#[test]
fn the_protocol_is_chosen_by_vote_among_common_ones() {
    let t = Instant::now();
    let mut group = Group::new();
    let old = |member: &str, protocols: &[&str]| JoinRequest {
        require_known_member_id: false,
        ..join_request(member, protocols)
    };
    let _a = later(join(
        &mut group,
        old("", &["roundrobin", "range", "sticky"]),
        t,
    ));
    let _b = later(join(&mut group, old("", &["range", "sticky"]), t));
    let _c = later(join(&mut group, old("", &["sticky", "range"]), t));
    // Nobody may join without a protocol everyone has.
    let refused = now(join(&mut group, old("", &["cooperative-sticky"]), t));
    assert_eq!(
        refused.error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    let wrong_type = now(join(
        &mut group,
        JoinRequest {
            protocol_type: "connect".to_owned(),
            ..old("", &["range"])
        },
        t,
    ));
    assert_eq!(
        wrong_type.error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    // The first tick extends the initial delay (members arrived during it), the second ends it.
    group.tick(t + DELAY);
    group.tick(t + DELAY * 2);
    // Candidates: range, sticky. Votes: a range, b range, c sticky.
    assert_eq!(group.protocol.as_deref(), Some("range"));
    assert_eq!(group.state(), GroupState::CompletingRebalance);
}

#[test]
fn an_empty_group_needs_a_protocol() {
    let mut group = Group::new();
    let outcome = now(join(&mut group, join_request("", &[]), Instant::now()));
    assert_eq!(
        outcome.error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
}

#[test]
fn a_static_member_returns_without_a_rebalance() {
    let t = Instant::now();
    let mut group = Group::new();
    let mut ja = later(join(&mut group, static_request("a"), t));
    let mut jb = later(join(&mut group, static_request("b"), t));
    group.tick(t + DELAY);
    group.tick(t + DELAY * 2);
    let (oa, ob) = (answered(&mut ja).unwrap(), answered(&mut jb).unwrap());
    assert!(
        oa.member_id.starts_with("a-"),
        "static ids start with the instance id"
    );
    let leader = oa.leader.clone();
    let (a, b) = (oa.member_id, ob.member_id);
    let _sb = group.sync(sync_request(&b, 1, &[]), t + DELAY);
    let _sa = group.sync(sync_request(&a, 1, &[(&a, "A"), (&b, "B")]), t + DELAY);
    assert_eq!(group.state(), GroupState::Stable);

    // a restarts: a new incarnation, same instance id, before its session ends.
    let back = now(join(&mut group, static_request("a"), t + SESSION / 2));
    assert_eq!(back.error, None);
    assert_eq!(back.generation, 1, "no new generation");
    assert_ne!(back.member_id, a);
    assert_eq!(
        back.leader, leader,
        "the old leader id, so a does not assign"
    );
    assert_eq!(group.state(), GroupState::Stable);
    let new_a = back.member_id;
    let mut sync = sync_request(&new_a, 1, &[]);
    sync.group_instance_id = Some("a".to_owned());
    assert_eq!(
        now(group.sync(sync, t + SESSION / 2)).assignment,
        Bytes::from("A")
    );
    // The old incarnation is fenced.
    assert_eq!(
        group.heartbeat(&a, Some("a"), 1, t + SESSION / 2),
        Err(ResponseError::FencedInstanceId)
    );
    // An administrator removes b by its instance id.
    assert_eq!(group.leave("", Some("b"), t + SESSION / 2), Ok(()));
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        group.leave("", Some("b"), t),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn a_static_member_that_misses_a_rebalance_stays_until_its_session_ends() {
    let t = Instant::now();
    let mut group = Group::new();
    let mut ja = later(join(&mut group, static_request("a"), t));
    // b's session outlasts a rebalance timeout.
    let long = REBALANCE * 2;
    let mut jb = later(join(
        &mut group,
        JoinRequest {
            session_timeout: long,
            ..static_request("b")
        },
        t,
    ));
    group.tick(t + DELAY);
    group.tick(t + DELAY * 2);
    let (a, b) = (
        answered(&mut ja).unwrap().member_id,
        answered(&mut jb).unwrap().member_id,
    );
    let t = t + DELAY * 2;
    let _sa = group.sync(sync_request(&a, 1, &[(&a, "A"), (&b, "B")]), t);
    let _sb = group.sync(sync_request(&b, 1, &[]), t);
    // The leader rejoins; b does not, and stays a member through the rebalance.
    let mut rejoin = JoinRequest {
        member_id: a.clone(),
        ..static_request("a")
    };
    rejoin.group_instance_id = Some("a".to_owned());
    let mut ja = later(join(&mut group, rejoin, t));
    group.tick(t + REBALANCE);
    assert_eq!(answered(&mut ja).unwrap().members.len(), 2);
    assert!(group.members.contains_key(&b));
    // Then its session ends.
    group.tick(t + REBALANCE + long);
    assert!(!group.members.contains_key(&b));
}

#[test]
fn offset_commits_need_a_current_member_once_the_group_has_members() {
    let (mut group, a, _b, t) = stable_pair();
    assert_eq!(group.validate_commit(&a, None, 1, false), Ok(()));
    assert_eq!(
        group.validate_commit(&a, None, 0, false),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        group.validate_commit("", None, -1, false),
        Err(ResponseError::UnknownMemberId),
        "a non-member may not commit to a group with members"
    );
    assert_eq!(
        group.validate_commit("", None, -1, true),
        Ok(()),
        "unless inside a transaction"
    );
    // Accepted while the group prepares a rebalance, refused while the leader assigns.
    let _ja = join(&mut group, join_request(&a, &["range"]), t);
    assert_eq!(group.accept_commit(&a, t), Ok(()));
    let _ = group.leave(&_b, None, t);
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    assert_eq!(
        group.accept_commit(&a, t),
        Err(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn transactional_offsets_wait_for_the_commit_marker() {
    use super::super::offsets::{Committed, Offsets};
    let committed = |offset: i64, seq: u64| Committed {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        seq,
    };
    let mut offsets = Offsets::default();
    offsets.stage(7, "t", 0, committed(10, 1));
    offsets.stage(8, "t", 1, committed(20, 2));
    assert!(offsets.is_pending("t", 0));
    assert!(offsets.get("t", 0).is_none());
    // A plain commit after the transaction's wins over it.
    offsets.commit("t", 0, committed(15, 3));
    offsets.complete(7, true);
    assert_eq!(offsets.get("t", 0).unwrap().offset, 15);
    assert!(!offsets.is_pending("t", 0));
    offsets.complete(8, false);
    assert!(offsets.get("t", 1).is_none(), "an abort drops the offsets");
    assert!(!offsets.is_pending("t", 1));
}
