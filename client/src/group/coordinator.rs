//! Finding a coordinator (of a consumer group or a transactional id) and sending it requests.
//!
//! A coordinator is a broker chosen by hashing the key over an internal topic's partitions, so
//! it moves when that partition's leader moves. The address is cached until a request fails
//! with a connection error or NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE; then it is looked
//! up again (FindCoordinator) before the next attempt. Each API puts its error codes in its
//! own place, so retrying is the caller's job: [`Coordinator::on_error`] says what a code
//! means for the cached coordinator.
//!
//! A group member talks to its coordinator over a connection of its own
//! ([`Coordinator::with_own_connection`]), as Java's consumer does. A broker answers one
//! connection's requests in order, so on the shared connection a Heartbeat, LeaveGroup or
//! JoinGroup waited behind the consumer's fetch to the same broker (parked up to
//! `fetch.max.wait.ms` on a quiet topic, per request), and a JoinGroup the coordinator holds
//! for a whole rebalance stalled the fetches to that broker (the partitions a cooperative
//! member keeps reading during a rebalance).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::{Request, StrBytes};
use sluice_protocol::versions::Versions;

use crate::cluster::{Cluster, Slot};
use crate::conn::Connection;
use crate::error::{Error, KafkaCode, Result};

/// What a coordinator coordinates (FindCoordinator's `key_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CoordinatorType {
    Group = 0,
    #[allow(dead_code)] // The transaction manager (next) finds its coordinator with it.
    Transaction = 1,
}

/// The coordinator of one key.
#[derive(Debug)]
pub(crate) struct Coordinator {
    cluster: Cluster,
    key: String,
    kind: CoordinatorType,
    node: Mutex<Option<i32>>,
    /// With its own connection: the slot of it, once a request was sent.
    own: Option<Mutex<Option<OwnSlot>>>,
}

/// The coordinator a connection of its own goes to, and its slot.
type OwnSlot = (i32, Arc<Slot>);

impl Coordinator {
    pub(crate) fn new(cluster: Cluster, key: &str, kind: CoordinatorType) -> Self {
        Coordinator {
            cluster,
            key: key.to_owned(),
            kind,
            node: Mutex::new(None),
            own: None,
        }
    }

    /// Sends over a connection of its own instead of the cluster's shared connection to the
    /// coordinator (see the module docs).
    pub(crate) fn with_own_connection(mut self) -> Self {
        self.own = Some(Mutex::new(None));
        self
    }

    /// The key (group id or transactional id).
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// The coordinator's broker id, looked up if not known.
    pub(crate) async fn node(&self) -> Result<i32> {
        if let Some(node) = *self.lock() {
            return Ok(node);
        }
        let node = self.find().await?;
        *self.lock() = Some(node);
        Ok(node)
    }

    /// Forgets the cached coordinator: the next request looks it up again.
    pub(crate) fn forget(&self) {
        *self.lock() = None;
    }

    /// Reacts to an error from the coordinator: forgets it when the error says it moved or is
    /// unreachable. Returns whether a retry (after a backoff) may succeed.
    pub(crate) fn on_error(&self, error: &Error) -> bool {
        match error.code() {
            Some(KafkaCode::NOT_COORDINATOR | KafkaCode::COORDINATOR_NOT_AVAILABLE) => {
                self.forget();
                true
            }
            Some(KafkaCode::COORDINATOR_LOAD_IN_PROGRESS) => true,
            Some(_) => error.is_retriable(),
            None => {
                if error.is_retriable() {
                    self.forget();
                }
                error.is_retriable()
            }
        }
    }

    /// Sends one request to the coordinator, built for the negotiated version, waiting at most
    /// `timeout` for the answer (a JoinGroup is held by the broker for up to the rebalance
    /// timeout). A connection error forgets the coordinator.
    pub(crate) async fn send<R: Request>(
        &self,
        timeout: Duration,
        build: impl FnOnce(i16) -> Result<R>,
    ) -> Result<R::Response> {
        self.send_at_most(timeout, i16::MAX, build).await
    }

