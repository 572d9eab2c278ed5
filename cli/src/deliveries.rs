//! Waiting for the broker's acknowledgements while records are still being sent.
//!
//! `produce` and `bench produce` hand every [`DeliveryFuture`] to one background task that
//! awaits them in send order, counting successes and keeping the first error. In order is
//! enough: a later record that completes first is just counted a little later. The send loop
//! never blocks on an acknowledgement (that would send one record per round trip), yet it can
//! stop early once a delivery has failed, and the progress bar can read the count.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use sluice_client::producer::DeliveryFuture;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What the deliveries came to.
#[derive(Debug)]
pub(crate) struct Summary {
    /// Records the broker acknowledged.
    pub(crate) delivered: u64,
    /// Records whose delivery failed.
    pub(crate) failed: u64,
    /// The first failure, as text.
    pub(crate) first_error: Option<String>,
}

/// The background task that awaits deliveries; see the module docs.
#[derive(Debug)]
pub(crate) struct Deliveries {
    tx: mpsc::UnboundedSender<DeliveryFuture>,
    task: JoinHandle<Summary>,
    delivered: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
}

impl Deliveries {
    /// Starts the task; must be called inside the runtime.
    pub(crate) fn start() -> Self {
        // Unbounded is bounded in practice: `send` waits while the producer's buffer memory
        // is full, so at most a buffer's worth of records is ever unacknowledged.
        let (tx, mut rx) = mpsc::unbounded_channel::<DeliveryFuture>();
        let delivered = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let (count, flag) = (Arc::clone(&delivered), Arc::clone(&failed));
        let task = tokio::spawn(async move {
            let mut summary = Summary {
                delivered: 0,
                failed: 0,
                first_error: None,
            };
            while let Some(delivery) = rx.recv().await {
                match delivery.await {
                    Ok(_) => {
                        summary.delivered += 1;
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        summary.failed += 1;
                        flag.store(true, Ordering::Relaxed);
                        summary.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            summary
        });
        Deliveries {
            tx,
            task,
            delivered,
            failed,
        }
    }

    /// Hands over the delivery of a record that was just sent.
    pub(crate) fn push(&self, delivery: DeliveryFuture) {
        // The task only ends after `finish` drops the sender, so this cannot fail; if it ever
        // did, the record still goes out and is merely not counted.
        let _ = self.tx.send(delivery);
    }

    /// The count of records acknowledged so far, shared (for a progress bar).
    pub(crate) fn delivered(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.delivered)
    }

    /// Whether any delivery has failed yet.
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Waits for every delivery handed over and sums them up.
    pub(crate) async fn finish(self) -> Summary {
        drop(self.tx);
        match self.task.await {
            Ok(summary) => summary,
            // The task does not panic; should it, nothing is known to be delivered.
            Err(e) => Summary {
                delivered: 0,
                failed: 1,
                first_error: Some(format!("the delivery task failed: {e}")),
            },
        }
    }
}
