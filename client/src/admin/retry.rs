//! Retry rounds with backoff under one deadline, and the per-item bookkeeping of a batch call.
//!
//! A batch call runs in rounds: each round sends every item still pending, then settles what
//! came back. Success and non-retriable errors are final; a retriable error leaves the item
//! pending for the next round, which starts after a backoff and a metadata refresh. When the
//! deadline comes, a pending item gets the last error it saw, so the caller learns *why* it
//! did not go through (NOT_CONTROLLER, a lost connection) rather than only that time ran out.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

use crate::cluster::Backoff;
use crate::error::{Error, KafkaCode, Result};

/// Runs `round` over the items still pending until every item of `batch` is settled or the
/// deadline of `rounds` passes; a round that fails as a whole settles all its items with that
/// error. Returns each item's result, in order (`api` names the call in timeout errors).
pub(super) async fn run_rounds<V>(
    mut rounds: Rounds,
    mut batch: Batch<V>,
    api: &str,
    mut round: impl AsyncFnMut(&[usize], &Rounds, &mut Batch<V>) -> Result<()>,
) -> Vec<Result<V>> {
    while !batch.is_done() && rounds.next().await {
        let pending = batch.pending();
        let deadline = rounds.deadline();
        match tokio::time::timeout_at(deadline, round(&pending, &rounds, &mut batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => batch.settle_all(&pending, &e),
            Err(_) => break,
        }
    }
    batch.into_results(&rounds.timeout_error(api))
}

/// The rounds of one call: a deadline and a backoff between rounds.
#[derive(Debug)]
pub(super) struct Rounds {
    timeout: Duration,
    deadline: Instant,
    backoff: Backoff,
    attempt: u32,
}

impl Rounds {
    pub(super) fn new(timeout: Duration, backoff: Backoff) -> Rounds {
        Rounds {
            timeout,
            deadline: Instant::now() + timeout,
            backoff,
            attempt: 0,
        }
    }

    /// Waits out the backoff before every round but the first. False, at once, when the next
    /// round could not start before the deadline.
    pub(super) async fn next(&mut self) -> bool {
        if self.attempt > 0 {
            let wake = Instant::now() + self.backoff.delay(self.attempt);
            if wake >= self.deadline {
                return false;
            }
            tokio::time::sleep_until(wake).await;
        }
        self.attempt += 1;
        true
    }

    /// The number of the current round, from 1.
    pub(super) fn attempt(&self) -> u32 {
        self.attempt
    }

    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Time left before the deadline (zero once it has passed).
    pub(super) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The error of an item that saw no other error before the deadline.
    pub(super) fn timeout_error(&self, what: &str) -> Error {
        Error::Timeout {
            what: what.to_owned(),
            after: self.timeout,
        }
    }
}

#[derive(Debug)]
enum Slot<V> {
    /// Not settled yet, with the last retriable error seen.
    Pending(Option<Error>),
    Done(Result<V>),
}

/// One slot per item of a batch call.
#[derive(Debug)]
pub(super) struct Batch<V> {
    slots: Vec<Slot<V>>,
    /// Codes that are retriable in general but final for this call: UNKNOWN_TOPIC_OR_PARTITION
    /// from DeleteTopics means the topic is not there, and retrying will not create it.
    final_codes: &'static [KafkaCode],
}

impl<V> Batch<V> {
    pub(super) fn new(len: usize, final_codes: &'static [KafkaCode]) -> Batch<V> {
        Batch {
            slots: (0..len).map(|_| Slot::Pending(None)).collect(),
            final_codes,
        }
    }

    /// Indices of the items not settled yet.
    pub(super) fn pending(&self) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Slot::Pending(_)))
            .map(|(i, _)| i)
            .collect()
    }

    pub(super) fn is_done(&self) -> bool {
        self.slots.iter().all(|s| matches!(s, Slot::Done(_)))
    }

    pub(super) fn is_ok(&self, i: usize) -> bool {
        matches!(self.slots.get(i), Some(Slot::Done(Ok(_))))
    }

    /// Settles item `i` with `result`, whatever it is.
    pub(super) fn finish(&mut self, i: usize, result: Result<V>) {
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Slot::Done(result);
        }
    }

    /// Leaves item `i` pending, remembering `error` as the reason.
    pub(super) fn retry(&mut self, i: usize, error: Error) {
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Slot::Pending(Some(error));
        }
    }

    /// Settles item `i` unless `result` is an error worth retrying.
    pub(super) fn settle(&mut self, i: usize, result: Result<V>) {
        match result {
            Err(e) if self.retriable(&e) => self.retry(i, e),
            other => self.finish(i, other),
        }
    }

    /// Settles every item of `items` with the same error (a whole request failed).
    pub(super) fn settle_all(&mut self, items: &[usize], error: &Error) {
        for &i in items {
            self.settle(i, Err(error.clone()));
        }
    }

    /// Fails every item whose key occurs more than once with INVALID_REQUEST, without
    /// sending it: what Kafka answers for a topic or resource named twice in one request, and
    /// the only safe answer when the copies disagree (two partition counts, two values).
    pub(super) fn reject_duplicates<K: Eq + Hash>(
        &mut self,
        keys: &[K],
        context: impl Fn(&K) -> String,
    ) {
        let mut count: HashMap<&K, usize> = HashMap::new();
        for key in keys {
            *count.entry(key).or_default() += 1;
        }
        for (i, key) in keys.iter().enumerate() {
            if count.get(key).is_some_and(|&n| n > 1) {
                let context = format!("{}: listed more than once", context(key));
                self.finish(i, Err(Error::kafka(KafkaCode::INVALID_REQUEST, context)));
            }
        }
    }

    fn retriable(&self, error: &Error) -> bool {
        error.is_retriable() && !error.code().is_some_and(|c| self.final_codes.contains(&c))
    }

    /// The results in item order; items still pending get their last error, or `timeout`.
    pub(super) fn into_results(self, timeout: &Error) -> Vec<Result<V>> {
        self.slots
            .into_iter()
            .map(|slot| match slot {
                Slot::Done(result) => result,
                Slot::Pending(last) => Err(last.unwrap_or_else(|| timeout.clone())),
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn retriable_errors_stay_pending_and_report_their_last_error() {
        let mut batch: Batch<i32> = Batch::new(4, &[KafkaCode::UNKNOWN_TOPIC_OR_PARTITION]);
        batch.settle(0, Ok(7));
        batch.settle(1, Err(Error::kafka(KafkaCode::NOT_CONTROLLER, "topic a")));
        batch.settle(
            2,
            Err(Error::kafka(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION, "b")),
        );
        assert_eq!(batch.pending(), vec![1, 3]);
        assert!(batch.is_ok(0) && !batch.is_ok(2) && !batch.is_done());
        let timeout = Error::Timeout {
            what: "x".into(),
            after: Duration::from_secs(1),
        };
        let results = batch.into_results(&timeout);
        assert_eq!(*results[0].as_ref().unwrap(), 7);
        assert_eq!(
            results[1].as_ref().unwrap_err().code(),
            Some(KafkaCode::NOT_CONTROLLER)
        );
        assert_eq!(
            results[2].as_ref().unwrap_err().code(),
            Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION)
        );
        assert!(matches!(results[3], Err(Error::Timeout { .. })));
    }

    #[test]
    fn duplicates_are_rejected_without_being_sent() {
        let mut batch: Batch<()> = Batch::new(4, &[]);
        batch.reject_duplicates(&["a", "b", "a", "c"], |k| format!("topic {k}"));
        assert_eq!(batch.pending(), vec![1, 3]);
        let timeout = Error::Closed;
        let results = batch.into_results(&timeout);
        let err = results[2].as_ref().unwrap_err();
        assert_eq!(err.code(), Some(KafkaCode::INVALID_REQUEST));
        assert!(
            err.to_string().contains("topic a: listed more than once"),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rounds_back_off_and_stop_at_the_deadline() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
        };
        let start = Instant::now();
        let mut rounds = Rounds::new(Duration::from_millis(500), backoff);
        let mut n = 0;
        while rounds.next().await {
            n += 1;
        }
        // Waits of 100 and 200 ms (±20%: at most 360 in all) fit in 500 ms; the next 400 (at
        // least 320, so 560 in all) would not, and is not waited for.
        assert_eq!(n, 3);
        assert!(start.elapsed() <= Duration::from_millis(360));
        assert_eq!(rounds.attempt(), 3);
    }
}
