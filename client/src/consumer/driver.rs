//! The consumer's background half: the state all its tasks share, and the driver task that
//! finds each partition's leader and starting offset and starts one fetcher per leader.
//!
//! The application side never waits on the network except for data: `assign`, `seek` and
//! `pause` change the shared state and wake the driver, which does the metadata and
//! ListOffsets round trips; fetchers ([`super::fetcher`]) do the fetching. A failed lookup is
//! retried after a backoff that grows per partition (KIP-580), so one missing topic does not
//! hold up the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::fetcher;
use super::offsets::{list_offsets, topics_of, Found, Lookup, Offset};
use super::state::{State, Tp};
use crate::cluster::{Backoff, Cluster};
use crate::config::{ConsumerConfig, IsolationLevel, OffsetReset};
use crate::error::{Error, KafkaCode};

/// The fetch settings, taken from the config once.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) isolation: IsolationLevel,
    pub(crate) reset: OffsetReset,
    pub(crate) min_bytes: i32,
    pub(crate) max_bytes: usize,
    pub(crate) partition_max_bytes: usize,
    pub(crate) max_wait: Duration,
    pub(crate) check_crcs: bool,
    pub(crate) request_timeout: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) rack: String,
}

impl Settings {
    pub(crate) fn new(config: &ConsumerConfig) -> Self {
        Settings {
            isolation: config.isolation_level(),
            reset: config.auto_offset_reset(),
            min_bytes: i32::try_from(config.fetch_min_bytes()).unwrap_or(i32::MAX),
            max_bytes: config.fetch_max_bytes(),
            partition_max_bytes: config.max_partition_fetch_bytes(),
            max_wait: config.fetch_max_wait(),
            check_crcs: config.check_crcs(),
            request_timeout: config.client().request_timeout(),
            backoff: Backoff {
                initial: config.client().retry_backoff(),
                max: config.client().retry_backoff_max(),
            },
            rack: config.client_rack().unwrap_or_default().to_owned(),
        }
    }

    /// The offset `auto.offset.reset` starts a partition at, or `None` for `none`.
    pub(crate) fn reset_offset(&self) -> Option<Offset> {
        match self.reset {
            OffsetReset::Earliest => Some(Offset::Beginning),
            OffsetReset::Latest => Some(Offset::End),
            OffsetReset::Error => None,
        }
    }
}

/// What the application side, the driver and the fetchers share.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) cluster: Cluster,
    pub(crate) settings: Settings,
    /// Bumped when fetchers may have new work: a partition became fetchable, or room freed.
    pub(crate) fetch_wake: watch::Sender<()>,
    /// Wakes the driver: a partition needs its leader or offset looked up.
    pub(crate) driver_wake: Notify,
}

impl Shared {
    pub(crate) fn new(state: State, cluster: Cluster, settings: Settings) -> Self {
        Shared {
            state: Mutex::new(state),
            cluster,
            settings,
            fetch_wake: watch::Sender::new(()),
            driver_wake: Notify::new(),
        }
    }

    /// The state. Never held across an `.await`.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the driver and every fetcher.
    pub(crate) fn wake_all(&self) {
        self.driver_wake.notify_one();
        self.fetch_wake.send_replace(());
    }

    /// When a partition that failed `failures` times may be tried again.
    pub(crate) fn retry_at(&self, failures: u32) -> Instant {
        Instant::now() + self.settings.backoff.delay(failures.saturating_add(1))
    }

    /// Handles a retriable error for `tps`: marks the topic's metadata stale, and the
    /// partitions' leaders unknown until the driver looks them up again after a backoff.
    pub(crate) async fn lose_leaders(&self, tps: &[(Tp, u64)], error: &Error) {
        for topic in topics_of(tps.iter().map(|(tp, _)| tp)) {
            self.cluster.on_error(&topic, error).await;
        }
        {
            let mut st = self.lock();
            for (tp, epoch) in tps {
                let failures = st.partitions.get(tp).map_or(0, |p| p.failures);
                let at = self.retry_at(failures);
                st.lose_leader(tp, *epoch, at);
            }
        }
        self.driver_wake.notify_one();
    }
}

/// The work found in one pass.
struct Work {
    need_leader: Vec<(Tp, u64)>,
    lookups: HashMap<i32, Vec<Lookup>>,
    leaders: Vec<i32>,
}

fn collect(st: &mut State) -> Work {
    let now = Instant::now();
    let mut work = Work {
        need_leader: Vec::new(),
        lookups: HashMap::new(),
        leaders: Vec::new(),
    };
    for (tp, p) in &mut st.partitions {
        if let Some(leader) = p.leader {
            if !work.leaders.contains(&leader) {
                work.leaders.push(leader);
            }
        }
        if p.failed || p.retry_at.is_some_and(|t| t > now) {
            continue;
        }
        match (p.leader, p.reset) {
            (None, _) => work.need_leader.push((tp.clone(), p.epoch)),
            (Some(leader), Some(offset)) if !p.busy => {
                p.busy = true;
                let lookup = Lookup {
                    tp: tp.clone(),
                    epoch: p.epoch,
                    offset,
                    leader_epoch: p.leader_epoch,
                };
                work.lookups.entry(leader).or_default().push(lookup);
            }
            _ => {}
        }
    }
    work
}

