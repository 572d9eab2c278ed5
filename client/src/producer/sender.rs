//! The sender task: drains ready batches into ProduceRequests, one per leader, and turns the
//! answers into completions, retries and failures.
//!
//! One task per producer owns everything that is not shared with `send`: the sequence state
//! machine ([`Sequencer`]), the requests in flight. It wakes on the accumulator's `wake` (a
//! batch opened or sealed or compressed, flush, close), on the earliest timer (linger, retry
//! backoff, delivery timeout) and on the completion of anything it started (a produce
//! request, a metadata refresh, InitProducerId), all of which run as futures it polls itself.
//! Compression is the exception: sealed batches are compressed on blocking threads
//! ([`Compressing`]) so that it does not hold up the answers and requests behind it.
//!
//! A request carries at most one batch per partition; several partitions of one leader share a
//! request up to `max_request_size`. More batches of a partition go in later requests on the
//! same connection, up to `max_in_flight` per partition (the sequencer's gate), so they reach
//! the broker in order: requests are queued on a connection in the order they are started.
//!
//! Errors: NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE and lost
//! connections mark the topic's metadata stale ([`Cluster::on_error`]); the next drain finds no
//! leader for it and refreshes. Retriable errors retry after `retry_backoff` (doubling to
//! `retry_backoff_max`, ±20% jitter, KIP-580) while `retries` and `delivery_timeout` allow.
//! A batch still queued at its delivery deadline fails with `Timeout`; one in flight fails at
//! most `request_timeout` later.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use sluice_protocol::Compressor;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use super::accumulator::Accumulator;
use super::batch::{Ack, ProducerBatch, TopicPartition};
use super::idempotence::{Gate, IdentityRequest, Outcome, ProducerIdentity, Sequencer, Verdict};
use super::requests::{
    classify, init_producer_id, is_indefinite, partition_result, produce_request,
    MAX_PRODUCE_VERSION, PER_PARTITION_OVERHEAD, REQUEST_OVERHEAD,
};
use crate::cluster::Cluster;
use crate::config::Acks;
use crate::error::{Error, KafkaCode, Result};
use crate::txn::TransactionManager;

/// What the sender needs from the producer config.
#[derive(Debug, Clone)]
pub(crate) struct SenderConfig {
    pub(crate) acks: Acks,
    pub(crate) idempotent: bool,
    pub(crate) max_in_flight: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) delivery_timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) retry_backoff: Duration,
    pub(crate) retry_backoff_max: Duration,
    pub(crate) max_request_size: usize,
    pub(crate) metadata_max_age: Duration,
}

/// Something the sender started has finished.
enum Event {
    Produce {
        request: u64,
        /// `None` for acks=0.
        result: Result<Option<ProduceResponse>>,
        /// Whether the request may have reached the broker (else the connection failed first).
        sent: bool,
    },
    Metadata,
    Identity(Result<ProducerIdentity>),
    /// AddPartitionsToTxn finished for these partitions.
    Added(Vec<TopicPartition>, Result<()>),
}

#[derive(Debug, Default)]
struct IdentityState {
    pending: bool,
    failures: u32,
    retry_at: Option<Instant>,
}

