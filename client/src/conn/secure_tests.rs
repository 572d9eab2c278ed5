//! TLS and SASL on a connection, against the in-process fake broker of `test_broker.rs`
//! (the local Tansu broker has no TLS or SASL listener): each mechanism end to end, and each
//! way it must fail — wrong password, a mechanism the broker does not enable, a broker that
//! cannot prove it knows the credential, a wrong CA, a certificate for another host, a missing
//! client certificate — with the error type the retry logic depends on.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kafka_protocol::messages::MetadataRequest;

use super::test_broker::FakeBroker;
use super::{ConnectOptions, Connection, Security};
use crate::config::SecurityConfig;
use crate::error::Error;

fn options(security: &SecurityConfig) -> ConnectOptions {
    ConnectOptions {
        client_id: "secure-test".into(),
        connect_timeout: Duration::from_secs(10),
        max_in_flight: 16,
        max_frame_size: 1 << 20,
        security: Security::new(security).unwrap(),
    }
}

/// A Metadata round trip on an established connection; returns the advertised broker.
async fn metadata(conn: &Connection) -> String {
    let response = conn
        .send(&MetadataRequest::default(), Duration::from_secs(5))
        .await
        .unwrap();
    let broker = &response.brokers[0];
    format!("{}:{}", broker.host.as_str(), broker.port)
}

#[cfg(not(feature = "tls"))]
#[test]
fn ssl_without_the_tls_feature_is_a_config_error() {
    use crate::config::TlsConfig;
    let err = Security::new(&SecurityConfig::Ssl(TlsConfig::default())).unwrap_err();
    assert!(
        matches!(&err, Error::Config { property, reason }
            if property == "security.protocol" && reason.contains("without its `tls` feature")),
        "{err}"
    );
    assert!(err.is_fatal());
}

#[cfg(not(feature = "sasl"))]
#[test]
fn sasl_without_the_sasl_feature_is_a_config_error() {
    use crate::config::{Password, SaslConfig, SaslMechanism};
    let sasl = SaslConfig::new(SaslMechanism::Plain, "alice", Password::new("pw"));
    let err = Security::new(&SecurityConfig::SaslPlaintext(sasl)).unwrap_err();
    assert!(
        matches!(&err, Error::Config { property, reason }
            if property == "security.protocol" && reason.contains("without its `sasl` feature")),
        "{err}"
    );
}

#[tokio::test]
async fn plaintext_through_the_same_path() {
    let broker = FakeBroker::default().start().await;
    let conn = Connection::connect(
        &broker.addr("127.0.0.1"),
        &options(&SecurityConfig::Plaintext),
    )
    .await
    .unwrap();
    assert_eq!(metadata(&conn).await, broker.addr("127.0.0.1"));
}

#[cfg(feature = "sasl")]
mod sasl {
    use super::*;
    use crate::config::{Password, SaslConfig, SaslMechanism};
    use crate::conn::test_broker::Misbehave;
    use crate::error::KafkaCode;

    const ALL: [(SaslMechanism, &str); 3] = [
        (SaslMechanism::Plain, "PLAIN"),
        (SaslMechanism::ScramSha256, "SCRAM-SHA-256"),
        (SaslMechanism::ScramSha512, "SCRAM-SHA-512"),
    ];

