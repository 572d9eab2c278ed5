//! The API versions the mock serves, and the ApiVersions answer listing them.
//!
//! Each range is what the mock implements faithfully, not all that `kafka-protocol` can
//! decode: a client then negotiates down to versions whose semantics the mock has. Why a range
//! stops where it does is in the README's list of what the mock does not implement.

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;

/// The feature naming the transaction protocol (KIP-890, KIP-1022).
const TRANSACTION_VERSION: &str = "transaction.version";

/// (API, lowest version, highest version).
const SERVED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::Metadata, 0, 12),
    // v12 adds partitions to a transaction implicitly (KIP-890 part 2); v13+ names topics by id.
    (ApiKey::Produce, 3, 12),
    // v13+ names topics by id (KIP-516).
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::DescribeCluster, 0, 1),
];

/// The versions a cluster below `transaction.version` 2 stops at: the last ones before
/// transactions v2 (Kafka's `LAST_STABLE_VERSION_BEFORE_TRANSACTION_V2`).
fn before_transactions_v2(api: ApiKey) -> Option<i16> {
    match api {
        ApiKey::Produce => Some(11),
        ApiKey::EndTxn | ApiKey::TxnOffsetCommit => Some(4),
        _ => None,
    }
}

/// Every (API, lowest, highest version) served at `transaction_version`.
fn table(transaction_version: i16) -> impl Iterator<Item = (ApiKey, i16, i16)> {
    SERVED
        .iter()
        .chain(crate::groups::SERVED)
        .chain(crate::txn::SERVED)
        .map(move |&(api, min, max)| match before_transactions_v2(api) {
            Some(cap) if transaction_version < 2 => (api, min, max.min(cap)),
            _ => (api, min, max),
        })
}

/// The versions served for `api`, from this table and the coordinators' own tables.
pub(crate) fn served(api: ApiKey, transaction_version: i16) -> Option<(i16, i16)> {
    table(transaction_version)
        .find(|(key, _, _)| *key == api)
        .map(|(_, min, max)| (min, max))
}

/// The ApiVersions answer: the APIs served and, from v3, the `transaction.version` feature
/// (clients use transactions v2 only when it is finalized at 2 or more).
pub(crate) fn api_versions(version: i16, transaction_version: i16) -> ApiVersionsResponse {
    let mut all: Vec<ApiVersion> = table(transaction_version)
        .map(|(api, min, max)| {
            ApiVersion::default()
                .with_api_key(api as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    all.sort_by_key(|v| v.api_key);
    let response = ApiVersionsResponse::default().with_api_keys(all);
    if version < 3 || transaction_version < 1 {
        return response;
    }
    let name = || StrBytes::from_static_str(TRANSACTION_VERSION);
    response
        .with_supported_features(vec![SupportedFeatureKey::default()
            .with_name(name())
            .with_min_version(0)
            .with_max_version(2)])
        .with_finalized_features_epoch(1)
        .with_finalized_features(vec![FinalizedFeatureKey::default()
            .with_name(name())
            .with_min_version_level(transaction_version)
            .with_max_version_level(transaction_version)])
}
