//! Request and response messages: the `kafka-protocol` crate's bodies inside our frames,
//! headers and errors.
//!
//! The generated structs of `kafka-protocol` hold the fields of every version of a message and
//! are encoded and decoded with an explicit version. This module puts the right request or
//! response header in front (its version depends on the API and the body version: flexible
//! versions use header v2/v1; ApiVersions responses always use header v0), checks correlation
//! ids, insists that a body consumes its whole frame, and turns `kafka-protocol`'s `anyhow`
//! errors into [`Error`]s naming the API and version. Nothing here reads a socket.
//!
//! References: the protocol guide (<https://kafka.apache.org/protocol#protocol_messages>),
//! KIP-482 (flexible versions and tagged fields), KIP-511 (ApiVersions v3 and its v0 fallback).

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};

use crate::error::{Error, Result};
use crate::frame::{encode_frame, SIZE_PREFIX_LEN};

pub use kafka_protocol::messages::{
    ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
pub use kafka_protocol::protocol::{Request, VersionRange};

/// The error code a broker answers with when it does not know the requested version
/// (UNSUPPORTED_VERSION).
pub const UNSUPPORTED_VERSION: i16 = 35;

/// The name Kafka uses for an API (`"Produce"`, `"Fetch"`, ...), for error messages and logs.
pub fn api_name(api: ApiKey) -> &'static str {
    macro_rules! names {
        ($($key:ident)*) => { match api { $(ApiKey::$key => stringify!($key),)* } };
    }
    names! {
        Produce Fetch ListOffsets Metadata OffsetCommit OffsetFetch FindCoordinator JoinGroup
        Heartbeat LeaveGroup SyncGroup DescribeGroups ListGroups SaslHandshake ApiVersions
        CreateTopics DeleteTopics DeleteRecords InitProducerId OffsetForLeaderEpoch
        AddPartitionsToTxn AddOffsetsToTxn EndTxn WriteTxnMarkers TxnOffsetCommit DescribeAcls
        CreateAcls DeleteAcls DescribeConfigs AlterConfigs AlterReplicaLogDirs DescribeLogDirs
        SaslAuthenticate CreatePartitions CreateDelegationToken RenewDelegationToken
        ExpireDelegationToken DescribeDelegationToken DeleteGroups ElectLeaders
        IncrementalAlterConfigs AlterPartitionReassignments ListPartitionReassignments
        OffsetDelete DescribeClientQuotas AlterClientQuotas DescribeUserScramCredentials
        AlterUserScramCredentials Vote BeginQuorumEpoch EndQuorumEpoch DescribeQuorum
        AlterPartition UpdateFeatures Envelope FetchSnapshot DescribeCluster DescribeProducers
        BrokerRegistration BrokerHeartbeat UnregisterBroker DescribeTransactions ListTransactions
        AllocateProducerIds ConsumerGroupHeartbeat ConsumerGroupDescribe ControllerRegistration
        GetTelemetrySubscriptions PushTelemetry AssignReplicasToDirs ListConfigResources
        DescribeTopicPartitions ShareGroupHeartbeat ShareGroupDescribe ShareFetch
        ShareAcknowledge AddRaftVoter RemoveRaftVoter UpdateRaftVoter InitializeShareGroupState
        ReadShareGroupState WriteShareGroupState DeleteShareGroupState ReadShareGroupStateSummary
        DescribeShareGroupOffsets AlterShareGroupOffsets DeleteShareGroupOffsets
    }
}

/// The first fields of a request frame, readable before the API is known to be supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPrefix {
    /// The raw API key (it may be one `kafka-protocol` does not know).
    pub api_key: i16,
    /// The requested API version.
    pub api_version: i16,
    /// The id the response must carry.
    pub correlation_id: i32,
}

/// Appends a complete request frame to `out`: size prefix, request header (v1, or v2 for
/// flexible versions) and `body` encoded at `version`.
///
/// On error `out` is left as it was.
pub fn encode_request<R: Request>(
    out: &mut BytesMut,
    correlation_id: i32,
    client_id: Option<&str>,
    version: i16,
    body: &R,
) -> Result<()> {
    let api = api_of::<R>("encoding", version)?;
    let fail = |e| message_error("encoding", api, version, "", e);
    check_version("encoding", api, version, R::VERSIONS)?;
    let header_version = R::header_version(version);
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(|id| StrBytes::from_string(id.to_owned())));
    let size = header.compute_size(header_version).map_err(fail)?
        + body.compute_size(version).map_err(fail)?;
    out.reserve(SIZE_PREFIX_LEN + size);
    encode_frame(out, |buf| {
        header.encode(buf, header_version).map_err(fail)?;
        body.encode(buf, version).map_err(fail)
    })
}

