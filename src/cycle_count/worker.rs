//! The background side of cycle counting: the daily ABC recompute, led by
//! one replica at a time (a Postgres advisory lock of its own, held for the
//! computation), and the gauges, kept fresh on every replica.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::service::refresh_gauges;
use super::{CycleCountSettings, classes};
use crate::metrics::Metrics;
use crate::reconcile::LeaderLock;

/// How often the worker looks (the classes are computed again only once
/// they are `abc_interval` old; the gauges every time).
const TICK: Duration = Duration::from_secs(30);

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbcWorkerOutcome {
    /// The classes are recent enough.
    Fresh,
    /// Another replica holds the lock (and computes them).
    NotLeader,
    /// This replica computed the classes of this many SKUs.
    Computed(usize),
}

/// The ABC recompute worker.
pub struct AbcWorker {
    db: PgPool,
    /// The advisory lock key: per store (Redis prefix), distinct from the
    /// reconciler's.
    lock_key: i64,
    settings: CycleCountSettings,
    metrics: Arc<Metrics>,
}

impl AbcWorker {
    /// A worker for the store under `prefix`.
    pub fn new(db: PgPool, prefix: &str, settings: CycleCountSettings, metrics: Arc<Metrics>) -> Self {
        let lock_key = i64::from(crc32fast::hash(format!("stockd:abc:{prefix}").as_bytes()));
        Self { db, lock_key, settings, metrics }
    }

    /// Refreshes the gauges, and computes the classes when they are older
    /// than `abc_interval` (or were never computed) and this replica gets
    /// the lock.
    pub async fn try_execute_task(&self) -> Result<AbcWorkerOutcome, sqlx::Error> {
        refresh_gauges(&self.db, &self.metrics).await;
        if !self.stale().await? {
            return Ok(AbcWorkerOutcome::Fresh);
        }
        let Some(lock) = LeaderLock::try_acquire(&self.db, self.lock_key).await? else {
            return Ok(AbcWorkerOutcome::NotLeader);
        };
        // Another replica may have finished just before the lock was taken.
        let outcome = match self.stale().await {
            Ok(true) => classes::recompute_classes(&self.db, &self.settings.split, self.settings.window_days)
                .await
                .map(AbcWorkerOutcome::Computed),
            Ok(false) => Ok(AbcWorkerOutcome::Fresh),
            Err(e) => Err(e),
        };
        lock.release().await;
        outcome
    }

    async fn stale(&self) -> Result<bool, sqlx::Error> {
        Ok(match classes::computed_at(&self.db).await? {
            None => true,
            Some(at) => SystemTime::now().duration_since(at).unwrap_or_default() >= self.settings.abc_interval,
        })
    }

    /// Runs every `TICK` until `stop`; errors (Postgres down) are logged and
    /// the next tick tries again.
    pub async fn run_until_stopped(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.try_execute_task().await {
                Ok(AbcWorkerOutcome::Computed(n)) => tracing::info!(skus = n, "ABC classes computed"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "ABC recompute failed; retrying"),
            }
        }
    }
}
