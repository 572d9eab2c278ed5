//! Choosing a partition for a record: Java-compatible murmur2 for keyed records, sticky
//! partitioning for unkeyed ones.
//!
//! Keyed placement must match the Java client byte for byte: applications mixing sluice,
//! Java and librdkafka producers (or Kafka Streams reading the topic) rely on a key always
//! landing in the same partition. Unkeyed records have no such constraint, so they go where
//! batching is best: to one partition until a batch' worth of bytes went there, then another.
//!
//! | partitioner | keyed record | null key |
//! |---|---|---|
//! | Java default (3.3+), [`Partitioner::Murmur2`] | murmur2 | sticky (KIP-480/794) |
//! | librdkafka `murmur2_random`, [`Partitioner::Murmur2Random`] | murmur2 | random (1) |
//! | librdkafka `murmur2` (not offered) | murmur2 | hashed as empty: one partition |
//! | librdkafka `random`, [`Partitioner::Random`] | random | random |
//!
//! (1) librdkafka sticks null keys to one partition for `sticky.partitioning.linger.ms`
//! (twice `linger.ms` by default); sluice picks per record here and offers stickiness by
//! bytes through [`Partitioner::Murmur2`].
//!
//! An *empty* (non-null) key is hashed everywhere, like any other key. Keyed records are placed
//! over all partitions, available or not, so that a leader election never moves a key; unkeyed
//! records only go to available ones.
//!
//! References: Java `Utils.murmur2` and `BuiltInPartitioner`, librdkafka `rdmurmur2.c` and
//! `CONFIGURATION.md` (`partitioner`), KIP-480 (sticky partitioner), KIP-794 (uniform sticky).

use std::collections::HashMap;

