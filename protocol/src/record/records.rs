//! Lazy, zero-copy iteration over the records of a batch.
//!
//! A [`Record`] borrows from the batch's (possibly decompressed) buffer: key, value and header
//! slices point into it, and `*_bytes()` turn them into `Bytes` sharing that buffer without a
//! copy. Iterating an uncompressed batch allocates nothing per record. Each record is checked
//! in full (its fields must fill exactly its length prefix, headers included) before it is
//! handed out, so header iteration cannot fail later.
//!
//! Record layout (KIP-98): `length varint | attributes i8 | timestampDelta varlong |
//! offsetDelta varint | keyLength varint | key | valueLength varint | value |
//! headersCount varint | [headerKeyLength varint | headerKey | headerValueLength varint |
//! headerValue]...`. A length of -1 means null; null and empty stay distinct.

use bytes::Bytes;

use super::batch::{RecordBatch, TimestampType, MIN_RECORD_LEN};
use super::wire::{fast_bytes, fast_length, fast_varint, Reader};
use crate::error::{Error, Result};

/// The records of one batch, ready to iterate.
#[derive(Debug, Clone)]
pub struct DecodedRecords {
    data: Bytes,
    /// Offset of `data[0]` in the caller's input (0 for decompressed data).
    origin: usize,
    /// For decompressed data, where its batch starts in the input: errors are wrapped with it.
    compressed_batch_at: Option<usize>,
    count: u32,
    base_offset: i64,
    base_timestamp: i64,
    max_timestamp: i64,
    log_append_time: bool,
}

impl DecodedRecords {
    pub(crate) fn new(
        batch: &RecordBatch,
        data: Bytes,
        origin: usize,
        decompressed: bool,
    ) -> Result<Self> {
        let count = u32::try_from(batch.records_count()).unwrap_or(0);
        // Every record takes at least MIN_RECORD_LEN bytes: a count the bytes cannot hold is
        // corrupt, and saying so now keeps callers from sizing anything by it.
        if (count as usize).saturating_mul(MIN_RECORD_LEN) > data.len() {
            let reason = format!(
                "{count} records cannot fit in {} bytes{}",
                data.len(),
                if decompressed {
                    " of decompressed data"
                } else {
                    ""
                }
            );
            return Err(Error::Invalid {
                field: "recordsCount",
                offset: batch.position(),
                reason,
            });
        }
        Ok(DecodedRecords {
            data,
            origin,
            compressed_batch_at: decompressed.then(|| batch.position()),
            count,
            base_offset: batch.base_offset(),
            base_timestamp: batch.base_timestamp(),
            max_timestamp: batch.max_timestamp(),
            log_append_time: batch.attributes().timestamp_type() == TimestampType::LogAppendTime,
        })
    }

    /// Wraps an error found in decompressed data with the position of its batch.
    fn locate(&self, e: Error) -> Error {
        match self.compressed_batch_at {
            Some(batch_offset) => Error::InCompressedBatch {
                batch_offset,
                source: Box::new(e),
            },
            None => e,
        }
    }

    /// The buffer the records are slices of.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Number of records in the batch.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the batch has no records.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Iterates the records. Each item is a record or the error that ends the iteration.
    pub fn iter(&self) -> Records<'_> {
        Records {
            owner: self,
            reader: Reader::new(&self.data, self.origin),
            left: self.count,
            done: false,
        }
    }
}

impl<'a> IntoIterator for &'a DecodedRecords {
    type Item = Result<Record<'a>>;
    type IntoIter = Records<'a>;

    fn into_iter(self) -> Records<'a> {
        self.iter()
    }
}

/// Iterator over the records of a [`DecodedRecords`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    owner: &'a DecodedRecords,
    reader: Reader<'a>,
    left: u32,
    done: bool,
}

/// The fields of one record, as the fast path reads them.
struct Fields<'a> {
    attributes: i8,
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: &'a [u8],
    header_count: u32,
}

