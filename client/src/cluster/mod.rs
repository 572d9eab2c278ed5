//! The client's view of a Kafka cluster: bootstrap, the metadata cache and one connection per
//! broker. Producer, consumer and admin reach brokers only through [`Cluster`].
//!
//! Metadata is refreshed on demand (a topic not yet known, an error that says the cache is
//! stale: NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, a lost
//! connection) and when older than `metadata_max_age`. Refreshes are rate-limited: callers
//! that ask while one is running, or within `retry_backoff` of the last, share its result
//! rather than send another request, so a burst of errors costs one Metadata round trip.

mod metadata;
mod pool;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::sync::Mutex;
use tokio::time::Instant;

pub use metadata::{BrokerInfo, PartitionInfo, Snapshot, TopicInfo};
pub(crate) use pool::{Backoff, Slot};

use crate::config::SecurityConfig;
use crate::conn::{ConnectOptions, Connection, Security};
use crate::error::{Error, KafkaCode, Result};

/// What the cluster layer needs from the client configuration.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `host:port` addresses to bootstrap from.
    pub bootstrap: Vec<String>,
    /// Sent in every request header.
    pub client_id: String,
    /// Bound on each request's round trip.
    pub request_timeout: Duration,
    /// Bound on TCP connect plus handshake.
    pub connect_timeout: Duration,
    /// First reconnect delay.
    pub reconnect_backoff: Duration,
    /// Largest reconnect delay.
    pub reconnect_backoff_max: Duration,
    /// Least time between two metadata refreshes.
    pub retry_backoff: Duration,
    /// Metadata older than this is refreshed before use.
    pub metadata_max_age: Duration,
    /// Requests in flight per connection.
    pub max_in_flight: usize,
    /// Largest response frame accepted.
    pub max_frame_size: usize,
    /// Whether Metadata requests may create missing topics (broker permitting).
    pub allow_auto_topic_creation: bool,
    /// TLS and SASL for every broker connection.
    pub security: SecurityConfig,
}

impl ClusterOptions {
    /// The cluster settings of a client configuration.
    pub fn from_client(config: &crate::config::ClientConfig) -> Self {
        ClusterOptions {
            bootstrap: config.bootstrap_servers().to_vec(),
            client_id: config.client_id().to_owned(),
            request_timeout: config.request_timeout(),
            connect_timeout: config.connect_timeout(),
            reconnect_backoff: config.reconnect_backoff(),
            reconnect_backoff_max: config.reconnect_backoff_max(),
            retry_backoff: config.retry_backoff(),
            metadata_max_age: config.metadata_max_age(),
            max_in_flight: config.max_in_flight_per_connection(),
            max_frame_size: config.max_response_size(),
            allow_auto_topic_creation: false,
            security: config.security().clone(),
        }
    }
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            bootstrap: Vec::new(),
            client_id: "sluice".into(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(1),
            retry_backoff: Duration::from_millis(100),
            metadata_max_age: Duration::from_secs(300),
            max_in_flight: 5,
            max_frame_size: sluice_protocol::frame::DEFAULT_MAX_FRAME_SIZE,
            allow_auto_topic_creation: false,
            security: SecurityConfig::Plaintext,
        }
    }
}

/// A handle to the cluster; clones share everything.
#[derive(Debug, Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: ClusterOptions,
    connect: ConnectOptions,
    bootstrap: Vec<Arc<Slot>>,
    brokers: RwLock<HashMap<i32, Arc<Slot>>>,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Serializes refreshes; holds when the last one finished.
    refresh: Mutex<Option<Instant>>,
}

impl Cluster {
    /// Connects to the first reachable bootstrap broker and loads the broker list.
    ///
    /// The TLS files of `options.security` are read here, once; a protocol this build lacks
    /// the feature for (`tls`, `sasl`) is an [`Error::Config`].
    ///
    /// Cancel safety: safe to drop; nothing is left half-done but a possibly open connection.
    pub async fn connect(options: ClusterOptions) -> Result<Cluster> {
        if options.bootstrap.is_empty() {
            return Err(Error::Config {
                property: "bootstrap.servers".into(),
                reason: "no broker address given".into(),
            });
        }
        let connect = ConnectOptions {
            client_id: options.client_id.clone(),
            connect_timeout: options.connect_timeout,
            max_in_flight: options.max_in_flight,
            max_frame_size: options.max_frame_size,
            security: Security::new(&options.security)?,
        };
        let bootstrap = options
            .bootstrap
            .iter()
            .map(|a| Arc::new(Slot::new(a.clone())))
            .collect();
        let cluster = Cluster {
            inner: Arc::new(Inner {
                options,
                connect,
                bootstrap,
                brokers: RwLock::new(HashMap::new()),
                snapshot: RwLock::new(Arc::new(Snapshot::default())),
                refresh: Mutex::new(None),
            }),
        };
        cluster.refresh(&[]).await?;
        Ok(cluster)
    }

