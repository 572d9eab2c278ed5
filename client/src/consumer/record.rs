//! What the consumer hands out: whole fetched batches, and owned records for convenience.
//!
//! A [`FetchedBatch`] is the zero-copy unit: the batch's bytes are a slice of the fetch
//! response, and its records are slices of those bytes (or of the one decompressed buffer of a
//! compressed batch). A [`ConsumerRecord`] is one record with its key, value and headers as
//! `Bytes` sharing that same buffer, so even the owned form copies no payload.

use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::record::{DecodedRecords, Record, RecordBatch, TimestampType};

use crate::error::{Error, Result};

/// One record batch of one partition, as fetched, with the records it holds.
///
/// Data batches only: control batches (transaction markers) and, under `read_committed`,
/// batches of aborted transactions never reach the user. A compressed batch can start before
/// the offset the consumer asked for (the broker returns whole batches); [`records`] skips
/// the records below it, which is why the decoded records are behind an accessor rather than
/// a field.
///
/// [`records`]: FetchedBatch::records
#[derive(Debug, Clone)]
pub struct FetchedBatch {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) batch: RecordBatch,
    pub(crate) records: DecodedRecords,
    /// Records below this offset were handed out before (or were never asked for).
    pub(crate) skip_below: i64,
    /// The consumer's position once this batch is consumed.
    pub(crate) next_offset: i64,
    pub(crate) high_watermark: i64,
    pub(crate) last_stable_offset: i64,
    pub(crate) log_start_offset: i64,
    /// The partition's assignment epoch when the batch was fetched (see `state.rs`).
    pub(crate) epoch: u64,
}

impl FetchedBatch {
    pub(crate) fn topic_partition(&self) -> (Arc<str>, i32) {
        (Arc::clone(&self.topic), self.partition)
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The batch as fetched: header fields, and its bytes (a slice of the fetch response).
    pub fn batch(&self) -> &RecordBatch {
        &self.batch
    }

    /// All records of the batch, decompressed if it was compressed, including any below
    /// [`first_offset`](Self::first_offset). Prefer [`records`](Self::records).
    pub fn decoded(&self) -> &DecodedRecords {
        &self.records
    }

    /// The records to consume, in offset order: views into the batch's buffer.
    ///
    /// Each item is a record or the error that ends the iteration (a corrupt record).
    pub fn records(&self) -> impl Iterator<Item = Result<Record<'_>>> + '_ {
        let skip_below = self.skip_below;
        self.records
            .iter()
            .map(|r| r.map_err(Error::from))
            .filter(move |r| r.as_ref().map_or(true, |r| r.offset() >= skip_below))
    }

    /// The records as owned [`ConsumerRecord`]s (keys, values and headers still share the
    /// batch's buffer).
    pub fn to_records(&self) -> Result<Vec<ConsumerRecord>> {
        let timestamp_type = self.batch.attributes().timestamp_type();
        self.records()
            .map(|r| {
                r.map(|r| {
                    ConsumerRecord::from_record(&self.topic, self.partition, timestamp_type, &r)
                })
            })
            .collect()
    }

    /// The lowest offset [`records`](Self::records) yields from (the batch may start lower).
    pub fn first_offset(&self) -> i64 {
        self.skip_below.max(self.batch.base_offset())
    }

    /// The offset after this batch: the consumer's position once it is consumed. It can be
    /// past `batch().last_offset() + 1` when control batches or aborted transactions that
    /// followed it were skipped.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// The partition's high watermark when the batch was fetched.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The partition's last stable offset when the batch was fetched (-1 if not reported).
    pub fn last_stable_offset(&self) -> i64 {
        self.last_stable_offset
    }

    /// The partition's log start offset when the batch was fetched (-1 if not reported).
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
}

/// One record header, owned; the key is bytes because Kafka does not check it is UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    /// The header key.
    pub key: Bytes,
    /// The value; `None` is null, distinct from empty.
    pub value: Option<Bytes>,
}

impl RecordHeader {
    /// The key as UTF-8, if it is.
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }
}

/// One consumed record, owned. Key, value and header slices share the fetched buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// Its timestamp in milliseconds since the epoch.
    pub timestamp: i64,
    /// Whether the timestamp is the producer's or the broker's.
    pub timestamp_type: TimestampType,
    /// The key; `None` is null, distinct from empty.
    pub key: Option<Bytes>,
    /// The value; `None` is null (a tombstone), distinct from empty.
    pub value: Option<Bytes>,
    /// The headers in order, duplicates kept.
    pub headers: Vec<RecordHeader>,
}

impl ConsumerRecord {
    pub(crate) fn from_record(
        topic: &Arc<str>,
        partition: i32,
        timestamp_type: TimestampType,
        record: &Record<'_>,
    ) -> Self {
        let buffer = record.buffer();
        ConsumerRecord {
            topic: Arc::clone(topic),
            partition,
            offset: record.offset(),
            timestamp: record.timestamp(),
            timestamp_type,
            key: record.key_bytes(),
            value: record.value_bytes(),
            headers: record
                .headers()
                .map(|h| RecordHeader {
                    key: buffer.slice_ref(h.key),
                    value: h.value.map(|v| buffer.slice_ref(v)),
                })
                .collect(),
        }
    }
}
