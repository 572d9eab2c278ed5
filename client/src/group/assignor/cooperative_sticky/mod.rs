//! The `cooperative-sticky` assignor: balanced, keeps members' partitions where the balance
//! allows, and never hands out a partition in the rebalance that takes it from someone else.
//!
//! Eager assignors make every member stop consuming everything at each rebalance. With
//! cooperative rebalancing (KIP-429) members keep consuming the partitions they keep; a
//! partition moving from A to B must therefore be revoked by A before B may start on it, or both
//! would consume it at once. The leader ensures that by leaving such a partition out of this
//! rebalance's assignment entirely: A does not get it (so A revokes it and, having revoked
//! something, rejoins), and B gets it in that follow-up rebalance, when nobody claims it.
//!
//! Ownership comes from the subscriptions: a member's owned partitions (v1+) and the generation
//! they are from (v2+; older members put it in the user data as one big-endian i32, which this
//! assignor also writes, as Java's does). When two members claim one partition the higher
//! generation wins; a tie invalidates both claims (Java's rule, KIP-792).
//!
//! The algorithm, for all subscriptions alike: every member keeps what it validly owns, each
//! unowned partition goes to the emptiest member that can take it (partitions with the fewest
//! candidate members first), then partitions shift along cost-reducing paths (a chain of
//! members each handing the next one partition, from a member holding `h` to one holding at
//! most `h - 2`) until there are none, moving partitions that were not owned before owned ones.
//! The result has the best possible spread of counts (with identical subscriptions, within one
//! of each other) and the follow-up rebalance of a cooperative handover revokes nothing more.
//!
//! How it differs from Java's `CooperativeStickyAssignor`:
//! - Java has a fast "constrained" path for identical subscriptions (same balance guarantee;
//!   which owned partitions it keeps beyond the quotas depends on hash-map order) and a
//!   "general" path for the rest, whose target is a weaker criterion (`isBalanced`: no single
//!   move from a member two or more above), which accepts for instance counts 5/4/3 where a
//!   chain of moves gives 4/4/4. Results here are deterministic and at least as balanced; the
//!   number of revocations is minimal for identical subscriptions and small otherwise.
//! - A partition another member claims is withheld from everyone but its rightful owner, even
//!   when the other claim lost a generation conflict (Java's constrained path forgets such a
//!   claim). The cost is one more rebalance in that rare case; the gain is that the stale
//!   claimant, which may still be consuming it, revokes it before anyone else starts.
//! - Generation conflicts are decided by each claimant's effective generation (the field, else
//!   the user data); Java reads the other claimant's from the field only.
//! - No rack awareness (KIP-881): it needs replica racks, which the leader is not given here.
//! - Always cooperative; Java's also offers eager (the protocol a Java consumer falls back to
//!   when one of its configured assignors is eager-only).
//! - Every partition count is enumerated, so the cost is proportional to the partitions of the
//!   subscribed topics, and each path search to members × their topics × subscribers.

mod balance;

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::{
    empty_assignment, java_cmp, unique_members, Assignor, RebalanceProtocol, Subscription,
    TopicPartitions,
};

/// Java's and librdkafka's `cooperative-sticky` assignor.
#[derive(Debug, Clone, Copy, Default)]
pub struct CooperativeStickyAssignor;

/// Java's `DEFAULT_GENERATION`: no generation known.
const NO_GENERATION: i32 = -1;