/// Runs until the consumer is closed.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut fetchers: HashMap<i32, JoinHandle<()>> = HashMap::new();
    loop {
        let work = {
            let mut st = shared.lock();
            if st.closed {
                break;
            }
            collect(&mut st)
        };
        for leader in &work.leaders {
            if fetchers.get(leader).is_none_or(JoinHandle::is_finished) {
                let task = tokio::spawn(fetcher::run(Arc::clone(&shared), *leader));
                let mut st = shared.lock();
                st.tasks.retain(|t| !t.is_finished());
                st.tasks.push(task.abort_handle());
                drop(st);
                fetchers.insert(*leader, task);
            }
        }
        let found_leaders = find_leaders(&shared, work.need_leader).await;
        let lookups = join_all(
            work.lookups
                .into_iter()
                .map(|(leader, lookups)| look_up(&shared, leader, lookups)),
        );
        let resolved = lookups.await.into_iter().any(|r| r);
        if found_leaders || resolved {
            shared.fetch_wake.send_replace(());
            shared.lock().wake();
            // New leaders need fetchers, new leaders and resets need lookups: go again now.
            continue;
        }
        let next_retry = shared.lock().next_retry();
        match next_retry {
            Some(at) => {
                tokio::select! {
                    () = shared.driver_wake.notified() => {}
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            None => shared.driver_wake.notified().await,
        }
    }
    for fetcher in fetchers.values() {
        fetcher.abort();
    }
}

/// Looks up the leaders of `need`; true if any was found.
async fn find_leaders(shared: &Shared, need: Vec<(Tp, u64)>) -> bool {
    let mut found = false;
    for topic in topics_of(need.iter().map(|(tp, _)| tp)) {
        let of_topic: Vec<(Tp, u64)> = need
            .iter()
            .filter(|(tp, _)| tp.0 == topic)
            .cloned()
            .collect();
        match shared.cluster.topic(&topic).await {
            Ok(info) => {
                let mut missing = Vec::new();
                {
                    let mut st = shared.lock();
                    for (tp, epoch) in &of_topic {
                        let Some(p) = st.partitions.get_mut(tp).filter(|p| p.epoch == *epoch)
                        else {
                            continue;
                        };
                        match info.partition(tp.1).filter(|i| i.leader >= 0) {
                            Some(i) => {
                                p.leader = Some(i.leader);
                                p.leader_epoch = i.leader_epoch;
                                found = true;
                            }
                            None => missing.push((tp.clone(), *epoch)),
                        }
                    }
                }
                if !missing.is_empty() {
                    let why = Error::kafka(
                        KafkaCode::LEADER_NOT_AVAILABLE,
                        format!("no leader for a partition of {topic}"),
                    );
                    shared.lose_leaders(&missing, &why).await;
                }
            }
            Err(e) if e.is_retriable() => shared.lose_leaders(&of_topic, &e).await,
            Err(e) => {
                let mut st = shared.lock();
                for (tp, epoch) in &of_topic {
                    st.fail(tp, *epoch, e.clone());
                }
            }
        }
    }
    found
}

/// Runs one broker's offset lookups; true if any partition got its offset.
async fn look_up(shared: &Shared, leader: i32, lookups: Vec<Lookup>) -> bool {
    let result = list_offsets(&shared.cluster, leader, shared.settings.isolation, &lookups).await;
    let mut lost = Vec::new();
    let mut lost_error = None;
    let mut resolved = false;
    {
        let mut st = shared.lock();
        for lookup in &lookups {
            if let Some(p) = st
                .partitions
                .get_mut(&lookup.tp)
                .filter(|p| p.epoch == lookup.epoch)
            {
                p.busy = false;
            }
        }
        match result {
            Ok(answers) => {
                for (lookup, found) in answers {
                    match found {
                        Found::At(offset) => {
                            st.resolve(&lookup.tp, lookup.epoch, offset);
                            resolved = true;
                        }
                        Found::NoneAfterTimestamp => {
                            if let Some(p) = st
                                .partitions
                                .get_mut(&lookup.tp)
                                .filter(|p| p.epoch == lookup.epoch)
                            {
                                p.reset = Some(Offset::End);
                                resolved = true;
                            }
                        }
                        Found::Failed(e) if e.is_retriable() => {
                            lost.push((lookup.tp, lookup.epoch));
                            lost_error = Some(e);
                        }
                        Found::Failed(e) => st.fail(&lookup.tp, lookup.epoch, e),
                    }
                }
            }
            Err(e) if e.is_retriable() => {
                lost.extend(lookups.iter().map(|l| (l.tp.clone(), l.epoch)));
                lost_error = Some(e);
            }
            Err(e) => {
                for lookup in &lookups {
                    st.fail(&lookup.tp, lookup.epoch, e.clone());
                }
            }
        }
    }
    if let Some(e) = lost_error {
        shared.lose_leaders(&lost, &e).await;
    }
    resolved
}
