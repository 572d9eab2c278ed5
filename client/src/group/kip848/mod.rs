//! The KIP-848 consumer group protocol: the member heartbeats (ConsumerGroupHeartbeat) and the
//! coordinator computes the assignment and hands it out incrementally.
//!
//! Why a protocol of its own: with the classic protocol every rebalance stops the whole group
//! (JoinGroup, a leader's assignment, SyncGroup); with KIP-848 there is no group-wide barrier.
//! Each member heartbeats on the interval the coordinator sets, gets its target partitions in
//! the answer, gives up what it must first (the application sees the same
//! [`GroupEvent::Revoked`](super::GroupEvent::Revoked) as with the classic protocol and can
//! commit), reports what it owns, and receives partitions once their previous owner has
//! released them. Offsets are committed with the member epoch in place of the generation.
//!
//! This module is the heartbeat side: [`member`] is the state machine (what to send, what an
//! answer changes), [`wire`] the request and response, and [`Kip848`] a task that drives them
//! and hands [`Change`]s to the [`GroupConsumer`](super::GroupConsumer), which reconciles (it
//! owns the fetcher and the events).
//!
//! References: KIP-848 (the protocol), KIP-1082 (client-chosen member ids,
//! ConsumerGroupHeartbeat v1), Apache Kafka's `ConsumerMembershipManager`.

pub(crate) mod member;
mod wire;

use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kafka_protocol::messages::ConsumerGroupHeartbeatRequest;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::coordinator::Coordinator;
use crate::cluster::Backoff;
use crate::error::{Error, KafkaCode, Result};
use member::{Assignment, Beat, Member, Profile};

/// What the heartbeat task needs from the consumer that runs it.
pub(crate) trait App: Send + Sync + Debug {
    /// Wakes the application's `poll`: a change is waiting.
    fn wake(&self);
    /// When the application last polled (`max.poll.interval.ms`).
    fn last_poll(&self) -> Instant;
}

/// Timing of the heartbeat task.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) max_poll_interval: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) backoff: Backoff,
}

/// What the application must act on.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// The membership cannot go on (a misconfiguration the coordinator refuses).
    Fatal(Error),
    /// Fenced, unknown to the coordinator, or left for not polling: every partition is lost;
    /// after giving them up the application calls [`Kip848::rejoin`].
    Lost,
    /// The coordinator's latest assignment for this member.
    Target(Assignment),
}

#[derive(Debug)]
struct State {
    member: Member,
    fatal: Option<Error>,
    /// Left the group for exceeding `max.poll.interval.ms`.
    poll_timeout: bool,
    closed: bool,
}

#[derive(Debug)]
struct Inner {
    coordinator: Coordinator,
    settings: Settings,
    state: Mutex<State>,
    /// Wakes the heartbeat task (something must be said now).
    wake: Notify,
    app: Arc<dyn App>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn send(&self, beat: &Beat) -> Result<member::Answer> {
        let group = self.coordinator.key();
        let response = self
            .coordinator
            .send(self.settings.request_timeout, |version| {
                Ok::<ConsumerGroupHeartbeatRequest, Error>(wire::request(group, beat, version))
            })
            .await?;
        wire::answer(group, response)
    }
}

