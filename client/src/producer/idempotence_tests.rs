//! The sequence state machine, driven by hand: no broker, no clock.

use super::*;

const P: ProducerIdentity = ProducerIdentity { id: 7, epoch: 0 };
const P2: ProducerIdentity = ProducerIdentity { id: 7, epoch: 1 };

fn ready(max_in_flight: usize) -> Sequencer<&'static str> {
    let mut s = Sequencer::new(true, max_in_flight);
    assert_eq!(s.identity_request(), Some(IdentityRequest::Initial));
    s.set_producer(P);
    assert_eq!(s.identity_request(), None);
    s
}

fn new_batch(count: i32) -> Head {
    Head {
        stamp: None,
        count,
        possibly_written: false,
    }
}

fn retry(stamp: Stamp) -> Head {
    Head {
        stamp: Some(stamp),
        count: stamp.count,
        possibly_written: false,
    }
}

fn send(s: &mut Sequencer<&'static str>, head: Head) -> Stamp {
    match s.gate(&"p", head) {
        Gate::Send(Some(stamp)) => stamp,
        other => panic!("expected Send, got {other:?}"),
    }
}

fn answer(s: &mut Sequencer<&'static str>, stamp: Stamp, outcome: Outcome) -> Verdict {
    s.on_response(&"p", Some(stamp), outcome, true, false)
}

#[test]
fn nothing_is_sent_before_the_producer_id() {
    let mut s = Sequencer::<&str>::new(true, 5);
    assert_eq!(s.gate(&"p", new_batch(1)), Gate::Wait);
    s.set_producer(P);
    assert!(matches!(s.gate(&"p", new_batch(1)), Gate::Send(Some(_))));
}

#[test]
fn sequences_follow_record_counts_and_wrap() {
    let mut s = ready(5);
    let a = send(&mut s, new_batch(3));
    let b = send(&mut s, new_batch(2));
    assert_eq!((a.base_sequence, a.last_sequence()), (0, 2));
    assert_eq!((b.base_sequence, b.producer), (3, P));
    assert_eq!(add_sequence(i32::MAX - 1, 1), i32::MAX);
    assert_eq!(add_sequence(i32::MAX, 1), 0);
    assert_eq!(add_sequence(i32::MAX - 1, 5), 3);
    assert!(sequence_before(i32::MAX, 2));
    assert!(!sequence_before(2, i32::MAX));
    assert!(!sequence_before(4, 4));
}

#[test]
fn in_flight_is_bounded_per_partition() {
    let mut s = ready(2);
    let a = send(&mut s, new_batch(1));
    send(&mut s, new_batch(1));
    assert_eq!(s.gate(&"p", new_batch(1)), Gate::Wait);
    // Another partition has its own budget.
    assert!(matches!(s.gate(&"q", new_batch(1)), Gate::Send(Some(_))));
    assert_eq!(answer(&mut s, a, Outcome::Written), Verdict::Complete);
    assert_eq!(send(&mut s, new_batch(1)).base_sequence, 2);
}

#[test]
fn retries_keep_their_sequences_and_go_one_at_a_time_in_order() {
    let mut s = ready(5);
    let a = send(&mut s, new_batch(5));
    let b = send(&mut s, new_batch(5));
    let c = send(&mut s, new_batch(5));
    // a's leader moved; b and c were then refused as out of order: none is the next one the
    // broker expects (0), so all three are retried, no reset.
    assert_eq!(answer(&mut s, a, Outcome::Retriable), Verdict::Retry);
    assert_eq!(
        s.gate(&"p", retry(a)),
        Gate::Wait,
        "b and c still in flight"
    );
    assert_eq!(answer(&mut s, b, Outcome::OutOfOrder), Verdict::Retry);
    assert_eq!(answer(&mut s, c, Outcome::OutOfOrder), Verdict::Retry);
    assert_eq!(s.identity_request(), None);
    // Re-queued in sequence order, in front of never-sent batches.
    assert!(s.requeue_before(Some(&b), Some(&c)));
    assert!(!s.requeue_before(Some(&c), Some(&b)));
    assert!(s.requeue_before(Some(&c), None));
    // One at a time, same stamps.
    assert_eq!(send(&mut s, retry(a)), a);
    assert_eq!(s.gate(&"p", retry(b)), Gate::Wait);
    assert_eq!(answer(&mut s, a, Outcome::Written), Verdict::Complete);
    assert_eq!(send(&mut s, retry(b)), b);
    // Tansu answers a batch it already has with DUPLICATE_SEQUENCE_NUMBER: success.
    assert_eq!(answer(&mut s, b, Outcome::Written), Verdict::Complete);
    assert_eq!(send(&mut s, retry(c)), c);
    assert_eq!(answer(&mut s, c, Outcome::Written), Verdict::Complete);
    // New batches continue the chain.
    assert_eq!(send(&mut s, new_batch(1)).base_sequence, 15);
}

