//! The transaction manager's state machine: which call is legal when, and what an error does
//! to the producer. Pure: no I/O, no clock.
//!
//! It follows the Java client's `TransactionManager`:
//!
//! ```text
//! Uninitialized ─init─► Initializing ─► Ready ─begin─► InTransaction ─commit─► Committing ─► Ready
//!                                         ▲               │    │                   │
//!                                         │               │    └─abort─► Aborting ─┴─► Ready
//!                                         │      failed send / offsets
//!                                         │               ▼
//!                                         └──abort── AbortableError
//! any state ── fencing, authorization, an unknown outcome it cannot recover ──► FatalError
//! ```
//!
//! An *abortable* error (a send or an offset commit failed) spoils the transaction: only
//! `abort` is legal until it is aborted. A *fatal* one (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH
//! on a transactional producer, TRANSACTIONAL_ID_AUTHORIZATION_FAILED, ...) ends the producer:
//! every later call fails with it, and the application must create a new producer (whose
//! `init_transactions` aborts whatever this one left open).

use std::fmt;

use crate::error::{Error, KafkaCode};

/// Where a transactional producer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnState {
    /// `init_transactions` not called yet.
    Uninitialized,
    /// `init_transactions` in progress.
    Initializing,
    /// Between transactions.
    Ready,
    /// `begin` called; records and offsets may be added.
    InTransaction,
    /// `commit` in progress.
    Committing,
    /// `abort` in progress.
    Aborting,
    /// The transaction failed; only `abort` is legal.
    AbortableError(String),
    /// The producer cannot go on.
    FatalError(String),
}

impl fmt::Display for TxnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnState::Uninitialized => f.write_str("Uninitialized"),
            TxnState::Initializing => f.write_str("Initializing"),
            TxnState::Ready => f.write_str("Ready"),
            TxnState::InTransaction => f.write_str("InTransaction"),
            TxnState::Committing => f.write_str("Committing"),
            TxnState::Aborting => f.write_str("Aborting"),
            TxnState::AbortableError(e) => write!(f, "AbortableError ({e})"),
            TxnState::FatalError(e) => write!(f, "FatalError ({e})"),
        }
    }
}

/// The transactional calls, for the legality check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnCall {
    /// `init_transactions`.
    Init,
    /// `begin_transaction`.
    Begin,
    /// `send` of a record.
    Send,
    /// `send_offsets_to_transaction`.
    SendOffsets,
    /// `commit_transaction`.
    Commit,
    /// `abort_transaction`.
    Abort,
}

impl fmt::Display for TxnCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TxnCall::Init => "init_transactions",
            TxnCall::Begin => "begin_transaction",
            TxnCall::Send => "send",
            TxnCall::SendOffsets => "send_offsets_to_transaction",
            TxnCall::Commit => "commit_transaction",
            TxnCall::Abort => "abort_transaction",
        })
    }
}

/// How an error affects the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    /// Retry the same request (the coordinator moved, is loading, or is busy finishing the
    /// previous transaction).
    Retriable,
    /// The transaction must be aborted.
    Abortable,
    /// The producer is done.
    Fatal,
}

/// How a transactional request's error code is treated (Java's `TransactionManager` handlers).
pub(crate) fn severity(code: KafkaCode) -> Severity {
    match code {
        KafkaCode::PRODUCER_FENCED
        | KafkaCode::INVALID_PRODUCER_EPOCH
        | KafkaCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        | KafkaCode::CLUSTER_AUTHORIZATION_FAILED
        | KafkaCode::INVALID_PRODUCER_ID_MAPPING
        | KafkaCode::INVALID_TXN_STATE
        | KafkaCode::UNSUPPORTED_VERSION
        | KafkaCode::UNSUPPORTED_FOR_MESSAGE_FORMAT
        | KafkaCode::INVALID_TRANSACTION_TIMEOUT => Severity::Fatal,
        KafkaCode::NOT_COORDINATOR
        | KafkaCode::COORDINATOR_NOT_AVAILABLE
        | KafkaCode::COORDINATOR_LOAD_IN_PROGRESS
        | KafkaCode::CONCURRENT_TRANSACTIONS
        | KafkaCode::REQUEST_TIMED_OUT
        | KafkaCode::NETWORK_EXCEPTION => Severity::Retriable,
        code if code.is_retriable() => Severity::Retriable,
        _ => Severity::Abortable,
    }
}