/// A KIP-848 membership: the heartbeat task and the state it shares with the consumer.
#[derive(Debug)]
pub(crate) struct Kip848 {
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl Kip848 {
    /// Whether the coordinator offers ConsumerGroupHeartbeat at a version sluice speaks; if
    /// not, the consumer stays with the classic protocol.
    pub(crate) async fn offered(coordinator: &Coordinator) -> Result<bool> {
        match coordinator
            .version_of::<ConsumerGroupHeartbeatRequest>()
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::BrokerTooOld { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Starts the heartbeat task; it heartbeats once there is a subscription.
    pub(crate) fn start(
        coordinator: Coordinator,
        profile: Profile,
        settings: Settings,
        app: Arc<dyn App>,
    ) -> Kip848 {
        let inner = Arc::new(Inner {
            coordinator,
            settings,
            state: Mutex::new(State {
                member: Member::new(profile),
                fatal: None,
                poll_timeout: false,
                closed: false,
            }),
            wake: Notify::new(),
            app,
        });
        let task = tokio::spawn(run(Arc::clone(&inner)));
        Kip848 { inner, task }
    }

    pub(crate) fn subscribe(&self, topics: &std::collections::BTreeSet<String>) {
        self.inner.lock().member.subscribe(topics);
        self.inner.wake.notify_one();
    }

    /// The next change for the application, if any.
    pub(crate) fn take_change(&self) -> Option<Change> {
        let mut st = self.inner.lock();
        if let Some(e) = &st.fatal {
            return Some(Change::Fatal(e.clone()));
        }
        if st.member.lost || st.poll_timeout {
            return Some(Change::Lost);
        }
        st.member.take_target().map(Change::Target)
    }

    /// A target the application could not apply yet; it comes back with the next change.
    pub(crate) fn put_back(&self, target: Assignment) {
        self.inner.lock().member.put_back(target);
    }

    /// After a [`Change::Lost`] was handled: join again (epoch 0, same member id).
    pub(crate) fn rejoin(&self) {
        let mut st = self.inner.lock();
        st.member.rejoin();
        st.poll_timeout = false;
        drop(st);
        self.inner.wake.notify_one();
    }

    /// The application owns `owned` now (reconciled): tell the coordinator at once.
    pub(crate) fn ack(&self, owned: Assignment) {
        self.inner.lock().member.ack(owned);
        self.inner.wake.notify_one();
    }

    /// (member id, member epoch): what commits and transactions identify the member with.
    pub(crate) fn identity(&self) -> (String, i32) {
        let st = self.inner.lock();
        (st.member.member_id.clone(), st.member.epoch)
    }

    /// Whether the member is in the group (joined and not lost).
    pub(crate) fn is_member(&self) -> bool {
        let st = self.inner.lock();
        st.member.epoch > 0 && !st.member.lost && !st.poll_timeout
    }

    /// Stops heartbeating and leaves the group (epoch -1; -2 for a static member, whose
    /// partitions then wait for it until its session ends).
    ///
    /// Cancel safety: the heartbeat task is stopped first; if cut short, the coordinator
    /// removes the member when its session ends.
    pub(crate) async fn leave(&self) -> Result<()> {
        let beat = {
            let mut st = self.inner.lock();
            st.closed = true;
            (st.member.epoch > 0 && !st.member.lost).then(|| st.member.leave_beat())
        };
        self.task.abort();
        let Some(beat) = beat else {
            return Ok(());
        };
        match self.inner.send(&beat).await {
            // Already out of the group (its session ended, or it was fenced): left.
            Err(e)
                if matches!(
                    e.code(),
                    Some(KafkaCode::UNKNOWN_MEMBER_ID | KafkaCode::FENCED_MEMBER_EPOCH)
                ) =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }
}

impl Drop for Kip848 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Heartbeats while subscribed and in good standing; leaves when the application stops
/// polling for longer than `max.poll.interval.ms`.
async fn run(inner: Arc<Inner>) {
    let settings = inner.settings;
    let mut failures = 0u32;
    loop {
        let beat = {
            let st = inner.lock();
            if st.closed {
                return;
            }
            let idle = st.fatal.is_some()
                || st.member.lost
                || st.poll_timeout
                || !st.member.wants_heartbeats();
            (!idle).then(|| st.member.beat())
        };
        let Some(beat) = beat else {
            inner.wake.notified().await;
            continue;
        };
        if beat.epoch > 0 && inner.app.last_poll().elapsed() > settings.max_poll_interval {
            tracing::warn!(
                group = %inner.coordinator.key(),
                "no poll for longer than max.poll.interval.ms: leaving the group"
            );
            let leave = inner.lock().member.leave_beat();
            if let Err(e) = inner.send(&leave).await {
                tracing::debug!(error = %e, "leaving after a poll timeout failed");
            }
            inner.lock().poll_timeout = true;
            inner.app.wake();
            continue;
        }
        match inner.send(&beat).await {
            Ok(answer) => {
                failures = 0;
                let news = answer.assignment.is_some();
                inner.lock().member.on_answer(&beat, answer);
                if news {
                    inner.app.wake();
                }
            }
            Err(e) => {
                match e.code() {
                    Some(KafkaCode::FENCED_MEMBER_EPOCH | KafkaCode::UNKNOWN_MEMBER_ID) => {
                        tracing::info!(group = %inner.coordinator.key(), error = %e, "fenced: partitions lost, rejoining");
                        inner.lock().member.on_fenced();
                        inner.app.wake();
                    }
                    Some(code) if is_fatal(code) => {
                        inner.lock().fatal = Some(e);
                        inner.app.wake();
                    }
                    _ => {
                        inner.coordinator.on_error(&e);
                        inner.lock().member.on_failure();
                        failures += 1;
                        tracing::debug!(group = %inner.coordinator.key(), error = %e, "heartbeat failed");
                        tokio::time::sleep(settings.backoff.delay(failures)).await;
                    }
                }
                continue;
            }
        }
        let (interval, urgent) = {
            let st = inner.lock();
            (st.member.interval, st.member.is_urgent())
        };
        if !urgent {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = inner.wake.notified() => {}
            }
        }
    }
}

/// Heartbeat errors no retry fixes (librdkafka's list, and the classic classifier's fatal
/// codes): the configuration or the group's type is wrong.
fn is_fatal(code: KafkaCode) -> bool {
    code.is_fatal()
        || matches!(
            code,
            KafkaCode::INVALID_REQUEST
                | KafkaCode::GROUP_AUTHORIZATION_FAILED
                | KafkaCode::GROUP_MAX_SIZE_REACHED
                | KafkaCode::UNRELEASED_INSTANCE_ID
                | KafkaCode::GROUP_ID_NOT_FOUND
        )
}
