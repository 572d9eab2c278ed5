//! What goes into the producer and what comes back: [`ProducerRecord`], [`RecordMetadata`],
//! [`SendError`] (which hands the record back) and [`DeliveryFuture`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use sluice_protocol::record::BATCH_HEADER_LEN;
use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// A record to send.
///
/// `key` and `value` may each be null (`None`) or empty, and the two stay distinct on the
/// wire. Header keys may repeat; their order is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: String,
    /// The partition, or `None` to let the partitioner choose.
    pub partition: Option<i32>,
    /// The key; keyed records are placed by `murmur2(key)` unless a partition is given.
    pub key: Option<Bytes>,
    /// The value.
    pub value: Option<Bytes>,
    /// Headers, in order; a `None` value is a null header value.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// The create time in milliseconds since the epoch, or `None` for "now" at `send`.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// An empty record (null key, null value, no headers) for `topic`.
    pub fn new(topic: impl Into<String>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Sends to `partition` rather than where the partitioner would.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Appends a header. Keys may repeat; order is kept.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((key.into(), Some(value.into())));
        self
    }

    /// Appends a header with a null value (not the same as an empty one).
    pub fn null_header(mut self, key: impl Into<String>) -> Self {
        self.headers.push((key.into(), None));
        self
    }

    /// Sets the create timestamp (milliseconds since the epoch).
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// An upper bound of the bytes this record takes in a batch, length prefix included.
    ///
    /// Upper bound because the timestamp and offset deltas are varints whose size depends on
    /// the batch the record lands in; the widest forms are counted. It is what buffer memory
    /// is reserved by and what `max_request_size` is checked against.
    pub(crate) fn size_upper_bound(&self) -> usize {
        let bytes = |b: Option<usize>| b.map_or(1, |len| varint_len(len) + len);
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| bytes(Some(k.len())) + bytes(v.as_ref().map(Bytes::len)))
            .sum();
        // attributes, timestamp delta (i64 varint), offset delta (i32 varint).
        let body = 1
            + 10
            + 5
            + bytes(self.key.as_ref().map(Bytes::len))
            + bytes(self.value.as_ref().map(Bytes::len))
            + varint_len(self.headers.len())
            + headers;
        varint_len(body) + body
    }

    /// The size a batch holding only this record may reach: what must fit in one request.
    pub(crate) fn batch_size_upper_bound(&self) -> usize {
        BATCH_HEADER_LEN + self.size_upper_bound()
    }
}

/// Bytes of a zigzag varint of a non-negative length.
fn varint_len(n: usize) -> usize {
    // zigzag doubles the value.
    let mut v = (n as u64) << 1;
    let mut len = 1;
    while v >= 0x80 {
        v >>= 7;
        len += 1;
    }
    len
}

/// Where a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The record's offset, or -1 when unknown: with `acks=0` (as in Java), and when the broker
    /// answered a retried batch with DUPLICATE_SEQUENCE_NUMBER without the original offset
    /// (Tansu does; Kafka returns the original offset).
    pub offset: i64,
    /// The record's timestamp: its create time, or the broker's append time when the topic
    /// uses `LogAppendTime`.
    pub timestamp: i64,
}

/// A record that could not be enqueued, handed back with why.
#[derive(Debug, thiserror::Error)]
#[error("record for topic {} not sent: {error}", .record.topic)]
pub struct SendError {
    /// Why.
    pub error: Error,
    /// The record, unchanged.
    pub record: ProducerRecord,
}

/// Resolves when the broker has acknowledged the record (or its delivery failed).
///
/// Dropping it does not cancel the delivery; the record is still sent.
#[derive(Debug)]
#[must_use = "a DeliveryFuture does nothing unless awaited; drop it to fire and forget"]
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Result<RecordMetadata>>,
}

impl DeliveryFuture {
    pub(crate) fn new(rx: oneshot::Receiver<Result<RecordMetadata>>) -> Self {
        DeliveryFuture { rx }
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            // The batch was dropped unanswered: the producer's task ended (closed past its
            // bound, or the runtime shut down).
            Poll::Ready(Err(_)) => Poll::Ready(Err(Error::Closed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sluice_protocol::record::{BatchBuilder, BatchHeader};

    #[test]
    fn size_upper_bound_covers_the_encoded_record() {
        let records = [
            ProducerRecord::new("t"),
            ProducerRecord::new("t").key("k").value(vec![7u8; 300]),
            ProducerRecord::new("t")
                .value(Bytes::new())
                .header("a", "b")
                .null_header("n"),
        ];
        for record in records {
            let builder = BatchBuilder::new(BatchHeader::default());
            let headers = record
                .headers
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_deref()));
            let exact = builder.record_len(
                i64::MAX,
                record.key.as_deref(),
                record.value.as_deref(),
                headers,
            );
            let bound = record.size_upper_bound();
            assert!(bound >= exact && bound <= exact + 16, "{bound} vs {exact}");
        }
    }
}
