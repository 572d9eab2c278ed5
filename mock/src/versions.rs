//! The API versions the mock serves, and the ApiVersions answer listing them.
//!
//! Each range is what the mock implements faithfully, not all that `kafka-protocol` can
//! decode: a client then negotiates down to versions whose semantics the mock has. Why a range
//! stops where it does is in the README's list of what the mock does not implement.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiKey;

/// (API, lowest version, highest version).
const SERVED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::Metadata, 0, 12),
    // v12+ adds partitions to a transaction implicitly (KIP-890 part 2); v13+ names topics by id.
    (ApiKey::Produce, 3, 11),
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

/// The versions served for `api`, from this table and the coordinators' own tables.
pub(crate) fn served(api: ApiKey) -> Option<(i16, i16)> {
    SERVED
        .iter()
        .chain(crate::groups::SERVED)
        .chain(crate::txn::SERVED)
        .find(|(key, _, _)| *key == api)
        .map(|&(_, min, max)| (min, max))
}

/// The ApiVersions list, for a response at `version`.
pub(crate) fn advertised(_version: i16) -> Vec<ApiVersion> {
    let mut all: Vec<ApiVersion> = SERVED
        .iter()
        .chain(crate::groups::SERVED)
        .chain(crate::txn::SERVED)
        .map(|&(api, min, max)| {
            ApiVersion::default()
                .with_api_key(api as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    all.sort_by_key(|v| v.api_key);
    all
}