/// Decodes a response frame (the payload, without its size prefix) to the request `R` sent at
/// `version` with `expected_correlation_id`.
///
/// The whole frame must be consumed: trailing bytes are an error, because a broker never sends
/// them and a body that stops early means the two sides disagree on the schema.
///
/// An ApiVersions response carrying UNSUPPORTED_VERSION is decoded as version 0 whatever
/// version was sent: a broker that does not know the requested ApiVersions version answers with
/// a v0 body listing the versions it does support (KIP-511).
pub fn decode_response<R: Request>(
    frame: Bytes,
    version: i16,
    expected_correlation_id: i32,
) -> Result<R::Response> {
    let api = api_of::<R>("decoding", version)?;
    check_version("decoding", api, version, <R::Response as Message>::VERSIONS)?;
    let mut buf = frame;
    let header = decode_response_header(&mut buf, api, version)?;
    if header.correlation_id != expected_correlation_id {
        return Err(Error::CorrelationMismatch {
            expected: expected_correlation_id,
            got: header.correlation_id,
        });
    }
    let body_version = response_body_version(api, version, &buf);
    let body = R::Response::decode(&mut buf, body_version)
        .map_err(|e| message_error("decoding", api, body_version, "", e))?;
    check_consumed(api, body_version, &buf)?;
    Ok(body)
}

/// [`decode_response`] for ApiVersions, spelled out because of its fallback rule: when the
/// broker does not support `sent_version` it answers with error code [`UNSUPPORTED_VERSION`]
/// and a version 0 body; that body is returned as is (its `api_keys` say which ApiVersions
/// versions the broker does support, so the caller can ask again).
pub fn decode_api_versions_response(
    frame: Bytes,
    sent_version: i16,
    correlation_id: i32,
) -> Result<ApiVersionsResponse> {
    decode_response::<kafka_protocol::messages::ApiVersionsRequest>(
        frame,
        sent_version,
        correlation_id,
    )
}

/// The correlation id of a response frame: its first four bytes, whatever the API and header
/// version. The connection driver uses it to find the request a response answers.
pub fn peek_correlation_id(frame: &[u8]) -> Result<i32> {
    read_i32(frame, 0, "correlation_id")
}

/// Reads the API key, version and correlation id at the start of a request frame, without
/// needing the API to be known or the version supported (a broker still has to answer those).
pub fn peek_request(frame: &[u8]) -> Result<RequestPrefix> {
    Ok(RequestPrefix {
        api_key: read_i16(frame, 0, "request_api_key")?,
        api_version: read_i16(frame, 2, "request_api_version")?,
        correlation_id: read_i32(frame, 4, "correlation_id")?,
    })
}

/// Decodes a request frame (for the mock broker): header, then the body of whatever API the
/// header names.
///
/// An unknown API key is [`Error::Invalid`], a version `kafka-protocol` cannot decode is
/// [`Error::Message`]; a broker still owes those requests an answer (UNSUPPORTED_VERSION, and
/// for ApiVersions a v0 body), and [`peek_request`] gives what it needs to write one.
pub fn decode_request(frame: Bytes) -> Result<(RequestHeader, RequestKind)> {
    let prefix = peek_request(&frame)?;
    let api = ApiKey::try_from(prefix.api_key).map_err(|()| Error::Invalid {
        field: "request_api_key",
        offset: 0,
        reason: format!("unknown API key {}", prefix.api_key),
    })?;
    let version = prefix.api_version;
    check_version("decoding", api, version, api.valid_versions())?;
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api.request_header_version(version))
        .map_err(|e| message_error("decoding", api, version, "request header: ", e))?;
    let body = RequestKind::decode(api, &mut buf, version)
        .map_err(|e| message_error("decoding", api, version, "", e))?;
    check_consumed(api, version, &buf)?;
    Ok((header, body))
}

