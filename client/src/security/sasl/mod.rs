//! SASL client mechanisms (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) as I/O-free state machines.
//!
//! A broker connection authenticates right after ApiVersions: SaslHandshake names the
//! mechanism, then each SaslAuthenticate request carries one client message and its response
//! one server message (KIP-152). The connection layer drives an [`Exchange`]:
//!
//! ```text
//! let mut exchange = mechanism.start(user, password)?;
//! let mut out = exchange.initial_response();
//! loop {
//!     let challenge = send_sasl_authenticate(out).await?;   // error_code checked there
//!     match exchange.handle_challenge(&challenge)? {
//!         Some(next) => out = next,
//!         None => break,                                       // exchange.is_complete()
//!     }
//! }
//! ```
//!
//! References: RFC 4422 (SASL), RFC 4616 (PLAIN), RFC 5802 and RFC 7677 (SCRAM), KIP-43,
//! KIP-84 (SCRAM in Kafka), KIP-152 (SaslAuthenticate).

mod plain;
mod scram;

use std::fmt;

pub use plain::Plain;
pub use scram::Scram;

use crate::{Error, Result};

/// A SASL mechanism sluice implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// `PLAIN` (RFC 4616): the password in the clear; only sensible over TLS.
    Plain,
    /// `SCRAM-SHA-256` (RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-512` (as Kafka defines it, KIP-84).
    ScramSha512,
}

impl Mechanism {
    /// The name sent in SaslHandshake and used in `sasl.mechanism`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism for a `sasl.mechanism` value (case-insensitive), if sluice has it.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Mechanism::Plain,
            Mechanism::ScramSha256,
            Mechanism::ScramSha512,
        ]
        .into_iter()
        .find(|m| m.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Starts a client exchange with these credentials.
    ///
    /// Fails on credentials the mechanism cannot carry (an empty user name, a NUL byte in
    /// PLAIN).
    pub fn start(self, username: &str, password: &str) -> Result<Box<dyn Exchange>> {
        Ok(match self {
            Mechanism::Plain => Box::new(Plain::new(username, password)?),
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
                Box::new(Scram::new(self, username, password)?)
            }
        })
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The client side of one SASL authentication exchange.
///
/// Call [`initial_response`](Exchange::initial_response) for the first message, then feed each
/// server message to [`handle_challenge`](Exchange::handle_challenge) until it returns
/// `Ok(None)`. Any error ends the exchange: the connection must be closed.
pub trait Exchange: fmt::Debug + Send + Sync {
    /// The mechanism, for SaslHandshake.
    fn mechanism(&self) -> Mechanism;

    /// The client's first message (the same bytes on every call).
    fn initial_response(&self) -> Vec<u8>;

    /// Handles a server message: `Some(bytes)` to send next, `None` when authentication is
    /// done. Malformed or unverifiable server messages are [`Error::Security`].
    fn handle_challenge(&mut self, challenge: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Whether the exchange finished successfully.
    fn is_complete(&self) -> bool;
}

fn security_error(mechanism: Mechanism, reason: impl fmt::Display) -> Error {
    Error::Security(format!("SASL {mechanism}: {reason}"))
}
