//! Security for broker connections: SASL authentication (and TLS, to come).
//!
//! Everything here is protocol logic without I/O: a SASL mechanism is a state machine that
//! turns server challenges into client responses, and the connection layer carries those bytes
//! in SaslHandshake / SaslAuthenticate requests (KIP-43, KIP-152). Keeping the exchange pure
//! makes it testable against RFC vectors without a broker.
//!
//! Both are behind features (`sasl`, `tls`) so that a plaintext-only build pulls no crypto.

// tls: see tls.rs (to come)

#[cfg(feature = "sasl")]
pub mod sasl;