/// Reads the record at `*pos` and moves past it, or `None` if anything is off; then the
/// checked reader runs to name the fault. Same rules as the checked path: the fields must
/// fill exactly the record's length.
#[inline(always)]
fn fast_record<'a>(data: &'a [u8], pos: &mut usize) -> Option<Fields<'a>> {
    let mut p = *pos;
    let len = fast_length(data, &mut p)??;
    let end = p.checked_add(len)?;
    let body = data.get(..end)?;
    let attributes = *body.get(p)? as i8;
    p += 1;
    let timestamp_delta = fast_varint(body, &mut p, 10)?;
    let offset_delta = fast_varint(body, &mut p, 5)? as i32;
    let key = fast_bytes(body, &mut p, true)?;
    let value = fast_bytes(body, &mut p, true)?;
    // Most records have no headers: a count of 0 as their last byte. Testing that byte, whose
    // address is known from the length alone, keeps one load off the chain that runs from
    // each field's length to the next field.
    let (header_count, headers_start) = if p + 1 == end && body.last() == Some(&0) {
        (0, end)
    } else {
        let header_count = u32::try_from(fast_varint(body, &mut p, 5)?).ok()?;
        let headers_start = p;
        for _ in 0..header_count {
            fast_bytes(body, &mut p, false)?;
            fast_bytes(body, &mut p, true)?;
        }
        if p != end {
            return None;
        }
        (header_count, headers_start)
    };
    *pos = end;
    Some(Fields {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers: &body[headers_start..end],
        header_count,
    })
}

impl<'a> Records<'a> {
    #[inline(always)]
    fn read_record(&mut self) -> Result<Record<'a>> {
        let mut pos = self.reader.pos();
        let fields = match fast_record(self.reader.data(), &mut pos) {
            Some(fields) => {
                self.reader.set_pos(pos);
                fields
            }
            None => {
                // By value: `&mut self` escaping into the cold call kept the iterator in
                // memory, its position stored and reloaded between records.
                let (fields, pos) = read_record_checked(self.reader.clone())?;
                self.reader.set_pos(pos);
                fields
            }
        };
        let owner = self.owner;
        let timestamp = if owner.log_append_time {
            owner.max_timestamp
        } else {
            owner.base_timestamp.wrapping_add(fields.timestamp_delta)
        };
        Ok(Record {
            data: &owner.data,
            offset: owner
                .base_offset
                .wrapping_add(i64::from(fields.offset_delta)),
            timestamp,
            attributes: fields.attributes,
            key: fields.key,
            value: fields.value,
            headers: Headers {
                data: fields.headers,
                left: fields.header_count,
            },
        })
    }
}

/// The slow path: reads a record field by field with errors that say what and where, and
/// returns it with the position after it.
#[cold]
#[inline(never)]
fn read_record_checked(mut r: Reader<'_>) -> Result<(Fields<'_>, usize)> {
    let len_at = r.pos();
    let len_offset = r.offset();
    let len = r.varint("record length")?;
    if len < 0 {
        return Err(r.invalid("record length", len_at, format!("negative length {len}")));
    }
    let body = r.bytes(len as usize, "record")?;
    // Parse the body on its own reader, so no field can run into the next record.
    let mut b = Reader::new(body, r.offset() - body.len());
    let attributes = b.i8("record attributes")?;
    let timestamp_delta = b.varlong("timestampDelta")?;
    let offset_delta = b.varint("offsetDelta")?;
    let key = b.nullable_bytes("keyLength", "key")?;
    let value = b.nullable_bytes("valueLength", "value")?;
    let headers_at = b.pos();
    let header_count = b.varint("headersCount")?;
    if header_count < 0 {
        return Err(b.invalid(
            "headersCount",
            headers_at,
            format!("negative count {header_count}"),
        ));
    }
    let headers_start = b.pos();
    for _ in 0..header_count {
        let key_at = b.pos();
        match b.nullable_bytes("headerKeyLength", "headerKey")? {
            Some(_) => {}
            None => return Err(b.invalid("headerKeyLength", key_at, "null header key".into())),
        }
        b.nullable_bytes("headerValueLength", "headerValue")?;
    }
    if b.remaining() != 0 {
        let reason = format!("{} bytes left after the last field", b.remaining());
        return Err(Error::Invalid {
            field: "record length",
            offset: len_offset,
            reason,
        });
    }
    let fields = Fields {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers: &body[headers_start..],
        header_count: header_count as u32,
    };
    Ok((fields, r.pos()))
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            if self.done || self.reader.remaining() == 0 {
                return None;
            }
            // The count is exhausted but bytes remain: the batch is corrupt (Java's client
            // rejects this too), and silently ignoring them could hide lost records.
            self.done = true;
            let reason = format!(
                "{} bytes after the last of the counted records",
                self.reader.remaining()
            );
            let err = self
                .reader
                .invalid("recordsCount", self.reader.pos(), reason);
            return Some(Err(self.owner.locate(err)));
        }
        match self.read_record() {
            Ok(record) => {
                self.left -= 1;
                Some(Ok(record))
            }
            Err(e) => {
                self.left = 0;
                self.done = true;
                Some(Err(self.owner.locate(e)))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left as usize + 1))
    }
}

/// One record, borrowing from its batch.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    data: &'a Bytes,
    offset: i64,
    timestamp: i64,
    attributes: i8,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: Headers<'a>,
}

