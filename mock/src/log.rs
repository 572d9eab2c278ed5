//! One partition's log: record batches at real offsets, the high watermark, the last stable
//! offset, the log start offset, the aborted-transaction index and the idempotent-producer
//! state a partition leader keeps.
//!
//! The mock keeps one replica per partition, so a batch is committed (below the high
//! watermark) as soon as it is appended. The rules follow Apache Kafka's partition leader
//! (`UnifiedLog`, `ProducerStateManager`, `ProducerAppendInfo`): a duplicate of one of a
//! producer's last five batches is answered with the original offsets, a sequence gap is
//! OUT_OF_ORDER_SEQUENCE_NUMBER, an older epoch INVALID_PRODUCER_EPOCH, and a new epoch must
//! start at sequence 0.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use sluice_protocol::record::{BatchBuilder, BatchHeader, ControlRecord, ControlType, RecordBatch};
use sluice_protocol::Compressor;

/// How many of a producer's latest batches a leader remembers to recognise retries
/// (Kafka's `NUM_BATCHES_TO_RETAIN`, which is also why clients allow at most five in flight).
const RETAINED_BATCHES: usize = 5;

/// The offset of a batch's producer id field, and of its base offset and leader epoch.
const BASE_OFFSET_AT: usize = 0;
const LEADER_EPOCH_AT: usize = 12;

/// A batch stored in the log, with its offsets assigned.
#[derive(Debug, Clone)]
struct StoredBatch {
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
    bytes: Bytes,
}

/// What a leader remembers of one producer id.
#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    /// The latest batches: (first sequence, last sequence, base offset), oldest first.
    recent: VecDeque<(i32, i32, i64)>,
}

/// A transaction that was aborted, as the Fetch response's aborted list reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbortedTxn {
    pub(crate) producer_id: i64,
    pub(crate) first_offset: i64,
    /// The offset of the abort marker.
    pub(crate) last_offset: i64,
}

/// The result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Appended {
    /// The offset of the first record (the original one, for a duplicate).
    pub(crate) base_offset: i64,
    /// The log start offset after the append.
    pub(crate) log_start_offset: i64,
}

/// What a fetch reads from one partition.
#[derive(Debug, Default)]
pub(crate) struct Read {
    /// Whole batches, concatenated.
    pub(crate) records: BytesMut,
    /// Aborted transactions overlapping the returned range (read_committed only).
    pub(crate) aborted: Vec<AbortedTxn>,
}

/// One partition's log.
#[derive(Debug, Default)]
pub(crate) struct PartitionLog {
    batches: Vec<StoredBatch>,
    log_start: i64,
    /// The next offset to assign, which is also the high watermark (one replica).
    end: i64,
    producers: HashMap<i64, ProducerEntry>,
    /// Producer id -> offset of its open transaction's first batch in this partition.
    open_txns: BTreeMap<i64, i64>,
    aborted: Vec<AbortedTxn>,
}

impl PartitionLog {
    /// The high watermark (and log end offset: there is one replica).
    pub(crate) fn high_watermark(&self) -> i64 {
        self.end
    }

    /// The last stable offset: the first offset of the oldest open transaction, or the high
    /// watermark when none is open. read_committed consumers read up to here.
    pub(crate) fn last_stable_offset(&self) -> i64 {
        self.open_txns.values().copied().min().unwrap_or(self.end)
    }

    pub(crate) fn log_start_offset(&self) -> i64 {
        self.log_start
    }

    /// The end a consumer with `read_committed` (or not) may read up to.
    pub(crate) fn visible_end(&self, read_committed: bool) -> i64 {
        if read_committed {
            self.last_stable_offset()
        } else {
            self.end
        }
    }

    /// Whether `producer_id` has an open transaction in this partition.
    pub(crate) fn has_open_txn(&self, producer_id: i64) -> bool {
        self.open_txns.contains_key(&producer_id)
    }

