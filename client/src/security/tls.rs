//! The rustls client configuration for TLS broker connections, built from a [`TlsConfig`].
//!
//! Built once per cluster (files are read then, and their errors reported as configuration
//! errors naming the property), then shared by every connection. rustls with its `ring`
//! provider, chosen explicitly rather than through rustls's process-wide default, so another
//! crate in the same program installing a different default cannot change ours.
//!
//! * Trust: the PEM file of `ssl.ca.location`, or the Mozilla roots of `webpki-roots` when none
//!   is given (what a broker with a public certificate needs).
//! * Client authentication (mutual TLS): `ssl.certificate.location` + `ssl.key.location`, PEM;
//!   the key unencrypted (PKCS#8, PKCS#1 or SEC1), `ssl.key.password` is not supported.
//! * The broker's certificate must name the host dialled, unless `verify_hostname` is off
//!   (see [`TlsConfig::verify_hostname`] and [`SkipHostname`]). SNI carries that host name.
//!
//! References: Kafka's security docs (`ssl.endpoint.identification.algorithm`, KIP-294 which
//! made hostname verification the default), RFC 6125 (service identity), RFC 6066 §3 (SNI).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::{ClientCert, TlsConfig};
use crate::{Error, Result};

/// The client configuration for `config`: trust roots, client certificate, hostname rule.
///
/// Errors: an unreadable or empty PEM file is an [`Error::Config`] naming its property; a key
/// that does not match its certificate too (`ssl.key.location`).
pub(crate) fn client_config(config: &TlsConfig) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(root_store(config.ca_file.as_deref())?);
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Security(format!("TLS setup: {e}")))?;
    let builder = if config.verify_hostname {
        builder.with_root_certificates(roots)
    } else {
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| Error::Security(format!("TLS setup: {e}")))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipHostname { inner }))
    };
    match &config.client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some(ClientCert {
            cert_file,
            key_file,
        }) => {
            let chain = certificates(cert_file, "ssl.certificate.location")?;
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
                config_error(
                    "ssl.key.location",
                    format!(
                        "no usable private key in {} ({e}); it must be an unencrypted PEM key \
                         (PKCS#8, PKCS#1 or SEC1)",
                        key_file.display()
                    ),
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                config_error(
                    "ssl.key.location",
                    format!(
                        "{} cannot be used with the certificate {}: {e}",
                        key_file.display(),
                        cert_file.display()
                    ),
                )
            })
        }
    }
}

/// The name the broker's certificate must carry and SNI sends: the host of `host:port`
/// (`[v6 address]:port` too). An IP address is verified against the certificate's IP
/// addresses, and rustls sends no SNI for it (RFC 6066 allows only DNS names there).
pub(crate) fn server_name(addr: &str) -> Result<ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => addr,
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host.to_owned()).map_err(|e| {
        Error::Security(format!(
            "TLS: broker address {addr}: {host:?} is neither a DNS name nor an IP address ({e})"
        ))
    })
}

fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore> {
    let Some(ca_file) = ca_file else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_file, "ssl.ca.location")? {
        roots.add(cert).map_err(|e| {
            config_error(
                "ssl.ca.location",
                format!(
                    "a certificate in {} is not a usable CA: {e}",
                    ca_file.display()
                ),
            )
        })?;
    }
    Ok(roots)
}

/// Every certificate of a PEM file; none at all is an error.
fn certificates(path: &Path, property: &str) -> Result<Vec<CertificateDer<'static>>> {
    let unreadable = |e: rustls::pki_types::pem::Error| {
        config_error(property, format!("cannot read {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(unreadable)?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    if certs.is_empty() {
        return Err(config_error(
            property,
            format!("no PEM certificate in {}", path.display()),
        ));
    }
    Ok(certs)
}

fn config_error(property: &str, reason: String) -> Error {
    Error::Config {
        property: property.to_owned(),
        reason,
    }
}

/// **Turns off the check that the broker's certificate names the host we dialled**; the
/// certificate chain, its validity dates and the handshake signatures are still verified.
///
/// This is Kafka's `ssl.endpoint.identification.algorithm=` (empty). Without the name check,
/// any certificate the trusted CAs ever issued, for any host, is accepted from any broker
/// address: with a public CA that means anyone who can obtain a certificate for their own
/// domain and intercept the connection can read and alter everything on it, SASL credentials
/// included. Use it only with a private CA that issues certificates to your brokers and
/// nobody else, and prefer fixing the certificates (or the advertised listener names) instead.
struct SkipHostname {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for SkipHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain (trust anchor, dates, usage) before the name, so a name
        // error means everything before it passed.
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

impl fmt::Debug for SkipHostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SkipHostname")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn server_name_is_the_host_of_the_address() {
        let dns = |name: &str| ServerName::try_from(name.to_owned()).ok();
        assert_eq!(
            server_name("broker-1.example.com:9093").ok(),
            dns("broker-1.example.com")
        );
        assert_eq!(server_name("localhost:9093").ok(), dns("localhost"));
        assert_eq!(server_name("127.0.0.1:9093").ok(), dns("127.0.0.1"));
        assert!(matches!(
            server_name("[::1]:9093"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(server_name("bad host:9093").is_err());
    }

    #[test]
    fn missing_files_are_config_errors_naming_the_property() {
        let missing = "/nonexistent/sluice-test.pem";
        let config = TlsConfig {
            ca_file: Some(missing.into()),
            ..TlsConfig::default()
        };
        let err = client_config(&config).unwrap_err();
        assert!(
            matches!(&err, Error::Config { property, reason }
                if property == "ssl.ca.location" && reason.contains(missing)),
            "{err}"
        );
        let config = TlsConfig {
            client_cert: Some(ClientCert::new(missing, missing)),
            ..TlsConfig::default()
        };
        let err = client_config(&config).unwrap_err();
        assert!(
            matches!(&err, Error::Config { property, .. } if property == "ssl.certificate.location"),
            "{err}"
        );
    }

    #[test]
    fn default_trusts_the_webpki_roots() {
        assert!(client_config(&TlsConfig::default()).is_ok());
        let off = TlsConfig {
            verify_hostname: false,
            ..TlsConfig::default()
        };
        assert!(client_config(&off).is_ok());
    }
}
