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