    /// [`Coordinator::send`] at version `max` or below: for versions whose meaning the caller
    /// has not opted into (transactions v2).
    pub(crate) async fn send_at_most<R: Request>(
        &self,
        timeout: Duration,
        max: i16,
        build: impl FnOnce(i16) -> Result<R>,
    ) -> Result<R::Response> {
        let node = self.node().await?;
        let result = async {
            let conn = self.connection(node).await?;
            let version = conn.version_of::<R>()?.min(max);
            let request = build(version)?;
            conn.send_at(&request, version, timeout).await
        }
        .await;
        if let Err(e) = &result {
            if e.code().is_none() && e.is_retriable() {
                self.forget();
            }
        }
        result
    }

    /// The API versions and finalized features of the coordinator's broker.
    pub(crate) async fn versions(&self) -> Result<Versions> {
        let node = self.node().await?;
        let result = self.connection(node).await.map(|c| c.versions().clone());
        if result.is_err() {
            self.forget();
        }
        result
    }

    /// The version of `R` negotiated with the coordinator; `BrokerTooOld` if it offers none
    /// that sluice speaks.
    pub(crate) async fn version_of<R: Request>(&self) -> Result<i16> {
        let node = self.node().await?;
        let conn = self.connection(node).await?;
        conn.version_of::<R>()
    }

    /// The connection requests to coordinator `node` go over.
    async fn connection(&self, node: i32) -> Result<Arc<Connection>> {
        let Some(own) = &self.own else {
            return self.cluster.connection(node).await;
        };
        let current = lock(own)
            .as_ref()
            .filter(|(n, _)| *n == node)
            .map(|(_, slot)| Arc::clone(slot));
        let slot = self.cluster.own_slot(node, current).await?;
        *lock(own) = Some((node, Arc::clone(&slot)));
        self.cluster.connect_slot(&slot).await
    }

    async fn find(&self) -> Result<i32> {
        // Any broker answers FindCoordinator; a random one spreads retries over the cluster.
        let mut snapshot = self.cluster.snapshot();
        if snapshot.brokers.is_empty() {
            snapshot = self.cluster.refresh(&[]).await?;
        }
        let ids: Vec<i32> = snapshot.brokers.keys().copied().collect();
        let Some(&asked) = ids.get(fastrand::usize(..ids.len().max(1))) else {
            return Err(Error::kafka(
                KafkaCode::COORDINATOR_NOT_AVAILABLE,
                "the cluster metadata lists no broker",
            ));
        };
        let conn = self.cluster.connection(asked).await?;
        let version = conn.version_of::<FindCoordinatorRequest>()?;
        let request = find_request(
            StrBytes::from_string(self.key.clone()),
            self.kind as i8,
            version,
        );
        let response: FindCoordinatorResponse = conn
            .send_at(&request, version, self.cluster.options().request_timeout)
            .await?;
        let (code, node) = match response.coordinators.first() {
            Some(c) => (c.error_code, c.node_id.0),
            None => (response.error_code, response.node_id.0),
        };
        if code != 0 {
            return Err(Error::kafka(
                KafkaCode(code),
                format!("FindCoordinator for {}", self.key),
            ));
        }
        if node < 0 {
            return Err(Error::kafka(
                KafkaCode::COORDINATOR_NOT_AVAILABLE,
                format!("FindCoordinator for {} named no broker", self.key),
            ));
        }
        Ok(node)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<i32>> {
        lock(&self.node)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// FindCoordinator for one key: `coordinator_keys` from v4 (KIP-699), `key` before.
fn find_request(key: StrBytes, kind: i8, version: i16) -> FindCoordinatorRequest {
    let request = FindCoordinatorRequest::default().with_key_type(kind);
    if version >= 4 {
        request.with_coordinator_keys(vec![key])
    } else {
        request.with_key(key)
    }
}
