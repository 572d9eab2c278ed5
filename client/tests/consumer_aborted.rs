//! `read_committed` filtering, driven by constructed record batches and aborted-transaction
//! lists.
//!
//! Constructed because the local broker never fills a fetch response's
//! `aborted_transactions` (tansu-notes.md, gap 1), so a real fetch cannot exercise this path.
//! The lists here are what a Kafka broker sends: (producer id, first offset) of each aborted
//! transaction overlapping the fetched range.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use sluice_client::consumer::aborted::{AbortedFilter, AbortedTransaction, BatchFacts, Verdict};
use sluice_protocol::record::{BatchBuilder, BatchHeader, ControlRecord, ControlType, RecordBatch};
use sluice_protocol::{Compression, Compressor};

/// A data batch of `count` records from `base`, by producer `pid` (-1: none).
fn data(base: i64, count: usize, pid: i64, transactional: bool) -> RecordBatch {
    let header = BatchHeader {
        base_offset: base,
        producer_id: pid,
        producer_epoch: if pid >= 0 { 0 } else { -1 },
        base_sequence: if pid >= 0 { 0 } else { -1 },
        transactional,
        // Compressed, as transactional producers usually write: the filter must not need the
        // records of a data batch.
        compression: Compression::Lz4,
        ..BatchHeader::default()
    };
    let mut builder = BatchBuilder::new(header);
    for i in 0..count {
        let value = format!("{pid}@{}", base + i as i64);
        builder
            .push(
                1_000,
                None,
                Some(value.as_bytes()),
                std::iter::empty::<(&[u8], Option<&[u8]>)>(),
            )
            .unwrap();
    }
    RecordBatch::from_bytes(builder.finish(&mut Compressor::new()).unwrap()).unwrap()
}

/// A transaction marker at `offset` for producer `pid`.
fn marker(offset: i64, pid: i64, kind: ControlType) -> RecordBatch {
    let header = BatchHeader {
        base_offset: offset,
        producer_id: pid,
        producer_epoch: 0,
        transactional: true,
        control: true,
        ..BatchHeader::default()
    };
    let mut builder = BatchBuilder::new(header);
    builder
        .push_control(1_000, &ControlRecord::marker(kind, 7))
        .unwrap();
    RecordBatch::from_bytes(builder.finish(&mut Compressor::new()).unwrap()).unwrap()
}

fn aborted(list: &[(i64, i64)]) -> Vec<AbortedTransaction> {
    list.iter()
        .map(|&(producer_id, first_offset)| AbortedTransaction {
            producer_id,
            first_offset,
        })
        .collect()
}

/// The base offsets of the batches `filter` delivers, and every verdict.
fn run(mut filter: AbortedFilter, batches: &[RecordBatch]) -> (Vec<i64>, Vec<Verdict>) {
    let verdicts: Vec<Verdict> = batches
        .iter()
        .map(|b| filter.verdict(&BatchFacts::of(b).unwrap()))
        .collect();
    let delivered = batches
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| **v == Verdict::Deliver)
        .map(|(b, _)| b.base_offset())
        .collect();
    (delivered, verdicts)
}

const P1: i64 = 1000;
const P2: i64 = 2000;

#[test]
fn interleaved_transactions_of_two_producers() {
    // P1's transaction (0, 4) aborts at 8; P2's (2, 6) commits at 9; P1's next (10) commits.
    let log = [
        data(0, 2, P1, true),
        data(2, 2, P2, true),
        data(4, 2, P1, true),
        data(6, 2, P2, true),
        marker(8, P1, ControlType::Abort),
        marker(9, P2, ControlType::Commit),
        data(10, 2, P1, true),
        marker(12, P1, ControlType::Commit),
    ];
    let (committed, verdicts) = run(AbortedFilter::read_committed(aborted(&[(P1, 0)])), &log);
    assert_eq!(committed, [2, 6, 10]);
    use Verdict::*;
    assert_eq!(
        verdicts,
        [Aborted, Deliver, Aborted, Deliver, Control, Control, Deliver, Control]
    );

    let (everything, verdicts) = run(AbortedFilter::read_uncommitted(), &log);
    assert_eq!(everything, [0, 2, 4, 6, 10]);
    assert_eq!(
        verdicts.iter().filter(|v| **v == Control).count(),
        3,
        "markers are never data"
    );
}

#[test]
fn abort_then_commit_by_the_same_producer() {
    let log = [
        data(0, 3, P1, true),
        marker(3, P1, ControlType::Abort),
        data(4, 3, P1, true),
        marker(7, P1, ControlType::Commit),
    ];
    let (delivered, _) = run(AbortedFilter::read_committed(aborted(&[(P1, 0)])), &log);
    assert_eq!(
        delivered,
        [4],
        "the ABORT marker ends the aborted transaction"
    );
}

#[test]
fn commit_then_abort_by_the_same_producer() {
    // The listed transaction starts at 3: the committed one before it is not touched.
    let log = [
        data(0, 2, P1, true),
        marker(2, P1, ControlType::Commit),
        data(3, 2, P1, true),
        marker(5, P1, ControlType::Abort),
        data(6, 1, P1, true),
        marker(7, P1, ControlType::Commit),
    ];
    let (delivered, _) = run(AbortedFilter::read_committed(aborted(&[(P1, 3)])), &log);
    assert_eq!(delivered, [0, 6]);
}

