//! The API versions sluice implements, and negotiation with a broker's ApiVersions answer.
//!
//! Every Kafka API is versioned separately. A client asks each broker which versions it speaks
//! (ApiVersions, sent first on every connection) and then uses, per API, the highest version
//! both sides support. [`SUPPORTED`] is sluice's side of that: for each API the client uses, the
//! lowest version sluice will speak and the highest one the `kafka-protocol` crate can encode
//! and decode. [`Versions`] is the outcome for one broker; it fails per API, lazily, so a broker
//! without (say) transactions still serves a plain consumer, and the error names both ranges.
//!
//! The minimums follow KIP-896, which removed the protocol versions older than Apache Kafka 2.1
//! from Kafka 4.0 (with some exceptions): a version below is refused by a 4.0 broker, so
//! sluice does not implement it. They equal the lowest versions of the Kafka 4.x message
//! schemas that `kafka-protocol` 0.18 is generated from (checked by the crate's tests), except
//! where a row says why sluice needs more.
//!
//! References: the protocol guide, "Versioning and Compatibility" and "Retrieving Supported API
//! versions" (<https://kafka.apache.org/protocol#protocol_compatibility>); KIP-35 (ApiVersions);
//! KIP-511 (ApiVersions v3); KIP-896 (removal of old versions in Kafka 4.0).

use kafka_protocol::messages::ApiVersionsResponse;

use crate::error::{Error, Result};
use crate::messages::{api_name, ApiKey};

/// A range of versions of one API, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    /// The API.
    pub api: ApiKey,
    /// The lowest version.
    pub min: i16,
    /// The highest version.
    pub max: i16,
}

const fn range(api: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange { api, min, max }
}

/// The ApiVersions version to send first on a new connection.
///
/// Version 3 (KIP-511) is the first flexible one, understood by brokers since Kafka 2.4, and it
/// carries the client software name and version (the broker validates both against
/// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?` and answers INVALID_REQUEST otherwise). A
/// broker that does not know the version answers UNSUPPORTED_VERSION with a version 0 body
/// listing the versions it does know ([`crate::messages::decode_api_versions_response`] decodes
/// it); the client then asks again with the highest ApiVersions version in that list, which is
/// what [`Versions::get`] of the resulting [`Versions`] returns. Version 4 only changes how the
/// broker reports feature ranges, which sluice does not read, so 3 saves older brokers (and
/// Tansu) that round trip.
pub const API_VERSIONS_BOOTSTRAP_VERSION: i16 = 3;

/// The versions sluice implements for each API it uses.
pub const SUPPORTED: &[ApiRange] = &[
    range(ApiKey::ApiVersions, 0, 4),
    range(ApiKey::Metadata, 0, 13),
    // Magic 2 record batches (the only format sluice writes, and the only one Kafka 4 keeps)
    // need Produce v3+ (KIP-98); v0-v2 are also gone from Kafka 4 (KIP-896). Inside a
    // transaction v12+ also adds the partition to it when the broker runs transactions v2
    // (KIP-890 part 2). From v13 topics are named by id (KIP-516), not by name.
    range(ApiKey::Produce, 3, 13),
    // Magic 2 batches, isolation level and aborted transactions need Fetch v4+ (KIP-98);
    // v0-v3 are also gone from Kafka 4 (KIP-896). From v13 topics are named by id (KIP-516).
    range(ApiKey::Fetch, 4, 18),
    range(ApiKey::ListOffsets, 1, 10),
    // Leader-epoch validation after a leader change (KIP-320).
    range(ApiKey::OffsetForLeaderEpoch, 2, 4),
    range(ApiKey::FindCoordinator, 0, 6),
    range(ApiKey::JoinGroup, 0, 9),
    range(ApiKey::SyncGroup, 0, 5),
    range(ApiKey::Heartbeat, 0, 4),
    range(ApiKey::LeaveGroup, 0, 5),
    // `kafka-protocol` 0.18 decodes OffsetCommit v10 responses but cannot encode v10 requests.
    range(ApiKey::OffsetCommit, 2, 9),
    // `kafka-protocol` 0.18 decodes OffsetFetch v10 responses but cannot encode v10 requests.
    range(ApiKey::OffsetFetch, 1, 9),
    range(ApiKey::DescribeGroups, 0, 6),
    range(ApiKey::ListGroups, 0, 5),
    // The KIP-848 consumer group protocol.
    range(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    // `kafka-protocol` 0.18 decodes InitProducerId v6 (KIP-939) responses but cannot encode
    // v6 requests.
    range(ApiKey::InitProducerId, 0, 5),
    // Versions 4 and up are the broker-to-broker form (a batch of transactions with
    // `verify_only`, KIP-890) that Kafka authorises as CLUSTER_ACTION: "Versions 3 and below
    // will be exclusively used by clients and versions 4 and above will be used by brokers"
    // (`AddPartitionsToTxnRequest.json`). Tansu even panics on them.
    range(ApiKey::AddPartitionsToTxn, 0, 3),
    range(ApiKey::AddOffsetsToTxn, 0, 4),
    // Fencing by group generation and member id (KIP-447), which exactly-once checkpoints rely
    // on, needs v3+.
    range(ApiKey::TxnOffsetCommit, 3, 5),
    // v5 belongs to transactions v2 (KIP-890 part 2: the epoch bumps at every end); the
    // transaction manager sends it only when the cluster runs v2, as it does Produce v12 and
    // TxnOffsetCommit v5.
    range(ApiKey::EndTxn, 0, 5),
    range(ApiKey::CreateTopics, 2, 7),
    range(ApiKey::DeleteTopics, 1, 6),
    range(ApiKey::CreatePartitions, 0, 3),
    range(ApiKey::DeleteRecords, 0, 2),
    range(ApiKey::DescribeConfigs, 1, 4),
    range(ApiKey::AlterConfigs, 0, 2),
    range(ApiKey::IncrementalAlterConfigs, 0, 1),
    range(ApiKey::DescribeCluster, 0, 2),
    // v0 sends the SASL tokens raw, outside Kafka frames; sluice only implements the framed
    // exchange through SaslAuthenticate (KIP-152).
    range(ApiKey::SaslHandshake, 1, 1),
    range(ApiKey::SaslAuthenticate, 0, 2),
];

/// The version range sluice implements for `api`, if it uses the API at all.
pub fn supported(api: ApiKey) -> Option<ApiRange> {
    SUPPORTED.iter().copied().find(|r| r.api == api)
}

/// One API's row of a negotiation: both sides' ranges and any cap the caller set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// What sluice implements.
    pub ours: ApiRange,
    /// What the broker announced (`None`: it does not offer the API).
    pub broker: Option<(i16, i16)>,
    /// An upper bound the caller set with [`Versions::cap`].
    pub cap: Option<i16>,
}

