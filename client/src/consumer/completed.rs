//! One partition's records from a fetch response, cut into the batches to hand out.
//!
//! Pure (bytes in, batches out), so every case is tested with constructed payloads. The rules
//! are the Java client's `CompletedFetch`:
//!
//! * **A partial batch at the end is normal**: the broker cuts the response at the size limit.
//!   It is ignored, and the next fetch starts at its offset. Only when the response holds no
//!   whole batch at all is that an error (the batch is larger than any fetch the consumer may
//!   make; brokers since KIP-74 always send the first batch whole, so this is a broker bug).
//! * **A batch can start before the fetch offset**: the broker returns whole batches, and
//!   a compressed batch cannot be split. Batches that end before it are dropped; records below
//!   it in a straddling batch are skipped when the batch is read (`skip_below`).
//! * **Control batches and aborted transactions** are dropped here ([`super::aborted`]), and
//!   the position moves past them, so a response that held nothing else still advances it.
//! * **Corruption** (a bad CRC when `check.crcs` is on, a malformed header or marker) is
//!   reported after the good batches before it, and the partition stops at the bad batch.

use std::collections::VecDeque;

use bytes::Bytes;
use sluice_protocol::record::{RecordBatch, RecordBatches};

use super::aborted::{AbortedFilter, BatchFacts, Verdict};
use crate::error::{Error, KafkaCode};

/// The outcome of cutting one partition's records.
#[derive(Debug)]
pub(crate) struct Cut {
    /// Data batches to hand out, in order.
    pub(crate) batches: VecDeque<RecordBatch>,
    /// Where the next fetch starts: past every whole batch read, delivered or skipped.
    pub(crate) next_offset: i64,
    /// A fault found after `batches`; the partition must stop at `next_offset`.
    pub(crate) error: Option<Error>,
}

/// Cuts `records` (one partition's records field) fetched at `fetch_offset`.
pub(crate) fn cut(
    records: &Bytes,
    fetch_offset: i64,
    filter: &mut AbortedFilter,
    check_crcs: bool,
) -> Cut {
    let mut cut = Cut {
        batches: VecDeque::new(),
        next_offset: fetch_offset,
        error: None,
    };
    let mut iter = RecordBatches::new(records.clone());
    let mut whole = 0usize;
    loop {
        if iter.rest_is_partial_batch() {
            if whole == 0 {
                cut.error = Some(Error::kafka(
                    KafkaCode::MESSAGE_TOO_LARGE,
                    format!(
                        "the broker returned only {} bytes of the batch at offset {fetch_offset}; \
                         raise max.partition.fetch.bytes and fetch.max.bytes",
                        records.len()
                    ),
                ));
            }
            break;
        }
        let batch = match iter.next() {
            None => break,
            Some(Ok(batch)) => batch,
            Some(Err(e)) => {
                cut.error = Some(corrupt(e, cut.next_offset));
                break;
            }
        };
        whole += 1;
        let last = batch.last_offset();
        if last < cut.next_offset {
            // Wholly before the fetch offset: the rest of a batch already consumed.
            continue;
        }
        if check_crcs {
            if let Err(e) = batch.verify_crc() {
                cut.error = Some(corrupt(e, cut.next_offset));
                break;
            }
        }
        let facts = match BatchFacts::of(&batch) {
            Ok(facts) => facts,
            Err(e) => {
                cut.error = Some(corrupt(e, cut.next_offset));
                break;
            }
        };
        match filter.verdict(&facts) {
            Verdict::Deliver if batch.records_count() > 0 => cut.batches.push_back(batch),
            // Emptied by compaction, control, or aborted: nothing to hand out.
            Verdict::Deliver | Verdict::Control | Verdict::Aborted => {}
        }
        cut.next_offset = cut.next_offset.max(last.saturating_add(1));
    }
    cut
}

