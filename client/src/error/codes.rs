//! The Kafka error-code table: every code Apache Kafka defines, its name, whether it is
//! retriable, and what it means.
//!
//! Brokers answer with a bare `i16`; every layer of the client has to decide from it whether to
//! retry, refresh metadata, rejoin, abort or give up. One table (below) and two predicates
//! ([`KafkaCode::is_retriable`], [`KafkaCode::is_fatal`]) keep those decisions in one place.
//!
//! * Codes, names and the retriable column follow Kafka's `Errors.java`: a code is retriable
//!   when its exception class extends `RetriableException` (the "Retriable" column of the
//!   protocol guide's error table, <https://kafka.apache.org/protocol#protocol_error_codes>).
//!   Codes up to 133 are Kafka 4.1; 134 and 135 came with Kafka 4.4 (KIP-1331).
//! * Fatality is the client's own judgement (like franz-go's `pkg/kgo/errors.go` and the Java
//!   producer's `TransactionManager`), commented code by code in [`KafkaCode::is_fatal`].

use std::fmt;

/// A Kafka error code as brokers return it.
///
/// Any `i16` is representable: a code this table does not know keeps its number and prints as
/// `UNKNOWN(n)`; it is neither retriable nor fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KafkaCode(pub i16);

struct Row {
    code: i16,
    name: &'static str,
    retriable: bool,
    description: &'static str,
}

/// One list, two outputs: an associated const per code and the lookup table, so a number can
/// never disagree with its name.
macro_rules! codes {
    ($($code:literal $name:ident $retriable:literal $description:literal;)*) => {
        impl KafkaCode {
            $(
                #[doc = $description]
                pub const $name: KafkaCode = KafkaCode($code);
            )*
        }

        /// Sorted by code, contiguous from -1 (checked by a test), so lookup is an index.
        const TABLE: &[Row] = &[
            $(Row { code: $code, name: stringify!($name), retriable: $retriable,
                    description: $description },)*
        ];
    };
}

