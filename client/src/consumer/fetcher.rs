//! One fetch loop per leader broker: it fetches every fetchable partition the broker leads,
//! one request at a time, while the prefetch buffer has room.
//!
//! Each response is cut into batches ([`super::completed`]) off the lock, then applied under
//! it: data goes to the buffer, the fetch offset moves on. Partition errors are sorted three
//! ways: OFFSET_OUT_OF_RANGE follows `auto.offset.reset`; retriable errors (a moved leader,
//! an unknown partition, a lost connection) send the partition back to the driver for a new
//! leader after a backoff; anything else stops the partition and reaches the application.
//!
//! **Fetch version.** Fetch v13+ names topics by id (KIP-516). sluice sends the negotiated
//! version capped at v12, naming topics: Kafka 4 still serves v4-v12, and ids would tie every
//! fetch to metadata that reports them. Nothing the consumer uses is newer than v12.
//!
//! References: the protocol guide's Fetch; KIP-74 (`max_bytes`), KIP-98 (isolation level),
//! KIP-227 (sessions: not used, each request is a full fetch), KIP-320 (leader epochs).

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::aborted::{AbortedFilter, AbortedTransaction};
use super::buffer::{Completed, Entry};
use super::completed::{cut, Cut};
use super::driver::Shared;
use super::offsets::Offset;
use super::state::{State, Tp};
use crate::config::{IsolationLevel, OffsetReset};
use crate::error::{Error, KafkaCode, Result};

/// The highest Fetch version sluice sends; see the module docs.
pub(crate) const MAX_FETCH_VERSION: i16 = 12;

/// A partition in a fetch request.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub(crate) tp: Tp,
    pub(crate) epoch: u64,
    pub(crate) fetch_offset: i64,
    pub(crate) leader_epoch: i32,
}

/// One request's partitions and the buffer room reserved for its answer.
#[derive(Debug)]
struct Plan {
    parts: Vec<Planned>,
    max_bytes: usize,
}

/// Runs the fetch loop for broker `broker` until the consumer is closed.
pub(crate) async fn run(shared: Arc<Shared>, broker: i32) {
    let mut wake = shared.fetch_wake.subscribe();
    let mut rotation = 0usize;
    loop {
        wake.borrow_and_update();
        let plan = {
            let mut st = shared.lock();
            if st.closed {
                return;
            }
            plan(&mut st, &shared, broker, &mut rotation)
        };
        let Some(plan) = plan else {
            if wake.changed().await.is_err() {
                return;
            }
            continue;
        };
        let result = fetch(&shared, broker, &plan).await;
        let (retry, lost) = match result.and_then(|r| top_level_error(r, broker)) {
            Ok(response) => (None, apply(&shared, &plan, response)),
            Err(e) => (Some(e), None),
        };
        {
            let mut st = shared.lock();
            st.buffer.release(plan.max_bytes);
            if st.fetchers_starved && st.buffer.has_room() {
                st.fetchers_starved = false;
                shared.fetch_wake.send_replace(());
            }
            for p in &plan.parts {
                if let Some(s) = st.partitions.get_mut(&p.tp).filter(|s| s.epoch == p.epoch) {
                    s.busy = false;
                }
            }
        }
        if let Some((tps, e)) = lost {
            shared.lose_leaders(&tps, &e).await;
        }
        if let Some(e) = retry {
            tracing::debug!(broker, error = %e, "fetch failed");
            let tps: Vec<(Tp, u64)> = plan.parts.iter().map(|p| (p.tp.clone(), p.epoch)).collect();
            if e.is_retriable() {
                shared.lose_leaders(&tps, &e).await;
            } else {
                let mut st = shared.lock();
                for (tp, epoch) in &tps {
                    st.fail(tp, *epoch, e.clone());
                }
            }
        }
    }
}

