//! sluice's group members on the mock cluster under faults: the coordinator moves, heartbeats
//! fail with the rebalance and fencing errors, a member stops polling for longer than
//! `max.poll.interval.ms`, a cooperative group grows, fetches are parked at the coordinator's
//! broker during a hand-over, and the topic goes quiet after a burst (auto-commit).
//!
//! Each test checks outcomes, not that nothing crashed: every partition has exactly one owner
//! once the group settles, every produced record is read, no record is read twice (members
//! commit before partitions go, and auto-commit every 100 ms so that an expelled member has
//! committed what it read), and replaying every member's partition changes in the order they
//! happened finds no moment at which a partition had two owners.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sluice_client::config::ProducerConfig;
use sluice_client::producer::Producer;
use sluice_mock::{ApiKey, Fault, GroupState, MockCluster, MockConfig, ResponseError};
use sluice_tests::{produce_values, read_counts, settle, Change, SluiceMember};

const TOPIC: &str = "faults";
const PARTITIONS: i32 = 6;
const WAIT: Duration = Duration::from_secs(30);
/// Auto-commit on top of the commit before a revocation: an expelled member has committed
/// what it read, so even a lost hand-over reads nothing twice once the group was idle.
const AUTO_COMMIT: [(&str, &str); 2] = [
    ("enable.auto.commit", "true"),
    ("auto.commit.interval.ms", "100"),
];

struct Setup {
    cluster: MockCluster,
    producer: Producer,
    /// Records produced so far (values `v0..v{produced}`).
    produced: usize,
}

impl Setup {
    async fn new() -> Setup {
        let cluster = MockCluster::start(MockConfig::with_brokers(3))
            .await
            .unwrap();
        cluster.create_topic(TOPIC, PARTITIONS);
        let producer = Producer::new(
            ProducerConfig::from_properties([
                ("bootstrap.servers", cluster.bootstrap().as_str()),
                ("linger.ms", "2"),
            ])
            .unwrap(),
        )
        .await
        .unwrap();
        Setup {
            cluster,
            producer,
            produced: 0,
        }
    }

    async fn produce(&mut self, n: usize) {
        produce_values(
            &self.producer,
            TOPIC,
            PARTITIONS,
            self.produced..self.produced + n,
        )
        .await;
        self.produced += n;
    }

