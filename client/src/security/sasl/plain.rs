//! SASL PLAIN (RFC 4616): one message, `authzid NUL authcid NUL passwd`.
//!
//! sluice sends an empty authorization id, as the Java client does, so the broker
//! authorizes as the authenticated user. The broker answers with no data; success or failure
//! is the SaslAuthenticate error code, which the connection layer checks.

use std::fmt;

use super::{security_error, Exchange, Mechanism};
use crate::Result;

/// The PLAIN client exchange.
pub struct Plain {
    message: Vec<u8>,
    complete: bool,
}

impl Plain {
    /// A PLAIN exchange for `username` / `password`. Fails on an empty user name or a NUL byte,
    /// which the message format cannot carry.
    pub fn new(username: &str, password: &str) -> Result<Self> {
        if username.is_empty() {
            return Err(security_error(Mechanism::Plain, "empty user name"));
        }
        if username.contains('\0') || password.contains('\0') {
            return Err(security_error(
                Mechanism::Plain,
                "NUL in user name or password",
            ));
        }
        let mut message = Vec::with_capacity(username.len() + password.len() + 2);
        message.push(0);
        message.extend_from_slice(username.as_bytes());
        message.push(0);
        message.extend_from_slice(password.as_bytes());
        Ok(Plain {
            message,
            complete: false,
        })
    }
}

impl Exchange for Plain {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Plain
    }

    fn initial_response(&self) -> Vec<u8> {
        self.message.clone()
    }

    fn handle_challenge(&mut self, challenge: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.complete {
            return Err(security_error(
                Mechanism::Plain,
                "server data after completion",
            ));
        }
        if !challenge.is_empty() {
            return Err(security_error(
                Mechanism::Plain,
                format!("unexpected {} bytes of server data", challenge.len()),
            ));
        }
        self.complete = true;
        Ok(None)
    }

    fn is_complete(&self) -> bool {
        self.complete
    }
}

impl fmt::Debug for Plain {
    // The message holds the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plain")
            .field("complete", &self.complete)
            .finish_non_exhaustive()
    }
}
