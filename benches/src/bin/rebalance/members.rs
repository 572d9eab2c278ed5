//! The group members: sluice's `GroupConsumer` in a tokio task, librdkafka's consumer in a
//! thread. Both commit before partitions are revoked and before they leave, report to the
//! [`Probe`], and leave when told: commit, then the clock starts, then close.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Message};
use sluice_client::config::ConsumerConfig;
use sluice_client::group::{GroupConsumer, GroupEvent};
use sluice_client::KafkaCode;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::probe::Probe;

/// What every member of a run shares.
#[derive(Debug, Clone)]
pub(crate) struct GroupSettings {
    pub(crate) bootstrap: String,
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) assignor: String,
    pub(crate) heartbeat_ms: u64,
    /// How long a leaver waits between its last commit and `close()`, so that records wait
    /// for the next owner in every partition it had: the measurement is then of the
    /// hand-over, not of waiting for the producer.
    pub(crate) backlog: Duration,
}

impl GroupSettings {
    /// The same properties for both clients (Java's defaults but the heartbeat interval; no
    /// auto-commit: the members commit before partitions go).
    fn properties(&self) -> Vec<(&'static str, String)> {
        vec![
            ("bootstrap.servers", self.bootstrap.clone()),
            ("group.id", self.group.clone()),
            ("partition.assignment.strategy", self.assignor.clone()),
            ("session.timeout.ms", "45000".into()),
            ("heartbeat.interval.ms", self.heartbeat_ms.to_string()),
            ("auto.offset.reset", "earliest".into()),
            ("enable.auto.commit", "false".into()),
        ]
    }
}

/// A running member.
#[derive(Debug)]
pub(crate) enum Member {
    Sluice {
        leave: oneshot::Sender<()>,
        task: JoinHandle<Result<(Instant, Instant)>>,
    },
    Librdkafka {
        leave: Arc<AtomicBool>,
        thread: thread::JoinHandle<Result<(Instant, Instant)>>,
    },
}

impl Member {
    /// Tells the member to leave; returns when it called close and when close returned.
    pub(crate) async fn leave(self) -> Result<(Instant, Instant)> {
        match self {
            Member::Sluice { leave, task } => {
                let _ = leave.send(());
                task.await?
            }
            Member::Librdkafka { leave, thread } => {
                leave.store(true, Ordering::SeqCst);
                tokio::task::spawn_blocking(move || {
                    thread
                        .join()
                        .map_err(|_| anyhow!("librdkafka member panicked"))?
                })
                .await?
            }
        }
    }
}

/// Starts a sluice member in slot `slot`.
pub(crate) fn sluice(settings: &GroupSettings, slot: usize, probe: Arc<Probe>) -> Result<Member> {
    let config = ConsumerConfig::from_properties(settings.properties())?;
    let topic = settings.topic.clone();
    let backlog = settings.backlog;
    let (leave, mut leaving) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut consumer = GroupConsumer::new(config).await?;
        consumer.subscribe(&[topic]);
        let mut owned = BTreeSet::new();
        loop {
            tokio::select! {
                event = consumer.poll() => match event? {
                    GroupEvent::Batch(batch) => probe.record(slot, batch.partition(), Instant::now()),
                    GroupEvent::Assigned(added) => {
                        owned.extend(added.iter().map(|(_, p)| *p));
                        probe.set_owned(slot, owned.clone());
                    }
                    GroupEvent::Revoked(gone) => {
                        // The next owner starts where this one stopped.
                        consumer.commit().await.context("commit before revocation")?;
                        for (_, p) in &gone {
                            owned.remove(p);
                        }
                        probe.set_owned(slot, owned.clone());
                    }
                    GroupEvent::Lost(gone) => {
                        for (_, p) in &gone {
                            owned.remove(p);
                        }
                        probe.set_owned(slot, owned.clone());
                    }
                },
                _ = &mut leaving => break,
            }
        }
        // A rebalance still under way (another member left just before) refuses the commit;
        // the next owner then re-reads a few records, which this benchmark does not count.
        if let Err(e) = consumer.commit().await {
            if e.code() != Some(KafkaCode::REBALANCE_IN_PROGRESS) {
                return Err(e).context("commit before leaving");
            }
            eprintln!("member {slot}: commit before leaving refused: {e}");
        }
        tokio::time::sleep(backlog).await;
        let called = Instant::now();
        consumer.close().await?;
        Ok((called, Instant::now()))
    });
    Ok(Member::Sluice { leave, task })
}

/// Commits before librdkafka revokes, and reports the assignment after every change.
struct Reporter {
    probe: Arc<Probe>,
    slot: usize,
}

impl ClientContext for Reporter {}

impl ConsumerContext for Reporter {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            // NoOffset (nothing read since the last commit) is fine; anything else shows up
            // as records read twice, which this benchmark does not check.
            let _ = consumer.commit_consumer_state(CommitMode::Sync);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        let owned: BTreeSet<i32> = consumer
            .assignment()
            .map(|a| a.elements().iter().map(|e| e.partition()).collect())
            .unwrap_or_default();
        self.probe.set_owned(self.slot, owned);
    }
}

/// Starts a librdkafka member in slot `slot`.
pub(crate) fn librdkafka(
    settings: &GroupSettings,
    slot: usize,
    probe: Arc<Probe>,
) -> Result<Member> {
    let mut config = ClientConfig::new();
    for (k, v) in settings.properties() {
        config.set(k, v);
    }
    let consumer: BaseConsumer<Reporter> = config.create_with_context(Reporter {
        probe: Arc::clone(&probe),
        slot,
    })?;
    consumer.subscribe(&[&settings.topic])?;
    let leave = Arc::new(AtomicBool::new(false));
    let backlog = settings.backlog;
    let thread = thread::spawn({
        let leave = Arc::clone(&leave);
        move || {
            while !leave.load(Ordering::SeqCst) {
                if let Some(Ok(message)) = consumer.poll(Duration::from_millis(10)) {
                    probe.record(slot, message.partition(), Instant::now());
                }
            }
            let _ = consumer.commit_consumer_state(CommitMode::Sync);
            thread::sleep(backlog);
            let called = Instant::now();
            // Dropping closes: revoke, LeaveGroup, wait until closed.
            drop(consumer);
            Ok((called, Instant::now()))
        }
    });
    Ok(Member::Librdkafka { leave, thread })
}
