//! Benchmarks of sluice. Criterion benches live in `benches/` (`cargo bench -p sluice-benches`);
//! the client throughput benchmark against a local Tansu, side by side with librdkafka and
//! rskafka, is the `throughput` binary (`src/bin/throughput.rs`):
//! `cargo run --release -p sluice-benches --bin throughput -- --help`.

use std::collections::VecDeque;

use futures::FutureExt;
use sluice_client::producer::DeliveryFuture;

/// Delivery futures are checked oldest first, without waiting, as they complete; only past
/// this many unacknowledged ones does a send loop wait for the oldest. Above what sluice's
/// buffer memory (32 MiB) lets through at 100 B, so it does not throttle the producer.
pub const DELIVERY_WINDOW: usize = 1 << 20;

/// Pops the acknowledged deliveries at the front of `pending` (failing on a failed one);
/// waits for the oldest only if `pending` holds [`DELIVERY_WINDOW`] of them.
pub async fn drain_acknowledged(
    pending: &mut VecDeque<DeliveryFuture>,
) -> sluice_client::Result<()> {
    let mut full = pending.len() >= DELIVERY_WINDOW;
    while let Some(oldest) = pending.front_mut() {
        // Unconstrained: polled with no waker, a oneshot under tokio's coop budget would read
        // as pending forever once this never-yielding loop has spent its budget.
        match tokio::task::unconstrained(&mut *oldest).now_or_never() {
            Some(result) => result?,
            None if full => {
                full = false;
                oldest.await?
            }
            None => break,
        };
        pending.pop_front();
    }
    Ok(())
}