codes! {
    -1 UNKNOWN_SERVER_ERROR false "The server hit an unexpected error processing the request.";
    0 NONE false "No error.";
    1 OFFSET_OUT_OF_RANGE false "The requested offset is outside the range the server keeps.";
    2 CORRUPT_MESSAGE true "A message failed its CRC, is too large, or is otherwise corrupt.";
    3 UNKNOWN_TOPIC_OR_PARTITION true "This server does not host this topic-partition.";
    4 INVALID_FETCH_SIZE false "The requested fetch size is invalid.";
    5 LEADER_NOT_AVAILABLE true "The partition has no leader: a leader election is in progress.";
    6 NOT_LEADER_OR_FOLLOWER true "This broker is not the partition's leader (or not a replica).";
    7 REQUEST_TIMED_OUT true "The request timed out on the broker.";
    8 BROKER_NOT_AVAILABLE false "The broker is not available.";
    9 REPLICA_NOT_AVAILABLE true "The replica is not available for the requested topic-partition.";
    10 MESSAGE_TOO_LARGE false "A message is larger than the maximum the server accepts.";
    11 STALE_CONTROLLER_EPOCH false "The controller moved to another broker.";
    12 OFFSET_METADATA_TOO_LARGE false "The metadata of the committed offset is too large.";
    13 NETWORK_EXCEPTION true "The server disconnected before a response was received.";
    14 COORDINATOR_LOAD_IN_PROGRESS true "The coordinator is still loading its state.";
    15 COORDINATOR_NOT_AVAILABLE true "The coordinator is not available.";
    16 NOT_COORDINATOR true "This broker is not the coordinator for the group or transaction.";
    17 INVALID_TOPIC_EXCEPTION false "The request names an invalid topic.";
    18 RECORD_LIST_TOO_LARGE false "A record batch is larger than the server's segment size.";
    19 NOT_ENOUGH_REPLICAS true "Fewer in-sync replicas than required: the write was rejected.";
    20 NOT_ENOUGH_REPLICAS_AFTER_APPEND true "Written, but to fewer in-sync replicas than needed.";
    21 INVALID_REQUIRED_ACKS false "The produce request's required acks value is invalid.";
    22 ILLEGAL_GENERATION false "The group generation id is not valid.";
    23 INCONSISTENT_GROUP_PROTOCOL false "The member's protocols do not match the group's.";
    24 INVALID_GROUP_ID false "The group id is invalid.";
    25 UNKNOWN_MEMBER_ID false "The coordinator does not know this member.";
    26 INVALID_SESSION_TIMEOUT false "The session timeout is outside the range the broker allows.";
    27 REBALANCE_IN_PROGRESS false "The group is rebalancing: the member must rejoin.";
    28 INVALID_COMMIT_OFFSET_SIZE false "The committed offset data size is not valid.";
    29 TOPIC_AUTHORIZATION_FAILED false "Not authorized to access the topic.";
    30 GROUP_AUTHORIZATION_FAILED false "Not authorized to access the group.";
    31 CLUSTER_AUTHORIZATION_FAILED false "Not authorized for the cluster-level operation.";
    32 INVALID_TIMESTAMP false "The message timestamp is out of the acceptable range.";
    33 UNSUPPORTED_SASL_MECHANISM false "The broker does not support the requested SASL mechanism.";
    34 ILLEGAL_SASL_STATE false "The request is not valid in the current SASL state.";
    35 UNSUPPORTED_VERSION false "The broker does not support this API version.";
    36 TOPIC_ALREADY_EXISTS false "A topic with this name already exists.";
    37 INVALID_PARTITIONS false "The number of partitions is below 1.";
    38 INVALID_REPLICATION_FACTOR false "Replication factor below 1 or above the broker count.";
    39 INVALID_REPLICA_ASSIGNMENT false "The replica assignment is invalid.";
    40 INVALID_CONFIG false "The configuration is invalid.";
    41 NOT_CONTROLLER true "This broker is not the controller of the cluster.";
    42 INVALID_REQUEST false "The request is malformed or was sent to an incompatible broker.";
    43 UNSUPPORTED_FOR_MESSAGE_FORMAT false "The message format does not support the request.";
    44 POLICY_VIOLATION false "The request violates the configured policy.";
    45 OUT_OF_ORDER_SEQUENCE_NUMBER false "The broker received an out-of-order sequence number.";
    46 DUPLICATE_SEQUENCE_NUMBER false "The broker received a duplicate sequence number.";
    47 INVALID_PRODUCER_EPOCH false "The producer's epoch is older than the broker's.";
    48 INVALID_TXN_STATE false "The transactional operation is invalid in the current state.";
    49 INVALID_PRODUCER_ID_MAPPING false "The producer id is not this transactional id's.";
    50 INVALID_TRANSACTION_TIMEOUT false "The transaction timeout exceeds the broker's maximum.";
    51 CONCURRENT_TRANSACTIONS true "Another operation on the same transaction is in progress.";
    52 TRANSACTION_COORDINATOR_FENCED false "The coordinator writing markers was fenced.";
    53 TRANSACTIONAL_ID_AUTHORIZATION_FAILED false "Not authorized for the transactional id.";
    54 SECURITY_DISABLED false "Security features are disabled.";
    55 OPERATION_NOT_ATTEMPTED false "The broker did not attempt this operation of a batch.";
    56 KAFKA_STORAGE_ERROR true "A disk error on the broker when accessing the log.";
    57 LOG_DIR_NOT_FOUND false "The log directory is not in the broker's config.";
    58 SASL_AUTHENTICATION_FAILED false "SASL authentication failed.";
    59 UNKNOWN_PRODUCER_ID false "The broker has no state for the producer id (e.g. expired).";
    60 REASSIGNMENT_IN_PROGRESS false "A partition reassignment is in progress.";
    61 DELEGATION_TOKEN_AUTH_DISABLED false "Delegation tokens are not enabled.";
    62 DELEGATION_TOKEN_NOT_FOUND false "The delegation token was not found.";
    63 DELEGATION_TOKEN_OWNER_MISMATCH false "The principal is not the token's owner or renewer.";
    64 DELEGATION_TOKEN_REQUEST_NOT_ALLOWED false "Delegation token requests are not allowed here.";
    65 DELEGATION_TOKEN_AUTHORIZATION_FAILED false "Delegation token authorization failed.";
    66 DELEGATION_TOKEN_EXPIRED false "The delegation token has expired.";
    67 INVALID_PRINCIPAL_TYPE false "The principal type is not supported.";
    68 NON_EMPTY_GROUP false "The group is not empty.";
    69 GROUP_ID_NOT_FOUND false "The group id does not exist.";
    70 FETCH_SESSION_ID_NOT_FOUND true "The fetch session id was not found.";
    71 INVALID_FETCH_SESSION_EPOCH true "The fetch session epoch is invalid.";
    72 LISTENER_NOT_FOUND true "The leader has no listener matching the one metadata came from.";
    73 TOPIC_DELETION_DISABLED false "Topic deletion is disabled.";
    74 FENCED_LEADER_EPOCH true "The request's leader epoch is older than the broker's.";
    75 UNKNOWN_LEADER_EPOCH true "The request's leader epoch is newer than the broker's.";
    76 UNSUPPORTED_COMPRESSION_TYPE false "The client lacks the partition's compression.";
    77 STALE_BROKER_EPOCH false "The broker epoch has changed.";
    78 OFFSET_NOT_AVAILABLE true "The new leader's high watermark has not caught up yet.";
    79 MEMBER_ID_REQUIRED false "The member must rejoin with the member id it was given.";
    80 PREFERRED_LEADER_NOT_AVAILABLE true "The preferred leader is not available.";
    81 GROUP_MAX_SIZE_REACHED false "The group has reached its maximum size.";
    82 FENCED_INSTANCE_ID false "Another member registered with this group.instance.id.";
    83 ELIGIBLE_LEADERS_NOT_AVAILABLE true "No eligible leader is available for the partition.";
    84 ELECTION_NOT_NEEDED true "Leader election is not needed for the partition.";
    85 NO_REASSIGNMENT_IN_PROGRESS false "No partition reassignment is in progress.";
    86 GROUP_SUBSCRIBED_TO_TOPIC false "Cannot delete offsets of a topic the group subscribes to.";
    87 INVALID_RECORD false "The broker rejected a record that failed validation.";
    88 UNSTABLE_OFFSET_COMMIT true "There are pending transactional offsets for the partition.";
    89 THROTTLING_QUOTA_EXCEEDED true "The throttling quota has been exceeded.";
    90 PRODUCER_FENCED false "A newer producer with the same transactional id fenced this one.";
    91 RESOURCE_NOT_FOUND false "The request refers to a resource that does not exist.";
    92 DUPLICATE_RESOURCE false "The request refers to the same resource twice.";
    93 UNACCEPTABLE_CREDENTIAL false "The requested credential does not meet the criteria.";
    94 INCONSISTENT_VOTER_SET false "The sender or recipient is not one of the expected voters.";
    95 INVALID_UPDATE_VERSION false "The update version is invalid.";
    96 FEATURE_UPDATE_FAILED false "Updating the finalized features failed.";
    97 PRINCIPAL_DESERIALIZATION_FAILURE false "A forwarded request's principal was unreadable.";
    98 SNAPSHOT_NOT_FOUND false "The requested snapshot was not found.";
    99 POSITION_OUT_OF_RANGE false "The requested position is outside the snapshot.";
    100 UNKNOWN_TOPIC_ID true "This server does not host this topic id.";
    101 DUPLICATE_BROKER_REGISTRATION false "This broker id is already in use.";
    102 BROKER_ID_NOT_REGISTERED false "The broker id is not registered.";
    103 INCONSISTENT_TOPIC_ID true "The log's topic id does not match the request's.";
    104 INCONSISTENT_CLUSTER_ID false "The request's cluster id does not match the server's.";
    105 TRANSACTIONAL_ID_NOT_FOUND false "The transactional id was not found.";
    106 FETCH_SESSION_TOPIC_ID_ERROR true "The fetch session used topic ids inconsistently.";
    107 INELIGIBLE_REPLICA false "The new ISR contains an ineligible replica.";
    108 NEW_LEADER_ELECTED false "The partition state was updated but the leader changed.";
    109 OFFSET_MOVED_TO_TIERED_STORAGE false "The requested offset has moved to tiered storage.";
    110 FENCED_MEMBER_EPOCH false "The member epoch is fenced: give up all partitions and rejoin.";
    111 UNRELEASED_INSTANCE_ID false "Another member still uses this instance id.";
    112 UNSUPPORTED_ASSIGNOR false "The group does not support the assignor or its version.";
    113 STALE_MEMBER_EPOCH false "The member epoch is stale: retry after the next heartbeat.";
    114 MISMATCHED_ENDPOINT_TYPE false "The request was sent to an endpoint of the wrong type.";
    115 UNSUPPORTED_ENDPOINT_TYPE false "This endpoint type is not supported yet.";
    116 UNKNOWN_CONTROLLER_ID false "The controller id is not known.";
    117 UNKNOWN_SUBSCRIPTION_ID false "The telemetry subscription id is invalid or outdated.";
    118 TELEMETRY_TOO_LARGE false "The telemetry push is larger than the broker accepts.";
    119 INVALID_REGISTRATION false "The controller found the broker registration invalid.";
    120 TRANSACTION_ABORTABLE false "Abort the transaction to go on using the producer.";
    121 INVALID_RECORD_STATE false "The record state is invalid: the acknowledgement failed.";
    122 SHARE_SESSION_NOT_FOUND true "The share session was not found.";
    123 INVALID_SHARE_SESSION_EPOCH true "The share session epoch is invalid.";
    124 FENCED_STATE_EPOCH false "The share-group state epoch did not match.";
    125 INVALID_VOTER_KEY false "The voter key does not match the receiving replica's key.";
    126 DUPLICATE_VOTER false "The voter is already part of the voter set.";
    127 VOTER_NOT_FOUND false "The voter is not part of the voter set.";
    128 INVALID_REGULAR_EXPRESSION false "The regular expression is not valid.";
    129 REBOOTSTRAP_REQUIRED false "Client metadata is stale: the client should rebootstrap.";
    130 STREAMS_INVALID_TOPOLOGY false "The supplied topology is invalid.";
    131 STREAMS_INVALID_TOPOLOGY_EPOCH false "The supplied topology epoch is invalid.";
    132 STREAMS_TOPOLOGY_FENCED false "The supplied topology epoch is outdated.";
    133 SHARE_SESSION_LIMIT_REACHED true "The limit of share sessions has been reached.";
    134 GROUP_DELETION_FAILED false "DeleteGroups could not complete for the group.";
    135 STREAMS_TOPOLOGY_DESCRIPTION_UPDATE_FAILED false "Storing the topology description failed.";
}