    fn member(&self, group: &str, assignor: &str, extra: &[(&'static str, &str)]) -> SluiceMember {
        let mut properties = AUTO_COMMIT.to_vec();
        properties.extend_from_slice(extra);
        SluiceMember::start_with(
            &self.cluster.bootstrap(),
            group,
            TOPIC,
            assignor,
            &properties,
        )
    }

    /// Produces `n` records and waits until `members` split the partitions and have read every
    /// record produced so far (`earlier` holds what members that left read).
    async fn produce_and_settle(
        &mut self,
        n: usize,
        members: &[&SluiceMember],
        earlier: &[(i32, i64, String)],
    ) {
        self.produce(n).await;
        settle(
            PARTITIONS,
            || members.iter().map(|m| m.owned()).collect(),
            || {
                let mut all = earlier.to_vec();
                for m in members {
                    all.extend(m.records());
                }
                all
            },
            self.produced,
        )
        .await;
    }

    fn group_state(&self, group: &str) -> (GroupState, i32, usize) {
        let g = self.cluster.describe_group(group).unwrap();
        (g.state, g.generation, g.members.len())
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every record produced was read exactly once.
fn assert_read_once(produced: usize, reads: &[Vec<(i32, i64, String)>]) {
    let count = read_counts(reads);
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} records read more than once, the first: {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    assert_eq!(count.len(), produced, "every record read");
}

/// Replays the members' partition changes in the order they happened: a partition is assigned
/// only when no other member owns it, and revoked or lost only by its owner.
fn assert_one_owner_at_a_time(members: &[(&str, Vec<(u64, Change)>)]) {
    let mut history: Vec<(u64, &str, &Change)> = members
        .iter()
        .flat_map(|(name, changes)| changes.iter().map(move |(seq, c)| (*seq, *name, c)))
        .collect();
    history.sort_by_key(|(seq, _, _)| *seq);
    let mut owner: BTreeMap<i32, &str> = BTreeMap::new();
    for (seq, name, change) in &history {
        match change {
            Change::Assigned(ps) => {
                for p in ps {
                    if let Some(other) = owner.insert(*p, name) {
                        panic!(
                            "change {seq}: partition {p} assigned to {name} while {other} owns it; history {history:?}"
                        );
                    }
                }
            }
            Change::Revoked(ps) | Change::Lost(ps) => {
                for p in ps {
                    assert_eq!(
                        owner.remove(p),
                        Some(*name),
                        "change {seq}: {name} gave up partition {p} it did not own; history {history:?}"
                    );
                }
            }
        }
    }
}

fn partitions(changes: &[(u64, Change)], pick: fn(&Change) -> Option<&Vec<i32>>) -> BTreeSet<i32> {
    changes
        .iter()
        .filter_map(|(_, c)| pick(c))
        .flatten()
        .copied()
        .collect()
}

fn revoked(c: &Change) -> Option<&Vec<i32>> {
    match c {
        Change::Revoked(ps) => Some(ps),
        _ => None,
    }
}

fn lost(c: &Change) -> Option<&Vec<i32>> {
    match c {
        Change::Lost(ps) => Some(ps),
        _ => None,
    }
}

fn assigned(c: &Change) -> Option<&Vec<i32>> {
    match c {
        Change::Assigned(ps) => Some(ps),
        _ => None,
    }
}

/// The changes after the first `from`.
fn since(changes: &[(u64, Change)], from: usize) -> Vec<(u64, Change)> {
    changes[from..].to_vec()
}

/// Two members are stable when the group coordinator moves to another broker: they find it
/// (NOT_COORDINATOR), keep heartbeating there past a session timeout without a rebalance, and
/// keep consuming; a third member joining afterwards rebalances the group at the new
/// coordinator to 2/2/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_follow_a_coordinator_move_and_rebalance_there() {
    let mut s = Setup::new().await;
    let group = "moving";
    let a = s.member(group, "range", &[]);
    let b = s.member(group, "range", &[]);
    s.produce_and_settle(600, &[&a, &b], &[]).await;
    let (_, generation, _) = s.group_state(group);

    let old = s.cluster.group_coordinator(group);
    let new = old % 3 + 1;
    s.cluster.move_group_coordinator(group, new);
    assert_eq!(s.cluster.group_coordinator(group), new);
    // Past the session timeout (6 s): had a member kept heartbeating the old coordinator (it
    // answers NOT_COORDINATOR), the new one would have expired it and rebalanced.
    for _ in 0..7 {
        s.produce_and_settle(60, &[&a, &b], &[]).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        s.group_state(group),
        (GroupState::Stable, generation, 2),
        "no rebalance after the move"
    );

    let c = s.member(group, "range", &[]);
    s.produce_and_settle(600, &[&a, &b, &c], &[]).await;
    let owned = [a.owned(), b.owned(), c.owned()];
    assert_eq!(owned.clone().map(|o| o.len()), [2, 2, 2], "owned {owned:?}");
    let (state, after, members) = s.group_state(group);
    assert_eq!((state, members), (GroupState::Stable, 3));
    assert!(after > generation, "the join rebalanced the group");
    assert_eq!(s.cluster.group_coordinator(group), new);
    assert_one_owner_at_a_time(&[("a", a.changes()), ("b", b.changes()), ("c", c.changes())]);
    // The revocation commits went to the new coordinator.
    for p in 0..PARTITIONS {
        assert!(s.cluster.committed_offset(group, TOPIC, p).is_some());
    }

    let reads = vec![a.leave().await, b.leave().await, c.leave().await];
    assert_read_once(s.produced, &reads);
}

/// Heartbeat errors: REBALANCE_IN_PROGRESS makes the member rejoin with its id (eager range:
/// Revoked, then Assigned; nothing lost); UNKNOWN_MEMBER_ID and ILLEGAL_GENERATION mean it was
/// fenced (Lost, then Assigned after rejoining). Each time the group settles again, and no
/// record is read twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_rejoin_after_heartbeat_errors() {
    let mut s = Setup::new().await;
    let group = "heartbeat-errors";
    let a = s.member(group, "range", &[]);
    let b = s.member(group, "range", &[]);
    s.produce_and_settle(600, &[&a, &b], &[]).await;

    for (error, fenced) in [
        (ResponseError::RebalanceInProgress, false),
        (ResponseError::UnknownMemberId, true),
        (ResponseError::IllegalGeneration, true),
    ] {
        // Let auto-commit store what was read, then fail one heartbeat.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let marks = [a.changes().len(), b.changes().len()];
        let owned_before = [a.owned(), b.owned()];
        let coordinator = s.cluster.group_coordinator(group);
        s.cluster
            .inject(Fault::error(ApiKey::Heartbeat, error).broker(coordinator));
        wait_until("the injected heartbeat error", || {
            s.cluster.pending_faults() == 0
        })
        .await;
        // Some member must have seen the error and reacted before the group can be settled.
        wait_until("a reaction to the error", || {
            a.changes().len() > marks[0] || b.changes().len() > marks[1]
        })
        .await;
        s.produce_and_settle(600, &[&a, &b], &[]).await;

        let changes = [since(&a.changes(), marks[0]), since(&b.changes(), marks[1])];
        let hit: Vec<usize> = (0..2)
            .filter(|i| {
                let pick = if fenced { lost } else { revoked };
                !partitions(&changes[*i], pick).is_empty()
            })
            .collect();
        assert!(
            !hit.is_empty(),
            "{error:?}: no member reacted as expected; changes {changes:?}"
        );
        for i in hit {
            let first = &changes[i][0].1;
            let expected = if fenced {
                Change::Lost(owned_before[i].iter().copied().collect())
            } else {
                Change::Revoked(owned_before[i].iter().copied().collect())
            };
            assert_eq!(
                first, &expected,
                "{error:?}: member {i} changes {changes:?}"
            );
            assert!(
                matches!(changes[i].last(), Some((_, Change::Assigned(_)))),
                "{error:?}: member {i} was assigned again; changes {changes:?}"
            );
        }
        if !fenced {
            for c in &changes {
                assert!(
                    partitions(c, lost).is_empty(),
                    "{error:?}: nothing lost on a rebalance; changes {changes:?}"
                );
            }
        }
        assert_eq!(
            s.group_state(group).2,
            2,
            "{error:?}: two members, no phantom"
        );
    }
    assert_one_owner_at_a_time(&[("a", a.changes()), ("b", b.changes())]);
    let reads = vec![a.leave().await, b.leave().await];
    assert_read_once(s.produced, &reads);
}

/// A member whose application stops polling for longer than `max.poll.interval.ms` leaves the group
/// (the other member takes every partition and reads on, while the stalled member owns
/// nothing in the group); when it polls again it gets Lost for its old partitions and rejoins,
/// and the two split the partitions again. A member waiting in `poll` for records that do not
/// come is polling, and stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_polling_is_replaced_and_rejoins() {
    let mut s = Setup::new().await;
    let group = "stalled";
    let short = [("max.poll.interval.ms", "2000")];
    let a = s.member(group, "range", &short);
    let b = s.member(group, "range", &short);
    s.produce_and_settle(600, &[&a, &b], &[]).await;
    let (_, generation, _) = s.group_state(group);

    // Idle past max.poll.interval.ms while both wait in poll: nobody leaves.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        s.group_state(group),
        (GroupState::Stable, generation, 2),
        "members waiting in poll stay in the group"
    );