impl Assignor for CooperativeStickyAssignor {
    fn name(&self) -> &'static str {
        "cooperative-sticky"
    }

    fn rebalance_protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Cooperative
    }

    fn assign(
        &self,
        partitions: &BTreeMap<String, i32>,
        members: &[Subscription],
    ) -> BTreeMap<String, TopicPartitions> {
        let mut members = unique_members(members);
        members.sort_by(|a, b| java_cmp(&a.member_id, &b.member_id));
        let mut assignment = empty_assignment(&members);

        // Topics someone subscribes to that exist, by index.
        let topic_names: Vec<&str> = partitions
            .iter()
            .filter(|(t, &n)| n > 0 && members.iter().any(|m| m.topics.contains(t)))
            .map(|(t, _)| t.as_str())
            .collect();
        let topic_index: HashMap<&str, usize> = topic_names
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, i))
            .collect();
        let counts: Vec<i32> = topic_names
            .iter()
            .map(|t| partitions.get(*t).copied().unwrap_or(0))
            .collect();
        let topics: Vec<Vec<usize>> = members
            .iter()
            .map(|m| {
                let mut t: Vec<usize> = m
                    .topics
                    .iter()
                    .filter_map(|t| topic_index.get(t.as_str()).copied())
                    .collect();
                t.sort_unstable();
                t.dedup();
                t
            })
            .collect();

        // Every claim on an existing partition: `claims[(topic, partition)]` = claimants.
        let mut claims: HashMap<(usize, i32), Vec<usize>> = HashMap::new();
        for (member, m) in members.iter().enumerate() {
            for (topic, owned) in &m.owned_partitions {
                let Some(&t) = topic_index.get(topic.as_str()) else {
                    continue;
                };
                for &p in owned {
                    if (0..counts[t]).contains(&p) {
                        claims.entry((t, p)).or_default().push(member);
                    }
                }
            }
        }

        let generations: Vec<i32> = members.iter().map(|m| member_generation(m)).collect();
        let mut owner: Vec<Vec<Option<usize>>> = counts
            .iter()
            .map(|&n| vec![None; usize::try_from(n).unwrap_or(0)])
            .collect();
        for (&(t, p), claimants) in &claims {
            if let Some(winner) = conflict_winner(claimants, &generations) {
                // A member keeps a partition only while it subscribes to its topic.
                if topics[winner].binary_search(&t).is_ok() {
                    if let Some(slot) = usize::try_from(p).ok().and_then(|p| owner[t].get_mut(p)) {
                        *slot = Some(winner);
                    }
                }
            }
        }

        let problem = balance::Problem {
            counts,
            topics,
            owner,
        };
        let target = balance::solve(&problem);
        let owner = problem.owner;

        for (member, partitions) in target.into_iter().enumerate() {
            let Some(out) = assignment.get_mut(&members[member].member_id) else {
                continue;
            };
            for (t, p) in partitions {
                // The cooperative rule: a partition another member claims may still be consumed
                // there, unless this member is its rightful owner (the other claims lost a
                // generation conflict; those members revoke it now, as it is not theirs).
                let claimed_by_other = claims
                    .get(&(t, p))
                    .is_some_and(|c| c.iter().any(|&m| m != member));
                let rightful = owner_of(&owner, t, p) == Some(member);
                if !claimed_by_other || rightful {
                    out.entry(topic_names[t].to_owned()).or_default().push(p);
                }
            }
        }
        assignment
    }

    /// The generation as a big-endian i32: Java's `CooperativeStickyAssignor` user data
    /// (schema `generation: INT32`), which leaders read when the subscription is older than v2.
    fn subscription_user_data(&self, _owned: &TopicPartitions, generation: i32) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(&generation.to_be_bytes()))
    }
}

/// The generation a member's owned partitions are from: the subscription's field (v2+) when
/// set, else the user data's leading i32 (Java's `CooperativeStickyAssignor.memberData`, which
/// takes any user data too short for it as the default generation).
fn member_generation(m: &Subscription) -> i32 {
    if m.generation_id >= 0 {
        return m.generation_id;
    }
    match m.user_data.as_deref() {
        Some(&[a, b, c, d, ..]) => i32::from_be_bytes([a, b, c, d]),
        _ => NO_GENERATION,
    }
}

fn owner_of(owner: &[Vec<Option<usize>>], topic: usize, partition: i32) -> Option<usize> {
    let partition = usize::try_from(partition).ok()?;
    *owner.get(topic)?.get(partition)?
}

/// The claimant that keeps a partition several members claim: the only one with the highest
/// generation; none if several share it (each thinks it owns the partition in the same
/// generation, so neither claim can be trusted).
fn conflict_winner(claimants: &[usize], generations: &[i32]) -> Option<usize> {
    let highest = claimants.iter().map(|&m| generations[m]).max()?;
    let mut at_highest = claimants.iter().filter(|&&m| generations[m] == highest);
    let winner = *at_highest.next()?;
    at_highest.next().is_none().then_some(winner)
}

#[cfg(test)]
mod tests;
