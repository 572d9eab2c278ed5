//! The group coordinator (classic protocol) and committed offsets. Not built yet: no group
//! API is advertised.

use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use crate::handlers::{Context, Reply};
use crate::state::Shared;

/// The group APIs the mock serves: (API, lowest version, highest version).
pub(crate) const SERVED: &[(ApiKey, i16, i16)] = &[];

/// The groups of the cluster.
#[derive(Debug, Default)]
pub(crate) struct Groups {}

// The interface the transaction coordinator uses (TxnOffsetCommit, EndTxn; KIP-447).
#[allow(dead_code)] // Used by the transaction coordinator, in progress.
impl Groups {
    /// Checks a TxnOffsetCommit's member against the group: Ok for generation -1 with an empty
    /// member id (a producer not in a group), else ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID or
    /// FENCED_INSTANCE_ID as Kafka's coordinator answers.
    pub(crate) fn check_txn_member(
        &self,
        _group: &str,
        _member_id: &str,
        _generation: i32,
        _group_instance_id: Option<&str>,
    ) -> Result<(), kafka_protocol::ResponseError> {
        Ok(())
    }

    /// Stages offsets committed inside `producer_id`'s transaction; they become visible to
    /// OffsetFetch only when [`Groups::complete_txn`] commits them (until then a
    /// require_stable OffsetFetch answers UNSTABLE_OFFSET_COMMIT for those partitions).
    pub(crate) fn stage_txn_offsets(
        &mut self,
        _group: &str,
        _producer_id: i64,
        _offsets: Vec<TxnOffset>,
    ) {
    }

    /// Applies (`commit`) or drops the offsets `producer_id` staged in `group`.
    pub(crate) fn complete_txn(&mut self, _group: &str, _producer_id: i64, _commit: bool) {}
}

/// One offset committed inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(dead_code)] // Used by the transaction coordinator, in progress.
pub(crate) struct TxnOffset {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: Option<String>,
}

/// Expires sessions and rebalance timeouts; runs for the cluster's lifetime.
pub(crate) async fn run_timers(_shared: Arc<Shared>) {}

/// Serves a group request, or hands back a request that is not one.
pub(crate) async fn handle(
    _shared: &Arc<Shared>,
    _ctx: &Context,
    request: RequestKind,
) -> Result<Reply, RequestKind> {
    Err(request)
}

/// A group request failing as a whole with `code`.
pub(crate) fn error_response(
    _version: i16,
    _request: &RequestKind,
    _code: i16,
) -> Option<ResponseKind> {
    None
}