fn corrupt(e: sluice_protocol::Error, at: i64) -> Error {
    Error::kafka(
        KafkaCode::CORRUPT_MESSAGE,
        format!("record batch at or after offset {at}: {e}"),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::consumer::testutil::{batch, concat, marker};
    use sluice_protocol::record::ControlType;
    use sluice_protocol::Compression;

    fn run(records: &Bytes, fetch_offset: i64, check_crcs: bool) -> (Vec<i64>, i64, Option<Error>) {
        let cut = cut(
            records,
            fetch_offset,
            &mut AbortedFilter::read_uncommitted(),
            check_crcs,
        );
        (
            cut.batches.iter().map(RecordBatch::base_offset).collect(),
            cut.next_offset,
            cut.error,
        )
    }

    #[test]
    fn a_partial_trailing_batch_is_left_for_the_next_fetch() {
        let third = batch(20, 10, Compression::None);
        let mut records = concat(&[
            batch(0, 10, Compression::None),
            batch(10, 10, Compression::Lz4),
        ])
        .to_vec();
        records.extend_from_slice(&third[..third.len() / 2]);
        let (batches, next, error) = run(&Bytes::from(records), 0, true);
        assert_eq!((batches, next), (vec![0, 10], 20));
        assert!(error.is_none());
        // Cut inside the length field too.
        let mut records = batch(0, 3, Compression::None).to_vec();
        records.extend_from_slice(&third[..5]);
        assert_eq!(run(&Bytes::from(records), 0, true).1, 3);
    }

    #[test]
    fn only_a_partial_batch_is_an_error_not_a_loop() {
        let whole = batch(7, 10, Compression::None);
        let (batches, next, error) = run(&whole.slice(..whole.len() - 1), 7, true);
        assert_eq!((batches.len(), next), (0, 7));
        assert_eq!(
            error.and_then(|e| e.code()),
            Some(KafkaCode::MESSAGE_TOO_LARGE)
        );
    }

    #[test]
    fn batches_before_the_fetch_offset_are_dropped_or_kept_to_skip_inside() {
        let records = concat(&[
            batch(0, 5, Compression::Gzip),
            batch(5, 10, Compression::Gzip),
        ]);
        // Offset 8 is inside the second batch: it is kept (records below 8 are skipped when
        // read), the first is dropped.
        let (batches, next, _) = run(&records, 8, true);
        assert_eq!((batches, next), (vec![5], 15));
    }

    #[test]
    fn a_bad_crc_stops_after_the_good_batches() {
        let bad = batch(10, 5, Compression::None).to_vec();
        let mut bad = bad;
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let records = concat(&[
            batch(0, 10, Compression::None),
            Bytes::from(bad),
            batch(15, 5, Compression::None),
        ]);
        let (batches, next, error) = run(&records, 0, true);
        assert_eq!((batches, next), (vec![0], 10));
        assert_eq!(
            error.and_then(|e| e.code()),
            Some(KafkaCode::CORRUPT_MESSAGE)
        );
        // check.crcs=false: not looked at.
        let (batches, next, error) = run(&records, 0, false);
        assert_eq!((batches, next), (vec![0, 10, 15], 20));
        assert!(error.is_none());
    }

    #[test]
    fn markers_move_the_offset_without_data() {
        let records = concat(&[
            marker(4, 9, ControlType::Commit),
            marker(5, 9, ControlType::Abort),
        ]);
        let (batches, next, error) = run(&records, 4, true);
        assert_eq!((batches.len(), next), (0, 6));
        assert!(error.is_none());
        assert_eq!(run(&Bytes::new(), 4, true).1, 4, "no data, no move");
    }

    #[test]
    fn a_malformed_header_is_corruption() {
        let mut bad = batch(0, 2, Compression::None).to_vec();
        bad[16] = 1; // magic 1
        let (batches, next, error) = run(&Bytes::from(bad), 0, true);
        assert_eq!((batches.len(), next), (0, 0));
        assert_eq!(
            error.and_then(|e| e.code()),
            Some(KafkaCode::CORRUPT_MESSAGE)
        );
    }
}
