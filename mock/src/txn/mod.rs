//! The transaction coordinator and producer ids. Not built yet: only idempotent producers'
//! InitProducerId is served.

use std::sync::Arc;

use kafka_protocol::messages::{
    ApiKey, InitProducerIdResponse, ProducerId, RequestKind, ResponseKind,
};
use kafka_protocol::ResponseError;
use sluice_protocol::record::RecordBatch;

use crate::handlers::{Context, Reply};
use crate::state::{Shared, State};

/// The transaction APIs the mock serves: (API, lowest version, highest version).
pub(crate) const SERVED: &[(ApiKey, i16, i16)] = &[(ApiKey::InitProducerId, 0, 4)];

/// The transactions of the cluster.
#[derive(Debug, Default)]
pub(crate) struct Transactions {}

/// Aborts transactions that outlive their timeout; runs for the cluster's lifetime.
pub(crate) async fn run_timers(_shared: Arc<Shared>) {}

/// Serves a transaction request, or hands back a request that is not one.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    _ctx: &Context,
    request: RequestKind,
) -> Result<Reply, RequestKind> {
    match request {
        RequestKind::InitProducerId(r) if r.transactional_id.is_none() => {
            let id = shared.lock().allocate_producer_id();
            Ok(Reply::Respond(Box::new(ResponseKind::InitProducerId(
                InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(id))
                    .with_producer_epoch(0),
            ))))
        }
        other => Err(other),
    }
}

/// Checks a transactional batch against the coordinator's view of its transaction.
pub(crate) fn verify_produce(
    _state: &State,
    _transactional_id: Option<&str>,
    _batch: &RecordBatch,
    _topic: &str,
    _partition: i32,
) -> Result<(), ResponseError> {
    Ok(())
}

/// A transaction request failing as a whole with `code`.
pub(crate) fn error_response(
    _version: i16,
    request: &RequestKind,
    code: i16,
) -> Option<ResponseKind> {
    match request {
        RequestKind::InitProducerId(_) => Some(ResponseKind::InitProducerId(
            InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )),
        _ => None,
    }
}
