//! The sticky balancing itself, on indices: keep what members own, place the rest, then shift
//! partitions along cost-reducing paths until there are none.
//!
//! A cost-reducing path runs from a member holding `h` partitions to one holding at most
//! `h - 2`, each member on it handing one partition (of a topic the next one subscribes to) to
//! the next: the first loses one, the last gains one, the others keep their counts. An
//! assignment without such a path is optimal for load balancing (Harvey, Ladner, Lovász, Tamir,
//! "Semi-matchings for bipartite graphs and load balancing", 2003): its sorted counts are the
//! best possible, the same for every optimal assignment. That is stronger than Java's
//! `isBalanced` (no single move from a member two or more above), and with identical
//! subscriptions it means counts within one of each other.
//!
//! Stickiness comes from the path costs: handing on a partition the member did not own before
//! this rebalance is free, handing on an owned one costs a revocation, and the cheapest path
//! is taken first. It also makes the cooperative follow-up converge: in the next rebalance the
//! members own what they kept and the withheld partitions are unowned; the previous target
//! proves an optimum exists that moves no owned partition, and free paths alone reach an
//! optimum when one exists that way, so that round hands out the rest and revokes nothing.
//!
//! Members and topics are numbers here (their sorted positions), so every tie is broken the
//! same way on every run.
//!
//! Why it terminates: a path from a member holding `a` partitions to one holding `b` with
//! `b + 2 <= a` lowers the sum of the squared counts by `2 (a - b - 1) > 0`; that sum is a
//! natural number, so the paths run out.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The input, by index.
#[derive(Debug)]
pub(super) struct Problem {
    /// Each topic's partition count (all positive).
    pub(super) counts: Vec<i32>,
    /// Each member's subscribed topics.
    pub(super) topics: Vec<Vec<usize>>,
    /// Each partition's current owner, if it has a valid one (the member still subscribes to
    /// the topic and won any conflict over it): `owner[topic][partition]`.
    pub(super) owner: Vec<Vec<Option<usize>>>,
}

/// What one member holds of one topic: partitions it owned before this rebalance (`kept`) and
/// ones it did not (`fresh`). Moves take fresh ones first, so owned partitions stay put when
/// the balance allows.
#[derive(Debug, Default)]
struct Held {
    kept: BTreeSet<i32>,
    fresh: BTreeSet<i32>,
}

impl Held {
    fn is_empty(&self) -> bool {
        self.kept.is_empty() && self.fresh.is_empty()
    }

    /// The partition to give away: the highest fresh one, else the highest owned one (Java's
    /// constrained assignor also keeps the lowest-numbered owned partitions).
    fn candidate(&self) -> Option<(i32, bool)> {
        self.fresh
            .last()
            .map(|&p| (p, true))
            .or_else(|| self.kept.last().map(|&p| (p, false)))
    }
}

#[derive(Debug, Default)]
struct MemberState {
    count: usize,
    held: BTreeMap<usize, Held>,
}