    /// Appends one producer batch (already CRC-checked by the caller), assigning offsets.
    ///
    /// Errors are the Kafka error a leader answers with; nothing is appended then.
    pub(crate) fn append(
        &mut self,
        batch: &RecordBatch,
        leader_epoch: i32,
    ) -> Result<Appended, ResponseError> {
        let producer_id = batch.producer_id();
        if producer_id >= 0 {
            if let Some(original) = self.check_producer(batch)? {
                return Ok(Appended {
                    base_offset: original,
                    log_start_offset: self.log_start,
                });
            }
            if !batch.is_transactional() && self.open_txns.contains_key(&producer_id) {
                // A plain write from a producer whose transaction is open here
                // (`ProducerAppendInfo.appendDataBatch`).
                return Err(ResponseError::InvalidTxnState);
            }
        }
        let base_offset = self.push(batch, leader_epoch);
        if producer_id >= 0 {
            let entry = self.producers.entry(producer_id).or_default();
            if entry.epoch != batch.producer_epoch() {
                // A new epoch starts a new sequence space: the old epoch's batches must not be
                // taken for duplicates of the new one's (Kafka's `ProducerStateEntry`).
                entry.recent.clear();
            }
            entry.epoch = batch.producer_epoch();
            let first = batch.base_sequence();
            let last = first.wrapping_add(batch.last_offset_delta()) & i32::MAX;
            entry.recent.push_back((first, last, base_offset));
            if entry.recent.len() > RETAINED_BATCHES {
                entry.recent.pop_front();
            }
            if batch.is_transactional() {
                self.open_txns.entry(producer_id).or_insert(base_offset);
            }
        }
        Ok(Appended {
            base_offset,
            log_start_offset: self.log_start,
        })
    }

    /// Kafka's producer-state checks. `Ok(Some(offset))` is a duplicate of a retained batch.
    fn check_producer(&self, batch: &RecordBatch) -> Result<Option<i64>, ResponseError> {
        let epoch = batch.producer_epoch();
        let first = batch.base_sequence();
        let Some(entry) = self.producers.get(&batch.producer_id()) else {
            // No state (a new producer, or one whose batches were all deleted): Kafka accepts
            // any sequence.
            return Ok(None);
        };
        if epoch < entry.epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if epoch > entry.epoch {
            return if first == 0 || batch.is_control() {
                Ok(None)
            } else {
                Err(ResponseError::OutOfOrderSequenceNumber)
            };
        }
        let last = first.wrapping_add(batch.last_offset_delta()) & i32::MAX;
        if let Some(&(_, _, offset)) = entry
            .recent
            .iter()
            .find(|(f, l, _)| *f == first && *l == last)
        {
            return Ok(Some(offset));
        }
        match entry.recent.back() {
            Some(&(_, latest, _)) if first != next_sequence(latest) => {
                Err(ResponseError::OutOfOrderSequenceNumber)
            }
            _ => Ok(None),
        }
    }

    /// Stores a batch at the end of the log and returns its base offset.
    fn push(&mut self, batch: &RecordBatch, leader_epoch: i32) -> i64 {
        let base_offset = self.end;
        let mut bytes = BytesMut::from(batch.as_bytes().as_ref());
        bytes[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
        bytes[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&leader_epoch.to_be_bytes());
        let last_offset = base_offset + i64::from(batch.last_offset_delta());
        self.batches.push(StoredBatch {
            base_offset,
            last_offset,
            max_timestamp: batch.max_timestamp(),
            bytes: bytes.freeze(),
        });
        self.end = last_offset + 1;
        base_offset
    }

    /// Writes a transaction marker (a control batch) for `producer_id` and closes its
    /// transaction in this partition; an abort goes into the aborted-transaction index.
    /// Returns the marker's offset.
    pub(crate) fn write_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        timestamp: i64,
        leader_epoch: i32,
    ) -> Result<i64, ResponseError> {
        let kind = if commit {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        let mut builder = BatchBuilder::new(BatchHeader {
            producer_id,
            producer_epoch,
            transactional: true,
            control: true,
            ..BatchHeader::default()
        });
        let encoded = builder
            .push_control(timestamp, &ControlRecord::marker(kind, coordinator_epoch))
            .and_then(|()| builder.finish(&mut Compressor::default()))
            .and_then(RecordBatch::from_bytes)
            .map_err(|_| ResponseError::UnknownServerError)?;
        let offset = self.push(&encoded, leader_epoch);
        let entry = self.producers.entry(producer_id).or_default();
        if producer_epoch > entry.epoch {
            entry.recent.clear();
            entry.epoch = producer_epoch;
        }
        if let Some(first_offset) = self.open_txns.remove(&producer_id) {
            if !commit {
                self.aborted.push(AbortedTxn {
                    producer_id,
                    first_offset,
                    last_offset: offset,
                });
            }
        }
        Ok(offset)
    }

    /// Whole batches from the one holding `offset`, up to `visible_end`, within `max_bytes`
    /// (the first batch is returned even if larger when `min_one`, as Kafka does so a consumer
    /// can always make progress). `None` if `offset` is out of range.
    pub(crate) fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        read_committed: bool,
        min_one: bool,
    ) -> Option<Read> {
        if offset < self.log_start || offset > self.end {
            return None;
        }
        let visible_end = self.visible_end(read_committed);
        let start = self.batches.partition_point(|b| b.last_offset < offset);
        let mut read = Read::default();
        let mut upper = offset;
        for batch in self.batches[start..]
            .iter()
            .take_while(|b| b.base_offset < visible_end)
        {
            let fits = read.records.len() + batch.bytes.len() <= max_bytes;
            if !(fits || min_one && read.records.is_empty()) {
                break;
            }
            read.records.extend_from_slice(&batch.bytes);
            upper = batch.last_offset + 1;
        }
        if read_committed {
            read.aborted = self
                .aborted
                .iter()
                .filter(|a| a.last_offset >= offset && a.first_offset < upper)
                .copied()
                .collect();
        }
        Some(read)
    }