/// Picks the partitions to fetch from `broker` and reserves buffer room, or `None` if there
/// is nothing to fetch or no room. Partitions are rotated between requests: a broker fills a
/// response in request order, so a fixed order could starve the last partitions.
fn plan(st: &mut State, shared: &Shared, broker: i32, rotation: &mut usize) -> Option<Plan> {
    let mut parts: Vec<Planned> = st
        .partitions
        .iter()
        .filter(|(_, p)| p.fetchable_from(broker))
        .map(|(tp, p)| Planned {
            tp: tp.clone(),
            epoch: p.epoch,
            fetch_offset: p.fetch_offset.unwrap_or(0),
            leader_epoch: p.leader_epoch,
        })
        .collect();
    if parts.is_empty() {
        return None;
    }
    // Every broker with partitions to fetch gets a fair share of the buffer bound: one fetch
    // reserving all of `fetch.max.bytes` could otherwise starve the other brokers' fetchers
    // for as long as it keeps re-reserving (found on the mock cluster: with the defaults,
    // 50 MiB of a 64 MiB bound, a second broker was never fetched from).
    let brokers = st
        .partitions
        .values()
        .filter_map(|p| p.leader)
        .collect::<BTreeSet<i32>>()
        .len()
        .max(1);
    let want = shared.settings.max_bytes.min(st.buffer.max() / brokers);
    let Some(max_bytes) = st.buffer.reserve(want) else {
        st.fetchers_starved = true;
        return None;
    };
    parts.sort_by(|a, b| a.tp.cmp(&b.tp));
    *rotation = rotation.wrapping_add(1);
    let n = parts.len();
    parts.rotate_left(*rotation % n);
    for p in &parts {
        if let Some(s) = st.partitions.get_mut(&p.tp) {
            s.busy = true;
        }
    }
    Some(Plan { parts, max_bytes })
}

