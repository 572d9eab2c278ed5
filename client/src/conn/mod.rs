//! One pipelined connection to one broker.
//!
//! Requests are written in order by a writer task and answered by correlation id by a reader
//! task, so any number may be in flight (up to the configured maximum). The pending map is the
//! single source of truth for who waits on what: when either task fails, the map is closed
//! with the error and every waiter gets a copy of it (rskafka's `messenger.rs` calls this
//! poisoning). A request that times out closes the connection, as the Java client does:
//! responses come back in order, so a missing one means the connection is no longer
//! trustworthy.
//!
//! References: the Kafka protocol guide (<https://kafka.apache.org/protocol#protocol_network>),
//! KIP-511 (ApiVersions v3 with client name and version).

mod driver;
mod handshake;
mod secure;
#[cfg(test)]
mod secure_tests;
#[cfg(test)]
pub(crate) mod test_broker;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::Request;
use sluice_protocol::messages::{self, api_name, ApiKey};
use sluice_protocol::versions::Versions;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::error::{Error, Result};
use driver::{Outgoing, Shared};
pub(crate) use secure::Security;

/// What a connection needs from the client configuration.
#[derive(Debug, Clone)]
pub(crate) struct ConnectOptions {
    /// Sent in every request header.
    pub(crate) client_id: String,
    /// Bound on TCP connect plus the TLS, ApiVersions and SASL handshakes.
    pub(crate) connect_timeout: Duration,
    /// Requests awaiting a response at once.
    pub(crate) max_in_flight: usize,
    /// Largest response frame accepted.
    pub(crate) max_frame_size: usize,
    /// TLS and SASL, prepared once per cluster.
    pub(crate) security: Security,
}

/// A live connection to one broker. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub(crate) struct Connection {
    addr: String,
    client_id: String,
    versions: Versions,
    shared: Arc<Shared>,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    in_flight: Arc<Semaphore>,
    next_correlation_id: AtomicI32,
}

impl Connection {
    /// Connects to `addr` (`host:port`): TCP, TLS if configured, API versions, then SASL if
    /// configured. The connection is returned only once all of that succeeded.
    ///
    /// Cancel safety: dropping the future drops the half-made connection.
    pub(crate) async fn connect(addr: &str, options: &ConnectOptions) -> Result<Connection> {
        let setup = async {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| Error::io(addr, e))?;
            stream.set_nodelay(true).map_err(|e| Error::io(addr, e))?;
            let (shared, outgoing) = options
                .security
                .start(addr, stream, options.max_frame_size)
                .await?;
            let mut conn = Connection {
                addr: addr.to_owned(),
                client_id: options.client_id.clone(),
                versions: Versions::negotiate(&Default::default()),
                shared,
                outgoing,
                in_flight: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
                next_correlation_id: AtomicI32::new(0),
            };
            conn.versions = handshake::negotiate(&conn, options.connect_timeout).await?;
            options
                .security
                .authenticate(&conn, options.connect_timeout)
                .await?;
            Ok(conn)
        };
        match tokio::time::timeout(options.connect_timeout, setup).await {
            Ok(result) => result.map_err(|e| options.security.setup_error(addr, e)),
            Err(_) => Err(Error::Timeout {
                what: format!("connecting to {addr}"),
                after: options.connect_timeout,
            }),
        }
    }

    /// The broker address this connection goes to.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// The versions negotiated with the broker, and its cluster's finalized features.
    pub(crate) fn versions(&self) -> &Versions {
        &self.versions
    }

    /// Whether the connection has failed or been closed; a closed one never reopens.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// The version to use for `R` with this broker.
    pub(crate) fn version_of<R: Request>(&self) -> Result<i16> {
        let api = api_key::<R>()?;
        self.versions.get(api).map_err(|e| match e {
            sluice_protocol::Error::UnsupportedVersion { .. }
            | sluice_protocol::Error::UnsupportedApi { .. } => Error::BrokerTooOld {
                broker: self.addr.clone(),
                reason: e.to_string(),
            },
            other => Error::Protocol(other),
        })
    }

    /// Sends `body` at the negotiated version and waits at most `timeout` for the answer.
    ///
    /// Cancel safety: if the future is dropped after the request was queued, the request may
    /// still be sent and its response is discarded; the in-flight slot is freed when the
    /// response arrives or the connection closes.
    pub(crate) async fn send<R: Request>(
        &self,
        body: &R,
        timeout: Duration,
    ) -> Result<R::Response> {
        let version = self.version_of::<R>()?;
        self.send_at(body, version, timeout).await
    }

    /// [`Connection::send`] at an explicit version.
    pub(crate) async fn send_at<R: Request>(
        &self,
        body: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        let api = api_key::<R>()?;
        let span = tracing::debug_span!("kafka_request", api = api_name(api), version, broker = %self.addr);
        async {
            let permit = self.acquire_slot(timeout).await?;
            let (correlation_id, frame) = self.encode(body, version)?;
            let (reply, response) = oneshot::channel();
            self.queue(Outgoing {
                correlation_id,
                frame,
                reply: Some((reply, permit)),
            })?;
            let frame = match tokio::time::timeout(timeout, response).await {
                Ok(Ok(result)) => result?,
                Ok(Err(_)) => return Err(self.shared.closed_error()),
                Err(_) => {
                    let reason =
                        format!("{} v{version} timed out after {timeout:?}", api_name(api));
                    self.shared.close(Error::Disconnected {
                        broker: self.addr.clone(),
                        reason,
                    });
                    return Err(Error::Timeout {
                        what: format!("{} request to {}", api_name(api), self.addr),
                        after: timeout,
                    });
                }
            };
            Ok(messages::decode_response::<R>(
                frame,
                version,
                correlation_id,
            )?)
        }
        .instrument(span)
        .await
    }

    /// Sends a request the broker will not answer (a Produce with acks=0). Returns once the
    /// request is queued for writing; a failure to write it closes the connection.
    pub(crate) fn send_without_response<R: Request>(&self, body: &R, version: i16) -> Result<()> {
        let (correlation_id, frame) = self.encode(body, version)?;
        self.queue(Outgoing {
            correlation_id,
            frame,
            reply: None,
        })
    }

    async fn acquire_slot(&self, timeout: Duration) -> Result<OwnedSemaphorePermit> {
        let acquire = Arc::clone(&self.in_flight).acquire_owned();
        match tokio::time::timeout(timeout, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(self.shared.closed_error()),
            Err(_) => Err(Error::Timeout {
                what: format!("a free in-flight slot on the connection to {}", self.addr),
                after: timeout,
            }),
        }
    }

    fn encode<R: Request>(&self, body: &R, version: i16) -> Result<(i32, Bytes)> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        let mut frame = BytesMut::new();
        messages::encode_request(
            &mut frame,
            correlation_id,
            Some(&self.client_id),
            version,
            body,
        )?;
        Ok((correlation_id, frame.freeze()))
    }

    fn queue(&self, outgoing: Outgoing) -> Result<()> {
        if self.shared.is_closed() {
            return Err(self.shared.closed_error());
        }
        self.outgoing
            .send(outgoing)
            .map_err(|_| self.shared.closed_error())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.close(Error::Closed);
    }
}

/// The API key of a request type.
fn api_key<R: Request>() -> Result<ApiKey> {
    ApiKey::try_from(R::KEY).map_err(|()| {
        Error::Protocol(sluice_protocol::Error::Invalid {
            field: "api key",
            offset: 0,
            reason: format!("unknown API key {}", R::KEY),
        })
    })
}