/// Computes every member's partitions, as `(topic, partition)` sets.
pub(super) fn solve(problem: &Problem) -> Vec<BTreeSet<(usize, i32)>> {
    let member_count = problem.topics.len();
    let mut subscribers: Vec<Vec<usize>> = vec![Vec::new(); problem.counts.len()];
    for (member, topics) in problem.topics.iter().enumerate() {
        for &topic in topics {
            if let Some(s) = subscribers.get_mut(topic) {
                s.push(member);
            }
        }
    }
    let mut state: Vec<MemberState> = (0..member_count).map(|_| MemberState::default()).collect();

    // 1. Everyone keeps what it owns; the rest waits, fewest candidate members first (they
    //    have the least choice), then in topic and partition order.
    let mut unowned = Vec::new();
    for (topic, owners) in problem.owner.iter().enumerate() {
        for (partition, owner) in owners.iter().enumerate() {
            let partition = i32::try_from(partition).unwrap_or(i32::MAX);
            match owner.and_then(|m| state.get_mut(m).map(|s| (m, s))) {
                Some((_, s)) => {
                    s.held.entry(topic).or_default().kept.insert(partition);
                    s.count += 1;
                }
                None if !subscribers[topic].is_empty() => unowned.push((topic, partition)),
                None => {}
            }
        }
    }
    unowned.sort_by_key(|&(topic, partition)| (subscribers[topic].len(), topic, partition));

    // 2. Each unowned partition to the emptiest member that can take it.
    for (topic, partition) in unowned {
        let Some(&member) = subscribers[topic]
            .iter()
            .min_by_key(|&&m| (state[m].count, m))
        else {
            continue;
        };
        let s = &mut state[member];
        s.held.entry(topic).or_default().fresh.insert(partition);
        s.count += 1;
    }

    // 3. Shift partitions along cost-reducing paths until there are none.
    while let Some(path) = next_path(&subscribers, &state) {
        for step in path {
            apply(problem, &mut state, step);
        }
    }

    state
        .into_iter()
        .map(|s| {
            s.held
                .into_iter()
                .flat_map(|(topic, held)| {
                    held.kept
                        .into_iter()
                        .chain(held.fresh)
                        .map(move |p| (topic, p))
                })
                .collect()
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct Move {
    from: usize,
    to: usize,
    topic: usize,
    partition: i32,
}

/// The next cost-reducing path, as the moves along it; `None` when there is none.
///
/// Free paths (moving no owned partition) come before costly ones, and within each kind a
/// single move is looked for first, because it is cheap to find: one pass over the members
/// instead of a search per member. The full search over all paths runs only when no single
/// move nor free path helps, which takes unequal subscriptions of a particular shape.
fn next_path(subscribers: &[Vec<usize>], state: &[MemberState]) -> Option<Vec<Move>> {
    let min = state.iter().map(|s| s.count).min()?;
    let max = state.iter().map(|s| s.count).max()?;
    if max < min + 2 {
        return None;
    }
    let mut sources: Vec<usize> = (0..state.len())
        .filter(|&m| state[m].count >= min + 2)
        .collect();
    sources.sort_by_key(|&m| (Reverse(state[m].count), m));

    if let Some(step) = best_single_move(subscribers, state, true) {
        return Some(vec![step]);
    }
    // All free paths cost the same: take one from the fullest member that has any.
    if let Some(path) = sources
        .iter()
        .find_map(|&source| path_from(source, subscribers, state, true))
    {
        return Some(path.moves);
    }
    if let Some(step) = best_single_move(subscribers, state, false) {
        return Some(vec![step]);
    }
    sources
        .iter()
        .filter_map(|&source| path_from(source, subscribers, state, false))
        .min_by_key(|path| path.key)
        .map(|path| path.moves)
}

/// The best cost-reducing single move (fresh partitions only if `free_only`): from the
/// fullest member to the emptiest one, then the lowest indices.
fn best_single_move(
    subscribers: &[Vec<usize>],
    state: &[MemberState],
    free_only: bool,
) -> Option<Move> {
    // The two emptiest subscribers of each topic (the second for when the first is the giver).
    let emptiest: Vec<[Option<usize>; 2]> = subscribers
        .iter()
        .map(|members| {
            let mut two = [None, None];
            for &m in members {
                let key = (state[m].count, m);
                match two {
                    [None, _] => two[0] = Some(m),
                    [Some(a), _] if key < (state[a].count, a) => two = [Some(m), two[0]],
                    [_, None] => two[1] = Some(m),
                    [_, Some(b)] if key < (state[b].count, b) => two[1] = Some(m),
                    _ => {}
                }
            }
            two
        })
        .collect();

    // Fullest giver, emptiest receiver, then the lowest indices.
    type Key = (Reverse<usize>, usize, usize, usize, usize);
    let mut best: Option<(Key, Move)> = None;
    for (from, s) in state.iter().enumerate() {
        for (&topic, held) in &s.held {
            let Some((partition, fresh)) = held.candidate() else {
                continue;
            };
            if free_only && !fresh {
                continue;
            }
            let to = match emptiest[topic] {
                [Some(a), _] if a != from => a,
                [_, Some(b)] => b,
                _ => continue,
            };
            if state[to].count + 2 > s.count {
                continue;
            }
            let key = (Reverse(s.count), state[to].count, from, to, topic);
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                let step = Move {
                    from,
                    to,
                    topic,
                    partition,
                };
                best = Some((key, step));
            }
        }
    }
    best.map(|(_, step)| step)
}

/// A cost-reducing path from one member: to one holding at most two partitions fewer, each
/// member on it handing one partition (of a topic the next one subscribes to) to the next.
#[derive(Debug)]
struct Path {
    /// Owned partitions moved, then fullest source, emptiest target, lowest indices.
    key: (u32, Reverse<usize>, usize, usize, usize),
    moves: Vec<Move>,
}

/// The cheapest cost-reducing path from `source`, by a 0-1 breadth-first search over "X can
/// hand Y a partition" (Y subscribes to a topic X holds): an edge costs 0 when X holds a
/// fresh partition of such a topic and 1 when it must give up an owned one (only free edges
/// if `free_only`).
fn path_from(
    source: usize,
    subscribers: &[Vec<usize>],
    state: &[MemberState],
    free_only: bool,
) -> Option<Path> {
    let high = state[source].count;
    let mut cost: Vec<Option<u32>> = vec![None; state.len()];
    let mut parent: Vec<Option<Move>> = vec![None; state.len()];
    let mut queue = VecDeque::from([source]);
    cost[source] = Some(0);
    while let Some(x) = queue.pop_front() {
        let Some(here) = cost[x] else { continue };
        for (&topic, held) in &state[x].held {
            let Some((partition, fresh)) = held.candidate() else {
                continue;
            };
            if free_only && !fresh {
                continue;
            }
            let step = u32::from(!fresh);
            for &y in &subscribers[topic] {
                if y == x || cost[y].is_some_and(|c| c <= here + step) {
                    continue;
                }
                cost[y] = Some(here + step);
                parent[y] = Some(Move {
                    from: x,
                    to: y,
                    topic,
                    partition,
                });
                if fresh {
                    queue.push_front(y);
                } else {
                    queue.push_back(y);
                }
            }
        }
    }
    let (target, c) = (0..state.len())
        .filter(|&m| m != source && state[m].count + 2 <= high)
        .filter_map(|m| cost[m].map(|c| (m, c)))
        .min_by_key(|&(m, c)| (c, state[m].count, m))?;
    // Walk back to the source; a shortest-path tree has no cycles, the bound is a guard.
    let mut moves = Vec::new();
    let mut at = target;
    while at != source && moves.len() < state.len() {
        let step = parent[at]?;
        moves.push(step);
        at = step.from;
    }
    (at == source).then_some(Path {
        key: (c, Reverse(high), state[target].count, source, target),
        moves,
    })
}

fn apply(problem: &Problem, state: &mut [MemberState], step: Move) {
    let Move {
        from,
        to,
        topic,
        partition,
    } = step;
    let Some(held) = state[from].held.get_mut(&topic) else {
        return;
    };
    if !(held.fresh.remove(&partition) || held.kept.remove(&partition)) {
        return;
    }
    if held.is_empty() {
        state[from].held.remove(&topic);
    }
    state[from].count -= 1;
    // Back with its previous owner, it counts as kept again.
    let previous_owner = problem
        .owner
        .get(topic)
        .and_then(|o| o.get(usize::try_from(partition).ok()?))
        .copied()
        .flatten();
    let held = state[to].held.entry(topic).or_default();
    if previous_owner == Some(to) {
        held.kept.insert(partition);
    } else {
        held.fresh.insert(partition);
    }
    state[to].count += 1;
}
