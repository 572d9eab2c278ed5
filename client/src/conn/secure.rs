//! Securing a broker connection: TLS around the socket before the first byte, SASL
//! authentication right after ApiVersions.
//!
//! The handshakes are the I/O half of [`crate::security`], which holds the pure parts (the
//! rustls configuration, the SASL mechanisms as state machines). A `SASL_SSL` connection goes:
//!
//! ```text
//! TCP connect ─► TLS handshake ─► ApiVersions ─► SaslHandshake v1 ─► SaslAuthenticate ×n ─► ready
//! ```
//!
//! ApiVersions comes before SASL because brokers answer it unauthenticated (KIP-35, KIP-511)
//! and its answer says which SaslAuthenticate versions to use. SaslHandshake v0 (raw SASL
//! tokens outside Kafka framing) is not implemented; v1 with SaslAuthenticate is what every
//! broker since Kafka 1.0 speaks. The connection is handed out only once authenticated, so no
//! other request can overtake the exchange.
//!
//! Failures that reconnecting cannot fix are fatal and typed: a TLS certificate or protocol
//! error is [`Error::Security`]; the broker refusing the mechanism or the credentials is
//! [`Error::Kafka`] with UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE or
//! SASL_AUTHENTICATION_FAILED (all fatal in the code table) and the broker's message; a
//! config asking for TLS or SASL from a build without that feature is [`Error::Config`]. A
//! connection lost mid-handshake stays an I/O error, retried with backoff.
//!
//! Not implemented: re-authentication (KIP-368). A broker with `connections.max.reauth.ms`
//! closes the connection when the session expires; it is then re-made like any lost one.
//!
//! References: KIP-43 (SASL mechanisms), KIP-84 (SCRAM), KIP-152 (SaslAuthenticate),
//! KIP-294 (hostname verification by default), KIP-368 (re-authentication).

use std::fmt;
use std::time::Duration;

use tokio::net::TcpStream;

use super::driver::{self, Spawned};
use super::Connection;
use crate::config::SecurityConfig;
#[cfg(feature = "sasl")]
use crate::config::{SaslConfig, SaslMechanism};
use crate::error::{Error, Result};

/// How every connection of a cluster is secured, prepared once from the [`SecurityConfig`]:
/// the TLS client configuration is built (its files read) when the cluster is made, not per
/// connection.
#[derive(Clone, Default)]
pub(crate) struct Security {
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsConnector>,
    #[cfg(feature = "sasl")]
    sasl: Option<SaslConfig>,
}

impl Security {
    /// Prepares `config`. Fails on a protocol this build cannot speak (`tls` or `sasl` feature
    /// off) and on unreadable or unusable TLS files.
    pub(crate) fn new(config: &SecurityConfig) -> Result<Self> {
        #[cfg(feature = "tls")]
        let tls = match config.tls() {
            Some(tls) => {
                let client = std::sync::Arc::new(crate::security::tls::client_config(tls)?);
                Some(tokio_rustls::TlsConnector::from(client))
            }
            None => None,
        };
        #[cfg(not(feature = "tls"))]
        if config.tls().is_some() {
            return Err(not_built(config, "TLS", "tls"));
        }
        #[cfg(not(feature = "sasl"))]
        if config.sasl().is_some() {
            return Err(not_built(config, "SASL", "sasl"));
        }
        Ok(Security {
            #[cfg(feature = "tls")]
            tls,
            #[cfg(feature = "sasl")]
            sasl: config.sasl().cloned(),
        })
    }

