//! Transactions: the transaction manager of a transactional producer.
//!
//! A transactional producer writes to several partitions and commits consumed offsets
//! atomically: all of it becomes visible to `read_committed` consumers, or none of it. The
//! transaction coordinator (a broker, found like a group coordinator but keyed by
//! `transactional.id`) records which partitions and groups a transaction touched and, on
//! commit or abort, writes a marker into each of them.

mod manager;
mod metrics;
mod state;

pub(crate) use manager::{TransactionManager, TxnSettings};

pub use metrics::TxnMetrics;
pub use state::{TxnCall, TxnState};
