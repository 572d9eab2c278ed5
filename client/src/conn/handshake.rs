//! ApiVersions negotiation, the first exchange on every connection (KIP-35, KIP-511).
//!
//! sluice asks with ApiVersions v3, which carries the client's name and version. A broker that
//! does not know v3 answers UNSUPPORTED_VERSION with a v0 body listing what it does support;
//! we then ask once more with the highest ApiVersions version it offers. A broker older than
//! ApiVersions itself (pre-0.10) just closes the connection; that looks like any connection cut
//! mid-handshake, so it stays a retriable disconnect whose message names the old-broker case.

use std::time::Duration;

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::messages::{ApiKey, UNSUPPORTED_VERSION};
use sluice_protocol::versions::{Versions, API_VERSIONS_BOOTSTRAP_VERSION};

use super::Connection;
use crate::error::{Error, KafkaCode, Result};

/// The name sent in ApiVersions v3+; brokers check it against `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
const SOFTWARE_NAME: &str = "sluice";

pub(super) async fn negotiate(conn: &Connection, timeout: Duration) -> Result<Versions> {
    let first = ask(conn, API_VERSIONS_BOOTSTRAP_VERSION, timeout).await?;
    let response = if first.error_code == UNSUPPORTED_VERSION {
        let offered = first
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::ApiVersions as i16)
            .map(|k| k.max_version.min(API_VERSIONS_BOOTSTRAP_VERSION))
            .unwrap_or(0);
        ask(conn, offered, timeout).await?
    } else {
        first
    };
    if response.error_code != 0 {
        return Err(Error::kafka(
            KafkaCode(response.error_code),
            format!("ApiVersions from {}", conn.addr()),
        ));
    }
    let versions = Versions::negotiate(&response);
    for api in [ApiKey::Metadata, ApiKey::Produce, ApiKey::Fetch] {
        if let Err(e) = versions.get(api) {
            return Err(Error::BrokerTooOld {
                broker: conn.addr().to_owned(),
                reason: e.to_string(),
            });
        }
    }
    Ok(versions)
}

async fn ask(conn: &Connection, version: i16, timeout: Duration) -> Result<ApiVersionsResponse> {
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str(SOFTWARE_NAME))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
    // A broker older than ApiVersions itself (Kafka 0.10) closes the connection here, but so
    // does any connection cut at the wrong moment, so this stays a retriable disconnect: the
    // reason only mentions the old-broker case.
    conn.send_at(&request, version, timeout).await.map_err(|e| match e {
        Error::Disconnected { broker, reason } => Error::Disconnected {
            broker,
            reason: format!(
                "{reason}, during ApiVersions (brokers older than Kafka 0.10 close the connection here)"
            ),
        },
        other => other,
    })
}
