//! The network side of one mock broker: accepting connections and answering each one's
//! requests in order.
//!
//! Like a Kafka broker, a connection's requests are handled one at a time and answered in the
//! order they came (a long-polling Fetch holds back the requests behind it on the same
//! connection, as it does on Kafka). Faults are applied here: pauses, delays, dropped
//! connections, and injected error codes.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use sluice_protocol::frame::FrameDecoder;
use sluice_protocol::messages::{
    decode_request, encode_response, peek_request, UNSUPPORTED_VERSION,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

use crate::faults::{Addressee, Disconnect, Plan};
use crate::handlers::{self, Context, Reply};
use crate::state::Shared;

/// Accepts connections for broker `broker` until the listener task is aborted.
pub(crate) async fn serve(shared: Arc<Shared>, broker: i32, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                debug!(broker, %peer, "mock broker accepted a connection");
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(shared.clone(), broker, stream));
            }
            Err(e) => {
                debug!(broker, error = %e, "mock broker accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Serves one connection until the client closes it, a fault drops it, or it sends something
/// a broker would close the connection for.
async fn connection(shared: Arc<Shared>, broker: i32, mut stream: TcpStream) {
    let mut decoder = FrameDecoder::new(shared.config.max_request_bytes);
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut output = BytesMut::new();
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let frame = match decoder.decode(&mut input) {
            Ok(Some(frame)) => frame,
            Ok(None) => tokio::select! {
                read = stream.read_buf(&mut input) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                },
                _ = shutdown.wait_for(|closed| *closed) => return,
            },
            Err(e) => {
                debug!(broker, error = %e, "mock broker closes a connection: bad frame");
                return;
            }
        };
        wait_while_paused(&shared, broker).await;
        let Ok(prefix) = peek_request(&frame) else {
            return;
        };
        let api = ApiKey::try_from(prefix.api_key).ok();
        let (response, plan) = match decode_request(frame) {
            Ok((header, body)) => {
                let Some(api) = api else { return };
                let to = Addressee {
                    broker,
                    api: Some(api),
                    client_id: header.client_id.as_deref(),
                };
                let plan = shared.lock().faults.plan(&to, Some(&body));
                if plan.disconnect == Some(Disconnect::BeforeResponse) {
                    return;
                }
                let ctx = Context {
                    broker,
                    api,
                    version: header.request_api_version,
                    client_id: header.client_id.as_ref().map(|c| c.to_string()),
                };
                match handlers::handle(&shared, &ctx, body, plan.error.as_ref()).await {
                    Reply::Respond(response) => (Some((api, ctx.version, *response)), plan),
                    Reply::Silent => (None, plan),
                    Reply::Close => return,
                }
            }
            // A broker that does not know an ApiVersions version answers in v0 with the
            // versions it knows (KIP-511); anything else it cannot parse closes the connection.
            Err(_) if api == Some(ApiKey::ApiVersions) => (
                Some((
                    ApiKey::ApiVersions,
                    0,
                    ResponseKind::ApiVersions(
                        crate::versions::api_versions(0, shared.config.transaction_version)
                            .with_error_code(UNSUPPORTED_VERSION),
                    ),
                )),
                Plan::default(),
            ),
            Err(e) => {
                debug!(broker, error = %e, "mock broker closes a connection: bad request");
                return;
            }
        };
        if let Some(delay) = plan.delay {
            tokio::time::sleep(delay).await;
        }
        let Some((api, version, body)) = response else {
            continue;
        };
        output.clear();
        if let Err(e) = encode_response(&mut output, prefix.correlation_id, api, version, &body) {
            debug!(broker, error = %e, "mock broker could not encode a response");
            return;
        }
        if plan.disconnect == Some(Disconnect::MidResponse) {
            let half = output.len() / 2;
            let _ = stream.write_all(&output[..half]).await;
            return;
        }
        if stream.write_all(&output).await.is_err() {
            return;
        }
    }
}

async fn wait_while_paused(shared: &Shared, broker: i32) {
    while shared.lock().faults.is_paused(broker) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
