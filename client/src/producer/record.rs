//! What goes into the producer and what comes back: [`ProducerRecord`], [`RecordMetadata`],
//! [`SendError`] (which hands the record back) and [`DeliveryFuture`].

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::completion::{Completion, WakerSlot};
use crate::error::{Error, Result};

/// A topic name, cheap to clone: records for one topic can share one allocation.
///
/// Built from a `&str`, it reuses the previous name built on the same thread when that is
/// the same topic (a one-entry cache per thread), so a loop sending
/// `ProducerRecord::new("events")` allocates no name per record. Compares, hashes, prints and
/// derefs as the `str` it holds.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Topic(Arc<str>);

thread_local! {
    /// The topic last built from a `&str` on this thread.
    static LAST_TOPIC: RefCell<Option<Topic>> = const { RefCell::new(None) };
}

impl Topic {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, shared.
    pub(crate) fn shared(&self) -> &Arc<str> {
        &self.0
    }
}

impl From<&str> for Topic {
    fn from(name: &str) -> Self {
        LAST_TOPIC.with(|last| {
            // Never contended (one thread, not re-entered); no cache rather than a panic if it were.
            let Ok(mut last) = last.try_borrow_mut() else {
                return Topic(Arc::from(name));
            };
            match &*last {
                Some(topic) if topic.as_str() == name => topic.clone(),
                _ => {
                    let topic = Topic(Arc::from(name));
                    *last = Some(topic.clone());
                    topic
                }
            }
        })
    }
}

impl From<&String> for Topic {
    fn from(name: &String) -> Self {
        Topic::from(name.as_str())
    }
}

impl From<String> for Topic {
    fn from(name: String) -> Self {
        Topic::from(name.as_str())
    }
}

impl From<Arc<str>> for Topic {
    fn from(name: Arc<str>) -> Self {
        Topic(name)
    }
}

impl std::ops::Deref for Topic {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl PartialEq<str> for Topic {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Topic {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for Topic {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

/// A record to send.
///
/// `key` and `value` may each be null (`None`) or empty, and the two stay distinct on the
/// wire. Header keys may repeat; their order is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: Topic,
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
    pub fn new(topic: impl Into<Topic>) -> Self {
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
    /// The outcome of the record's batch, shared by all its records.
    batch: Arc<Completion>,
    /// The record's offset delta in its batch.
    index: i32,
    /// Its create time.
    timestamp: i64,
    /// Where this future's waker sits in the batch's list, once registered.
    slot: WakerSlot,
    /// The waker registered there: polled again with the same one (a caller checking its
    /// oldest delivery after every send), it need not take the batch's lock.
    registered: Option<Waker>,
}

impl DeliveryFuture {
    pub(crate) fn new(batch: Arc<Completion>, index: i32, timestamp: i64) -> Self {
        DeliveryFuture {
            batch,
            index,
            timestamp,
            slot: WakerSlot::NONE,
            registered: None,
        }
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let outcome = match this.batch.outcome() {
            Some(outcome) => outcome,
            // Registered already, and the batch will wake it: it checks the outcome after
            // taking the list (see `completion.rs`).
            None if this
                .registered
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker())) =>
            {
                return Poll::Pending
            }
            None => match this.batch.register(cx.waker(), &mut this.slot) {
                Some(outcome) => outcome,
                None => {
                    this.registered = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            },
        };
        let ack = match outcome {
            Ok(ack) => ack,
            Err(error) => return Poll::Ready(Err(error.clone())),
        };
        let offset = if ack.base_offset < 0 {
            -1
        } else {
            ack.base_offset + i64::from(this.index)
        };
        let timestamp = if ack.log_append_time >= 0 {
            ack.log_append_time
        } else {
            this.timestamp
        };
        Poll::Ready(Ok(RecordMetadata {
            topic: Arc::clone(&this.batch.tp.topic),
            partition: this.batch.tp.partition,
            offset,
            timestamp,
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sluice_protocol::record::{BatchBuilder, BatchHeader};

    #[test]
    fn topics_from_the_same_name_share_it_and_compare_as_str() {
        let a = ProducerRecord::new("events");
        let b = ProducerRecord::new(String::from("events"));
        assert!(Arc::ptr_eq(a.topic.shared(), b.topic.shared()));
        let c = ProducerRecord::new("other");
        assert_eq!(c.topic, "other");
        assert_ne!(a.topic, c.topic);
        assert_eq!(a.topic, b.topic);
        assert_eq!(a.topic.to_string(), "events");
        assert_eq!(format!("{:?}", a.topic), "\"events\"");
        assert_eq!(&*a.topic, "events");
    }

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
