//! Releases expired holds on idle SKUs. Busy SKUs do not need it (every
//! script releases the expired holds of the partitions it touches); the
//! sweeper makes availability and channels reflect an expiry promptly where
//! nothing else touches the partition.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Engine, EngineError};

/// The periodic expiry sweep.
pub struct Sweeper {
    engine: Arc<Engine>,
    /// Time between sweeps; an expired hold is released within about this long.
    interval: Duration,
}

impl Sweeper {
    /// A sweeper over `engine`'s partitions every `interval`.
    pub fn new(engine: Arc<Engine>, interval: Duration) -> Self {
        Self { engine, interval }
    }

    /// One sweep: finds the partitions with expired holds and releases them
    /// all. Returns how many holds were released.
    pub async fn try_execute_task(&self) -> Result<u64, EngineError> {
        if !self.engine.is_ready() {
            return Ok(0);
        }
        let batch = self.engine.settings().expiry_batch;
        let mut released = 0u64;
        for p in self.engine.partitions_due().await? {
            loop {
                let n = self.engine.expire_partition(p).await?;
                released += u64::from(n);
                if n < batch {
                    break;
                }
            }
        }
        Ok(released)
    }

    /// Sweeps until `stop` is cancelled. Errors (Redis down) are logged and
    /// the next tick tries again.
    pub async fn run_until_stopped(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.try_execute_task().await {
                Ok(0) => {}
                Ok(n) => {
                    if let Some(m) = self.engine.metrics() {
                        m.sweeper_released.inc_by(n);
                    }
                    tracing::debug!(released = n, "expired holds released");
                }
                Err(e) => tracing::warn!(error = %e, "expiry sweep failed"),
            }
        }
    }
}