impl<'a> Record<'a> {
    /// The record's offset in its partition.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Its timestamp in milliseconds (the batch's type says which kind).
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The record attributes byte (unused by Kafka so far).
    pub fn attributes(&self) -> i8 {
        self.attributes
    }

    /// The key; `None` is null, distinct from an empty key.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The value; `None` is null (a tombstone), distinct from an empty value.
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }

    /// The key as `Bytes` sharing the batch's buffer (no copy).
    pub fn key_bytes(&self) -> Option<Bytes> {
        self.key.map(|k| self.data.slice_ref(k))
    }

    /// The value as `Bytes` sharing the batch's buffer (no copy).
    pub fn value_bytes(&self) -> Option<Bytes> {
        self.value.map(|v| self.data.slice_ref(v))
    }

    /// The headers, in order, duplicates kept.
    pub fn headers(&self) -> Headers<'a> {
        self.headers.clone()
    }

    /// The buffer this record's slices point into.
    pub fn buffer(&self) -> &'a Bytes {
        self.data
    }
}

/// Iterator over a record's headers.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    data: &'a [u8],
    left: u32,
}

impl Headers<'_> {
    /// Number of headers not yet iterated.
    pub fn remaining(&self) -> usize {
        self.left as usize
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        if self.left == 0 {
            return None;
        }
        // The record was validated when it was read, so this parse cannot fail; if it somehow
        // did, ending the iteration is safer than a panic.
        let mut r = Reader::new(self.data, 0);
        let key = r
            .nullable_bytes("headerKeyLength", "headerKey")
            .ok()
            .flatten()?;
        let value = r.nullable_bytes("headerValueLength", "headerValue").ok()?;
        self.data = &self.data[r.pos()..];
        self.left -= 1;
        Some(Header { key, value })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

/// One record header. Kafka defines the key as a UTF-8 string but does not check it, so it is
/// kept as bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The header key.
    pub key: &'a [u8],
    /// The header value; `None` is null, distinct from empty.
    pub value: Option<&'a [u8]>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, BatchHeader};
    use crate::Compressor;

    /// A fast path that wrongly gives up costs nothing but time: the checked reader reads the
    /// same record. So check directly that every well-formed record takes the fast path, and
    /// that both paths read the same fields: lengths of one, two and three bytes, null and
    /// empty keys and values, headers or none, negative and long deltas.
    #[test]
    fn well_formed_records_take_the_fast_path_and_agree_with_the_checked_reader() {
        let big = vec![b'x'; 9000];
        let sizes = [
            None,
            Some(0),
            Some(1),
            Some(63),
            Some(64),
            Some(8191),
            Some(8192),
        ];
        let deltas = [0i64, -1, 63, 64, -65, 8191, 1 << 40, -(1 << 40)];
        let mut builder = BatchBuilder::with_capacity(BatchHeader::default(), 1 << 20);
        let mut n = 0usize;
        for key in sizes {
            for value in sizes {
                for headers in 0..3usize {
                    let headers: Vec<(&[u8], Option<&[u8]>)> = (0..headers)
                        .map(|h| (&big[..h * 70], (h == 0).then_some(&big[..0])))
                        .collect();
                    builder
                        .push(
                            1_700_000_000_000 + deltas[n % deltas.len()],
                            key.map(|k| &big[..k]),
                            value.map(|v| &big[..v]),
                            headers,
                        )
                        .unwrap();
                    n += 1;
                }
            }
        }
        let bytes = builder.finish(&mut Compressor::new()).unwrap();
        let batch = RecordBatch::from_bytes(bytes).unwrap();
        let records = batch.records().unwrap();
        let mut checked = records.iter();
        let mut pos = 0;
        for i in 0..n {
            let fast = fast_record(records.data(), &mut pos)
                .unwrap_or_else(|| panic!("record {i} missed the fast path"));
            let (slow, at) = read_record_checked(checked.reader.clone()).unwrap();
            checked.reader.set_pos(at);
            assert_eq!(pos, at, "record {i}");
            assert_eq!(fast.attributes, slow.attributes);
            assert_eq!(fast.timestamp_delta, slow.timestamp_delta, "record {i}");
            assert_eq!(fast.offset_delta, slow.offset_delta);
            assert_eq!(fast.key, slow.key, "record {i}");
            assert_eq!(fast.value, slow.value, "record {i}");
            assert_eq!(fast.headers, slow.headers, "record {i}");
            assert_eq!(fast.header_count, slow.header_count, "record {i}");
        }
        assert_eq!(pos, records.data().len());
    }
}
