//! Record batches (magic 2): a zero-copy reader and an in-place builder.
//!
//! Why our own code rather than `kafka-protocol`'s: its decoder allocates a `Vec` of records and
//! a header map per record; ours hands out views into the fetched `Bytes`, so the stream layer
//! can process batches without copying them. Format: KIP-98 and
//! <https://kafka.apache.org/documentation/#recordbatch>.

mod batch;
mod builder;
mod control;
mod records;
mod wire;

pub use batch::{
    Attributes, RecordBatch, RecordBatches, TimestampType, BATCH_HEADER_LEN, LOG_OVERHEAD,
};
pub use builder::{restamp, BatchBuilder, BatchHeader, SealedBatch};
pub use control::{ControlRecord, ControlType};
pub use records::{DecodedRecords, Header, Headers, Record, Records};