#[test]
fn out_of_order_for_the_expected_batch_breaks_the_chain() {
    let mut s = ready(5);
    let a = send(&mut s, new_batch(2));
    assert_eq!(answer(&mut s, a, Outcome::Written), Verdict::Complete);
    let b = send(&mut s, new_batch(2));
    let c = send(&mut s, new_batch(2));
    // b is what the broker should expect next (2): its state is gone. b was refused, so it
    // was not written and is retried after the reset.
    assert_eq!(answer(&mut s, b, Outcome::OutOfOrder), Verdict::Retry);
    assert_eq!(s.identity_request(), Some(IdentityRequest::Bump(P)));
    // c is still in flight: no reset yet, even with the new identity.
    assert_eq!(s.gate(&"p", retry(b)), Gate::Wait);
    s.set_producer(P2);
    assert_eq!(s.gate(&"p", retry(b)), Gate::Wait);
    // c comes back refused too (after the break: re-sequenced, not retried in place).
    assert_eq!(answer(&mut s, c, Outcome::OutOfOrder), Verdict::Retry);
    // Now reset: b then c start the new chain at 0 under the new identity.
    let b2 = send(&mut s, retry(b));
    assert_eq!((b2.producer, b2.base_sequence), (P2, 0));
    let c2 = send(&mut s, retry(c));
    assert_eq!((c2.producer, c2.base_sequence), (P2, 2));
    assert!(
        s.requeue_before(Some(&b2), Some(&c)),
        "a re-sequenced batch goes before stale ones"
    );
    assert_eq!(answer(&mut s, b2, Outcome::Written), Verdict::Complete);
    assert_eq!(answer(&mut s, c2, Outcome::Written), Verdict::Complete);
    assert_eq!(s.identity_request(), None);
}

#[test]
fn unknown_producer_fails_batches_that_may_be_in_the_log() {
    let mut s = ready(5);
    let a = send(&mut s, new_batch(1));
    let b = send(&mut s, new_batch(1));
    assert_eq!(answer(&mut s, a, Outcome::UnknownProducer), Verdict::Retry);
    // b's connection dropped: it may have been written, so it cannot be re-sequenced.
    assert_eq!(
        s.on_response(&"p", Some(b), Outcome::Retriable, true, true),
        Verdict::Fail
    );
    s.set_producer(P2);
    let a2 = send(&mut s, retry(a));
    assert_eq!((a2.producer, a2.base_sequence), (P2, 0));
}

#[test]
fn a_queued_batch_that_may_be_written_fails_at_the_reset() {
    let mut s = ready(5);
    let a = send(&mut s, new_batch(1));
    let b = send(&mut s, new_batch(1));
    // a: lost connection (possibly written), queued for retry in place; b broke the chain.
    assert_eq!(
        s.on_response(&"p", Some(a), Outcome::Retriable, true, true),
        Verdict::Retry
    );
    assert_eq!(answer(&mut s, b, Outcome::UnknownProducer), Verdict::Retry);
    s.set_producer(P2);
    let head = Head {
        stamp: Some(a),
        count: 1,
        possibly_written: true,
    };
    assert_eq!(s.gate(&"p", head), Gate::Fail);
    assert_eq!(send(&mut s, retry(b)).base_sequence, 0);
}

#[test]
fn the_last_batch_failing_gives_its_sequences_back() {
    let mut s = ready(5);
    let a = send(&mut s, new_batch(3));
    assert_eq!(answer(&mut s, a, Outcome::Written), Verdict::Complete);
    let b = send(&mut s, new_batch(4));
    assert_eq!(answer(&mut s, b, Outcome::Rejected), Verdict::Fail);
    assert_eq!(s.identity_request(), None, "no hole, no new identity");
    let c = send(&mut s, new_batch(1));
    assert_eq!((c.producer, c.base_sequence), (P, 3));
}

