//! The consumer embedded protocol: subscriptions and assignments as the bytes inside JoinGroup
//! and SyncGroup.
//!
//! A member's JoinGroup `metadata` is a `ConsumerProtocolSubscription` and the leader's
//! SyncGroup `assignment` for it a `ConsumerProtocolAssignment`, each written as a big-endian
//! i16 version followed by the body at that version (Java's `ConsumerProtocol`, librdkafka's
//! `rd_kafka_consumer_protocol_member_metadata_new`). The bodies are `kafka-protocol`'s
//! generated structs; this module adds the version prefix, the tolerance rules and typed errors.
//!
//! The tolerance rules are Java's, because a group mixes client releases: a version above the
//! highest known one is read with the highest known schema (new versions may only append
//! fields) and bytes left after the body are ignored (they are those appended fields). Encoding
//! at a version above the highest writes the highest, as Java does. Decoding never panics and
//! never allocates by a length it has not checked against the bytes that remain.
//!
//! Versions: v0 topics and user data; v1 adds owned partitions (KIP-429); v2 the generation of
//! those partitions (KIP-792); v3 the rack (KIP-881). Assignment versions 1-3 are the same body
//! as v0 and exist to keep the two schemas' version numbers in step.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    consumer_protocol_assignment, consumer_protocol_subscription, ConsumerProtocolAssignment,
    ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::{java_cmp, Subscription, TopicPartitions};
use crate::error::{Error, Result};

/// The `protocol_type` of a consumer group in JoinGroup.
pub const PROTOCOL_TYPE: &str = "consumer";

/// The highest version of both schemas sluice knows, and the one it writes (as current Java
/// and librdkafka releases do).
pub const CONSUMER_PROTOCOL_VERSION: i16 = 3;

const SUBSCRIPTION: &str = "ConsumerProtocolSubscription";
const ASSIGNMENT: &str = "ConsumerProtocolAssignment";