impl KafkaCode {
    /// The code for a number; unknown numbers are kept as they are.
    pub const fn from_code(code: i16) -> Self {
        KafkaCode(code)
    }

    fn row(self) -> Option<&'static Row> {
        let index = usize::try_from(i32::from(self.0) + 1).ok()?;
        TABLE.get(index).filter(|row| row.code == self.0)
    }

    /// Whether this is a code Kafka defines (as far as this table knows).
    pub fn is_known(self) -> bool {
        self.row().is_some()
    }

    /// The name as Kafka spells it (`NOT_LEADER_OR_FOLLOWER`), or `UNKNOWN`.
    pub fn name(self) -> &'static str {
        self.row().map_or("UNKNOWN", |row| row.name)
    }

    /// A one-line description.
    pub fn description(self) -> &'static str {
        self.row()
            .map_or("An error code this client does not know.", |row| {
                row.description
            })
    }

    /// Whether this is [`KafkaCode::NONE`].
    pub const fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// Whether Kafka classes the error as retriable (`RetriableException`): the same request
    /// may succeed later, usually after a metadata refresh or coordinator lookup.
    ///
    /// Unknown codes are not retriable (Java maps them to `UNKNOWN_SERVER_ERROR`).
    pub fn is_retriable(self) -> bool {
        self.row().is_some_and(|row| row.retriable)
    }

    /// Whether the client (or the producer or consumer that got it) cannot go on and must be
    /// rebuilt: retrying, rejoining or aborting would send the same thing and get the same
    /// answer, or another instance has taken over this one's identity.
    ///
    /// Context-dependent codes are left to the caller, which knows the context:
    /// * `INVALID_PRODUCER_EPOCH`: an idempotent producer bumps its epoch and goes on (KIP-360);
    ///   a *transactional* producer must treat it as `PRODUCER_FENCED` (what Java does with it
    ///   in every transactional response), so the transaction layer decides.
    /// * `UNKNOWN_PRODUCER_ID`, `INVALID_PRODUCER_ID_MAPPING`, `OUT_OF_ORDER_SEQUENCE_NUMBER`:
    ///   recoverable by an epoch bump when the broker supports it (KIP-360, KIP-890), fatal
    ///   otherwise.
    /// * `TRANSACTION_ABORTABLE`, `TOPIC_AUTHORIZATION_FAILED`, `GROUP_AUTHORIZATION_FAILED`:
    ///   abort the transaction (or fail the records), the producer stays usable.
    pub fn is_fatal(self) -> bool {
        match self {
            // Identity taken over: a newer producer with our transactional.id, or a newer
            // static member with our group.instance.id. Anything we send is from a zombie.
            KafkaCode::PRODUCER_FENCED | KafkaCode::FENCED_INSTANCE_ID => true,
            // The transaction coordinator says our view of the transaction is wrong; Java's
            // TransactionManager goes to its fatal state, there is no safe way to resync.
            KafkaCode::INVALID_TXN_STATE => true,
            // Authorization of the client as a whole. CLUSTER_AUTHORIZATION_FAILED is what an
            // idempotent producer gets without IdempotentWrite; no record can ever be sent.
            // (Java's InitProducerId treats both as abortable so an ACL fix can be retried by
            // the application; for us the producer must be rebuilt after fixing ACLs.)
            KafkaCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            | KafkaCode::CLUSTER_AUTHORIZATION_FAILED => true,
            // The broker cannot speak what we need: every retry would get the same answer.
            KafkaCode::UNSUPPORTED_VERSION | KafkaCode::UNSUPPORTED_FOR_MESSAGE_FORMAT => true,
            // Wrong credentials or mechanism: a misconfiguration, reconnecting repeats it.
            KafkaCode::SASL_AUTHENTICATION_FAILED
            | KafkaCode::UNSUPPORTED_SASL_MECHANISM
            | KafkaCode::ILLEGAL_SASL_STATE => true,
            // Configuration the broker rejects; the next attempt sends the same value
            // (transaction.timeout.ms, acks, session.timeout.ms, assignors, subscription regex).
            KafkaCode::INVALID_TRANSACTION_TIMEOUT
            | KafkaCode::INVALID_REQUIRED_ACKS
            | KafkaCode::INVALID_SESSION_TIMEOUT
            | KafkaCode::INCONSISTENT_GROUP_PROTOCOL
            | KafkaCode::UNSUPPORTED_ASSIGNOR
            | KafkaCode::INVALID_REGULAR_EXPRESSION => true,
            _ => false,
        }
    }

    /// Every code in the table, in numeric order.
    pub fn all() -> impl Iterator<Item = KafkaCode> {
        TABLE.iter().map(|row| KafkaCode(row.code))
    }
}

