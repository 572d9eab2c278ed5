//! The classic group protocol's requests: JoinGroup, SyncGroup, Heartbeat and LeaveGroup.
//!
//! These are the steps; [`super::consumer`] decides when to take them. Each function sends
//! one request (JoinGroup retries what the protocol asks it to: MEMBER_ID_REQUIRED hands out
//! the member id to rejoin with, KIP-394) and turns error codes into [`Error`]s that the
//! caller classifies with [`rejoin_reason`].

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};

use super::coordinator::Coordinator;
use super::offsets::str_bytes;
use crate::error::{Error, KafkaCode, Result};

/// The embedded protocol type consumers use.
pub(crate) const PROTOCOL_TYPE: &str = "consumer";

/// A member's identity in the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// Empty until the coordinator hands one out.
    pub(crate) member_id: String,
    /// `group.instance.id` (static membership).
    pub(crate) instance_id: Option<String>,
    /// -1 outside a generation.
    pub(crate) generation: i32,
    /// The assignor the group chose.
    pub(crate) protocol: Option<String>,
}

impl Identity {
    pub(crate) fn new(instance_id: Option<String>) -> Self {
        Identity {
            member_id: String::new(),
            instance_id,
            generation: -1,
            protocol: None,
        }
    }

    /// Forgets the generation (after ILLEGAL_GENERATION or a rebalance) and, if `member` too,
    /// the member id (after UNKNOWN_MEMBER_ID).
    pub(crate) fn reset(&mut self, member: bool) {
        self.generation = -1;
        self.protocol = None;
        if member {
            self.member_id.clear();
        }
    }
}

/// What JoinGroup settles.
#[derive(Debug, Clone)]
pub(crate) struct Joined {
    pub(crate) protocol: String,
    /// The members and their subscription bytes, when this member leads and must assign.
    pub(crate) members: Option<Vec<(String, Option<String>, Bytes)>>,
}

/// Settings of a join.
#[derive(Debug, Clone)]
pub(crate) struct JoinSettings {
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) request_timeout: Duration,
    /// (assignor name, subscription bytes), preferred first.
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) reason: String,
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Sends JoinGroup until the coordinator answers with a generation or an error that needs
/// more than a resend. Updates `id` (member id, generation, protocol) as the answers say.
pub(crate) async fn join(
    coordinator: &Coordinator,
    id: &mut Identity,
    settings: &JoinSettings,
) -> Result<Joined> {
    // Twice: the first answer of a v4+ coordinator to an unknown member is MEMBER_ID_REQUIRED.
    for _ in 0..3 {
        // The coordinator holds JoinGroup until the rebalance completes.
        let timeout = settings.rebalance_timeout + settings.request_timeout;
        let member_id = id.member_id.clone();
        let response = coordinator
            .send(timeout, |version| {
                if version < 5 && id.instance_id.is_some() {
                    return Err(Error::BrokerTooOld {
                        broker: format!("group coordinator for {}", coordinator.key()),
                        reason: format!(
                            "static membership needs JoinGroup v5, it offers v{version}"
                        ),
                    });
                }
                let mut request = JoinGroupRequest::default()
                    .with_group_id(GroupId(str_bytes(coordinator.key())))
                    .with_session_timeout_ms(millis(settings.session_timeout))
                    .with_member_id(str_bytes(&member_id))
                    .with_protocol_type(str_bytes(PROTOCOL_TYPE))
                    .with_protocols(
                        settings
                            .protocols
                            .iter()
                            .map(|(name, metadata)| {
                                JoinGroupRequestProtocol::default()
                                    .with_name(str_bytes(name))
                                    .with_metadata(metadata.clone())
                            })
                            .collect(),
                    );
                if version >= 1 {
                    request.rebalance_timeout_ms = millis(settings.rebalance_timeout);
                }
                if version >= 5 {
                    request.group_instance_id = id.instance_id.as_deref().map(str_bytes);
                }
                if version >= 8 {
                    request.reason = Some(str_bytes(&settings.reason));
                }
                Ok(request)
            })
            .await?;
        let code = KafkaCode(response.error_code);
        if code == KafkaCode::MEMBER_ID_REQUIRED {
            id.member_id = response.member_id.to_string();
            continue;
        }
        if code == KafkaCode::UNKNOWN_MEMBER_ID {
            id.reset(true);
        }
        if !code.is_ok() {
            return Err(Error::kafka(
                code,
                format!("JoinGroup of group {}", coordinator.key()),
            ));
        }
        id.member_id = response.member_id.to_string();
        id.generation = response.generation_id;
        let protocol = response
            .protocol_name
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        id.protocol = Some(protocol.clone());
        let leads = response.leader.as_str() == response.member_id.as_str();
        let members = (leads && !response.skip_assignment).then(|| {
            response
                .members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|i| i.to_string()),
                        m.metadata.clone(),
                    )
                })
                .collect()
        });
        return Ok(Joined { protocol, members });
    }
    Err(Error::kafka(
        KafkaCode::MEMBER_ID_REQUIRED,
        format!(
            "JoinGroup of group {}: the coordinator kept asking for a member id",
            coordinator.key()
        ),
    ))
}