#[test]
fn a_failure_in_the_middle_resets_the_partition() {
    let mut s = ready(5);
    let a = send(&mut s, new_batch(1));
    let b = send(&mut s, new_batch(1));
    // a fails for good (e.g. MESSAGE_TOO_LARGE): b's sequence now follows a hole.
    assert_eq!(answer(&mut s, a, Outcome::Rejected), Verdict::Fail);
    assert_eq!(s.identity_request(), Some(IdentityRequest::Bump(P)));
    assert_eq!(answer(&mut s, b, Outcome::OutOfOrder), Verdict::Retry);
    s.set_producer(P2);
    assert_eq!(send(&mut s, retry(b)).base_sequence, 0);
}

#[test]
fn an_expired_queued_retry_breaks_the_chain() {
    let mut s = ready(5);
    let a = send(&mut s, new_batch(1));
    let b = send(&mut s, new_batch(1));
    assert_eq!(answer(&mut s, a, Outcome::Retriable), Verdict::Retry);
    assert_eq!(answer(&mut s, b, Outcome::OutOfOrder), Verdict::Retry);
    // a's delivery timeout passes while it waits for its retry.
    s.on_abandoned(&"p", Some(a), false);
    assert_eq!(s.identity_request(), Some(IdentityRequest::Bump(P)));
    assert_eq!(s.gate(&"p", retry(b)), Gate::Wait, "no new identity yet");
    s.set_producer(P2);
    assert_eq!(send(&mut s, retry(b)).base_sequence, 0);
}

#[test]
fn retries_exhausted_fail_the_batch() {
    let mut s = ready(5);
    let a = send(&mut s, new_batch(1));
    assert_eq!(
        s.on_response(&"p", Some(a), Outcome::Retriable, false, false),
        Verdict::Fail
    );
    // It was the last batch: its sequence is reused.
    assert_eq!(send(&mut s, new_batch(1)).base_sequence, 0);
}

#[test]
fn other_partitions_move_to_a_new_identity_only_when_idle() {
    let mut s = ready(5);
    let q1 = match s.gate(&"q", new_batch(1)) {
        Gate::Send(Some(stamp)) => stamp,
        other => panic!("{other:?}"),
    };
    let a = send(&mut s, new_batch(1));
    assert_eq!(answer(&mut s, a, Outcome::UnknownProducer), Verdict::Retry);
    s.set_producer(P2);
    // q has a batch in flight under P: its next new batch waits rather than mix identities.
    assert_eq!(s.gate(&"q", new_batch(1)), Gate::Wait);
    assert_eq!(
        s.on_response(&"q", Some(q1), Outcome::Written, true, false),
        Verdict::Complete
    );
    match s.gate(&"q", new_batch(1)) {
        Gate::Send(Some(stamp)) => assert_eq!((stamp.producer, stamp.base_sequence), (P2, 0)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_retry_in_a_chain_still_uses_the_old_identity() {
    let mut s = ready(5);
    let q1 = match s.gate(&"q", new_batch(1)) {
        Gate::Send(Some(stamp)) => stamp,
        other => panic!("{other:?}"),
    };
    let a = send(&mut s, new_batch(1));
    assert_eq!(answer(&mut s, a, Outcome::UnknownProducer), Verdict::Retry);
    s.set_producer(P2);
    // q's batch must be retried with the stamp it was first sent with.
    assert_eq!(
        s.on_response(&"q", Some(q1), Outcome::Retriable, true, true),
        Verdict::Retry
    );
    match s.gate(&"q", retry(q1)) {
        Gate::Send(Some(stamp)) => assert_eq!(stamp, q1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn without_idempotence_only_in_flight_counts() {
    let mut s = Sequencer::<&str>::new(false, 1);
    assert_eq!(s.identity_request(), None);
    assert_eq!(s.gate(&"p", new_batch(1)), Gate::Send(None));
    assert_eq!(s.gate(&"p", new_batch(1)), Gate::Wait);
    assert_eq!(s.in_flight(&"p"), 1);
    assert_eq!(
        s.on_response(&"p", None, Outcome::Retriable, true, true),
        Verdict::Retry
    );
    assert_eq!(s.gate(&"p", new_batch(1)), Gate::Send(None));
    assert_eq!(
        s.on_response(&"p", None, Outcome::Retriable, false, false),
        Verdict::Fail
    );
    assert_eq!(s.gate(&"p", new_batch(1)), Gate::Send(None));
    assert_eq!(
        s.on_response(&"p", None, Outcome::Written, true, false),
        Verdict::Complete
    );
    assert!(s.requeue_before(None, None));
}
