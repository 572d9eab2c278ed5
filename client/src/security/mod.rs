//! Security for broker connections: SASL authentication and the TLS client configuration.
//!
//! Nothing here touches a socket: a SASL mechanism is a state machine that turns server
//! challenges into client responses, and the connection layer carries those bytes in
//! SaslHandshake / SaslAuthenticate requests (KIP-43, KIP-152); the TLS module turns a
//! `TlsConfig` into a rustls client configuration (reading its PEM files), and the connection
//! layer runs the handshake (`conn/secure.rs`). Keeping the exchange pure makes it testable
//! against RFC vectors without a broker.
//!
//! Both are behind features (`sasl`, `tls`) so that a plaintext-only build pulls no crypto.

#[cfg(feature = "sasl")]
pub mod sasl;
#[cfg(feature = "tls")]
pub(crate) mod tls;