impl Negotiated {
    /// The highest version both sides support (below the cap, if any).
    pub fn version(&self) -> Result<i16> {
        let api = api_name(self.ours.api);
        let (broker_min, broker_max) = self.broker.ok_or(Error::UnsupportedApi { api })?;
        let ours_max = self.cap.map_or(self.ours.max, |cap| cap.min(self.ours.max));
        let version = ours_max.min(broker_max);
        if version < self.ours.min || version < broker_min {
            return Err(Error::UnsupportedVersion {
                api,
                ours_min: self.ours.min,
                ours_max,
                broker_min,
                broker_max,
            });
        }
        Ok(version)
    }
}

/// The versions to use with one broker, from its ApiVersions response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    apis: Vec<Negotiated>,
    /// Cluster-wide finalized features (KIP-584) and their levels, e.g.
    /// `transaction.version`; empty before ApiVersions v3 or when the broker finalized none.
    features: Vec<(String, i16)>,
}

impl Versions {
    /// Intersects [`SUPPORTED`] with the `api_keys` a broker announced.
    ///
    /// Never fails: an API the broker lacks is an error only when [`Versions::get`] asks for
    /// it. The response's error code is not looked at; a response with UNSUPPORTED_VERSION still
    /// lists the broker's versions (see [`API_VERSIONS_BOOTSTRAP_VERSION`]). Keys sluice does
    /// not use are ignored; if a key is listed twice the last entry wins.
    pub fn negotiate(response: &ApiVersionsResponse) -> Versions {
        let mut apis: Vec<Negotiated> = SUPPORTED
            .iter()
            .map(|&ours| Negotiated {
                ours,
                broker: None,
                cap: None,
            })
            .collect();
        for key in &response.api_keys {
            if let Some(row) = apis
                .iter_mut()
                .find(|row| row.ours.api as i16 == key.api_key)
            {
                row.broker = Some((key.min_version, key.max_version));
            }
        }
        let features = if response.finalized_features_epoch >= 0 {
            response
                .finalized_features
                .iter()
                .map(|f| (f.name.to_string(), f.max_version_level))
                .collect()
        } else {
            Vec::new()
        };
        Versions { apis, features }
    }