    /// Wraps `tcp` in TLS if configured, and starts the connection's reader and writer tasks.
    ///
    /// Cancel safety: dropping the future drops the socket.
    pub(super) async fn start(
        &self,
        addr: &str,
        tcp: TcpStream,
        max_frame_size: usize,
    ) -> Result<Spawned> {
        #[cfg(feature = "tls")]
        if let Some(connector) = &self.tls {
            let name = crate::security::tls::server_name(addr)?;
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| tls_handshake_error(addr, e))?;
            return Ok(driver::spawn(addr, Box::new(stream), max_frame_size));
        }
        Ok(driver::spawn_tcp(addr, tcp, max_frame_size))
    }

    /// Authenticates `conn` with SASL if configured; `conn` has negotiated its versions.
    ///
    /// Cancel safety: the connection must be dropped if the future is; it may be half
    /// authenticated.
    pub(super) async fn authenticate(&self, conn: &Connection, timeout: Duration) -> Result<()> {
        #[cfg(feature = "sasl")]
        if let Some(sasl) = &self.sasl {
            return authenticate(conn, sasl, timeout).await;
        }
        // Without the feature, `new` refused every SASL config.
        let _ = (conn, timeout);
        Ok(())
    }
}

/// A config asking for what this build left out.
#[cfg_attr(all(feature = "tls", feature = "sasl"), allow(dead_code))]
fn not_built(config: &SecurityConfig, what: &str, feature: &str) -> Error {
    Error::Config {
        property: "security.protocol".into(),
        reason: format!(
            "{} needs {what}, but sluice-client was built without its `{feature}` feature; \
             enable it (features = [\"{feature}\"])",
            config.protocol()
        ),
    }
}

impl fmt::Debug for Security {
    // No credentials, and rustls's configuration is not worth printing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Security");
        #[cfg(feature = "tls")]
        out.field("tls", &self.tls.is_some());
        #[cfg(feature = "sasl")]
        out.field(
            "sasl",
            &self.sasl.as_ref().map(|s| (s.mechanism, &s.username)),
        );
        out.finish()
    }
}

impl Security {
    /// Reclassifies an error that ended the setup of a connection to `addr`, for the two
    /// misconfigurations that otherwise look like something else:
    ///
    /// * A TLS failure seen by the reader or writer task is a security error, not a lost
    ///   connection to retry. (A TLS 1.3 server checks the client certificate after the client
    ///   thinks the handshake is done, so its refusal arrives as an alert on the first read.)
    /// * Plaintext sent to a TLS listener gets a TLS alert back, which reads as an absurd frame
    ///   size: that is a wrong `security.protocol`, not a protocol error.
    pub(super) fn setup_error(&self, addr: &str, error: Error) -> Error {
        #[cfg(feature = "tls")]
        if let Error::Io { broker, source } = &error {
            if let Some(tls) = rustls_error(source) {
                return Error::Security(format!("TLS with {broker}: {tls}{}", hint(tls)));
            }
        }
        if let Error::Protocol(sluice_protocol::Error::FrameSize { size, .. }) = &error {
            // A TLS record starts with its type (21 alert, 22 handshake) and major version 3.
            if !self.uses_tls() && matches!(size >> 16, 0x1503 | 0x1603) {
                return Error::Config {
                    property: "security.protocol".into(),
                    reason: format!(
                        "{addr} answered with TLS: it is a TLS listener, use SSL or SASL_SSL"
                    ),
                };
            }
        }
        error
    }

    #[cfg(feature = "tls")]
    fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    #[cfg(not(feature = "tls"))]
    fn uses_tls(&self) -> bool {
        false
    }
}

