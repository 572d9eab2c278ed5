//! Watches the mock's group coordinator from outside while a leave is measured: the group's
//! state changes, and the moments heartbeats arrive at the coordinator.
//!
//! Heartbeats are seen through the fault API: before the leave, one zero-length delay rule per
//! expected heartbeat is injected for Heartbeat requests to the coordinator. Each request
//! takes exactly one such rule (a request takes at most one delay), so each drop of
//! `pending_faults()` is one heartbeat arriving, and a zero delay changes nothing else. The
//! thread polls every 100 µs, so its times are good to about 0.2 ms.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sluice_mock::{ApiKey, Fault, GroupState, MockCluster};

/// How many heartbeat rules to inject: more than the members send while one leave is
/// measured.
const HEARTBEAT_RULES: usize = 2000;

/// What the coordinator saw.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// When each heartbeat arrived.
    pub(crate) heartbeats: Vec<Instant>,
    /// When the group entered each state.
    pub(crate) states: Vec<(Instant, GroupState)>,
}

impl Observed {
    /// The first time at or after `after` that the group was in one of `states`.
    pub(crate) fn entered(&self, after: Instant, states: &[GroupState]) -> Option<Instant> {
        self.states
            .iter()
            .find(|(t, s)| *t >= after && states.contains(s))
            .map(|(t, _)| *t)
    }
}

/// A running monitor.
#[derive(Debug)]
pub(crate) struct Monitor {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<Observed>,
}

impl Monitor {
    /// Injects the heartbeat rules and starts watching `group`.
    pub(crate) fn start(cluster: Arc<MockCluster>, group: &str) -> Monitor {
        let coordinator = cluster.group_coordinator(group);
        for _ in 0..HEARTBEAT_RULES {
            cluster.inject(
                Fault::delay(Duration::ZERO)
                    .api(ApiKey::Heartbeat)
                    .broker(coordinator),
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let group = group.to_owned();
        let thread = thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                let mut observed = Observed::default();
                let mut pending = cluster.pending_faults();
                let mut state = None;
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    let left = cluster.pending_faults();
                    for _ in left..pending {
                        observed.heartbeats.push(now);
                    }
                    pending = left;
                    let current = cluster.describe_group(&group).map(|g| g.state);
                    if current != state {
                        if let Some(s) = current {
                            observed.states.push((now, s));
                        }
                        state = current;
                    }
                    thread::sleep(Duration::from_micros(100));
                }
                cluster.clear_faults();
                observed
            }
        });
        Monitor { stop, thread }
    }

    /// Stops watching (and removes the rules left).
    pub(crate) fn stop(self) -> Observed {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}
