//! Counters of a transactional producer: commits, aborts, fences, and how long commits take.
//!
//! Cheap enough to update on every transaction (relaxed atomics), read as a
//! [`TxnMetrics`] snapshot for logging or an exporter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the commit-latency buckets, in microseconds: 250 µs doubling to ~8.4 s, and
/// one bucket above.
const BUCKETS: usize = 16;

fn bucket_bound_micros(i: usize) -> u64 {
    250u64 << i
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    commits: AtomicU64,
    aborts: AtomicU64,
    fences: AtomicU64,
    latency: [AtomicU64; BUCKETS + 1],
    latency_sum_micros: AtomicU64,
}

impl Counters {
    pub(crate) fn committed(&self, took: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = (0..BUCKETS)
            .find(|&i| micros <= bucket_bound_micros(i))
            .unwrap_or(BUCKETS);
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn aborted(&self) {
        self.aborts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn fenced(&self) {
        self.fences.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> TxnMetrics {
        TxnMetrics {
            commits: self.commits.load(Ordering::Relaxed),
            aborts: self.aborts.load(Ordering::Relaxed),
            fences: self.fences.load(Ordering::Relaxed),
            commit_latency: (0..=BUCKETS)
                .map(|i| {
                    let bound =
                        (i < BUCKETS).then(|| Duration::from_micros(bucket_bound_micros(i)));
                    (bound, self.latency[i].load(Ordering::Relaxed))
                })
                .collect(),
            commit_latency_sum: Duration::from_micros(
                self.latency_sum_micros.load(Ordering::Relaxed),
            ),
        }
    }
}

/// A snapshot of a transactional producer's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetrics {
    /// Transactions committed.
    pub commits: u64,
    /// Transactions aborted (by the application, or after an abortable error).
    pub aborts: u64,
    /// Times the producer found itself fenced by a newer one with its transactional id.
    pub fences: u64,
    /// Commit latency (flush + EndTxn) as a histogram: (upper bound, count), the last bucket
    /// unbounded (`None`). Bounds double from 250 µs.
    pub commit_latency: Vec<(Option<Duration>, u64)>,
    /// The sum of all commit latencies (with `commits`, the mean).
    pub commit_latency_sum: Duration,
}

impl TxnMetrics {
    /// The upper bound of the bucket holding the `q` quantile (0.0..=1.0) of commit latency,
    /// `None` before any commit or when it falls in the unbounded bucket.
    pub fn commit_latency_quantile(&self, q: f64) -> Option<Duration> {
        let total: u64 = self.commit_latency.iter().map(|(_, n)| n).sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bound, n) in &self.commit_latency {
            seen += n;
            if seen >= rank {
                return *bound;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_land_in_doubling_buckets() {
        let c = Counters::default();
        c.committed(Duration::from_micros(100));
        c.committed(Duration::from_micros(300));
        c.committed(Duration::from_millis(3));
        c.committed(Duration::from_secs(60));
        c.aborted();
        c.fenced();
        let m = c.snapshot();
        assert_eq!((m.commits, m.aborts, m.fences), (4, 1, 1));
        assert_eq!(m.commit_latency[0], (Some(Duration::from_micros(250)), 1));
        assert_eq!(m.commit_latency[1], (Some(Duration::from_micros(500)), 1));
        assert_eq!(m.commit_latency[4], (Some(Duration::from_micros(4000)), 1));
        assert_eq!(m.commit_latency[BUCKETS], (None, 1));
        assert_eq!(
            m.commit_latency_quantile(0.5),
            Some(Duration::from_micros(500))
        );
        assert_eq!(
            m.commit_latency_quantile(0.75),
            Some(Duration::from_micros(4000))
        );
        assert_eq!(m.commit_latency_quantile(1.0), None);
        assert_eq!(
            Counters::default().snapshot().commit_latency_quantile(0.5),
            None
        );
    }
}
