//! Request handlers: one function per API, grouped by what they touch.
//!
//! A handler gets the decoded request and answers with the response Kafka would give at the
//! request's version (fields a version does not have are left at their defaults, which
//! `kafka-protocol` insists on when encoding).

mod admin;
mod cluster;
mod fetch;
mod offsets;
mod produce;

use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::faults::InjectedError;
use crate::state::Shared;

/// Who asked what: the broker a request arrived at, its API and version.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub(crate) broker: i32,
    pub(crate) api: ApiKey,
    pub(crate) version: i16,
    pub(crate) client_id: Option<String>,
}

/// How a broker answers a request.
#[derive(Debug)]
pub(crate) enum Reply {
    /// With a response.
    Respond(Box<ResponseKind>),
    /// Not at all (Produce with acks=0).
    Silent,
    /// By closing the connection (what Kafka does for requests it cannot serve).
    Close,
}

/// Answers one request. `injected` is an error a fault rule asks this request to fail with.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    ctx: &Context,
    request: RequestKind,
    injected: Option<&InjectedError>,
) -> Reply {
    match crate::versions::served(ctx.api, shared.config.transaction_version) {
        Some((min, max)) if (min..=max).contains(&ctx.version) => {}
        // Kafka closes the connection of a client that sends a version it did not offer.
        _ => return Reply::Close,
    }
    if let Some(error) = injected.filter(|e| e.partition.is_none()) {
        return match crate::faults::error_response(ctx.version, &request, error.code) {
            Some(response) => Reply::Respond(Box::new(response)),
            None => Reply::Close,
        };
    }
    let partition_error = injected.filter(|e| e.partition.is_some());
    let response = match request {
        RequestKind::ApiVersions(r) => {
            ResponseKind::ApiVersions(cluster::api_versions(shared, ctx, &r))
        }
        RequestKind::Metadata(r) => ResponseKind::Metadata(cluster::metadata(shared, ctx, r)),
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(cluster::describe_cluster(shared, ctx, &r))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(cluster::find_coordinator(shared, ctx, &r))
        }
        RequestKind::Produce(r) => {
            return match produce::produce(shared, ctx, r, partition_error) {
                Some(response) => Reply::Respond(Box::new(ResponseKind::Produce(response))),
                None => Reply::Silent,
            };
        }
        RequestKind::Fetch(r) => {
            ResponseKind::Fetch(fetch::fetch(shared, ctx, r, partition_error).await)
        }
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(offsets::list_offsets(shared, ctx, r, partition_error))
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offsets::offset_for_leader_epoch(shared, ctx, r))
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(offsets::delete_records(shared, ctx, r))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::create_topics(shared, ctx, r))
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin::delete_topics(shared, ctx, r))
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(admin::create_partitions(shared, ctx, r))
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(admin::describe_configs(shared, ctx, r))
        }
        other => match crate::groups::handle(shared, ctx, other).await {
            Ok(reply) => return reply,
            Err(other) => match crate::txn::handle(shared, ctx, other).await {
                Ok(reply) => return reply,
                Err(_) => return Reply::Close,
            },
        },
    };
    Reply::Respond(Box::new(response))
}

/// A `StrBytes` from a string.
pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}