    let a_owned = a.owned();
    let mark = a.changes().len();
    a.stall(Duration::from_secs(5));
    wait_until("b to take every partition", || {
        b.owned().len() == PARTITIONS as usize
    })
    .await;
    let (state, _, members) = s.group_state(group);
    assert_eq!(
        (state, members),
        (GroupState::Stable, 1),
        "a left the group"
    );
    // b reads on alone while a is stalled.
    s.produce(300).await;
    wait_until("b to read a's partitions too", || {
        let read: BTreeSet<(i32, i64)> = [a.records(), b.records()]
            .concat()
            .into_iter()
            .map(|(p, o, _)| (p, o))
            .collect();
        read.len() == s.produced
    })
    .await;
    assert!(
        a.changes().len() == mark,
        "a saw nothing while it did not poll"
    );

    // a polls again: Lost, then it rejoins and the two split again.
    s.produce_and_settle(600, &[&a, &b], &[]).await;
    let changes = since(&a.changes(), mark);
    assert_eq!(
        changes.first().map(|(_, c)| c),
        Some(&Change::Lost(a_owned.into_iter().collect())),
        "a's changes {changes:?}"
    );
    assert!(!partitions(&changes, assigned).is_empty());
    let reads = vec![a.leave().await, b.leave().await];
    assert_read_once(s.produced, &reads);
}

/// cooperative-sticky: when a third member joins, the two members revoke only the partitions
/// that move to it, never one they keep, and no partition ever has two owners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_members_revoke_only_what_moves() {
    let mut s = Setup::new().await;
    let group = "cooperative";
    let assignor = "cooperative-sticky";
    let a = s.member(group, assignor, &[]);
    let b = s.member(group, assignor, &[]);
    s.produce_and_settle(600, &[&a, &b], &[]).await;
    let before = [a.owned(), b.owned()];
    let marks = [a.changes().len(), b.changes().len()];

    let c = s.member(group, assignor, &[]);
    s.produce_and_settle(600, &[&a, &b, &c], &[]).await;
    // Let the second (cooperative) round finish on every member.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = [a.owned(), b.owned(), c.owned()];
    assert_eq!(after.clone().map(|o| o.len()), [2, 2, 2], "owned {after:?}");

    let moved: BTreeSet<i32> = after[2].clone();
    for (i, (name, member)) in [("a", &a), ("b", &b)].into_iter().enumerate() {
        let changes = since(&member.changes(), marks[i]);
        let gone = partitions(&changes, revoked);
        assert_eq!(
            gone,
            before[i].difference(&after[i]).copied().collect(),
            "{name} revoked exactly what it lost; changes {changes:?}"
        );
        assert!(
            gone.is_subset(&moved),
            "{name} revoked {gone:?}, c took {moved:?}"
        );
        assert!(
            partitions(&changes, lost).is_empty(),
            "{name} lost nothing; {changes:?}"
        );
        assert!(
            partitions(&changes, assigned).is_empty(),
            "{name} got nothing new; {changes:?}"
        );
        assert!(after[i].is_subset(&before[i]), "{name} kept what stayed");
    }
    assert_eq!(
        partitions(&c.changes(), assigned),
        moved,
        "c was assigned what moved, once"
    );
    assert_one_owner_at_a_time(&[("a", a.changes()), ("b", b.changes()), ("c", c.changes())]);
    let reads = vec![a.leave().await, b.leave().await, c.leave().await];
    assert_read_once(s.produced, &reads);
}