    fn broker(mechanisms: &[&'static str]) -> FakeBroker {
        FakeBroker {
            mechanisms: mechanisms.to_vec(),
            // A user name SCRAM must escape (RFC 5802 saslname) and a non-ASCII password.
            users: vec![("alice", "wonder land"), ("app,user=1", "pässword")],
            ..FakeBroker::default()
        }
    }

    fn sasl(mechanism: SaslMechanism, user: &str, password: &str) -> SecurityConfig {
        SecurityConfig::SaslPlaintext(SaslConfig::new(mechanism, user, Password::new(password)))
    }

    #[tokio::test]
    async fn every_mechanism_authenticates_then_serves_requests() {
        for (mechanism, name) in ALL {
            for (user, password) in [("alice", "wonder land"), ("app,user=1", "pässword")] {
                let broker = broker(&["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
                    .start()
                    .await;
                let addr = broker.addr("127.0.0.1");
                let conn = Connection::connect(&addr, &options(&sasl(mechanism, user, password)))
                    .await
                    .unwrap_or_else(|e| panic!("{name} as {user}: {e}"));
                assert_eq!(metadata(&conn).await, addr);
                assert_eq!(
                    broker.events(),
                    [format!("auth={user}"), "metadata".into()],
                    "{name}"
                );
            }
        }
    }

    #[tokio::test]
    async fn every_sasl_authenticate_version_works() {
        // v0 (Kafka 1.0), v1 (session lifetime, KIP-368), v2 (flexible).
        for max in 0..=2 {
            let broker = FakeBroker {
                sasl_authenticate_max: Some(max),
                ..broker(&["SCRAM-SHA-256"])
            }
            .start()
            .await;
            let config = sasl(SaslMechanism::ScramSha256, "alice", "wonder land");
            let conn = Connection::connect(&broker.addr("127.0.0.1"), &options(&config))
                .await
                .unwrap_or_else(|e| panic!("SaslAuthenticate v{max}: {e}"));
            metadata(&conn).await;
            assert_eq!(broker.events(), ["auth=alice", "metadata"]);
        }
    }

    #[tokio::test]
    async fn a_wrong_password_is_a_fatal_authentication_error_with_the_brokers_message() {
        for (mechanism, name) in ALL {
            let broker = broker(&[name]).start().await;
            let err = Connection::connect(
                &broker.addr("127.0.0.1"),
                &options(&sasl(mechanism, "alice", "wrong")),
            )
            .await
            .unwrap_err();
            assert_eq!(
                err.code(),
                Some(KafkaCode::SASL_AUTHENTICATION_FAILED),
                "{err}"
            );
            assert!(err.is_fatal() && !err.is_retriable(), "{err}");
            let text = err.to_string();
            assert!(text.contains("alice") && text.contains(name), "{text}");
            let said = if name == "PLAIN" {
                "Invalid username or password"
            } else {
                "invalid credentials"
            };
            assert!(text.contains(said), "{text}");
            assert_eq!(broker.events(), ["auth-failed=alice"]);
        }
    }

    #[tokio::test]
    async fn an_unknown_user_fails_the_same_way() {
        let broker = broker(&["SCRAM-SHA-256"]).start().await;
        let err = Connection::connect(
            &broker.addr("127.0.0.1"),
            &options(&sasl(SaslMechanism::ScramSha256, "mallory", "x")),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.code(),
            Some(KafkaCode::SASL_AUTHENTICATION_FAILED),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_mechanism_the_broker_does_not_enable_lists_the_enabled_ones() {
        let broker = broker(&["PLAIN", "SCRAM-SHA-256"]).start().await;
        let err = Connection::connect(
            &broker.addr("127.0.0.1"),
            &options(&sasl(SaslMechanism::ScramSha512, "alice", "wonder land")),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.code(),
            Some(KafkaCode::UNSUPPORTED_SASL_MECHANISM),
            "{err}"
        );
        assert!(err.is_fatal());
        let text = err.to_string();
        assert!(
            text.contains("SCRAM-SHA-512") && text.contains("it enables: PLAIN, SCRAM-SHA-256"),
            "{text}"
        );
        // No SASL listener at all: the broker enables nothing.
        let broker = FakeBroker::default().start().await;
        let err = Connection::connect(
            &broker.addr("127.0.0.1"),
            &options(&sasl(SaslMechanism::Plain, "alice", "wonder land")),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("it enables: none"), "{err}");
    }

    #[tokio::test]
    async fn a_broker_that_cannot_prove_it_knows_the_credential_is_refused() {
        // It accepts any proof and signs with a key it made up: what an impostor can do.
        let broker = FakeBroker {
            misbehave: Misbehave::ForgeServerSignature,
            ..broker(&["SCRAM-SHA-256"])
        }
        .start()
        .await;
        let err = Connection::connect(
            &broker.addr("127.0.0.1"),
            &options(&sasl(SaslMechanism::ScramSha256, "alice", "wonder land")),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Error::Security(m) if m.contains("server signature mismatch")),
            "{err}"
        );
        assert!(err.is_fatal());
    }

    #[tokio::test]
    async fn illegal_sasl_state_is_typed_and_fatal() {
        let broker = FakeBroker {
            misbehave: Misbehave::IllegalSaslState,
            ..broker(&["PLAIN"])
        }
        .start()
        .await;
        let err = Connection::connect(
            &broker.addr("127.0.0.1"),
            &options(&sasl(SaslMechanism::Plain, "alice", "wonder land")),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Some(KafkaCode::ILLEGAL_SASL_STATE), "{err}");
        assert!(err.is_fatal());
        assert!(err.to_string().contains("Unexpected SASL request"), "{err}");
    }
}

#[cfg(feature = "tls")]
mod tls {
    use super::*;
    use crate::config::{ClientCert, TlsConfig};
    use crate::conn::test_broker::pki::{server_config, Ca, TempDir};

    /// A broker with a certificate for `names` from `ca`.
    async fn tls_broker(
        ca: &Ca,
        names: &[&str],
        client_ca: Option<&Ca>,
    ) -> super::super::test_broker::Running {
        let cert = ca.server(names);
        FakeBroker {
            host: "localhost",
            tls: Some(server_config(&cert, client_ca)),
            ..FakeBroker::default()
        }
        .start()
        .await
    }

    fn trusting(dir: &TempDir, ca: &Ca) -> TlsConfig {
        TlsConfig {
            ca_file: Some(dir.write("ca.pem", &ca.pem())),
            ..TlsConfig::default()
        }
    }

    fn security_message(err: &Error) -> &str {
        match err {
            Error::Security(m) => m,
            other => panic!("expected a security error, got {other}"),
        }
    }

    #[tokio::test]
    async fn api_versions_and_metadata_over_tls_with_sni() {
        let (dir, ca) = (TempDir::new(), Ca::new("sluice test CA"));
        let broker = tls_broker(&ca, &["localhost"], None).await;
        let addr = broker.addr("localhost");
        let conn = Connection::connect(&addr, &options(&SecurityConfig::Ssl(trusting(&dir, &ca))))
            .await
            .unwrap();
        assert!(conn
            .versions()
            .get(sluice_protocol::messages::ApiKey::Metadata)
            .is_ok());
        assert_eq!(metadata(&conn).await, addr);
        // Pipelined requests share the TLS stream through the split halves.
        let request = MetadataRequest::default();
        let sends = (0..32).map(|_| conn.send(&request, Duration::from_secs(5)));
        for response in futures::future::join_all(sends).await {
            response.unwrap();
        }
        let events = broker.events();
        assert_eq!(events[0], "sni=localhost", "{events:?}");
    }

    #[tokio::test]
    async fn a_certificate_from_another_ca_is_a_security_error() {
        let dir = TempDir::new();
        let (ca, other) = (Ca::new("the broker's CA"), Ca::new("some other CA"));
        let broker = tls_broker(&ca, &["localhost"], None).await;
        let err = Connection::connect(
            &broker.addr("localhost"),
            &options(&SecurityConfig::Ssl(trusting(&dir, &other))),
        )
        .await
        .unwrap_err();
        let message = security_message(&err);
        assert!(
            message.contains("UnknownIssuer") && message.contains("ssl.ca.location"),
            "{message}"
        );
        assert!(err.is_fatal());
        // The bundled roots do not trust a private CA either.
        let err = Connection::connect(
            &broker.addr("localhost"),
            &options(&SecurityConfig::Ssl(TlsConfig::default())),
        )
        .await
        .unwrap_err();
        assert!(security_message(&err).contains("UnknownIssuer"), "{err}");
    }

    #[tokio::test]
    async fn a_certificate_for_another_host_fails_unless_verification_is_off() {
        let (dir, ca) = (TempDir::new(), Ca::new("sluice test CA"));
        let broker = tls_broker(&ca, &["broker-1.kafka.invalid"], None).await;
        let config = trusting(&dir, &ca);
        let err = Connection::connect(
            &broker.addr("localhost"),
            &options(&SecurityConfig::Ssl(config.clone())),
        )
        .await
        .unwrap_err();
        let message = security_message(&err);
        assert!(
            message.contains("NotValidForName") || message.contains("not valid for name"),
            "{message}"
        );
        assert!(
            message.contains("ssl.endpoint.identification.algorithm"),
            "{message}"
        );
        // An IP address is checked against the certificate's IP addresses: none here.
        let err = Connection::connect(
            &broker.addr("127.0.0.1"),
            &options(&SecurityConfig::Ssl(config.clone())),
        )
        .await
        .unwrap_err();
        security_message(&err);

        let off = TlsConfig {
            verify_hostname: false,
            ..config
        };
        for host in ["localhost", "127.0.0.1"] {
            let conn = Connection::connect(
                &broker.addr(host),
                &options(&SecurityConfig::Ssl(off.clone())),
            )
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
            metadata(&conn).await;
        }
        // Off means the name only: the chain is still verified.
        let other = Ca::new("some other CA");
        let untrusted = TlsConfig {
            verify_hostname: false,
            ..trusting(&dir, &other)
        };
        let err = Connection::connect(
            &broker.addr("localhost"),
            &options(&SecurityConfig::Ssl(untrusted)),
        )
        .await
        .unwrap_err();
        assert!(security_message(&err).contains("UnknownIssuer"), "{err}");
    }

    #[tokio::test]
    async fn mutual_tls_needs_the_client_certificate() {
        let dir = TempDir::new();
        let (ca, client_ca) = (Ca::new("broker CA"), Ca::new("client CA"));
        let broker = tls_broker(&ca, &["localhost"], Some(&client_ca)).await;
        let addr = broker.addr("localhost");

        // Without one: TLS 1.3 lets the client finish its side of the handshake first, so the
        // refusal comes as an alert on the first read; it must still be a security error.
        let err = Connection::connect(&addr, &options(&SecurityConfig::Ssl(trusting(&dir, &ca))))
            .await
            .unwrap_err();
        let message = security_message(&err);
        assert!(message.contains("client certificate"), "{message}");

        // With one from a CA the broker does not trust.
        let stranger = ca.client("stranger");
        let wrong = TlsConfig {
            client_cert: Some(ClientCert::new(
                dir.write("stranger.pem", &stranger.cert_pem),
                dir.write("stranger.key", &stranger.key_pem),
            )),
            ..trusting(&dir, &ca)
        };
        let err = Connection::connect(&addr, &options(&SecurityConfig::Ssl(wrong)))
            .await
            .unwrap_err();
        security_message(&err);

        let client = client_ca.client("sluice-app");
        let with_cert = TlsConfig {
            client_cert: Some(ClientCert::new(
                dir.write("client.pem", &client.cert_pem),
                dir.write("client.key", &client.key_pem),
            )),
            ..trusting(&dir, &ca)
        };
        let conn = Connection::connect(&addr, &options(&SecurityConfig::Ssl(with_cert)))
            .await
            .unwrap();
        assert_eq!(metadata(&conn).await, addr);
        assert!(broker.events().contains(&"client-cert".to_owned()));
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_a_config_error() {
        let (dir, ca) = (TempDir::new(), Ca::new("client CA"));
        let (one, two) = (ca.client("one"), ca.client("two"));
        let config = TlsConfig {
            client_cert: Some(ClientCert::new(
                dir.write("one.pem", &one.cert_pem),
                dir.write("two.key", &two.key_pem),
            )),
            ..TlsConfig::default()
        };
        let err = Security::new(&SecurityConfig::Ssl(config)).unwrap_err();
        assert!(
            matches!(&err, Error::Config { property, .. } if property == "ssl.key.location"),
            "{err}"
        );
        let garbage = TlsConfig {
            ca_file: Some(dir.write("garbage.pem", "not a certificate")),
            ..TlsConfig::default()
        };
        let err = Security::new(&SecurityConfig::Ssl(garbage)).unwrap_err();
        assert!(
            matches!(&err, Error::Config { property, reason }
                if property == "ssl.ca.location" && reason.contains("no PEM certificate")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn tls_to_a_plaintext_listener_is_a_retriable_io_error_with_a_hint() {
        let (dir, ca) = (TempDir::new(), Ca::new("sluice test CA"));
        let broker = FakeBroker::default().start().await;
        let err = Connection::connect(
            &broker.addr("localhost"),
            &options(&SecurityConfig::Ssl(trusting(&dir, &ca))),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, Error::Io { .. }) && err.is_retriable(),
            "{err}"
        );
        assert!(err.to_string().contains("TLS listener"), "{err}");
    }

    #[tokio::test]
    async fn plaintext_to_a_tls_listener_is_a_config_error() {
        let ca = Ca::new("sluice test CA");
        let broker = tls_broker(&ca, &["localhost"], None).await;
        let err = Connection::connect(
            &broker.addr("localhost"),
            &options(&SecurityConfig::Plaintext),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Error::Config { property, reason }
                if property == "security.protocol" && reason.contains("TLS listener")),
            "{err}"
        );
    }

    #[cfg(feature = "sasl")]
    #[tokio::test]
    async fn sasl_scram_over_tls() {
        use crate::config::{Password, SaslConfig, SaslMechanism};
        let (dir, ca) = (TempDir::new(), Ca::new("sluice test CA"));
        let cert = ca.server(&["localhost"]);
        let broker = FakeBroker {
            host: "localhost",
            mechanisms: vec!["SCRAM-SHA-512"],
            users: vec![("alice", "wonder land")],
            tls: Some(server_config(&cert, None)),
            ..FakeBroker::default()
        }
        .start()
        .await;
        let config = SecurityConfig::SaslSsl {
            tls: trusting(&dir, &ca),
            sasl: SaslConfig::new(
                SaslMechanism::ScramSha512,
                "alice",
                Password::new("wonder land"),
            ),
        };
        let conn = Connection::connect(&broker.addr("localhost"), &options(&config))
            .await
            .unwrap();
        metadata(&conn).await;
        assert_eq!(broker.events(), ["sni=localhost", "auth=alice", "metadata"]);
    }
}
