//! ConsumerGroupHeartbeat on the wire: a [`Beat`] as a request at the negotiated version, and
//! the response as an [`Answer`] or an error.

use std::time::Duration;

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, TopicName,
};

use super::member::{Answer, Assignment, Beat};
use crate::error::{Error, KafkaCode, Result};
use crate::group::offsets::str_bytes;

/// The request for `beat` at `version`. v0 lets the coordinator name a joining member, so the
/// member id is left empty at epoch 0 there; v1 (KIP-1082) needs the client's own.
pub(crate) fn request(group: &str, beat: &Beat, version: i16) -> ConsumerGroupHeartbeatRequest {
    let member_id = if version == 0 && beat.epoch == 0 {
        String::new()
    } else {
        beat.member_id.clone()
    };
    // No regex subscriptions: `subscribed_topic_regex` (v1) stays null.
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_member_id(str_bytes(&member_id))
        .with_member_epoch(beat.epoch)
        .with_instance_id(beat.instance_id.as_deref().map(str_bytes))
        .with_rack_id(beat.rack_id.as_deref().map(str_bytes))
        .with_rebalance_timeout_ms(beat.rebalance_timeout_ms)
        .with_subscribed_topic_names(
            beat.subscription
                .as_ref()
                .map(|topics| topics.iter().map(|t| TopicName(str_bytes(t))).collect()),
        )
        .with_server_assignor(beat.assignor.as_deref().map(str_bytes))
        .with_topic_partitions(beat.owned.as_ref().map(topic_partitions))
}

fn topic_partitions(owned: &Assignment) -> Vec<TopicPartitions> {
    owned
        .iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(id, ps)| {
            TopicPartitions::default()
                .with_topic_id(*id)
                .with_partitions(ps.iter().copied().collect())
        })
        .collect()
}

/// The response as an answer, or its error code as an [`Error`].
pub(crate) fn answer(group: &str, response: ConsumerGroupHeartbeatResponse) -> Result<Answer> {
    if response.error_code != 0 {
        let message = response
            .error_message
            .as_ref()
            .map_or_else(String::new, |m| format!(": {}", m.as_str()));
        return Err(Error::kafka(
            KafkaCode(response.error_code),
            format!("ConsumerGroupHeartbeat of group {group}{message}"),
        ));
    }
    Ok(Answer {
        member_id: response.member_id.map(|m| m.to_string()),
        epoch: response.member_epoch,
        interval: u64::try_from(response.heartbeat_interval_ms)
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis),
        assignment: response.assignment.map(|a| {
            let mut out = Assignment::new();
            for tp in a.topic_partitions {
                out.entry(tp.topic_id)
                    .or_default()
                    .extend(tp.partitions.iter().copied());
            }
            out
        }),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use bytes::BytesMut;
    use kafka_protocol::messages::consumer_group_heartbeat_response::{
        Assignment as WireAssignment, TopicPartitions as WireTopicPartitions,
    };
    use kafka_protocol::protocol::{Decodable, Encodable};
    use uuid::Uuid;

    use super::*;

    fn beat(epoch: i32) -> Beat {
        Beat {
            member_id: "me".to_owned(),
            epoch,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: 1000,
            subscription: Some(vec!["t".to_owned()]),
            assignor: None,
            owned: Some(Assignment::from([(
                Uuid::from_u128(5),
                BTreeSet::from([2, 1]),
            )])),
        }
    }

    #[test]
    fn requests_round_trip_at_both_versions() {
        for version in 0..=1 {
            let request = request("g", &beat(3), version);
            let mut buf = BytesMut::new();
            request
                .encode(&mut buf, version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
            let back = ConsumerGroupHeartbeatRequest::decode(&mut buf.freeze(), version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
            assert_eq!(back.member_id.as_str(), "me");
            assert_eq!(back.member_epoch, 3);
            let owned = back.topic_partitions.unwrap_or_default();
            assert_eq!(owned[0].partitions, vec![1, 2]);
        }
        // v0 lets the coordinator name a joining member.
        assert_eq!(request("g", &beat(0), 0).member_id.as_str(), "");
        assert_eq!(request("g", &beat(0), 1).member_id.as_str(), "me");
    }

    #[test]
    fn answers_and_errors() {
        let topic = Uuid::from_u128(9);
        let response = ConsumerGroupHeartbeatResponse::default()
            .with_member_epoch(4)
            .with_heartbeat_interval_ms(250)
            .with_assignment(Some(WireAssignment::default().with_topic_partitions(vec![
                WireTopicPartitions::default()
                    .with_topic_id(topic)
                    .with_partitions(vec![3, 0]),
            ])));
        let answer = answer("g", response).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(answer.epoch, 4);
        assert_eq!(answer.interval, Some(Duration::from_millis(250)));
        assert_eq!(
            answer.assignment,
            Some(Assignment::from([(topic, BTreeSet::from([0, 3]))]))
        );
        let fenced = ConsumerGroupHeartbeatResponse::default().with_error_code(110);
        let error = answer_err(fenced);
        assert_eq!(error, Some(KafkaCode::FENCED_MEMBER_EPOCH));
    }

    fn answer_err(response: ConsumerGroupHeartbeatResponse) -> Option<KafkaCode> {
        answer("g", response).err().and_then(|e| e.code())
    }
}