    /// The offset and timestamp of the first record with a timestamp at or after `timestamp`
    /// below `visible_end`, as ListOffsets answers; `None` if there is none.
    pub(crate) fn offset_for_timestamp(
        &self,
        timestamp: i64,
        visible_end: i64,
    ) -> Option<(i64, i64)> {
        for stored in self
            .batches
            .iter()
            .take_while(|b| b.base_offset < visible_end)
            .filter(|b| b.max_timestamp >= timestamp)
        {
            let batch = RecordBatch::from_bytes(stored.bytes.clone()).ok()?;
            if batch.is_control() {
                continue;
            }
            let records = batch.records().ok()?;
            for record in records.iter() {
                let record = record.ok()?;
                let offset = record.offset();
                if offset >= self.log_start
                    && offset < visible_end
                    && record.timestamp() >= timestamp
                {
                    return Some((offset, record.timestamp()));
                }
            }
        }
        None
    }

    /// The largest timestamp below `visible_end` and the offset of the record that has it
    /// (ListOffsets with timestamp -3, KIP-734).
    pub(crate) fn max_timestamp(&self, visible_end: i64) -> Option<(i64, i64)> {
        let best = self
            .batches
            .iter()
            .take_while(|b| b.base_offset < visible_end)
            .filter(|b| !RecordBatch::from_bytes(b.bytes.clone()).is_ok_and(|x| x.is_control()))
            .max_by_key(|b| b.max_timestamp)?;
        self.offset_for_timestamp(best.max_timestamp, visible_end)
    }

    /// Deletes records below `offset` (DeleteRecords). Returns the new log start offset, or
    /// `None` if `offset` is past the high watermark.
    pub(crate) fn delete_before(&mut self, offset: i64) -> Option<i64> {
        let offset = if offset == -1 { self.end } else { offset };
        if offset > self.end || offset < 0 {
            return None;
        }
        if offset > self.log_start {
            self.log_start = offset;
            self.batches.retain(|b| b.last_offset >= offset);
        }
        Some(self.log_start)
    }
}

/// The sequence after `sequence` (sequences wrap from `i32::MAX` to 0).
fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn batch(epoch: i16, base_sequence: i32, records: usize) -> RecordBatch {
        let mut builder = BatchBuilder::new(BatchHeader {
            producer_id: 7,
            producer_epoch: epoch,
            base_sequence,
            ..BatchHeader::default()
        });
        for i in 0..records {
            let no_headers: [(&[u8], Option<&[u8]>); 0] = [];
            builder
                .push(
                    0,
                    Some(b"k".as_slice()),
                    Some(format!("v{i}").as_bytes()),
                    no_headers,
                )
                .unwrap();
        }
        RecordBatch::from_bytes(builder.finish(&mut Compressor::default()).unwrap()).unwrap()
    }

    #[test]
    fn duplicates_are_answered_with_the_original_offset_within_an_epoch_only() {
        let mut log = PartitionLog::default();
        assert_eq!(log.append(&batch(0, 0, 3), 0).unwrap().base_offset, 0);
        assert_eq!(log.append(&batch(0, 3, 3), 0).unwrap().base_offset, 3);
        // A retry of the second batch: the original offset, nothing appended.
        assert_eq!(log.append(&batch(0, 3, 3), 0).unwrap().base_offset, 3);
        assert_eq!(log.high_watermark(), 6);
        // A gap.
        assert_eq!(
            log.append(&batch(0, 9, 1), 0),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        // A new epoch restarts at 0; its batches with the old epoch's sequence ranges are new.
        assert_eq!(log.append(&batch(1, 0, 3), 0).unwrap().base_offset, 6);
        assert_eq!(log.append(&batch(1, 3, 3), 0).unwrap().base_offset, 9);
        assert_eq!(log.high_watermark(), 12);
        // The old epoch is fenced.
        assert_eq!(
            log.append(&batch(0, 6, 1), 0),
            Err(ResponseError::InvalidProducerEpoch)
        );
    }
}
