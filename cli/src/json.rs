//! The per-record JSON line that `dump` and `consume --format json` print (`consume` adds
//! `topic` and `partition`).
//!
//! Keys, values and header values print as JSON strings when they are valid UTF-8 and as
//! `{"base64": "..."}` otherwise, so binary data survives the round trip; null stays `null`.

use base64::Engine as _;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use sluice_protocol::record::{ControlRecord, ControlType, Record, RecordBatch};

/// Bytes that print as text when they can.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Payload<'a>(pub(crate) Option<&'a [u8]>);

impl Serialize for Payload<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_none(),
            Some(b) => match std::str::from_utf8(b) {
                Ok(text) => s.serialize_str(text),
                Err(_) => {
                    let mut map = s.serialize_map(Some(1))?;
                    map.serialize_entry(
                        "base64",
                        &base64::engine::general_purpose::STANDARD.encode(b),
                    )?;
                    map.end()
                }
            },
        }
    }
}

/// A record's headers as a list of `[key, value]` pairs, in order.
#[derive(Debug)]
struct Headers<'a>(&'a Record<'a>);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .headers()
                .map(|h| (Payload(Some(h.key)), Payload(h.value))),
        )
    }
}

/// One JSON line describing a record and the batch it came from.
#[derive(Debug, Serialize)]
pub(crate) struct RecordLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<i32>,
    offset: i64,
    timestamp: i64,
    key: Payload<'a>,
    value: Payload<'a>,
    headers: Headers<'a>,
    base_offset: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: Option<&'static str>,
    compression: &'static str,
}

impl<'a> RecordLine<'a> {
    /// Describes `record`, which belongs to `batch`.
    pub(crate) fn new(batch: &RecordBatch, record: &'a Record<'a>) -> Self {
        let control = batch
            .is_control()
            .then(|| match ControlRecord::parse(record) {
                Ok(c) if c.kind == ControlType::Commit => "commit",
                Ok(c) if c.kind == ControlType::Abort => "abort",
                _ => "unknown",
            });
        RecordLine {
            topic: None,
            partition: None,
            offset: record.offset(),
            timestamp: record.timestamp(),
            key: Payload(record.key()),
            value: Payload(record.value()),
            headers: Headers(record),
            base_offset: batch.base_offset(),
            producer_id: batch.producer_id(),
            producer_epoch: batch.producer_epoch(),
            base_sequence: batch.base_sequence(),
            transactional: batch.is_transactional(),
            control,
            compression: batch.compression().name(),
        }
    }

    /// The same line, saying which topic and partition the record is from.
    pub(crate) fn in_partition(self, topic: &'a str, partition: i32) -> Self {
        RecordLine {
            topic: Some(topic),
            partition: Some(partition),
            ..self
        }
    }
}
