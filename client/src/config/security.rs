//! How the client secures its broker connections: the data only (TLS files, SASL
//! credentials); the handshakes live in [`crate::security`].
//!
//! [`SecurityConfig`] is an enum whose variants carry what their protocol needs, so a
//! `SASL_SSL` config without credentials, or a plaintext one with a CA file, cannot be built.
//! Properties arrive one at a time, so `from_properties` collects them in [`SecurityParts`]
//! and checks them together at `build()`: a `sasl.username` without a SASL protocol is an
//! error rather than a silently unauthenticated connection.
//!
//! References: the Kafka security docs (`security.protocol`, KIP-43 SASL mechanisms,
//! KIP-84 SCRAM) and librdkafka's `CONFIGURATION.md` for the `ssl.*.location` names.

use std::fmt;
use std::path::PathBuf;

use super::parse::{error, GivenNames};
use crate::Result;

/// The `security.protocol` of every broker connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    #[default]
    Plaintext,
    /// TLS, no SASL (the client may still authenticate with a certificate).
    Ssl,
    /// SASL over a plain TCP connection.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// The name Kafka configs use (`SASL_SSL`...).
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections use TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A SASL mechanism sluice implements.
///
/// GSSAPI (Kerberos, Java's default `sasl.mechanism`) and OAUTHBEARER are not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SaslMechanism {
    /// `PLAIN` (RFC 4616): the password is sent as is, so use it over TLS.
    Plain,
    /// `SCRAM-SHA-256` (RFC 7677, KIP-84).
    ScramSha256,
    /// `SCRAM-SHA-512` (KIP-84).
    ScramSha512,
}

impl SaslMechanism {
    /// The mechanism name sent in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A secret that `Debug` does not print, so logging a config cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The password itself, for the SASL exchange.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([hidden])")
    }
}

/// SASL credentials: `sasl.mechanism`, `sasl.username`, `sasl.password`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SaslConfig {
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Password,
}

impl SaslConfig {
    /// Credentials for `mechanism`.
    pub fn new(mechanism: SaslMechanism, username: impl Into<String>, password: Password) -> Self {
        SaslConfig {
            mechanism,
            username: username.into(),
            password,
        }
    }
}

/// A client certificate and its private key, both PEM files (`ssl.certificate.location`,
/// `ssl.key.location`). One without the other is meaningless, hence one type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientCert {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The unencrypted private key.
    pub key_file: PathBuf,
}

impl ClientCert {
    /// A certificate and its key.
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        ClientCert {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
        }
    }
}

/// TLS settings. Files are only named here; they are read (and their errors reported) when a
/// connection is made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsConfig {
    /// PEM file of the CAs to trust (`ssl.ca.location`); `None` trusts the bundled Mozilla
    /// roots.
    pub ca_file: Option<PathBuf>,
    /// A certificate to authenticate the client with (mutual TLS).
    pub client_cert: Option<ClientCert>,
    /// Whether the broker's certificate must name the host we dialled
    /// (`ssl.endpoint.identification.algorithm=https`, the default since Kafka 2.0).
    pub verify_hostname: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca_file: None,
            client_cert: None,
            verify_hostname: true,
        }
    }
}

/// How connections are secured: the `security.protocol` with what it needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SecurityConfig {
    /// `PLAINTEXT` (the default).
    #[default]
    Plaintext,
    /// `SSL`.
    Ssl(TlsConfig),
    /// `SASL_PLAINTEXT`.
    SaslPlaintext(SaslConfig),
    /// `SASL_SSL`.
    SaslSsl {
        /// TLS settings.
        tls: TlsConfig,
        /// SASL credentials.
        sasl: SaslConfig,
    },
}

impl SecurityConfig {
    /// The protocol.
    pub fn protocol(&self) -> SecurityProtocol {
        match self {
            SecurityConfig::Plaintext => SecurityProtocol::Plaintext,
            SecurityConfig::Ssl(_) => SecurityProtocol::Ssl,
            SecurityConfig::SaslPlaintext(_) => SecurityProtocol::SaslPlaintext,
            SecurityConfig::SaslSsl { .. } => SecurityProtocol::SaslSsl,
        }
    }

    /// The TLS settings, if the protocol uses TLS.
    pub fn tls(&self) -> Option<&TlsConfig> {
        match self {
            SecurityConfig::Ssl(tls) | SecurityConfig::SaslSsl { tls, .. } => Some(tls),
            SecurityConfig::Plaintext | SecurityConfig::SaslPlaintext(_) => None,
        }
    }

    /// The SASL credentials, if the protocol uses SASL.
    pub fn sasl(&self) -> Option<&SaslConfig> {
        match self {
            SecurityConfig::SaslPlaintext(sasl) | SecurityConfig::SaslSsl { sasl, .. } => {
                Some(sasl)
            }
            SecurityConfig::Plaintext | SecurityConfig::Ssl(_) => None,
        }
    }
}

/// Security settings as they arrive from properties, one at a time, checked together by
/// [`SecurityParts::build`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct SecurityParts {
    pub(super) protocol: Option<SecurityProtocol>,
    pub(super) mechanism: Option<SaslMechanism>,
    pub(super) username: Option<String>,
    pub(super) password: Option<Password>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) cert_file: Option<PathBuf>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) verify_hostname: Option<bool>,
}