/// Appends a complete response frame to `out` (for the mock broker): size prefix, response
/// header of the version `api` at `version` needs, and `body`. `body` must be `api`'s response.
///
/// On error `out` is left as it was.
pub fn encode_response(
    out: &mut BytesMut,
    correlation_id: i32,
    api: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> Result<()> {
    check_version("encoding", api, version, api.valid_versions())?;
    let fail = |e| message_error("encoding", api, version, "", e);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    encode_frame(out, |buf| {
        header
            .encode(buf, api.response_header_version(version))
            .map_err(fail)?;
        body.encode(buf, version).map_err(fail)
    })
}

/// Decodes any API's response frame by key: the response header (its correlation id is not
/// checked) and the body. For the fuzz targets and for tools that dump traffic.
pub fn decode_response_kind(api: ApiKey, version: i16, frame: Bytes) -> Result<ResponseKind> {
    check_version("decoding", api, version, api.valid_versions())?;
    let mut buf = frame;
    decode_response_header(&mut buf, api, version)?;
    let body_version = response_body_version(api, version, &buf);
    let body = ResponseKind::decode(api, &mut buf, body_version)
        .map_err(|e| message_error("decoding", api, body_version, "", e))?;
    check_consumed(api, body_version, &buf)?;
    Ok(body)
}

fn decode_response_header(buf: &mut Bytes, api: ApiKey, version: i16) -> Result<ResponseHeader> {
    // Checked here so that the common failure (a frame shorter than a correlation id) reports
    // where it is rather than as a generic decoding error.
    peek_correlation_id(buf)?;
    ResponseHeader::decode(buf, api.response_header_version(version))
        .map_err(|e| message_error("decoding", api, version, "response header: ", e))
}

/// The version to decode a response body at: `version`, except for the ApiVersions fallback.
fn response_body_version(api: ApiKey, version: i16, body: &[u8]) -> i16 {
    // Every ApiVersions body version starts with the error code.
    let fallback = api == ApiKey::ApiVersions
        && version > 0
        && read_i16(body, 0, "error_code").is_ok_and(|code| code == UNSUPPORTED_VERSION);
    if fallback {
        0
    } else {
        version
    }
}

fn check_consumed(api: ApiKey, version: i16, rest: &Bytes) -> Result<()> {
    if rest.has_remaining() {
        return Err(Error::Message {
            direction: "decoding",
            api: api_name(api),
            version,
            reason: format!("{} trailing bytes after the body", rest.remaining()),
        });
    }
    Ok(())
}

fn check_version(
    direction: &'static str,
    api: ApiKey,
    version: i16,
    range: VersionRange,
) -> Result<()> {
    if version < range.min || version > range.max {
        return Err(Error::Message {
            direction,
            api: api_name(api),
            version,
            reason: format!(
                "version outside the {}..={} that sluice can handle",
                range.min, range.max
            ),
        });
    }
    Ok(())
}

fn api_of<R: Request>(direction: &'static str, version: i16) -> Result<ApiKey> {
    ApiKey::try_from(R::KEY).map_err(|()| Error::Message {
        direction,
        api: "unknown",
        version,
        reason: format!("unknown API key {}", R::KEY),
    })
}

/// Wraps one of `kafka-protocol`'s `anyhow` errors; `{:#}` keeps its chain of contexts.
fn message_error(
    direction: &'static str,
    api: ApiKey,
    version: i16,
    what: &str,
    e: impl std::fmt::Display,
) -> Error {
    Error::Message {
        direction,
        api: api_name(api),
        version,
        reason: format!("{what}{e:#}"),
    }
}

fn read_i16(frame: &[u8], offset: usize, field: &'static str) -> Result<i16> {
    match frame.get(offset..offset + 2) {
        Some(&[a, b]) => Ok(i16::from_be_bytes([a, b])),
        _ => Err(truncated(frame, offset, 2, field)),
    }
}

fn read_i32(frame: &[u8], offset: usize, field: &'static str) -> Result<i32> {
    match frame.get(offset..offset + 4) {
        Some(&[a, b, c, d]) => Ok(i32::from_be_bytes([a, b, c, d])),
        _ => Err(truncated(frame, offset, 4, field)),
    }
}

fn truncated(frame: &[u8], offset: usize, needed: usize, field: &'static str) -> Error {
    Error::Truncated {
        field,
        offset,
        needed,
        available: frame.len().saturating_sub(offset),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use kafka_protocol::messages::ProduceRequest;

    use super::*;

    fn hex(s: &str) -> Bytes {
        let s: String = s.split_whitespace().collect();
        let bytes = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap());
        bytes.collect()
    }

    #[test]
    fn response_errors() {
        let wire = hex("00000010 00000002 0023 00000001 0012 0000 0003").slice(4..);
        assert_eq!(peek_correlation_id(&wire), Ok(2));
        assert_eq!(
            decode_api_versions_response(wire.clone(), 0, 3),
            Err(Error::CorrelationMismatch {
                expected: 3,
                got: 2
            })
        );
        let mut long = wire.to_vec();
        long.push(0);
        match decode_api_versions_response(Bytes::from(long), 0, 2) {
            Err(Error::Message {
                direction: "decoding",
                api: "ApiVersions",
                version: 0,
                reason,
            }) => {
                assert!(reason.contains("1 trailing bytes"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let short = Error::Truncated {
            field: "correlation_id",
            offset: 0,
            needed: 4,
            available: 2,
        };
        assert_eq!(
            decode_api_versions_response(wire.slice(..2), 0, 2),
            Err(short.clone())
        );
        assert_eq!(peek_correlation_id(&wire[..2]), Err(short));
        assert!(matches!(
            decode_api_versions_response(wire.slice(..9), 0, 2),
            Err(Error::Message { .. })
        ));
    }

    #[test]
    fn request_errors() {
        let mut out = BytesMut::from(&b"kept"[..]);
        let err = encode_request(&mut out, 1, None, 2, &ProduceRequest::default()).unwrap_err();
        assert!(matches!(
            err,
            Error::Message {
                direction: "encoding",
                api: "Produce",
                version: 2,
                ..
            }
        ));
        assert_eq!(&out[..], b"kept");
        let unknown = hex("03e7 0000 00000001 ffff");
        assert!(matches!(
            decode_request(unknown),
            Err(Error::Invalid {
                field: "request_api_key",
                ..
            })
        ));
        assert!(matches!(
            decode_request(hex("0012 00")),
            Err(Error::Truncated {
                field: "request_api_version",
                ..
            })
        ));
        let prefix = peek_request(&hex("0012 0007 00000005")).unwrap();
        assert_eq!(
            (prefix.api_key, prefix.api_version, prefix.correlation_id),
            (18, 7, 5)
        );
    }
}