/// Encodes a member's subscription at `version` (clamped to [`CONSUMER_PROTOCOL_VERSION`]).
///
/// Fields the version lacks are left out: owned partitions before v1, the generation before v2,
/// the rack before v3. Topics and owned partitions are written sorted, as Java writes them. The
/// member and instance ids are not part of the bytes (JoinGroup carries them).
pub fn encode_subscription(subscription: &Subscription, version: i16) -> Result<Bytes> {
    let version = encode_version(SUBSCRIPTION, version)?;
    let mut topics: Vec<&str> = subscription.topics.iter().map(String::as_str).collect();
    topics.sort_by(|a, b| java_cmp(a, b));
    topics.dedup();
    let body = ConsumerProtocolSubscription::default()
        .with_topics(topics.into_iter().map(str_bytes).collect())
        .with_user_data(subscription.user_data.clone())
        .with_owned_partitions(
            sorted_partitions(&subscription.owned_partitions)
                .map(|(topic, partitions)| {
                    consumer_protocol_subscription::TopicPartition::default()
                        .with_topic(TopicName(str_bytes(topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_generation_id(subscription.generation_id)
        .with_rack_id(subscription.rack_id.as_deref().map(str_bytes));
    encode(SUBSCRIPTION, &body, version)
}

/// Decodes the subscription of member `member_id` (with `group_instance_id`, both from the
/// JoinGroup response) from its metadata bytes.
///
/// A version above 3 is read as version 3 and trailing bytes are ignored, as Java does. Fields
/// the version lacks take Java's defaults: no owned partitions, generation -1, no rack. An
/// empty rack counts as none. `user_data` is a slice of `bytes`, not a copy.
pub fn decode_subscription(
    member_id: &str,
    group_instance_id: Option<&str>,
    bytes: Bytes,
) -> Result<Subscription> {
    let (version, mut body) = split_version(SUBSCRIPTION, bytes)?;
    let decoded = ConsumerProtocolSubscription::decode(&mut body, version)
        .map_err(|e| decode_error(SUBSCRIPTION, version, e))?;
    let mut owned_partitions = TopicPartitions::new();
    for tp in decoded.owned_partitions {
        merge(&mut owned_partitions, tp.topic.0, tp.partitions);
    }
    Ok(Subscription {
        member_id: member_id.to_owned(),
        group_instance_id: group_instance_id.map(str::to_owned),
        topics: decoded.topics.iter().map(|t| t.to_string()).collect(),
        owned_partitions,
        generation_id: decoded.generation_id,
        rack_id: decoded
            .rack_id
            .filter(|r| !r.is_empty())
            .map(|r| r.to_string()),
        user_data: decoded.user_data,
    })
}

/// Encodes the assignment the leader sends one member, at `version` (clamped to
/// [`CONSUMER_PROTOCOL_VERSION`]). Partitions are written sorted; topics without partitions
/// are left out.
pub fn encode_assignment(
    partitions: &TopicPartitions,
    user_data: Option<&Bytes>,
    version: i16,
) -> Result<Bytes> {
    let version = encode_version(ASSIGNMENT, version)?;
    let body = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(
            sorted_partitions(partitions)
                .map(|(topic, partitions)| {
                    consumer_protocol_assignment::TopicPartition::default()
                        .with_topic(TopicName(str_bytes(topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_user_data(user_data.cloned());
    encode(ASSIGNMENT, &body, version)
}

/// Decodes a member's assignment from SyncGroup: its partitions (sorted, duplicates merged) and
/// the assignor's user data. Same tolerance as [`decode_subscription`].
pub fn decode_assignment(bytes: Bytes) -> Result<(TopicPartitions, Option<Bytes>)> {
    let (version, mut body) = split_version(ASSIGNMENT, bytes)?;
    let decoded = ConsumerProtocolAssignment::decode(&mut body, version)
        .map_err(|e| decode_error(ASSIGNMENT, version, e))?;
    let mut partitions = TopicPartitions::new();
    for tp in decoded.assigned_partitions {
        merge(&mut partitions, tp.topic.0, tp.partitions);
    }
    Ok((partitions, decoded.user_data))
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Non-empty topics with their partitions sorted and deduplicated.
fn sorted_partitions(partitions: &TopicPartitions) -> impl Iterator<Item = (&str, Vec<i32>)> {
    partitions
        .iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(topic, p)| {
            let mut p = p.clone();
            p.sort_unstable();
            p.dedup();
            (topic.as_str(), p)
        })
}

/// Adds one topic's partitions (a topic may repeat in hostile input).
fn merge(into: &mut TopicPartitions, topic: StrBytes, partitions: Vec<i32>) {
    if partitions.is_empty() {
        return;
    }
    let entry = into.entry(topic.to_string()).or_default();
    entry.extend(partitions);
    entry.sort_unstable();
    entry.dedup();
}

fn encode_version(what: &'static str, version: i16) -> Result<i16> {
    if version < 0 {
        return Err(Error::Protocol(sluice_protocol::Error::Message {
            direction: "encoding",
            api: what,
            version,
            reason: "negative version".to_owned(),
        }));
    }
    Ok(version.min(CONSUMER_PROTOCOL_VERSION))
}

fn encode<M: Encodable>(what: &'static str, body: &M, version: i16) -> Result<Bytes> {
    // `kafka-protocol`'s errors are `anyhow` ones; `{:#}` keeps their chain of contexts.
    let err = |reason: String| {
        Error::Protocol(sluice_protocol::Error::Message {
            direction: "encoding",
            api: what,
            version,
            reason,
        })
    };
    let size = body
        .compute_size(version)
        .map_err(|e| err(format!("{e:#}")))?;
    let mut buf = BytesMut::with_capacity(2 + size);
    buf.put_i16(version);
    body.encode(&mut buf, version)
        .map_err(|e| err(format!("{e:#}")))?;
    Ok(buf.freeze())
}

/// Reads the version prefix; returns the version to decode the body with (the highest known
/// one for newer versions, as Java does) and the body.
fn split_version(what: &'static str, mut bytes: Bytes) -> Result<(i16, Bytes)> {
    let version = match bytes.get(..2) {
        Some(&[a, b]) => i16::from_be_bytes([a, b]),
        _ => {
            return Err(Error::Protocol(sluice_protocol::Error::Truncated {
                field: "consumer protocol version",
                offset: 0,
                needed: 2,
                available: bytes.len(),
            }))
        }
    };
    if version < 0 {
        return Err(Error::Protocol(sluice_protocol::Error::Invalid {
            field: "consumer protocol version",
            offset: 0,
            reason: format!("{what} version {version} is negative"),
        }));
    }
    let body = bytes.split_off(2);
    Ok((version.min(CONSUMER_PROTOCOL_VERSION), body))
}

fn decode_error(what: &'static str, version: i16, e: impl std::fmt::Display) -> Error {
    Error::Protocol(sluice_protocol::Error::Message {
        direction: "decoding",
        api: what,
        version,
        reason: format!("{e:#}"),
    })
}

#[cfg(test)]
mod tests;
