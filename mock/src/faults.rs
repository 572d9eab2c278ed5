//! Fault injection: rules that make the next matching requests fail, wait, or lose their
//! connection, and paused brokers.
//!
//! Leader and coordinator moves change the cluster state instead; they are methods of
//! [`crate::MockCluster`].

use std::collections::BTreeSet;
use std::time::Duration;

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, FetchResponse, FindCoordinatorResponse, ListOffsetsResponse, MetadataResponse,
    ProduceResponse, RequestKind, ResponseKind,
};
use kafka_protocol::ResponseError;

/// A fault for [`crate::MockCluster::inject`]: what to do to which requests, how many times.
///
/// ```
/// # use sluice_mock::Fault;
/// # use kafka_protocol::messages::ApiKey;
/// # use kafka_protocol::ResponseError;
/// // The next three Produce requests for partition 0 of "orders" fail as if leadership moved.
/// let fault = Fault::error(ApiKey::Produce, ResponseError::NotLeaderOrFollower)
///     .partition("orders", 0)
///     .times(3);
/// # let _ = fault;
/// ```
#[derive(Debug, Clone)]
pub struct Fault {
    action: Action,
    api: Option<ApiKey>,
    broker: Option<i32>,
    partition: Option<(String, i32)>,
    client_id: Option<String>,
    skip: u64,
    times: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Error(i16),
    Delay(Duration),
    Disconnect(Disconnect),
}

/// How a connection is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disconnect {
    /// Without answering the request.
    BeforeResponse,
    /// After writing half of the response.
    MidResponse,
}

impl Fault {
    /// Answer matching requests of `api` with `error` instead of serving them (nothing is
    /// appended, joined or committed). With [`Fault::partition`], only that partition of a
    /// Produce, Fetch or ListOffsets request fails and the others are served.
    pub fn error(api: ApiKey, error: ResponseError) -> Fault {
        Fault::new(Action::Error(error.code()), Some(api))
    }

    /// Hold matching responses back for `delay` (after serving the request).
    pub fn delay(delay: Duration) -> Fault {
        Fault::new(Action::Delay(delay), None)
    }

    /// Close the connection of a matching request instead of answering it.
    pub fn disconnect() -> Fault {
        Fault::new(Action::Disconnect(Disconnect::BeforeResponse), None)
    }

    /// Serve a matching request, write half of its response, then close the connection.
    pub fn disconnect_mid_response() -> Fault {
        Fault::new(Action::Disconnect(Disconnect::MidResponse), None)
    }

    fn new(action: Action, api: Option<ApiKey>) -> Fault {
        Fault {
            action,
            api,
            broker: None,
            partition: None,
            client_id: None,
            skip: 0,
            times: 1,
        }
    }

    /// Only requests of `api` (delays and disconnects match every API by default).
    pub fn api(mut self, api: ApiKey) -> Fault {
        self.api = Some(api);
        self
    }

    /// Only requests sent to broker `id`.
    pub fn broker(mut self, id: i32) -> Fault {
        self.broker = Some(id);
        self
    }

    /// Only requests that name this partition (Produce, Fetch, ListOffsets).
    pub fn partition(mut self, topic: &str, partition: i32) -> Fault {
        self.partition = Some((topic.to_owned(), partition));
        self
    }

    /// Only requests whose header names this client id: one client's connections can be cut
    /// while the others carry on (a process killed, or cut off by a network partition).
    pub fn client_id(mut self, client_id: &str) -> Fault {
        self.client_id = Some(client_id.to_owned());
        self
    }

    /// Let the first `n` matching requests through untouched ("drop the connection after N
    /// requests").
    pub fn after(mut self, n: u64) -> Fault {
        self.skip = n;
        self
    }

    /// How many matching requests the fault applies to (1 by default; `u64::MAX` for all).
    pub fn times(mut self, n: u64) -> Fault {
        self.times = n;
        self
    }

    fn matches(&self, to: &Addressee<'_>, request: Option<&RequestKind>) -> bool {
        if self.broker.is_some_and(|b| b != to.broker)
            || (self.api.is_some() && self.api != to.api)
            || (self.client_id.is_some() && self.client_id.as_deref() != to.client_id)
        {
            return false;
        }
        match (&self.partition, request) {
            (None, _) => true,
            (Some((topic, partition)), Some(request)) => {
                names_partition(request, topic, *partition)
            }
            (Some(_), None) => false,
        }
    }
}

/// Where a request went and who sent it, as fault rules match it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Addressee<'a> {
    pub(crate) broker: i32,
    pub(crate) api: Option<ApiKey>,
    pub(crate) client_id: Option<&'a str>,
}

/// An error a fault asks a request to fail with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InjectedError {
    pub(crate) code: i16,
    pub(crate) partition: Option<(String, i32)>,
}

impl InjectedError {
    /// Whether the error applies to this partition.
    pub(crate) fn matches(&self, topic: &str, partition: i32) -> bool {
        self.partition
            .as_ref()
            .is_none_or(|(t, p)| t == topic && *p == partition)
    }

    pub(crate) fn error(&self) -> ResponseError {
        ResponseError::try_from_code(self.code).unwrap_or(ResponseError::UnknownServerError)
    }
}

