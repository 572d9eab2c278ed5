//! The client's one error type, and the Kafka error-code table it classifies broker errors by.
//!
//! Retry decisions go through [`Error::is_retriable`] and [`Error::is_fatal`], backed by the
//! table's retriable column for broker codes, so every layer (connection, metadata, producer,
//! consumer) agrees on what may be retried. Errors are `Clone` because one connection failure
//! must reach every request that was waiting on it.

mod codes;

use std::sync::Arc;
use std::time::Duration;

pub use codes::KafkaCode;

/// Errors of the Kafka client.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes from a broker could not be decoded, or a request could not be encoded.
    #[error("protocol error: {0}")]
    Protocol(#[from] sluice_protocol::Error),
    /// A socket operation failed; the connection was closed and will be re-made.
    #[error("I/O error talking to {broker}: {source}")]
    Io {
        /// The broker's address.
        broker: String,
        /// The underlying error, shared by every request that was waiting on the connection.
        source: Arc<std::io::Error>,
    },
    /// The connection closed (by the broker, or after another request on it failed) while the
    /// request was in flight or queued. Whether the broker processed it is unknown.
    #[error("connection to {broker} closed: {reason}")]
    Disconnected {
        /// The broker's address.
        broker: String,
        /// Why it closed.
        reason: String,
    },
    /// An operation did not finish in time.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What was being waited for.
        what: String,
        /// How long it waited.
        after: Duration,
    },
    /// A broker answered with a Kafka error code.
    #[error("{code} from the broker{}", context_suffix(.context))]
    Kafka {
        /// The code.
        code: KafkaCode,
        /// Where it came from (topic, partition, group...), or empty.
        context: String,
    },
    /// The broker is too old for something sluice needs.
    #[error("broker {broker} is too old: {reason}")]
    BrokerTooOld {
        /// The broker's address.
        broker: String,
        /// What is missing.
        reason: String,
    },
    /// A configuration property is unknown or has an invalid value.
    #[error("invalid configuration {property}: {reason}")]
    Config {
        /// The property name as the user gave it.
        property: String,
        /// What is wrong.
        reason: String,
    },
    /// No broker of the bootstrap list could be reached.
    #[error("no broker reachable (tried {tried}): {last}")]
    NoBrokerReachable {
        /// The addresses tried.
        tried: String,
        /// The last error seen.
        last: Box<Error>,
    },
    /// The client, producer or consumer was closed.
    #[error("the client is closed")]
    Closed,
    /// Authentication or TLS setup failed.
    #[error("security: {0}")]
    Security(String),
    /// A transactional call that the producer's transaction state does not allow, or one made
    /// after the producer failed for good.
    #[error("transaction ({state}): {reason}")]
    Transaction {
        /// The transaction state at the time.
        state: crate::txn::TxnState,
        /// What was refused and why.
        reason: String,
    },
}

fn context_suffix(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!(" ({context})")
    }
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A broker error code with where it applies.
    pub fn kafka(code: KafkaCode, context: impl Into<String>) -> Self {
        Error::Kafka {
            code,
            context: context.into(),
        }
    }

    /// The broker error code, if this is one.
    pub fn code(&self) -> Option<KafkaCode> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether trying the same operation again may succeed.
    ///
    /// Broker codes follow the table's retriable column. Lost connections and timeouts are
    /// retriable *transport* failures, but their outcome is unknown: a producer may retry them
    /// only because idempotence deduplicates, and a transaction treats them as indefinite
    /// (see design.md).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Kafka { code, .. } => code.is_retriable(),
            Error::Io { .. } | Error::Disconnected { .. } | Error::Timeout { .. } => true,
            Error::NoBrokerReachable { .. } => true,
            Error::Protocol(_)
            | Error::BrokerTooOld { .. }
            | Error::Config { .. }
            | Error::Closed
            | Error::Security(_)
            | Error::Transaction { .. } => false,
        }
    }

    /// Whether the client (or producer) cannot go on after this error and must be rebuilt.
    pub fn is_fatal(&self) -> bool {
        match self {
            Error::Kafka { code, .. } => code.is_fatal(),
            Error::BrokerTooOld { .. } | Error::Config { .. } | Error::Security(_) => true,
            Error::Transaction { state, .. } => {
                matches!(state, crate::txn::TxnState::FatalError(_))
            }
            _ => false,
        }
    }

    /// Whether the outcome of the failed request is unknown: it may or may not have been
    /// applied by the broker.
    pub fn is_indefinite(&self) -> bool {
        matches!(
            self,
            Error::Io { .. } | Error::Disconnected { .. } | Error::Timeout { .. }
        )
    }

    pub(crate) fn io(broker: &str, e: std::io::Error) -> Self {
        Error::Io {
            broker: broker.to_owned(),
            source: Arc::new(e),
        }
    }
}