impl From<SecurityConfig> for SecurityParts {
    fn from(config: SecurityConfig) -> Self {
        let protocol = Some(config.protocol());
        let mut parts = SecurityParts {
            protocol,
            ..SecurityParts::default()
        };
        if let Some(tls) = config.tls() {
            parts.ca_file.clone_from(&tls.ca_file);
            if let Some(cert) = &tls.client_cert {
                parts.cert_file = Some(cert.cert_file.clone());
                parts.key_file = Some(cert.key_file.clone());
            }
            parts.verify_hostname = Some(tls.verify_hostname);
        }
        if let Some(sasl) = config.sasl() {
            parts.mechanism = Some(sasl.mechanism);
            parts.username = Some(sasl.username.clone());
            parts.password = Some(sasl.password.clone());
        }
        parts
    }
}

impl SecurityParts {
    /// Assembles the config, refusing settings the protocol would not use.
    ///
    /// `ssl.endpoint.identification.algorithm` alone is tolerated without TLS: Java configs
    /// often carry its default (`https`) whatever the protocol.
    pub(super) fn build(self, names: &GivenNames) -> Result<SecurityConfig> {
        let protocol = self.protocol.unwrap_or_default();
        let protocol_name = names.name("security.protocol");
        let unused = |canonical: &'static str, needs: &str| {
            let property = names.name(canonical);
            error(
                property,
                format!(
                    "{property} is set but {protocol_name} is {protocol}; it needs {needs} \
                     (did you forget {protocol_name}?)"
                ),
            )
        };
        let tls = if protocol.uses_tls() {
            let client_cert = match (self.cert_file, self.key_file) {
                (Some(cert), Some(key)) => Some(ClientCert::new(cert, key)),
                (None, None) => None,
                (Some(_), None) | (None, Some(_)) => {
                    let (cert, key) = (
                        names.name("ssl.certificate.location"),
                        names.name("ssl.key.location"),
                    );
                    return Err(error(
                        cert,
                        format!("{cert} and {key} must be given together"),
                    ));
                }
            };
            let verify_hostname = self.verify_hostname.unwrap_or(true);
            Some(TlsConfig {
                ca_file: self.ca_file,
                client_cert,
                verify_hostname,
            })
        } else {
            let tls_only = [
                (self.ca_file.is_some(), "ssl.ca.location"),
                (self.cert_file.is_some(), "ssl.certificate.location"),
                (self.key_file.is_some(), "ssl.key.location"),
            ];
            if let Some((_, name)) = tls_only.iter().find(|(set, _)| *set) {
                return Err(unused(name, "SSL or SASL_SSL"));
            }
            None
        };
        let sasl = if protocol.uses_sasl() {
            let mechanism = self.mechanism.ok_or_else(|| {
                error(
                    names.name("sasl.mechanism"),
                    format!(
                        "required with {protocol}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 \
                         (Java's default, GSSAPI, is not supported)"
                    ),
                )
            })?;
            let required = |canonical: &str| {
                error(
                    names.name(canonical),
                    format!("required with {protocol} ({mechanism})"),
                )
            };
            let username = self.username.ok_or_else(|| required("sasl.username"))?;
            let password = self.password.ok_or_else(|| required("sasl.password"))?;
            Some(SaslConfig {
                mechanism,
                username,
                password,
            })
        } else {
            let sasl_only = [
                (self.mechanism.is_some(), "sasl.mechanism"),
                (self.username.is_some(), "sasl.username"),
                (self.password.is_some(), "sasl.password"),
            ];
            if let Some((_, name)) = sasl_only.iter().find(|(set, _)| *set) {
                return Err(unused(name, "SASL_PLAINTEXT or SASL_SSL"));
            }
            None
        };
        Ok(match (tls, sasl) {
            (None, None) => SecurityConfig::Plaintext,
            (Some(tls), None) => SecurityConfig::Ssl(tls),
            (None, Some(sasl)) => SecurityConfig::SaslPlaintext(sasl),
            (Some(tls), Some(sasl)) => SecurityConfig::SaslSsl { tls, sasl },
        })
    }
}

/// `security.protocol` values.
pub(super) const PROTOCOLS: &[(&str, SecurityProtocol)] = &[
    ("PLAINTEXT", SecurityProtocol::Plaintext),
    ("SSL", SecurityProtocol::Ssl),
    ("SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext),
    ("SASL_SSL", SecurityProtocol::SaslSsl),
];

/// `sasl.mechanism` values.
pub(super) const MECHANISMS: &[(&str, SaslMechanism)] = &[
    ("PLAIN", SaslMechanism::Plain),
    ("SCRAM-SHA-256", SaslMechanism::ScramSha256),
    ("SCRAM-SHA-512", SaslMechanism::ScramSha512),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_not_printed() {
        let sasl = SaslConfig::new(SaslMechanism::Plain, "alice", Password::new("s3cret"));
        let printed = format!("{sasl:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert_eq!(sasl.password.expose(), "s3cret");
    }

    #[test]
    fn parts_round_trip_every_variant() {
        let tls = TlsConfig {
            ca_file: Some("ca.pem".into()),
            client_cert: Some(ClientCert::new("c.pem", "k.pem")),
            verify_hostname: false,
        };
        let sasl = SaslConfig::new(SaslMechanism::ScramSha512, "u", Password::new("p"));
        for config in [
            SecurityConfig::Plaintext,
            SecurityConfig::Ssl(tls.clone()),
            SecurityConfig::SaslPlaintext(sasl.clone()),
            SecurityConfig::SaslSsl { tls, sasl },
        ] {
            let built = SecurityParts::from(config.clone()).build(&GivenNames::default());
            assert_eq!(built.ok(), Some(config));
        }
    }
}