/// The machine.
#[derive(Debug)]
pub(crate) struct StateMachine {
    state: TxnState,
}

impl Default for StateMachine {
    fn default() -> Self {
        StateMachine {
            state: TxnState::Uninitialized,
        }
    }
}

impl StateMachine {
    pub(crate) fn state(&self) -> &TxnState {
        &self.state
    }

    /// Checks that `call` is legal now and, for the calls that start a step, moves into it.
    pub(crate) fn start(&mut self, call: TxnCall) -> Result<(), Error> {
        use TxnState as S;
        let next = match (&self.state, call) {
            (S::FatalError(e), _) => return Err(fatal_error(e)),
            (S::Uninitialized, TxnCall::Init) => S::Initializing,
            // A retried init after a timeout (Java allows it).
            (S::Initializing, TxnCall::Init) => S::Initializing,
            (S::Ready, TxnCall::Begin) => S::InTransaction,
            (S::InTransaction, TxnCall::Send | TxnCall::SendOffsets) => S::InTransaction,
            (S::InTransaction, TxnCall::Commit) => S::Committing,
            // A commit or abort that failed retriably may be called again.
            (S::Committing, TxnCall::Commit) => S::Committing,
            (S::Aborting, TxnCall::Abort) => S::Aborting,
            (S::InTransaction | S::AbortableError(_), TxnCall::Abort) => S::Aborting,
            (S::AbortableError(e), _) => {
                return Err(Error::Transaction {
                    state: self.state.clone(),
                    reason: format!("{call} is not allowed until the transaction is aborted ({e})"),
                })
            }
            (state, call) => {
                return Err(Error::Transaction {
                    state: state.clone(),
                    reason: format!("{call} is not allowed in this state"),
                })
            }
        };
        self.state = next;
        Ok(())
    }

    /// The step in progress finished well.
    pub(crate) fn finish(&mut self) {
        self.state = match self.state {
            TxnState::Initializing | TxnState::Committing | TxnState::Aborting => TxnState::Ready,
            ref other => other.clone(),
        };
    }

    /// An error happened; returns the error the caller reports (fatal ones are sticky).
    pub(crate) fn fail(&mut self, error: &Error) -> Error {
        let severity = match error.code() {
            Some(code) => severity(code),
            None if error.is_retriable() => Severity::Retriable,
            None => Severity::Fatal,
        };
        match severity {
            Severity::Retriable => {}
            Severity::Fatal => self.state = TxnState::FatalError(error.to_string()),
            Severity::Abortable => {
                if matches!(self.state, TxnState::InTransaction | TxnState::Committing) {
                    self.state = TxnState::AbortableError(error.to_string());
                } else if matches!(self.state, TxnState::Initializing | TxnState::Aborting) {
                    // Init and abort have nothing to abort: what fails them ends the producer.
                    self.state = TxnState::FatalError(error.to_string());
                }
            }
        }
        error.clone()
    }

    /// A record send failed inside the transaction: it must be aborted.
    pub(crate) fn send_failed(&mut self, error: &Error) {
        if matches!(error.code().map(severity), Some(Severity::Fatal)) {
            self.state = TxnState::FatalError(error.to_string());
        } else if self.state == TxnState::InTransaction || self.state == TxnState::Committing {
            self.state = TxnState::AbortableError(format!("a send failed: {error}"));
        }
    }

    /// The outcome of a commit or abort cannot be known (it timed out): rather than retry
    /// blindly, the producer must be initialised again, which finishes whatever the
    /// coordinator has (InitProducerId aborts a transaction still open and bumps the epoch).
    pub(crate) fn reinit_required(&mut self) {
        if !matches!(self.state, TxnState::FatalError(_)) {
            self.state = TxnState::Uninitialized;
        }
    }
}