/// What the faults decided for one request.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) error: Option<InjectedError>,
    pub(crate) delay: Option<Duration>,
    pub(crate) disconnect: Option<Disconnect>,
}

/// The active fault rules and paused brokers.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Vec<Fault>,
    /// Requests seen per API key, so a test can wait for a request to arrive.
    seen: std::collections::BTreeMap<i16, u64>,
    paused: BTreeSet<i32>,
}

impl Faults {
    pub(crate) fn add(&mut self, fault: Fault) {
        if fault.times > 0 {
            self.rules.push(fault);
        }
    }

    pub(crate) fn seen(&self, api: ApiKey) -> u64 {
        self.seen.get(&(api as i16)).copied().unwrap_or(0)
    }

    pub(crate) fn pending(&self) -> usize {
        self.rules.len()
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    pub(crate) fn pause(&mut self, broker: i32, paused: bool) {
        if paused {
            self.paused.insert(broker);
        } else {
            self.paused.remove(&broker);
        }
    }

    pub(crate) fn is_paused(&self, broker: i32) -> bool {
        self.paused.contains(&broker)
    }

    /// Consumes the rules that match this request and says what to do with it.
    pub(crate) fn plan(&mut self, to: &Addressee<'_>, request: Option<&RequestKind>) -> Plan {
        if let Some(api) = to.api {
            *self.seen.entry(api as i16).or_default() += 1;
        }
        let mut plan = Plan::default();
        for rule in &mut self.rules {
            if !rule.matches(to, request) {
                continue;
            }
            if rule.skip > 0 {
                rule.skip -= 1;
                continue;
            }
            let taken = match rule.action {
                Action::Error(code) if plan.error.is_none() => {
                    plan.error = Some(InjectedError {
                        code,
                        partition: rule.partition.clone(),
                    });
                    true
                }
                Action::Delay(d) if plan.delay.is_none() => {
                    plan.delay = Some(d);
                    true
                }
                Action::Disconnect(how) if plan.disconnect.is_none() => {
                    plan.disconnect = Some(how);
                    true
                }
                _ => false,
            };
            if taken {
                rule.times = rule.times.saturating_sub(1);
            }
        }
        self.rules.retain(|r| r.times > 0);
        plan
    }
}

/// Whether a Produce, Fetch or ListOffsets request names `topic`/`partition`.
fn names_partition(request: &RequestKind, topic: &str, partition: i32) -> bool {
    match request {
        RequestKind::Produce(r) => r.topic_data.iter().any(|t| {
            t.name.0.as_str() == topic && t.partition_data.iter().any(|p| p.index == partition)
        }),
        RequestKind::Fetch(r) => r.topics.iter().any(|t| {
            t.topic.0.as_str() == topic && t.partitions.iter().any(|p| p.partition == partition)
        }),
        RequestKind::ListOffsets(r) => r.topics.iter().any(|t| {
            t.name.0.as_str() == topic
                && t.partitions.iter().any(|p| p.partition_index == partition)
        }),
        _ => false,
    }
}

/// The response to `request` failing as a whole with `code`, in the shape of its API (every
/// partition of a partitioned request carries the code). `None` for an API the mock does not
/// serve.
pub(crate) fn error_response(
    version: i16,
    request: &RequestKind,
    code: i16,
) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::Produce(r) => ResponseKind::Produce(
            ProduceResponse::default().with_responses(
                r.topic_data
                    .iter()
                    .map(|t| {
                        TopicProduceResponse::default()
                            .with_name(t.name.clone())
                            .with_partition_responses(
                                t.partition_data
                                    .iter()
                                    .map(|p| {
                                        PartitionProduceResponse::default()
                                            .with_index(p.index)
                                            .with_error_code(code)
                                            .with_base_offset(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        RequestKind::Fetch(r) => ResponseKind::Fetch(
            FetchResponse::default().with_responses(
                r.topics
                    .iter()
                    .map(|t| {
                        FetchableTopicResponse::default()
                            .with_topic(t.topic.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        PartitionData::default()
                                            .with_partition_index(p.partition)
                                            .with_error_code(code)
                                            .with_high_watermark(-1)
                                            .with_records(Some(bytes::Bytes::new()))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(
            ListOffsetsResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        ListOffsetsTopicResponse::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        ListOffsetsPartitionResponse::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        RequestKind::Metadata(r) => ResponseKind::Metadata(
            MetadataResponse::default().with_topics(
                r.topics
                    .iter()
                    .flatten()
                    .map(|t| {
                        MetadataResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        RequestKind::FindCoordinator(r) if version >= 4 => ResponseKind::FindCoordinator(
            FindCoordinatorResponse::default().with_coordinators(
                r.coordinator_keys
                    .iter()
                    .map(|k| {
                        kafka_protocol::messages::find_coordinator_response::Coordinator::default()
                            .with_key(k.clone())
                            .with_node_id(kafka_protocol::messages::BrokerId(-1))
                            .with_port(-1)
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        RequestKind::FindCoordinator(_) => ResponseKind::FindCoordinator(
            FindCoordinatorResponse::default()
                .with_error_code(code)
                .with_node_id(kafka_protocol::messages::BrokerId(-1))
                .with_port(-1),
        ),
        other => {
            return crate::groups::error_response(version, other, code)
                .or_else(|| crate::txn::error_response(version, other, code))
        }
    })
}