    /// The options the cluster was built with.
    pub fn options(&self) -> &ClusterOptions {
        &self.inner.options
    }

    /// The current metadata snapshot (possibly stale; see [`Cluster::topic`]).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(
            &self
                .inner
                .snapshot
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Metadata of `topic`, refreshing it when unknown or too old.
    ///
    /// Errors with UNKNOWN_TOPIC_OR_PARTITION (or the broker's error for it) when the topic
    /// does not exist after a refresh.
    pub async fn topic(&self, topic: &str) -> Result<Arc<TopicInfo>> {
        if let Some(info) = self.fresh_topic(topic).await {
            return Ok(info);
        }
        let snapshot = match self.refresh(&[topic.to_owned()]).await {
            Ok(snapshot) => snapshot,
            // The cluster cannot be reached right now. Leaders we knew are still the best
            // guess (a lost connection is not a leader change): use them, and let the request
            // to the leader retry the connection.
            Err(e) if e.is_retriable() => match self.snapshot().topics.get(topic) {
                Some(info) => return Ok(Arc::clone(info)),
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        if let Some(info) = snapshot.topics.get(topic) {
            return Ok(Arc::clone(info));
        }
        let code = snapshot
            .topic_errors
            .get(topic)
            .copied()
            .unwrap_or(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION);
        Err(Error::kafka(code, format!("topic {topic}")))
    }

    async fn fresh_topic(&self, topic: &str) -> Option<Arc<TopicInfo>> {
        let info = self.snapshot().topics.get(topic).cloned()?;
        let last = *self.inner.refresh.lock().await;
        let fresh = last.is_some_and(|t| t.elapsed() < self.inner.options.metadata_max_age);
        fresh.then_some(info)
    }

    /// Marks what `error` says is stale, so the next lookup refreshes it. Producer and
    /// consumer call this with every partition-level error they get.
    ///
    /// An error code that says leadership moved drops the topic from the cache: its leaders
    /// are known to be wrong. A lost connection only makes the next lookup try a refresh; the
    /// cached leaders stay in use if that refresh cannot reach the cluster either, since a
    /// cut connection says nothing about where the leader is.
    pub async fn on_error(&self, topic: &str, error: &Error) {
        if error.code().is_none() && error.is_indefinite() {
            *self.inner.refresh.lock().await = None;
            return;
        }
        let stale = match error.code() {
            Some(code) => [
                KafkaCode::NOT_LEADER_OR_FOLLOWER,
                KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
                KafkaCode::LEADER_NOT_AVAILABLE,
                KafkaCode::FENCED_LEADER_EPOCH,
                KafkaCode::UNKNOWN_LEADER_EPOCH,
            ]
            .contains(&code),
            None => false,
        };
        if stale {
            let mut snapshot = (*self.snapshot()).clone();
            snapshot.topics.remove(topic);
            *self
                .inner
                .snapshot
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(snapshot);
        }
    }

    /// Fetches metadata for `topics` (none: brokers only) and merges it into the cache.
    ///
    /// Rate-limited: a caller that waited for a refresh that finished within `retry_backoff`
    /// gets that result instead of sending another request. Cancel safety: safe to drop.
    pub async fn refresh(&self, topics: &[String]) -> Result<Arc<Snapshot>> {
        self.refresh_request(Some(topics)).await
    }

    /// Fetches metadata for every topic in the cluster and merges it into the cache.
    pub async fn refresh_all(&self) -> Result<Arc<Snapshot>> {
        self.refresh_request(None).await
    }

    async fn refresh_request(&self, topics: Option<&[String]>) -> Result<Arc<Snapshot>> {
        let asked_at = Instant::now();
        let mut last = self.inner.refresh.lock().await;
        if let Some(done) = *last {
            let covers = topics.is_some_and(|topics| {
                let s = self.snapshot();
                topics
                    .iter()
                    .all(|t| s.topics.contains_key(t) || s.topic_errors.contains_key(t))
            });
            if done >= asked_at && covers {
                return Ok(self.snapshot());
            }
            let earliest = done + self.inner.options.retry_backoff;
            tokio::time::sleep_until(earliest).await;
        }
        let request = MetadataRequest::default()
            .with_topics(topics.map(|topics| {
                topics
                    .iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(self.inner.options.allow_auto_topic_creation);
        let response = self.send_any(&request).await?;
        let next = Arc::new(self.snapshot().merged(&response));
        self.update_brokers(&next);
        *self
            .inner
            .snapshot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::clone(&next);
        *last = Some(Instant::now());
        Ok(next)
    }

    fn update_brokers(&self, snapshot: &Snapshot) {
        let mut brokers = self
            .inner
            .brokers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        brokers.retain(|id, slot| {
            snapshot
                .brokers
                .get(id)
                .is_some_and(|b| b.addr == slot.addr())
        });
        for (id, info) in &snapshot.brokers {
            brokers
                .entry(*id)
                .or_insert_with(|| Arc::new(Slot::new(info.addr.clone())));
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff {
            initial: self.inner.options.reconnect_backoff,
            max: self.inner.options.reconnect_backoff_max,
        }
    }

    /// The connection to broker `id`, connecting if needed.
    pub(crate) async fn connection(&self, id: i32) -> Result<Arc<Connection>> {
        let slot = self
            .inner
            .brokers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .cloned();
        match slot {
            Some(slot) => slot.get(&self.inner.connect, self.backoff()).await,
            None => {
                // Unknown id: refresh once (a broker may have joined), then give up.
                self.refresh(&[]).await?;
                let slot = self
                    .inner
                    .brokers
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&id)
                    .cloned();
                match slot {
                    Some(slot) => slot.get(&self.inner.connect, self.backoff()).await,
                    None => Err(Error::kafka(
                        KafkaCode::BROKER_NOT_AVAILABLE,
                        format!("broker {id} is not in the cluster metadata"),
                    )),
                }
            }
        }
    }

    /// A connection slot of its own for broker `id` (a second TCP connection, apart from the
    /// shared one of [`Cluster::connection`]): `current` if it still points at `id`'s address,
    /// else a new one. Refreshes metadata once if `id` is unknown.
    pub(crate) async fn own_slot(&self, id: i32, current: Option<Arc<Slot>>) -> Result<Arc<Slot>> {
        let addr = |snapshot: &Snapshot| snapshot.brokers.get(&id).map(|b| b.addr.clone());
        let addr = match addr(&self.snapshot()) {
            Some(addr) => addr,
            None => addr(&*self.refresh(&[]).await?).ok_or_else(|| {
                Error::kafka(
                    KafkaCode::BROKER_NOT_AVAILABLE,
                    format!("broker {id} is not in the cluster metadata"),
                )
            })?,
        };
        Ok(match current {
            Some(slot) if slot.addr() == addr => slot,
            _ => Arc::new(Slot::new(addr)),
        })
    }

    /// The live connection of a slot from [`Cluster::own_slot`], connecting if needed.
    pub(crate) async fn connect_slot(&self, slot: &Slot) -> Result<Arc<Connection>> {
        slot.get(&self.inner.connect, self.backoff()).await
    }

    /// Sends `request` to broker `id`.
    pub async fn send_to<R: Request>(&self, id: i32, request: &R) -> Result<R::Response> {
        let conn = self.connection(id).await?;
        conn.send(request, self.inner.options.request_timeout).await
    }

    /// Sends `request` to any reachable broker: a live connection first, then known brokers,
    /// then the bootstrap list.
    pub async fn send_any<R: Request>(&self, request: &R) -> Result<R::Response> {
        let known: Vec<Arc<Slot>> = self
            .inner
            .brokers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for slot in known.iter().chain(&self.inner.bootstrap) {
            if let Some(conn) = slot.live().await {
                if let Ok(response) = conn.send(request, self.inner.options.request_timeout).await {
                    return Ok(response);
                }
            }
        }
        let mut tried = Vec::new();
        let mut last = None;
        for slot in known.iter().chain(&self.inner.bootstrap) {
            tried.push(slot.addr().to_owned());
            match slot.get(&self.inner.connect, self.backoff()).await {
                Ok(conn) => match conn.send(request, self.inner.options.request_timeout).await {
                    Ok(response) => return Ok(response),
                    Err(e) if e.is_retriable() => last = Some(e),
                    Err(e) => return Err(e),
                },
                Err(e) if e.is_retriable() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(Error::NoBrokerReachable {
            tried: tried.join(", "),
            last: Box::new(last.unwrap_or(Error::Closed)),
        })
    }

    /// The leader of `topic`/`partition`, refreshing metadata if it is unknown.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<i32> {
        let info = self.topic(topic).await?;
        let p = info.partition(partition).ok_or_else(|| {
            Error::kafka(
                KafkaCode::UNKNOWN_TOPIC_OR_PARTITION,
                format!("{topic}-{partition}"),
            )
        })?;
        if p.leader < 0 {
            self.on_error(topic, &Error::kafka(KafkaCode::LEADER_NOT_AVAILABLE, ""))
                .await;
            return Err(Error::kafka(
                KafkaCode::LEADER_NOT_AVAILABLE,
                format!("{topic}-{partition}"),
            ));
        }
        Ok(p.leader)
    }
}