fn fatal_error(reason: &str) -> Error {
    Error::Transaction {
        state: TxnState::FatalError(reason.to_owned()),
        reason: "the producer cannot be used any more; create a new one".into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn kafka(code: KafkaCode) -> Error {
        Error::kafka(code, "test")
    }

    #[test]
    fn the_happy_path_goes_round() {
        let mut m = StateMachine::default();
        m.start(TxnCall::Init).unwrap();
        m.finish();
        for _ in 0..2 {
            m.start(TxnCall::Begin).unwrap();
            m.start(TxnCall::Send).unwrap();
            m.start(TxnCall::SendOffsets).unwrap();
            m.start(TxnCall::Commit).unwrap();
            assert_eq!(m.state(), &TxnState::Committing);
            m.finish();
            assert_eq!(m.state(), &TxnState::Ready);
        }
        m.start(TxnCall::Begin).unwrap();
        m.start(TxnCall::Abort).unwrap();
        m.finish();
        assert_eq!(m.state(), &TxnState::Ready);
    }

    #[test]
    fn calls_out_of_order_are_typed_errors() {
        let mut m = StateMachine::default();
        for call in [
            TxnCall::Begin,
            TxnCall::Send,
            TxnCall::Commit,
            TxnCall::Abort,
        ] {
            let e = m.start(call).unwrap_err();
            assert!(matches!(e, Error::Transaction { .. }), "{e}");
            assert_eq!(m.state(), &TxnState::Uninitialized);
        }
        m.start(TxnCall::Init).unwrap();
        m.finish();
        assert!(
            m.start(TxnCall::Send).is_err(),
            "send outside a transaction"
        );
        assert!(m.start(TxnCall::Commit).is_err());
        m.start(TxnCall::Begin).unwrap();
        assert!(m.start(TxnCall::Begin).is_err(), "nested begin");
        assert!(m.start(TxnCall::Init).is_err());
    }

    #[test]
    fn a_failed_send_makes_the_transaction_abortable_only() {
        let mut m = StateMachine::default();
        m.start(TxnCall::Init).unwrap();
        m.finish();
        m.start(TxnCall::Begin).unwrap();
        m.send_failed(&kafka(KafkaCode::MESSAGE_TOO_LARGE));
        assert!(matches!(m.state(), TxnState::AbortableError(_)));
        assert!(m.start(TxnCall::Commit).is_err());
        assert!(m.start(TxnCall::Send).is_err());
        m.start(TxnCall::Abort).unwrap();
        m.finish();
        assert_eq!(m.state(), &TxnState::Ready);
    }

    #[test]
    fn fencing_is_fatal_and_sticky() {
        let mut m = StateMachine::default();
        m.start(TxnCall::Init).unwrap();
        m.finish();
        m.start(TxnCall::Begin).unwrap();
        m.start(TxnCall::Commit).unwrap();
        m.fail(&kafka(KafkaCode::PRODUCER_FENCED));
        assert!(matches!(m.state(), TxnState::FatalError(_)));
        for call in [TxnCall::Abort, TxnCall::Begin, TxnCall::Init] {
            assert!(m.start(call).is_err());
        }
    }

    #[test]
    fn an_unknown_outcome_requires_init_again() {
        let mut m = StateMachine::default();
        m.start(TxnCall::Init).unwrap();
        m.finish();
        m.start(TxnCall::Begin).unwrap();
        m.start(TxnCall::Commit).unwrap();
        m.reinit_required();
        assert_eq!(m.state(), &TxnState::Uninitialized);
        assert!(m.start(TxnCall::Begin).is_err());
        m.start(TxnCall::Init).unwrap();
        m.finish();
        m.start(TxnCall::Begin).unwrap();
    }

    #[test]
    fn retriable_errors_leave_the_state_alone() {
        let mut m = StateMachine::default();
        m.start(TxnCall::Init).unwrap();
        m.finish();
        m.start(TxnCall::Begin).unwrap();
        m.start(TxnCall::Commit).unwrap();
        for code in [
            KafkaCode::CONCURRENT_TRANSACTIONS,
            KafkaCode::NOT_COORDINATOR,
            KafkaCode::COORDINATOR_LOAD_IN_PROGRESS,
        ] {
            m.fail(&kafka(code));
            assert_eq!(m.state(), &TxnState::Committing, "{code}");
        }
        m.start(TxnCall::Commit).unwrap();
        m.finish();
        assert_eq!(m.state(), &TxnState::Ready);
    }
}