impl From<i16> for KafkaCode {
    fn from(code: i16) -> Self {
        KafkaCode(code)
    }
}

impl fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.row() {
            Some(row) => write!(f, "{} ({})", row.name, row.code),
            None => write!(f, "UNKNOWN({})", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn table_is_contiguous_so_lookup_by_index_works() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(i32::from(row.code), i as i32 - 1, "{}", row.name);
        }
        assert_eq!(TABLE.len(), 137);
    }

    #[test]
    fn codes_and_names_are_unique() {
        let codes: HashSet<_> = TABLE.iter().map(|r| r.code).collect();
        let names: HashSet<_> = TABLE.iter().map(|r| r.name).collect();
        assert_eq!(codes.len(), TABLE.len());
        assert_eq!(names.len(), TABLE.len());
        assert!(TABLE
            .iter()
            .all(|r| r.name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')));
    }

    #[test]
    fn numbers_match_kafka() {
        let spot = [
            (-1, "UNKNOWN_SERVER_ERROR"),
            (0, "NONE"),
            (1, "OFFSET_OUT_OF_RANGE"),
            (3, "UNKNOWN_TOPIC_OR_PARTITION"),
            (6, "NOT_LEADER_OR_FOLLOWER"),
            (16, "NOT_COORDINATOR"),
            (27, "REBALANCE_IN_PROGRESS"),
            (35, "UNSUPPORTED_VERSION"),
            (45, "OUT_OF_ORDER_SEQUENCE_NUMBER"),
            (46, "DUPLICATE_SEQUENCE_NUMBER"),
            (47, "INVALID_PRODUCER_EPOCH"),
            (51, "CONCURRENT_TRANSACTIONS"),
            (59, "UNKNOWN_PRODUCER_ID"),
            (79, "MEMBER_ID_REQUIRED"),
            (82, "FENCED_INSTANCE_ID"),
            (90, "PRODUCER_FENCED"),
            (120, "TRANSACTION_ABORTABLE"),
            (129, "REBOOTSTRAP_REQUIRED"),
            (133, "SHARE_SESSION_LIMIT_REACHED"),
        ];
        for (code, name) in spot {
            assert_eq!(KafkaCode(code).name(), name);
        }
        assert_eq!(KafkaCode::NOT_LEADER_OR_FOLLOWER, KafkaCode(6));
        assert_eq!(KafkaCode::PRODUCER_FENCED, KafkaCode(90));
    }

    #[test]
    fn retriable_matches_kafka_exception_hierarchy() {
        let retriable: Vec<i16> = KafkaCode::all()
            .filter(|c| c.is_retriable())
            .map(|c| c.0)
            .collect();
        // Every `Errors` entry whose exception extends RetriableException (Kafka 4.4).
        let expected = [
            2, 3, 5, 6, 7, 9, 13, 14, 15, 16, 19, 20, 41, 51, 56, 70, 71, 72, 74, 75, 78, 80, 83,
            84, 88, 89, 100, 103, 106, 122, 123, 133,
        ];
        assert_eq!(retriable, expected);
    }

    #[test]
    fn predicates() {
        assert!(KafkaCode::NONE.is_ok() && !KafkaCode::NONE.is_retriable());
        assert!(KafkaCode::NOT_LEADER_OR_FOLLOWER.is_retriable());
        assert!(!KafkaCode::NOT_LEADER_OR_FOLLOWER.is_fatal());
        assert!(KafkaCode::PRODUCER_FENCED.is_fatal());
        assert!(!KafkaCode::INVALID_PRODUCER_EPOCH.is_fatal());
        assert!(!KafkaCode::TRANSACTION_ABORTABLE.is_fatal());
        // Nothing is both: a fatal code must never be retried.
        assert!(KafkaCode::all().all(|c| !(c.is_fatal() && c.is_retriable())));
    }

    #[test]
    fn display_and_unknown_codes() {
        assert_eq!(KafkaCode(6).to_string(), "NOT_LEADER_OR_FOLLOWER (6)");
        assert_eq!(KafkaCode(-1).to_string(), "UNKNOWN_SERVER_ERROR (-1)");
        for n in [-2, 136, 1000, i16::MIN, i16::MAX] {
            let code = KafkaCode::from_code(n);
            assert_eq!(code.0, n);
            assert!(!code.is_known() && !code.is_retriable() && !code.is_fatal());
            assert_eq!(code.name(), "UNKNOWN");
            assert_eq!(code.to_string(), format!("UNKNOWN({n})"));
        }
    }
}
