//! Control records: the transaction markers a coordinator writes into each partition.
//!
//! A control batch (attribute bit 5) holds one record whose key is `version i16 | type i16`
//! (type 0 = abort, 1 = commit) and whose value, for transaction markers, is
//! `version i16 | coordinatorEpoch i32` (KIP-98). KRaft adds other control types to its own
//! metadata log; they are kept as [`ControlType::Other`] rather than rejected.

use bytes::{BufMut, BytesMut};

use super::records::Record;
use super::wire::Reader;
use crate::error::{Error, Result};

/// The kind of a control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    /// The transaction was aborted: read_committed consumers drop its records.
    Abort,
    /// The transaction was committed.
    Commit,
    /// A control type this version does not know (KRaft uses 2 and up).
    Other(i16),
}

impl ControlType {
    /// The type code in the record key.
    pub fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
            ControlType::Other(code) => code,
        }
    }

    /// The type for a code.
    pub fn from_code(code: i16) -> Self {
        match code {
            0 => ControlType::Abort,
            1 => ControlType::Commit,
            other => ControlType::Other(other),
        }
    }
}

/// A decoded control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlRecord {
    /// The key's version field.
    pub version: i16,
    /// Abort, commit or another kind.
    pub kind: ControlType,
    /// The transaction coordinator's epoch, for transaction markers with a value.
    pub coordinator_epoch: Option<i32>,
}

impl ControlRecord {
    /// A transaction marker as the coordinator writes it.
    pub fn marker(kind: ControlType, coordinator_epoch: i32) -> Self {
        ControlRecord {
            version: 0,
            kind,
            coordinator_epoch: Some(coordinator_epoch),
        }
    }

    /// Decodes the control record a record of a control batch carries.
    pub fn parse(record: &Record<'_>) -> Result<Self> {
        let Some(key) = record.key() else {
            return Err(Error::Invalid {
                field: "control record key",
                offset: 0,
                reason: format!("record at offset {} has a null key", record.offset()),
            });
        };
        let mut k = Reader::new(key, 0);
        let version = k.i16("control record key version")?;
        let kind = ControlType::from_code(k.i16("control record type")?);
        let coordinator_epoch = match (kind, record.value()) {
            (ControlType::Abort | ControlType::Commit, Some(value)) => {
                let mut v = Reader::new(value, 0);
                v.i16("control record value version")?;
                Some(v.i32("coordinatorEpoch")?)
            }
            _ => None,
        };
        Ok(ControlRecord {
            version,
            kind,
            coordinator_epoch,
        })
    }

    /// The record key bytes.
    pub fn key(&self) -> [u8; 4] {
        let mut key = [0u8; 4];
        key[..2].copy_from_slice(&self.version.to_be_bytes());
        key[2..].copy_from_slice(&self.kind.code().to_be_bytes());
        key
    }

    /// The record value bytes (empty when there is no coordinator epoch).
    pub fn value(&self) -> BytesMut {
        let mut value = BytesMut::new();
        if let Some(epoch) = self.coordinator_epoch {
            value.put_i16(0);
            value.put_i32(epoch);
        }
        value
    }
}
