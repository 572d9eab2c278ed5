//! TLS and SASL through the public API: Java-style properties → `ClientConfig` →
//! `ClusterOptions::from_client` → `Cluster`, against the in-process fake broker of
//! `src/conn/test_broker.rs` (the local Tansu broker has no TLS or SASL listener). Checks that
//! the security settings reach every connection the cluster makes, and that the failures that
//! reconnecting cannot fix come back at once instead of being retried.
#![allow(clippy::unwrap_used)]

#[path = "../src/conn/test_broker.rs"]
mod test_broker;

use sluice_client::cluster::{Cluster, ClusterOptions};
use sluice_client::config::ClientConfig;
use sluice_client::Error;

fn cluster_options(properties: &[(&str, &str)]) -> ClusterOptions {
    ClusterOptions::from_client(&ClientConfig::from_properties(properties.iter().copied()).unwrap())
}

#[cfg(all(feature = "tls", feature = "sasl"))]
#[tokio::test]
async fn sasl_ssl_from_properties_reaches_every_connection() {
    use kafka_protocol::messages::MetadataRequest;
    use test_broker::pki::{server_config, Ca, TempDir};
    use test_broker::FakeBroker;

    let (dir, ca) = (TempDir::new(), Ca::new("sluice test CA"));
    let cert = ca.server(&["localhost"]);
    let broker = FakeBroker {
        host: "localhost",
        mechanisms: vec!["PLAIN", "SCRAM-SHA-256"],
        users: vec![("alice", "wonder land")],
        tls: Some(server_config(&cert, None)),
        ..FakeBroker::default()
    }
    .start()
    .await;
    let addr = broker.addr("localhost");
    let ca_file = dir.write("ca.pem", &ca.pem());
    let options = cluster_options(&[
        ("bootstrap.servers", addr.as_str()),
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "SCRAM-SHA-256"),
        ("sasl.username", "alice"),
        ("sasl.password", "wonder land"),
        ("ssl.ca.location", ca_file.to_str().unwrap()),
    ]);
    let cluster = Cluster::connect(options).await.unwrap();
    let snapshot = cluster.snapshot();
    assert_eq!(snapshot.brokers[&1].addr, addr);
    // Broker 1 gets its own connection (to the advertised address), secured the same way.
    cluster
        .send_to(1, &MetadataRequest::default())
        .await
        .unwrap();
    let one_connection = ["sni=localhost", "auth=alice", "metadata"];
    assert_eq!(broker.events(), [one_connection, one_connection].concat());
}

#[cfg(feature = "sasl")]
#[tokio::test]
async fn a_wrong_password_fails_the_cluster_at_once() {
    use sluice_client::KafkaCode;
    use test_broker::FakeBroker;

    let broker = FakeBroker {
        mechanisms: vec!["SCRAM-SHA-512"],
        users: vec![("alice", "wonder land")],
        ..FakeBroker::default()
    }
    .start()
    .await;
    let addr = broker.addr("127.0.0.1");
    let options = cluster_options(&[
        ("bootstrap.servers", addr.as_str()),
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "alice"),
        ("sasl.password", "wrong"),
    ]);
    let err = Cluster::connect(options).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(KafkaCode::SASL_AUTHENTICATION_FAILED),
        "{err}"
    );
    assert!(err.is_fatal());
    // Fatal errors are not retried: one attempt reached the broker.
    assert_eq!(broker.events(), ["auth-failed=alice"]);
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn an_unreadable_ca_file_fails_before_connecting() {
    let options = cluster_options(&[
        ("bootstrap.servers", "127.0.0.1:9"),
        ("security.protocol", "SSL"),
        ("ssl.ca.location", "/nonexistent/sluice-ca.pem"),
    ]);
    let err = Cluster::connect(options).await.unwrap_err();
    assert!(
        matches!(&err, Error::Config { property, .. } if property == "ssl.ca.location"),
        "{err}"
    );
}

#[cfg(not(feature = "tls"))]
#[tokio::test]
async fn ssl_without_the_tls_feature_is_a_config_error() {
    for protocol in ["SSL", "SASL_SSL"] {
        let mut properties = vec![
            ("bootstrap.servers", "127.0.0.1:9"),
            ("security.protocol", protocol),
        ];
        if protocol == "SASL_SSL" {
            properties.extend([
                ("sasl.mechanism", "PLAIN"),
                ("sasl.username", "alice"),
                ("sasl.password", "pw"),
            ]);
        }
        let err = Cluster::connect(cluster_options(&properties))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Config { property, reason }
                if property == "security.protocol" && reason.contains("`tls` feature")),
            "{err}"
        );
    }
}

#[cfg(not(feature = "sasl"))]
#[tokio::test]
async fn sasl_without_the_sasl_feature_is_a_config_error() {
    let options = cluster_options(&[
        ("bootstrap.servers", "127.0.0.1:9"),
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "SCRAM-SHA-256"),
        ("sasl.username", "alice"),
        ("sasl.password", "pw"),
    ]);
    let err = Cluster::connect(options).await.unwrap_err();
    assert!(
        matches!(&err, Error::Config { property, reason }
            if property == "security.protocol" && reason.contains("`sasl` feature")),
        "{err}"
    );
}

#[tokio::test]
async fn plaintext_still_connects() {
    let broker = test_broker::FakeBroker::default().start().await;
    let addr = broker.addr("127.0.0.1");
    let cluster = Cluster::connect(cluster_options(&[("bootstrap.servers", addr.as_str())]))
        .await
        .unwrap();
    assert_eq!(cluster.snapshot().brokers[&1].addr, addr);
}