/// The sender task's state.
pub(crate) struct Sender {
    cluster: Cluster,
    acc: Arc<Accumulator>,
    config: SenderConfig,
    sequencer: Sequencer<TopicPartition>,
    compressor: Compressor,
    compression: Compressing,
    in_flight: HashMap<u64, Vec<ProducerBatch>>,
    events: FuturesUnordered<BoxFuture<'static, Event>>,
    next_request: u64,
    refreshing: bool,
    last_refresh: Instant,
    identity: IdentityState,
    /// The transaction manager of a transactional producer.
    txn: Option<Arc<TransactionManager>>,
    /// An AddPartitionsToTxn is in flight.
    adding: bool,
    finished: watch::Sender<bool>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("in_flight_requests", &self.in_flight.len())
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Sender {
    pub(crate) fn new(
        cluster: Cluster,
        acc: Arc<Accumulator>,
        config: SenderConfig,
        txn: Option<Arc<TransactionManager>>,
        finished: watch::Sender<bool>,
    ) -> Self {
        let mut sequencer = Sequencer::new(config.idempotent, config.max_in_flight);
        if txn.is_some() {
            sequencer.set_transactional();
        }
        Sender {
            cluster,
            acc,
            sequencer,
            txn,
            adding: false,
            config,
            compressor: Compressor::new(),
            compression: Compressing::new(),
            in_flight: HashMap::new(),
            events: FuturesUnordered::new(),
            next_request: 0,
            refreshing: false,
            last_refresh: Instant::now(),
            identity: IdentityState::default(),
            finished,
        }
    }

    /// Runs until the producer is closed and everything is delivered, or the close deadline
    /// passes (then what is left fails with `Closed`).
    pub(crate) async fn run(mut self) {
        loop {
            let now = Instant::now();
            let closing = self.acc.closing();
            if let Some(deadline) = closing {
                if now >= deadline {
                    self.abort(Error::Closed);
                    break;
                }
                if self.in_flight.is_empty() && self.acc.lock().is_empty() {
                    break;
                }
            }
            self.sync_transaction_identity();
            self.request_identity(now);
            let mut wake = self.drain(now);
            wake = earliest(wake, closing);
            wake = earliest(wake, self.identity.retry_at);
            let sleep_until = wake.unwrap_or_else(|| now + Duration::from_secs(3600));
            tokio::select! {
                Some(event) = self.events.next(), if !self.events.is_empty() => {
                    self.handle(event).await;
                    while let Some(Some(event)) = self.events.next().now_or_never() {
                        self.handle(event).await;
                    }
                }
                () = self.acc.wake.notified() => {}
                () = tokio::time::sleep_until(sleep_until) => {}
            }
        }
        tracing::debug!("producer sender stopped");
        let _ = self.finished.send(true);
    }

    /// Fails everything queued or in flight.
    fn abort(&mut self, error: Error) {
        let queued = self.acc.lock().take_all();
        let in_flight = self.in_flight.drain().flat_map(|(_, batches)| batches);
        for batch in queued.into_iter().chain(in_flight) {
            batch.fail(error.clone());
        }
    }

    /// Seals due batches, fails expired ones and sends what the gate lets through. Returns
    /// when something becomes due.
    fn drain(&mut self, now: Instant) -> Option<Instant> {
        let force = self.acc.force_ready();
        let linger = self.acc.config().linger;
        let snapshot = self.cluster.snapshot();
        let mut wake = None;
        let mut expired = Vec::new();
        let mut refused = Vec::new();
        let mut missing: HashSet<Arc<str>> = HashSet::new();
        // Partitions with batches to send that the transaction does not have yet.
        let mut to_add: Vec<TopicPartition> = Vec::new();
        // (leader, round) -> batches; round r holds the r-th batch taken from each partition.
        let mut rounds: BTreeMap<(i32, usize), Vec<ProducerBatch>> = BTreeMap::new();
        let acc = Arc::clone(&self.acc);
        {
            let mut state = acc.lock();
            for topic in &mut state.topics {
                let info = snapshot.topics.get(&*topic.name);
                let name = Arc::clone(&topic.name);
                for (partition, queue) in topic.queues_mut() {
                    wake = earliest(wake, queue.seal_if_due(now, linger, force));
                    for batch in &mut queue.ready {
                        if !self.compression.start(batch, &acc) {
                            break;
                        }
                    }
                    // A transaction gets a partition at the partition's first record, not its
                    // first sealed batch: the AddPartitionsToTxn round trip then overlaps the
                    // batch's linger instead of following it (Java does the same).
                    let mut unadded = false;
                    if let (Some(txn), Some(tp)) = (&self.txn, queue.partition()) {
                        if !txn.admit(tp) {
                            to_add.push(tp.clone());
                            unadded = true;
                        }
                    }
                    while queue.ready.front().is_some_and(|b| now >= b.deadline) {
                        expired.extend(queue.ready.pop_front());
                    }
                    let Some(head) = queue.ready.front() else {
                        continue;
                    };
                    wake = earliest(wake, Some(head.deadline));
                    let leader = info
                        .and_then(|i| i.partition(partition))
                        .map(|p| p.leader)
                        .filter(|&l| l >= 0);
                    let Some(leader) = leader else {
                        missing.insert(Arc::clone(&name));
                        continue;
                    };
                    if unadded {
                        continue;
                    }
                    let tp = head.tp.clone();
                    let mut round = 0;
                    while let Some(head) = queue.ready.front_mut() {
                        if let Some(at) = head.retry_at.filter(|&at| at > now) {
                            wake = earliest(wake, Some(at));
                            break;
                        }
                        // Being compressed, or waiting for a free job: the end of a job
                        // wakes the sender.
                        if head.awaits_compression() || !head.is_ready() {
                            break;
                        }
                        match self.sequencer.gate(&tp, head.head()) {
                            Gate::Wait => break,
                            Gate::Fail => refused.extend(queue.ready.pop_front()),
                            Gate::Send(stamp) => {
                                let Some(mut batch) = queue.ready.pop_front() else {
                                    break;
                                };
                                batch.stamp = stamp;
                                rounds.entry((leader, round)).or_default().push(batch);
                                round += 1;
                            }
                        }
                    }
                }
            }
        }
        for batch in expired {
            self.sequencer
                .on_abandoned(&batch.tp, batch.stamp, batch.possibly_written);
            let what = format!(
                "delivery of {} record(s) to {}",
                batch.record_count(),
                batch.tp
            );
            tracing::debug!(partition = %batch.tp, "batch expired before delivery");
            self.fail(
                batch,
                Error::Timeout {
                    what,
                    after: self.config.delivery_timeout,
                },
            );
        }
        for mut batch in refused {
            let error = batch.last_error.take().unwrap_or_else(|| {
                Error::kafka(KafkaCode::UNKNOWN_PRODUCER_ID, batch.tp.to_string())
            });
            tracing::warn!(partition = %batch.tp, %error, "batch may be in the log already; not resent after a sequence reset");
            self.fail(batch, error);
        }
        self.refresh_metadata(now, missing);
        self.add_partitions(to_add);
        for ((leader, _), batches) in rounds {
            self.send_batches(leader, batches);
        }
        wake
    }

    /// Encodes `batches` and sends them to `leader` in as few requests as fit.
    fn send_batches(&mut self, leader: i32, batches: Vec<ProducerBatch>) {
        let mut request = Vec::new();
        let mut size = REQUEST_OVERHEAD;
        for mut batch in batches {
            let bytes = match batch.encode(&mut self.compressor) {
                Ok(bytes) => bytes,
                Err(error) => {
                    self.sequencer.on_response(
                        &batch.tp,
                        batch.stamp,
                        Outcome::Rejected,
                        false,
                        false,
                    );
                    self.fail(batch, error);
                    continue;
                }
            };
            let add = bytes.len() + PER_PARTITION_OVERHEAD + batch.tp.topic.len();
            if !request.is_empty() && size + add > self.config.max_request_size {
                self.dispatch(leader, std::mem::take(&mut request));
                size = REQUEST_OVERHEAD;
            }
            size += add;
            request.push((batch, bytes));
        }
        if !request.is_empty() {
            self.dispatch(leader, request);
        }
    }

    /// Starts one ProduceRequest.
    fn dispatch(&mut self, leader: i32, items: Vec<(ProducerBatch, bytes::Bytes)>) {
        let records: i32 = items.iter().map(|(batch, _)| batch.record_count()).sum();
        let timeout = self.config.request_timeout;
        let acks = self.config.acks.wire();
        let transactional_id = self.txn.as_ref().map(|t| t.transactional_id());
        let max_version = self
            .txn
            .as_ref()
            .map_or(MAX_PRODUCE_VERSION, |t| t.max_produce_version())
            .min(MAX_PRODUCE_VERSION);
        let request = produce_request(&items, acks, timeout, transactional_id);
        let id = self.next_request;
        self.next_request += 1;
        let span = tracing::debug_span!("produce", broker = leader, batches = items.len(), records);
        self.in_flight
            .insert(id, items.into_iter().map(|(batch, _)| batch).collect());
        let cluster = self.cluster.clone();
        self.events.push(
            async move {
                let conn = match cluster.connection(leader).await {
                    Ok(conn) => conn,
                    Err(e) => {
                        return Event::Produce {
                            request: id,
                            result: Err(e),
                            sent: false,
                        }
                    }
                };
                let version = match conn.version_of::<ProduceRequest>() {
                    Ok(v) => v.min(max_version),
                    Err(e) => {
                        return Event::Produce {
                            request: id,
                            result: Err(e),
                            sent: false,
                        }
                    }
                };
                let result = if acks == 0 {
                    // The broker does not answer: done once queued, offsets unknown (as Java).
                    conn.send_without_response(&request, version).map(|()| None)
                } else {
                    conn.send_at(&request, version, timeout).await.map(Some)
                };
                Event::Produce {
                    request: id,
                    result,
                    sent: true,
                }
            }
            .instrument(span)
            .boxed(),
        );
    }

    async fn handle(&mut self, event: Event) {
        match event {
            Event::Produce {
                request,
                result,
                sent,
            } => self.on_produce(request, result, sent).await,
            Event::Metadata => {
                self.refreshing = false;
                self.last_refresh = Instant::now();
            }
            Event::Identity(result) => self.on_identity(result),
            Event::Added(partitions, result) => self.on_added(partitions, result),
        }
    }

    async fn on_produce(
        &mut self,
        request: u64,
        result: Result<Option<ProduceResponse>>,
        sent: bool,
    ) {
        let Some(batches) = self.in_flight.remove(&request) else {
            return;
        };
        let now = Instant::now();
        let mut stale: HashMap<Arc<str>, Error> = HashMap::new();
        for batch in batches {
            let outcome = match &result {
                Err(error) => Err(error.clone()),
                Ok(None) => Ok(Ack {
                    base_offset: -1,
                    log_append_time: -1,
                }),
                Ok(Some(response)) => partition_result(response, &batch.tp),
            };
            if let Err(error) = &outcome {
                stale
                    .entry(Arc::clone(&batch.tp.topic))
                    .or_insert_with(|| error.clone());
            }
            self.settle(batch, outcome, sent, now);
        }
        for (topic, error) in stale {
            self.cluster.on_error(&topic, &error).await;
        }
    }

    /// Applies one attempt's outcome to `batch`.
    fn settle(&mut self, mut batch: ProducerBatch, result: Result<Ack>, sent: bool, now: Instant) {
        let outcome = match &result {
            Ok(_) => Outcome::Written,
            Err(error) => {
                if sent && is_indefinite(error) {
                    batch.possibly_written = true;
                }
                classify(error)
            }
        };
        let backoff = self.backoff(batch.attempts);
        let in_time = now + backoff < batch.deadline;
        let may_retry = batch.attempts < self.config.retries && in_time;
        // Out of time for a retry: that is a delivery timeout, whatever the last error was.
        let result = match result {
            Err(error) if outcome == Outcome::Retriable && !in_time => Err(Error::Timeout {
                what: format!(
                    "delivery of {} record(s) to {} (last error: {error})",
                    batch.record_count(),
                    batch.tp
                ),
                after: self.config.delivery_timeout,
            }),
            other => other,
        };
        let verdict = self.sequencer.on_response(
            &batch.tp,
            batch.stamp,
            outcome,
            may_retry,
            batch.possibly_written,
        );
        match (verdict, result) {
            (Verdict::Complete, Ok(ack)) => batch.complete(ack),
            (Verdict::Retry, Err(error)) => {
                tracing::debug!(partition = %batch.tp, %error, attempt = batch.attempts + 1, ?backoff, "retrying batch");
                batch.attempts += 1;
                batch.retry_at = Some(now + backoff);
                batch.last_error = Some(error);
                self.requeue(batch);
            }
            (_, Err(error)) => {
                tracing::debug!(partition = %batch.tp, %error, "batch failed");
                self.fail(batch, error);
            }
            // The machine never turns success into anything but Complete.
            (_, Ok(ack)) => batch.complete(ack),
        }
    }

    fn requeue(&mut self, batch: ProducerBatch) {
        let acc = Arc::clone(&self.acc);
        let mut state = acc.lock();
        let Some(queue) = state.queue_mut(&batch.tp) else {
            // A batch's partition is never negative.
            let error = Error::kafka(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION, batch.tp.to_string());
            batch.fail(error);
            return;
        };
        let stamp = batch.stamp;
        let sequencer = &self.sequencer;
        queue.requeue(batch, |other| {
            sequencer.requeue_before(stamp.as_ref(), other.stamp.as_ref())
        });
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let max = self.config.retry_backoff_max.max(self.config.retry_backoff);
        let base = self
            .config
            .retry_backoff
            .saturating_mul(1u32 << attempts.min(20))
            .min(max);
        base.mul_f64(0.8 + 0.4 * fastrand::f64())
    }

    /// Refreshes metadata of topics without a known leader, and of every topic in use when
    /// older than `metadata_max_age`. One refresh at a time.
    fn refresh_metadata(&mut self, now: Instant, mut topics: HashSet<Arc<str>>) {
        if self.refreshing {
            return;
        }
        if now.duration_since(self.last_refresh) >= self.config.metadata_max_age {
            topics.extend(self.acc.lock().topics.iter().map(|t| Arc::clone(&t.name)));
            self.last_refresh = now;
        }
        if topics.is_empty() {
            return;
        }
        self.refreshing = true;
        let cluster = self.cluster.clone();
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        self.events.push(
            async move {
                if let Err(error) = cluster.refresh(&topics).await {
                    tracing::debug!(%error, ?topics, "metadata refresh failed");
                }
                Event::Metadata
            }
            .boxed(),
        );
    }

    /// Takes a transactional producer's identity from its transaction manager, which owns
    /// InitProducerId (with the transactional id) and epoch bumps.
    fn sync_transaction_identity(&mut self) {
        let Some(txn) = &self.txn else { return };
        if let Some(identity) = txn.identity() {
            let identity = ProducerIdentity {
                id: identity.id,
                epoch: identity.epoch,
            };
            if self.sequencer.producer() != Some(identity) {
                self.sequencer.set_producer(identity);
            }
        }
        if self
            .sequencer
            .identity_request()
            .is_some_and(|r| matches!(r, IdentityRequest::Bump(_)))
        {
            // A broken sequence chain inside a transaction: the transaction must be aborted,
            // and the abort bumps the epoch (KIP-360).
            txn.need_epoch_bump();
        }
    }

    /// Starts AddPartitionsToTxn for partitions about to get their first batch of the
    /// transaction; their batches wait until it succeeds.
    fn add_partitions(&mut self, partitions: Vec<TopicPartition>) {
        let Some(txn) = &self.txn else { return };
        if self.adding || partitions.is_empty() {
            return;
        }
        self.adding = true;
        let txn = Arc::clone(txn);
        self.events.push(
            async move {
                let result = txn.add_partitions(&partitions).await;
                Event::Added(partitions, result)
            }
            .instrument(tracing::debug_span!("add_partitions_to_txn"))
            .boxed(),
        );
    }

    /// AddPartitionsToTxn's answer: on failure the partitions' queued batches fail (the
    /// transaction is now abortable or the producer fenced).
    fn on_added(&mut self, partitions: Vec<TopicPartition>, result: Result<()>) {
        self.adding = false;
        let Err(error) = result else { return };
        tracing::debug!(%error, "AddPartitionsToTxn failed");
        let mut failed: Vec<ProducerBatch> = Vec::new();
        {
            let mut state = self.acc.lock();
            for tp in &partitions {
                if let Some(queue) = state.queue_mut(tp) {
                    failed.extend(queue.ready.drain(..));
                }
            }
        }
        for batch in failed {
            self.sequencer
                .on_abandoned(&batch.tp, batch.stamp, batch.possibly_written);
            self.fail(batch, error.clone());
        }
    }

    /// Fails `batch`; in a transaction that spoils the transaction.
    fn fail(&self, batch: ProducerBatch, error: Error) {
        if let Some(txn) = &self.txn {
            txn.send_failed(&error);
        }
        batch.fail(error);
    }

    /// Starts InitProducerId when the sequencer needs an identity.
    fn request_identity(&mut self, now: Instant) {
        if self.txn.is_some() {
            return;
        }
        if self.identity.pending || self.identity.retry_at.is_some_and(|at| at > now) {
            return;
        }
        let Some(request) = self.sequencer.identity_request() else {
            return;
        };
        self.identity.pending = true;
        self.identity.retry_at = None;
        let cluster = self.cluster.clone();
        let timeout = self.config.request_timeout;
        self.events.push(
            async move {
                let mut result = init_producer_id(&cluster, request, timeout).await;
                if let (IdentityRequest::Bump(_), Err(error)) = (request, &result) {
                    if !error.is_retriable() {
                        // No KIP-360 bump on this broker: a fresh producer id does as well.
                        tracing::debug!(%error, "epoch bump refused, asking for a new producer id");
                        result =
                            init_producer_id(&cluster, IdentityRequest::Initial, timeout).await;
                    }
                }
                Event::Identity(result)
            }
            .instrument(tracing::debug_span!("init_producer_id", ?request))
            .boxed(),
        );
    }

    fn on_identity(&mut self, result: Result<ProducerIdentity>) {
        self.identity.pending = false;
        match result {
            Ok(identity) => {
                tracing::debug!(
                    producer_id = identity.id,
                    epoch = identity.epoch,
                    "producer identity"
                );
                self.identity.failures = 0;
                self.sequencer.set_producer(identity);
            }
            Err(error) if error.is_retriable() => {
                self.identity.failures += 1;
                let backoff = self.backoff(self.identity.failures);
                tracing::debug!(%error, ?backoff, "InitProducerId failed, retrying");
                self.identity.retry_at = Some(Instant::now() + backoff);
            }
            Err(error) => {
                // CLUSTER_AUTHORIZATION_FAILED (no IdempotentWrite ACL), a broker without
                // InitProducerId: nothing can ever be sent.
                tracing::error!(%error, "the idempotent producer cannot get a producer id");
                self.acc.set_fatal(error.clone());
                for batch in self.acc.lock().take_all() {
                    batch.fail(error.clone());
                }
            }
        }
    }
}

/// Compression of sealed batches on tokio's blocking threads, a few at a time.
///
/// Why: compressing a batch takes milliseconds (lz4_flex does ~450 MB/s); done on the sender
/// task, it held up every response and request behind it. A batch is handed out as soon as it
/// is sealed and comes back compressed ([`ProducerBatch::is_ready`]); the sender still sends
/// each partition's batches in queue order, so only the work moves, not the order.
struct Compressing {
    /// Jobs running.
    running: Arc<AtomicUsize>,
    /// At most this many at once: more than the cores would only queue.
    max: usize,
    /// Compressors of finished jobs (each keeps its codec's tables), for the next ones.
    idle: Arc<Mutex<Vec<Compressor>>>,
}

impl Compressing {
    fn new() -> Self {
        Compressing {
            running: Arc::new(AtomicUsize::new(0)),
            max: std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4)),
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Starts compressing `batch` unless it needs none or is done already. Returns false when
    /// no more jobs may start now.
    fn start(&self, batch: &mut ProducerBatch, acc: &Arc<Accumulator>) -> bool {
        if self.running.load(Ordering::Acquire) >= self.max {
            return false;
        }
        let Some((writer, job)) = batch.start_compression() else {
            return true;
        };
        self.running.fetch_add(1, Ordering::AcqRel);
        let done = JobDone {
            running: Arc::clone(&self.running),
            acc: Arc::clone(acc),
        };
        let idle = Arc::clone(&self.idle);
        tokio::task::spawn_blocking(move || {
            let taken = idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let mut compressor = taken.unwrap_or_default();
            job.deliver(super::batch::seal(writer, &mut compressor, done.acc.pool()));
            idle.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(compressor);
        });
        true
    }
}

/// Ends a compression job however it ends (a panic included): frees its place, then wakes the
/// sender to send the batch and start the next job. A job that never gave its place back
/// would stop every later compression.
struct JobDone {
    running: Arc<AtomicUsize>,
    acc: Arc<Accumulator>,
}

impl Drop for JobDone {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
        self.acc.wake.notify_one();
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_of_optional_instants() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        assert_eq!(earliest(Some(later), Some(now)), Some(now));
        assert_eq!(earliest(None, Some(now)), Some(now));
        assert_eq!(earliest(Some(later), None), Some(later));
        assert_eq!(earliest(None, None), None);
    }
}