#[cfg(feature = "tls")]
fn rustls_error(error: &std::io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

/// A failed TLS handshake: rustls's verdict is fatal; a lost connection stays retriable, with
/// a hint for the usual cause of one lost at this point.
#[cfg(feature = "tls")]
fn tls_handshake_error(addr: &str, error: std::io::Error) -> Error {
    if let Some(tls) = rustls_error(&error) {
        return Error::Security(format!("TLS handshake with {addr}: {tls}{}", hint(tls)));
    }
    // A plaintext listener reads the TLS hello as a frame size of 369 MB and hangs up, with a
    // FIN or, if part of the hello is still unread, a reset.
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    if matches!(
        error.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    ) {
        return Error::io(
            addr,
            std::io::Error::new(
                error.kind(),
                format!(
                    "{error} during the TLS handshake (is this a TLS listener? a PLAINTEXT \
                     port hangs up on a TLS hello)"
                ),
            ),
        );
    }
    Error::io(addr, error)
}

/// What to check, for the verification failures people actually hit.
#[cfg(feature = "tls")]
fn hint(error: &rustls::Error) -> &'static str {
    use rustls::{AlertDescription, CertificateError};
    match error {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => {
            " (the broker's certificate does not name the host dialled: fix the certificate or \
             the advertised listener; ssl.endpoint.identification.algorithm= turns this check \
             off)"
        }
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            " (no trusted CA signed the broker's certificate: ssl.ca.location must name the CA \
             that did; without it only the bundled Mozilla roots are trusted)"
        }
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
            " (the broker requires a client certificate: set ssl.certificate.location and \
             ssl.key.location)"
        }
        rustls::Error::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired,
        ) => {
            " (the broker refused the client certificate: is it current, and signed by a CA \
             the broker trusts?)"
        }
        _ => "",
    }
}

/// Runs SaslHandshake, then SaslAuthenticate until the mechanism's exchange is complete.
#[cfg(feature = "sasl")]
async fn authenticate(conn: &Connection, sasl: &SaslConfig, timeout: Duration) -> Result<()> {
    use bytes::Bytes;
    use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
    use kafka_protocol::protocol::StrBytes;

    use crate::error::KafkaCode;
    use crate::security::sasl::Mechanism;

    /// More round trips than any mechanism here needs (PLAIN 1, SCRAM 2): a broker that keeps
    /// challenging is not following the mechanism.
    const MAX_ROUNDS: usize = 8;

    let mechanism = match sasl.mechanism {
        SaslMechanism::Plain => Mechanism::Plain,
        SaslMechanism::ScramSha256 => Mechanism::ScramSha256,
        SaslMechanism::ScramSha512 => Mechanism::ScramSha512,
    };
    let addr = conn.addr();
    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism.name()));
    let response = conn.send(&handshake, timeout).await?;
    match KafkaCode(response.error_code) {
        KafkaCode::NONE => {}
        code @ KafkaCode::UNSUPPORTED_SASL_MECHANISM => {
            let enabled: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(Error::kafka(
                code,
                format!(
                    "broker {addr} does not enable SASL mechanism {mechanism}; it enables: {}",
                    if enabled.is_empty() {
                        "none".to_owned()
                    } else {
                        enabled.join(", ")
                    }
                ),
            ));
        }
        code => {
            return Err(Error::kafka(
                code,
                format!("SaslHandshake ({mechanism}) with {addr}"),
            ))
        }
    }

    let mut exchange = mechanism.start(&sasl.username, sasl.password.expose())?;
    let mut message = exchange.initial_response();
    for _ in 0..MAX_ROUNDS {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message));
        let response = conn.send(&request, timeout).await?;
        if response.error_code != 0 {
            let said = response
                .error_message
                .as_ref()
                .map_or("no message", |m| m.as_str());
            return Err(Error::kafka(
                KafkaCode(response.error_code),
                format!(
                    "SASL {mechanism} authentication as {:?} with {addr}: {said}",
                    sasl.username
                ),
            ));
        }
        match exchange.handle_challenge(&response.auth_bytes)? {
            Some(next) => message = next,
            None => {
                if response.session_lifetime_ms > 0 {
                    tracing::debug!(
                        broker = addr,
                        session_lifetime_ms = response.session_lifetime_ms,
                        "the broker will close this connection when the SASL session expires \
                         (sluice does not re-authenticate, KIP-368)"
                    );
                }
                return Ok(());
            }
        }
    }
    Err(Error::Security(format!(
        "SASL {mechanism} with {addr}: not complete after {MAX_ROUNDS} round trips"
    )))
}