/// Sends the fetch for `plan` to `broker`.
async fn fetch(shared: &Shared, broker: i32, plan: &Plan) -> Result<FetchResponse> {
    let settings = &shared.settings;
    let clamp = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let partition_max = clamp(settings.partition_max_bytes.min(plan.max_bytes).max(1));
    let mut topics: Vec<FetchTopic> = Vec::new();
    for p in &plan.parts {
        let partition = FetchPartition::default()
            .with_partition(p.tp.1)
            .with_current_leader_epoch(p.leader_epoch)
            .with_fetch_offset(p.fetch_offset)
            .with_last_fetched_epoch(-1)
            .with_log_start_offset(-1)
            .with_partition_max_bytes(partition_max);
        match topics.last_mut().filter(|t| t.topic.0.as_str() == &*p.tp.0) {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(p.tp.0.to_string())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(i32::try_from(settings.max_wait.as_millis()).unwrap_or(i32::MAX))
        .with_min_bytes(settings.min_bytes)
        .with_max_bytes(clamp(plan.max_bytes))
        .with_isolation_level(settings.isolation.wire())
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
        .with_rack_id(StrBytes::from_string(settings.rack.clone()));
    let conn = shared.cluster.connection(broker).await?;
    let version = conn.version_of::<FetchRequest>()?.min(MAX_FETCH_VERSION);
    // The broker may hold the request for max_wait before it answers.
    conn.send_at(
        &request,
        version,
        settings.request_timeout + settings.max_wait,
    )
    .await
}

/// A response-level error (v7+, fetch sessions) fails every partition of the request.
fn top_level_error(response: FetchResponse, broker: i32) -> Result<FetchResponse> {
    match response.error_code {
        0 => Ok(response),
        code => Err(Error::kafka(
            KafkaCode(code),
            format!("Fetch from broker {broker}"),
        )),
    }
}

/// What one partition's answer means, worked out off the lock.
#[derive(Debug)]
pub(crate) enum Outcome {
    Data {
        cut: Cut,
        records: Bytes,
        high_watermark: i64,
        last_stable_offset: i64,
        log_start_offset: i64,
    },
    OutOfRange,
    Retriable(Error),
    Fatal(Error),
}

/// Works out one partition's answer.
pub(crate) fn outcome(
    p: &Planned,
    data: &PartitionData,
    isolation: IsolationLevel,
    check_crcs: bool,
) -> Outcome {
    let code = KafkaCode(data.error_code);
    if code == KafkaCode::OFFSET_OUT_OF_RANGE {
        return Outcome::OutOfRange;
    }
    if !code.is_ok() {
        let error = Error::kafka(
            code,
            format!("Fetch {}-{} at offset {}", p.tp.0, p.tp.1, p.fetch_offset),
        );
        return if code.is_retriable() {
            Outcome::Retriable(error)
        } else {
            Outcome::Fatal(error)
        };
    }
    let mut filter = match isolation {
        IsolationLevel::ReadCommitted => {
            AbortedFilter::read_committed(data.aborted_transactions.iter().flatten().map(|t| {
                AbortedTransaction {
                    producer_id: t.producer_id.0,
                    first_offset: t.first_offset,
                }
            }))
        }
        IsolationLevel::ReadUncommitted => AbortedFilter::read_uncommitted(),
    };
    let records = data.records.clone().unwrap_or_default();
    let cut = cut(&records, p.fetch_offset, &mut filter, check_crcs);
    Outcome::Data {
        cut,
        records,
        high_watermark: data.high_watermark,
        last_stable_offset: data.last_stable_offset,
        log_start_offset: data.log_start_offset,
    }
}

/// Applies one partition's outcome to the state. Returns a retriable error to hand to the
/// driver (after the lock is released).
pub(crate) fn apply_outcome(
    st: &mut State,
    reset: OffsetReset,
    p: &Planned,
    outcome: Outcome,
) -> Option<Error> {
    if !st.is_current(&p.tp, p.epoch) {
        // Sought, paused or unassigned while the fetch was in flight: the answer is stale.
        return None;
    }
    match outcome {
        Outcome::Data {
            cut,
            records,
            high_watermark,
            last_stable_offset,
            log_start_offset,
        } => {
            let moved = cut.next_offset != p.fetch_offset;
            if let Some(s) = st.partitions.get_mut(&p.tp) {
                s.fetch_offset = Some(cut.next_offset);
                s.failures = 0;
            }
            if !cut.batches.is_empty() || moved {
                st.buffer.push(Entry::Data(Completed {
                    tp: p.tp.clone(),
                    epoch: p.epoch,
                    skip_below: p.fetch_offset,
                    batches: cut.batches,
                    next_offset: cut.next_offset,
                    high_watermark,
                    last_stable_offset,
                    log_start_offset,
                    bytes: records.len(),
                }));
            }
            if let Some(error) = cut.error {
                st.fail(&p.tp, p.epoch, error);
            }
            st.wake();
            None
        }
        Outcome::OutOfRange => {
            let offset = match reset {
                OffsetReset::Earliest => Offset::Beginning,
                OffsetReset::Latest => Offset::End,
                OffsetReset::Error => {
                    let error = Error::kafka(
                        KafkaCode::OFFSET_OUT_OF_RANGE,
                        format!(
                            "{}-{} at offset {}, and auto.offset.reset is none",
                            p.tp.0, p.tp.1, p.fetch_offset
                        ),
                    );
                    st.fail(&p.tp, p.epoch, error);
                    return None;
                }
            };
            tracing::info!(topic = %p.tp.0, partition = p.tp.1, offset = p.fetch_offset, ?offset, "fetch offset out of range: resetting");
            st.reset_fetch(&p.tp, p.epoch, offset);
            None
        }
        Outcome::Retriable(error) => Some(error),
        Outcome::Fatal(error) => {
            st.fail(&p.tp, p.epoch, error);
            None
        }
    }
}

/// Applies a whole response. Returns the partitions that lost their leader, with why.
fn apply(shared: &Shared, plan: &Plan, response: FetchResponse) -> Option<(Vec<(Tp, u64)>, Error)> {
    let settings = &shared.settings;
    let mut outcomes: VecDeque<(Planned, Outcome)> = VecDeque::with_capacity(plan.parts.len());
    for p in &plan.parts {
        let data = response
            .responses
            .iter()
            .filter(|t| t.topic.0.as_str() == &*p.tp.0)
            .flat_map(|t| t.partitions.iter())
            .find(|d| d.partition_index == p.tp.1);
        if let Some(data) = data {
            outcomes.push_back((
                p.clone(),
                outcome(p, data, settings.isolation, settings.check_crcs),
            ));
        }
    }
    let mut lost = Vec::new();
    let mut lost_error = None;
    let mut reset = false;
    {
        let mut st = shared.lock();
        for (p, outcome) in outcomes {
            reset |= matches!(outcome, Outcome::OutOfRange);
            if let Some(e) = apply_outcome(&mut st, settings.reset, &p, outcome) {
                lost.push((p.tp.clone(), p.epoch));
                lost_error = Some(e);
            }
        }
    }
    if reset {
        shared.driver_wake.notify_one();
    }
    lost_error.map(|e| (lost, e))
}