/// Group requests do not wait behind fetches: on a quiet topic each fetch is parked for
/// `fetch.max.wait.ms` (3 s here), and a broker answers one connection's requests in order, so
/// a LeaveGroup, Heartbeat or JoinGroup sharing the fetch's connection to the coordinator
/// would wait up to that long at every step. With the coordinator on a connection of its own,
/// the partitions of a member that leaves are taken over within about a heartbeat interval
/// (500 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_over_does_not_wait_behind_parked_fetches() {
    let mut s = Setup::new().await;
    let group = "parked-fetches";
    let slow = [("fetch.max.wait.ms", "3000")];
    let a = s.member(group, "range", &slow);
    let b = s.member(group, "range", &slow);
    s.produce_and_settle(600, &[&a, &b], &[]).await;
    // Quiet: every fetch is parked now.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let start = Instant::now();
    let left = b.leave().await;
    let leave = start.elapsed();
    wait_until("a to take every partition", || {
        a.owned().len() == PARTITIONS as usize
    })
    .await;
    let taken = start.elapsed();
    assert!(
        leave < Duration::from_millis(1000) && taken < Duration::from_millis(2000),
        "leaving took {leave:?}, the hand-over {taken:?}"
    );
    s.produce_and_settle(600, &[&a], &left).await;
    let reads = vec![left, a.leave().await];
    assert_read_once(s.produced, &reads);
}

/// Auto-commit does not wait for the next record: a member that read everything and then
/// waits in `poll` on a quiet topic still commits what it read within the interval, so a
/// member that is fenced or killed during the quiet spell hands over without re-reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_commit_covers_the_last_records_before_a_quiet_spell() {
    let mut s = Setup::new().await;
    let group = "quiet";
    let a = s.member(group, "range", &[]);
    s.produce_and_settle(600, &[&a], &[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for p in 0..PARTITIONS {
        assert_eq!(
            s.cluster.committed_offset(group, TOPIC, p),
            Some(100),
            "partition {p}: what was read is committed"
        );
    }
    a.leave().await;
}

/// KIP-429's point: a cooperative member keeps reading the partitions it keeps while a slow
/// member holds the rebalance open (the coordinator holds JoinGroup until every member has
/// rejoined); `poll` runs JoinGroup beside the reads, as Java's consumer does (KAFKA-8421).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_members_keep_reading_during_a_held_rebalance() {
    let mut s = Setup::new().await;
    let group = "held";
    let assignor = "cooperative-sticky";
    let a = s.member(group, assignor, &[]);
    let b = s.member(group, assignor, &[]);
    s.produce_and_settle(600, &[&a, &b], &[]).await;
    // b stops polling, so it rejoins only when it polls again, 5 s from now.
    b.stall(Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let c = s.member(group, assignor, &[]);
    wait_until("the rebalance to start", || {
        s.group_state(group).0 != GroupState::Stable
    })
    .await;
    // a rejoins at its next heartbeat (500 ms) and then waits in JoinGroup for b.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let kept = a.owned();
    let before = a.records().len();
    s.produce(600).await;
    let expected = before + 100 * kept.len();
    let deadline = Instant::now() + Duration::from_secs(2);
    while a.records().len() < expected {
        assert!(
            Instant::now() < deadline,
            "a read {} of the {} new records of its partitions {kept:?} while the rebalance was held",
            a.records().len() - before,
            expected - before
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(
        s.group_state(group).0,
        GroupState::Stable,
        "the rebalance was still held"
    );
    s.produce_and_settle(0, &[&a, &b, &c], &[]).await;
    let reads = vec![a.leave().await, b.leave().await, c.leave().await];
    assert_read_once(s.produced, &reads);
}