/// Sends SyncGroup (with the assignments when leading) and returns this member's assignment
/// bytes.
pub(crate) async fn sync(
    coordinator: &Coordinator,
    id: &Identity,
    assignments: Vec<(String, Bytes)>,
    timeout: Duration,
) -> Result<Bytes> {
    let response = coordinator
        .send(timeout, |version| {
            let mut request = SyncGroupRequest::default()
                .with_group_id(GroupId(str_bytes(coordinator.key())))
                .with_generation_id(id.generation)
                .with_member_id(str_bytes(&id.member_id))
                .with_assignments(
                    assignments
                        .iter()
                        .map(|(member, bytes)| {
                            SyncGroupRequestAssignment::default()
                                .with_member_id(str_bytes(member))
                                .with_assignment(bytes.clone())
                        })
                        .collect(),
                );
            if version >= 3 {
                request.group_instance_id = id.instance_id.as_deref().map(str_bytes);
            }
            if version >= 5 {
                request.protocol_type = Some(str_bytes(PROTOCOL_TYPE));
                request.protocol_name = id.protocol.as_deref().map(str_bytes);
            }
            Ok(request)
        })
        .await?;
    match KafkaCode(response.error_code) {
        KafkaCode::NONE => Ok(response.assignment),
        code => Err(Error::kafka(
            code,
            format!("SyncGroup of group {}", coordinator.key()),
        )),
    }
}

/// Sends one Heartbeat.
pub(crate) async fn heartbeat(
    coordinator: &Coordinator,
    id: &Identity,
    timeout: Duration,
) -> Result<()> {
    let response = coordinator
        .send(timeout, |version| {
            let mut request = HeartbeatRequest::default()
                .with_group_id(GroupId(str_bytes(coordinator.key())))
                .with_generation_id(id.generation)
                .with_member_id(str_bytes(&id.member_id));
            if version >= 3 {
                request.group_instance_id = id.instance_id.as_deref().map(str_bytes);
            }
            Ok(request)
        })
        .await?;
    match KafkaCode(response.error_code) {
        KafkaCode::NONE => Ok(()),
        code => Err(Error::kafka(
            code,
            format!("Heartbeat of group {}", coordinator.key()),
        )),
    }
}

/// Sends LeaveGroup for this member (a dynamic member leaving; static members stay until
/// their session times out, as in Java).
pub(crate) async fn leave(
    coordinator: &Coordinator,
    id: &Identity,
    reason: &str,
    timeout: Duration,
) -> Result<()> {
    let response = coordinator
        .send(timeout, |version| {
            let request =
                LeaveGroupRequest::default().with_group_id(GroupId(str_bytes(coordinator.key())));
            Ok(if version >= 3 {
                let mut member = MemberIdentity::default()
                    .with_member_id(str_bytes(&id.member_id))
                    .with_group_instance_id(id.instance_id.as_deref().map(str_bytes));
                if version >= 5 {
                    member.reason = Some(str_bytes(reason));
                }
                request.with_members(vec![member])
            } else {
                request.with_member_id(str_bytes(&id.member_id))
            })
        })
        .await?;
    let code = response
        .members
        .first()
        .map(|m| m.error_code)
        .filter(|c| *c != 0)
        .unwrap_or(response.error_code);
    match KafkaCode(code) {
        KafkaCode::NONE | KafkaCode::UNKNOWN_MEMBER_ID => Ok(()),
        code => Err(Error::kafka(
            code,
            format!("LeaveGroup of group {}", coordinator.key()),
        )),
    }
}

/// Why an error from the coordinator means the member must join again, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejoin {
    /// The group is rebalancing; the member keeps its id and generation claim.
    Rebalance,
    /// The generation is gone (ILLEGAL_GENERATION): the partitions are lost.
    NewGeneration,
    /// The coordinator forgot the member (UNKNOWN_MEMBER_ID): lost, and a new member id.
    NewMember,
}

/// What an error from a group request asks of the member.
pub(crate) fn rejoin_reason(error: &Error) -> Option<Rejoin> {
    match error.code()? {
        KafkaCode::REBALANCE_IN_PROGRESS => Some(Rejoin::Rebalance),
        KafkaCode::ILLEGAL_GENERATION => Some(Rejoin::NewGeneration),
        KafkaCode::UNKNOWN_MEMBER_ID => Some(Rejoin::NewMember),
        _ => None,
    }
}
