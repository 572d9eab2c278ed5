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