    /// The level at which the cluster finalized feature `name` (KIP-584), if it did.
    pub fn finalized_feature(&self, name: &str) -> Option<i16> {
        self.features
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, level)| level)
    }

    /// The version to send `api` at: the highest both sluice and the broker support.
    ///
    /// Errors: [`Error::UnsupportedApi`] if the broker does not offer `api`,
    /// [`Error::UnsupportedVersion`] (naming both ranges) if the ranges do not meet. Asking for
    /// an API sluice does not implement (not in [`SUPPORTED`]) is a bug in the caller and is
    /// reported as [`Error::NotImplemented`].
    pub fn get(&self, api: ApiKey) -> Result<i16> {
        self.row(api)?.version()
    }

    /// Caps `api` at version `max`, for a broker known to mishandle higher versions it
    /// announces. A cap below both ranges makes [`Versions::get`] fail with
    /// [`Error::UnsupportedVersion`]. Capping an API sluice does not implement does nothing.
    pub fn cap(&mut self, api: ApiKey, max: i16) {
        if let Some(row) = self.apis.iter_mut().find(|row| row.ours.api == api) {
            row.cap = Some(max);
        }
    }

    /// [`Versions::cap`], by value.
    #[must_use]
    pub fn capped(mut self, api: ApiKey, max: i16) -> Versions {
        self.cap(api, max);
        self
    }

    /// Every API sluice implements with the broker's range and the outcome, for diagnostics.
    pub fn iter(&self) -> impl Iterator<Item = &Negotiated> + '_ {
        self.apis.iter()
    }

    fn row(&self, api: ApiKey) -> Result<&Negotiated> {
        self.apis
            .iter()
            .find(|row| row.ours.api == api)
            .ok_or(Error::NotImplemented { api: api_name(api) })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    use super::*;

    fn broker(ranges: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
        ApiVersionsResponse::default().with_api_keys(
            ranges
                .iter()
                .map(|&(api, min, max)| {
                    ApiVersion::default()
                        .with_api_key(api as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
    }

    #[test]
    fn negotiation() {
        // A Kafka 4 broker lists Produce from 0 (KAFKA-18659) but refuses v0-v2; ours starts at 3.
        let kafka = broker(&[
            (ApiKey::Produce, 0, 11),
            (ApiKey::Fetch, 4, 17),
            (ApiKey::AddPartitionsToTxn, 0, 5),
        ]);
        let versions = Versions::negotiate(&kafka);
        assert_eq!(versions.get(ApiKey::Produce), Ok(11));
        assert_eq!(versions.get(ApiKey::Fetch), Ok(17));
        assert_eq!(versions.get(ApiKey::AddPartitionsToTxn), Ok(3));
        assert_eq!(
            versions.get(ApiKey::EndTxn),
            Err(Error::UnsupportedApi { api: "EndTxn" })
        );
        assert!(matches!(
            versions.get(ApiKey::WriteTxnMarkers),
            Err(Error::NotImplemented {
                api: "WriteTxnMarkers"
            })
        ));
        assert_eq!(versions.iter().count(), SUPPORTED.len());

        let capped = versions.clone().capped(ApiKey::Fetch, 12);
        assert_eq!(capped.get(ApiKey::Fetch), Ok(12));
        let too_low = versions.capped(ApiKey::Fetch, 3);
        let err = Error::UnsupportedVersion {
            api: "Fetch",
            ours_min: 4,
            ours_max: 3,
            broker_min: 4,
            broker_max: 17,
        };
        assert_eq!(too_low.get(ApiKey::Fetch), Err(err));

        let old = Versions::negotiate(&broker(&[(ApiKey::Produce, 0, 2), (ApiKey::Fetch, 19, 20)]));
        let err = Error::UnsupportedVersion {
            api: "Produce",
            ours_min: 3,
            ours_max: 13,
            broker_min: 0,
            broker_max: 2,
        };
        assert_eq!(old.get(ApiKey::Produce), Err(err));
        let err = Error::UnsupportedVersion {
            api: "Fetch",
            ours_min: 4,
            ours_max: 18,
            broker_min: 19,
            broker_max: 20,
        };
        assert_eq!(old.get(ApiKey::Fetch), Err(err));
    }

    #[test]
    fn finalized_features_count_only_with_a_valid_epoch() {
        use kafka_protocol::messages::api_versions_response::FinalizedFeatureKey;
        let feature = FinalizedFeatureKey::default()
            .with_name(kafka_protocol::protocol::StrBytes::from_static_str(
                "transaction.version",
            ))
            .with_min_version_level(2)
            .with_max_version_level(2);
        let response = broker(&[]).with_finalized_features(vec![feature]);
        assert_eq!(
            Versions::negotiate(&response).finalized_feature("transaction.version"),
            None,
            "epoch -1: the list is not valid"
        );
        let versions = Versions::negotiate(&response.with_finalized_features_epoch(3));
        assert_eq!(versions.finalized_feature("transaction.version"), Some(2));
        assert_eq!(versions.finalized_feature("other"), None);
    }
}