/// Java's `Utils.murmur2`: MurmurHash2 with seed `0x9747b28c`, bytes read little-endian in
/// 4-byte words.
///
/// Returns the bits of Java's `int` result; `murmur2(k) as i32` is what Java returns. Java masks
/// every byte with `& 0xff`, so bytes >= 0x80 are *not* sign-extended (early ports in other
/// languages got this wrong and placed non-ASCII keys differently).
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Java computes `seed ^ length` on `int`: the length is truncated to 32 bits.
    let mut h = SEED ^ (data.len() as u32);
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        // Java's switch falls through from case 3 to case 1.
        if let Some(&b) = tail.get(2) {
            h ^= u32::from(b) << 16;
        }
        if let Some(&b) = tail.get(1) {
            h ^= u32::from(b) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// Java's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on `i32::MIN`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Java's default partitioner gives a keyed record:
/// `toPositive(murmur2(key)) % numPartitions`. `None` if `num_partitions` is not positive.
pub fn key_partition(key: &[u8], num_partitions: i32) -> Option<i32> {
    (num_partitions > 0).then(|| to_positive(murmur2(key) as i32) % num_partitions)
}

/// The partitioning strategy is the config's `partitioner` setting; its behaviour lives here.
pub use crate::config::Partitioner;

impl Partitioner {
    /// The partition for one record of `topic`. `available` lists the partitions that have a
    /// leader (empty means "treat all as available"); `state` holds the sticky choice and the
    /// random source. `None` if the topic has no partitions.
    pub fn partition(
        self,
        state: &mut StickyPartitioner,
        topic: &str,
        key: Option<&[u8]>,
        num_partitions: i32,
        available: &[i32],
    ) -> Option<i32> {
        match (self, key) {
            (Partitioner::Murmur2 | Partitioner::Murmur2Random, Some(key)) => {
                key_partition(key, num_partitions)
            }
            (Partitioner::Murmur2, None) => state.partition(topic, num_partitions, available),
            (Partitioner::Murmur2Random, None) | (Partitioner::Random, _) => {
                state.random(num_partitions, available)
            }
        }
    }
}

/// The sticky partitioner for unkeyed records (KIP-480, with KIP-794's byte threshold).
///
/// Per topic it sticks to one partition until `batch_size` bytes were appended to it
/// ([`on_append`](Self::on_append)) or a new batch had to be started on it
/// ([`on_new_batch`](Self::on_new_batch)), then moves to another available partition chosen at
/// random, never the one it just left when there is any other. (Java 3.3+'s `BuiltInPartitioner`
/// may re-pick the same one; KIP-480's rule spreads load better on small topics.) It also moves
/// when its partition is no longer in the available list.
///
/// A plain data structure: the producer calls it under its own lock.
#[derive(Debug)]
pub struct StickyPartitioner {
    rng: fastrand::Rng,
    batch_size: usize,
    topics: HashMap<String, Sticky>,
}

/// One topic's sticky choice. The producer keeps one per topic next to its queues, so that a
/// record needs no lookup by topic name.
#[derive(Debug, Default)]
pub(crate) struct Sticky {
    /// The partition unkeyed records go to, or `None` when a new one must be chosen.
    current: Option<i32>,
    /// The partition last left, avoided by the next choice.
    previous: Option<i32>,
    /// Bytes appended to `current` since it was chosen.
    produced: usize,
}

impl StickyPartitioner {
    /// A sticky partitioner switching after `batch_size` bytes, randomly seeded.
    pub fn new(batch_size: usize) -> Self {
        Self::with_rng(batch_size, fastrand::Rng::new())
    }

    /// The same with a fixed seed, for reproducible tests.
    pub fn with_seed(batch_size: usize, seed: u64) -> Self {
        Self::with_rng(batch_size, fastrand::Rng::with_seed(seed))
    }

    fn with_rng(batch_size: usize, rng: fastrand::Rng) -> Self {
        StickyPartitioner {
            rng,
            batch_size,
            topics: HashMap::new(),
        }
    }

    /// The partition for the next unkeyed record of `topic`. `available` lists the partitions
    /// with a leader; if it is empty, all of `0..num_partitions` are candidates. `None` if there
    /// is no candidate.
    pub fn partition(
        &mut self,
        topic: &str,
        num_partitions: i32,
        available: &[i32],
    ) -> Option<i32> {
        let sticky = match self.topics.get_mut(topic) {
            Some(sticky) => sticky,
            None => self.topics.entry(topic.to_owned()).or_default(),
        };
        sticky.partition(&mut self.rng, num_partitions, available)
    }

    /// Records that `bytes` of unkeyed records were appended to `partition` of `topic`; after
    /// `batch_size` bytes the next record goes elsewhere (KIP-794).
    pub fn on_append(&mut self, topic: &str, partition: i32, bytes: usize) {
        if let Some(sticky) = self.topics.get_mut(topic) {
            sticky.on_append(partition, bytes, self.batch_size);
        }
    }

    /// Records that a new batch is being started on `prev` (the previous one is full or was
    /// sent): if unkeyed records are sticking to `prev`, the next one goes elsewhere (KIP-480).
    pub fn on_new_batch(&mut self, topic: &str, prev: i32) {
        if let Some(sticky) = self.topics.get_mut(topic) {
            if sticky.current == Some(prev) {
                sticky.leave(prev);
            }
        }
    }

    /// A random available partition, with no stickiness. `None` if there is no candidate.
    pub fn random(&mut self, num_partitions: i32, available: &[i32]) -> Option<i32> {
        random(&mut self.rng, num_partitions, available)
    }
}

/// A random available partition (all of `0..num_partitions` when `available` is empty).
pub(crate) fn random(
    rng: &mut fastrand::Rng,
    num_partitions: i32,
    available: &[i32],
) -> Option<i32> {
    Some(Candidates::new(num_partitions, available)?.pick(rng, None))
}

impl Sticky {
    /// The partition for the next unkeyed record, as [`StickyPartitioner::partition`].
    pub(crate) fn partition(
        &mut self,
        rng: &mut fastrand::Rng,
        num_partitions: i32,
        available: &[i32],
    ) -> Option<i32> {
        let candidates = Candidates::new(num_partitions, available)?;
        if let Some(current) = self.current {
            if candidates.contains(current) {
                return Some(current);
            }
            // Its leader went away (or the topic shrank): move on, and avoid it next time too.
            self.previous = Some(current);
        }
        let next = candidates.pick(rng, self.previous);
        self.current = Some(next);
        self.produced = 0;
        Some(next)
    }

    /// `bytes` of unkeyed records went to `partition`, as [`StickyPartitioner::on_append`].
    pub(crate) fn on_append(&mut self, partition: i32, bytes: usize, batch_size: usize) {
        if self.current == Some(partition) {
            self.produced = self.produced.saturating_add(bytes);
            if self.produced >= batch_size {
                self.leave(partition);
            }
        }
    }

    fn leave(&mut self, partition: i32) {
        self.current = None;
        self.previous = Some(partition);
        self.produced = 0;
    }
}

/// The partitions a choice is made among: the available ones, or all when none is listed.
enum Candidates<'a> {
    All(i32),
    Listed(&'a [i32]),
}

impl<'a> Candidates<'a> {
    fn new(num_partitions: i32, available: &'a [i32]) -> Option<Self> {
        if !available.is_empty() {
            Some(Candidates::Listed(available))
        } else if num_partitions > 0 {
            Some(Candidates::All(num_partitions))
        } else {
            None
        }
    }

    fn len(&self) -> usize {
        match self {
            Candidates::All(n) => *n as usize,
            Candidates::Listed(list) => list.len(),
        }
    }

    fn get(&self, index: usize) -> i32 {
        match self {
            Candidates::All(_) => index as i32,
            Candidates::Listed(list) => list[index],
        }
    }

    fn position(&self, partition: i32) -> Option<usize> {
        match self {
            Candidates::All(n) => (0..*n).contains(&partition).then_some(partition as usize),
            Candidates::Listed(list) => list.iter().position(|&p| p == partition),
        }
    }

    fn contains(&self, partition: i32) -> bool {
        self.position(partition).is_some()
    }

    /// A uniformly random candidate other than `avoid`, unless `avoid` is the only one.
    fn pick(&self, rng: &mut fastrand::Rng, avoid: Option<i32>) -> i32 {
        let len = self.len();
        match avoid.and_then(|p| self.position(p)).filter(|_| len > 1) {
            Some(skip) => {
                // Draw among the other len - 1 and step over the avoided index.
                let i = rng.usize(..len - 1);
                self.get(if i >= skip { i + 1 } else { i })
            }
            None => self.get(rng.usize(..len)),
        }
    }
}
