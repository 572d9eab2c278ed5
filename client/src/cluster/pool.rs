//! One connection per broker, re-made after failures with exponential backoff and jitter.
//!
//! A slot holds at most one live connection. When it fails, the next caller waits out the
//! backoff (doubling from `reconnect_backoff` up to `reconnect_backoff_max`, ±20% jitter so
//! a fleet of clients does not reconnect in lockstep) before dialling again. Callers of one
//! slot queue on its async lock while it connects, so one broker gets one connection attempt
//! at a time, however many requests want it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::conn::{ConnectOptions, Connection};
use crate::error::Result;

/// Reconnect timing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// The wait before attempt number `failures + 1`.
    pub(crate) fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let exp = self.initial.saturating_mul(1u32 << (failures - 1).min(20));
        let base = exp.min(self.max);
        // ±20% jitter.
        base.mul_f64(0.8 + 0.4 * fastrand::f64())
    }
}

#[derive(Debug)]
struct SlotState {
    conn: Option<Arc<Connection>>,
    failures: u32,
    last_attempt: Option<Instant>,
}

/// The connection slot of one broker address.
#[derive(Debug)]
pub(crate) struct Slot {
    addr: String,
    state: Mutex<SlotState>,
}

impl Slot {
    pub(crate) fn new(addr: String) -> Self {
        Slot {
            addr,
            state: Mutex::new(SlotState {
                conn: None,
                failures: 0,
                last_attempt: None,
            }),
        }
    }

    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// The live connection, connecting (after any backoff) if there is none.
    ///
    /// Cancel safety: dropping the future while it connects abandons that attempt; the slot
    /// stays usable.
    pub(crate) async fn get(
        &self,
        options: &ConnectOptions,
        backoff: Backoff,
    ) -> Result<Arc<Connection>> {
        let mut state = self.state.lock().await;
        if let Some(conn) = &state.conn {
            if !conn.is_closed() {
                return Ok(Arc::clone(conn));
            }
            state.conn = None;
            // A connection that worked and then broke counts as one failure, so the first
            // reconnect is quick and a flapping broker still backs off.
            state.failures = state.failures.max(1);
        }
        if let Some(last) = state.last_attempt {
            let ready_at = last + backoff.delay(state.failures);
            tokio::time::sleep_until(ready_at).await;
        }
        state.last_attempt = Some(Instant::now());
        match Connection::connect(&self.addr, options).await {
            Ok(conn) => {
                let conn = Arc::new(conn);
                state.conn = Some(Arc::clone(&conn));
                state.failures = 0;
                Ok(conn)
            }
            Err(e) => {
                state.failures = state.failures.saturating_add(1);
                Err(e)
            }
        }
    }

    /// The current connection if it is live, without connecting.
    pub(crate) async fn live(&self) -> Option<Arc<Connection>> {
        let state = self.state.lock().await;
        state.conn.as_ref().filter(|c| !c.is_closed()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let b = Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(1),
        };
        assert_eq!(b.delay(0), Duration::ZERO);
        for _ in 0..100 {
            let first = b.delay(1);
            assert!(
                first >= Duration::from_millis(40) && first <= Duration::from_millis(60),
                "{first:?}"
            );
            let third = b.delay(3);
            assert!(
                third >= Duration::from_millis(160) && third <= Duration::from_millis(240),
                "{third:?}"
            );
            let capped = b.delay(30);
            assert!(
                capped >= Duration::from_millis(800) && capped <= Duration::from_millis(1200),
                "{capped:?}"
            );
        }
    }
}