#[test]
fn two_aborts_in_a_row_and_an_unordered_list() {
    let log = [
        data(0, 2, P1, true),
        marker(2, P1, ControlType::Abort),
        data(3, 2, P1, true),
        data(5, 1, P2, true),
        marker(6, P1, ControlType::Abort),
        marker(7, P2, ControlType::Commit),
        data(8, 2, P1, true),
        marker(10, P1, ControlType::Commit),
    ];
    // Brokers sort the list, but the filter must not depend on it.
    let (delivered, _) = run(
        AbortedFilter::read_committed(aborted(&[(P1, 3), (P1, 0)])),
        &log,
    );
    assert_eq!(delivered, [5, 8]);
}

#[test]
fn a_fetch_that_starts_inside_an_aborted_transaction() {
    // The fetch starts at 4; the transaction began at 1, before it.
    let log = [
        data(4, 2, P1, true),
        data(6, 1, P2, false),
        marker(7, P1, ControlType::Abort),
        data(8, 1, P1, true),
    ];
    let (delivered, _) = run(AbortedFilter::read_committed(aborted(&[(P1, 1)])), &log);
    assert_eq!(delivered, [6, 8]);
}

#[test]
fn non_transactional_batches_are_always_delivered() {
    // An idempotent (non-transactional) batch of a producer id that also aborted, and a batch
    // without a producer id.
    let log = [
        data(0, 1, P1, true),
        data(1, 1, P1, false),
        data(2, 1, -1, false),
        marker(3, P1, ControlType::Abort),
    ];
    let (delivered, _) = run(AbortedFilter::read_committed(aborted(&[(P1, 0)])), &log);
    assert_eq!(delivered, [1, 2]);
}

#[test]
fn a_listed_transaction_without_its_marker_yet_stays_aborted() {
    // Up to the last stable offset the marker may be in the next fetch: everything of P1 after
    // the listed first offset is dropped until then.
    let log = [
        data(0, 1, P2, true),
        data(1, 2, P1, true),
        data(3, 2, P1, true),
    ];
    let (delivered, _) = run(AbortedFilter::read_committed(aborted(&[(P1, 1)])), &log);
    assert_eq!(delivered, [0]);
}

#[test]
fn a_control_batch_with_an_unreadable_marker_is_an_error() {
    let header = BatchHeader {
        producer_id: P1,
        producer_epoch: 0,
        transactional: true,
        control: true,
        ..BatchHeader::default()
    };
    let mut builder = BatchBuilder::new(header);
    // A one-byte key cannot hold version and type.
    builder
        .push(
            0,
            Some(b"x"),
            None,
            std::iter::empty::<(&[u8], Option<&[u8]>)>(),
        )
        .unwrap();
    let batch = RecordBatch::from_bytes(builder.finish(&mut Compressor::new()).unwrap()).unwrap();
    assert!(BatchFacts::of(&batch).is_err());
}

/// One step of a generated log: producer `p` writes a batch, commits or aborts.
#[derive(Debug, Clone, Copy)]
enum Step {
    Write(usize, usize),
    Commit(usize),
    Abort(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..3usize, 1..4usize).prop_map(|(p, n)| Step::Write(p, n)),
        1 => (0..3usize).prop_map(Step::Commit),
        1 => (0..3usize).prop_map(Step::Abort),
    ]
}

proptest! {
    /// Any interleaving of transactions from three producers: read_committed delivers exactly
    /// the records of committed transactions, read_uncommitted every data record.
    #[test]
    fn read_committed_delivers_exactly_the_committed_records(steps in proptest::collection::vec(step(), 1..40), end_commits in any::<[bool; 3]>()) {
        let mut log = Vec::new();
        let mut list = Vec::new();
        let mut open: [Option<(i64, Vec<i64>)>; 3] = [None, None, None];
        let mut committed = Vec::new();
        let mut all = Vec::new();
        let mut next = 0i64;
        let ends = end_commits.iter().enumerate().map(|(p, &c)| if c { Step::Commit(p) } else { Step::Abort(p) });
        for s in steps.into_iter().chain(ends) {
            match s {
                Step::Write(p, n) => {
                    let pid = 100 + p as i64;
                    log.push(data(next, n, pid, true));
                    let (_, bases) = open[p].get_or_insert((next, Vec::new()));
                    bases.push(next);
                    all.push(next);
                    next += n as i64;
                }
                Step::Commit(p) | Step::Abort(p) => {
                    let Some((first, bases)) = open[p].take() else { continue };
                    let pid = 100 + p as i64;
                    let commit = matches!(s, Step::Commit(_));
                    log.push(marker(next, pid, if commit { ControlType::Commit } else { ControlType::Abort }));
                    next += 1;
                    if commit { committed.extend(bases) } else { list.push((pid, first)) }
                }
            }
        }
        committed.sort_unstable();
        let (delivered, _) = run(AbortedFilter::read_committed(aborted(&list)), &log);
        prop_assert_eq!(delivered, committed);
        let (delivered, _) = run(AbortedFilter::read_uncommitted(), &log);
        prop_assert_eq!(delivered, all);
    }
}
