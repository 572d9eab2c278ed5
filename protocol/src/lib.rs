//! The Kafka wire protocol for sluice: frames, request/response messages and a zero-copy
//! record-batch codec with pure-Rust compression.
//!
//! This crate does no I/O and reads no clock: every codec takes a buffer (and, for messages,
//! a version) and returns a value or a typed [`Error`]. That keeps each decoder fuzzable and
//! every caller testable without a broker. Bad bytes never panic.
//!
//! References: the Kafka protocol guide (<https://kafka.apache.org/protocol>), the record-batch
//! format of KIP-98 (<https://kafka.apache.org/documentation/#recordbatch>).

pub mod compression;
pub mod error;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod messages;
pub mod record;
pub mod versions;

pub use compression::{Compression, Compressor, Decompressor};
pub use error::{Error, Result};
