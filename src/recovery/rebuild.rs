//! Checks the generation marker and rebuilds Redis from Postgres when it is
//! missing: at start-up, when a script finds a partition without its marker,
//! and on a periodic check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::load_restore_data;
use crate::reconcile::Reconciler;
use crate::reservation::{Engine, PartitionRestore};

/// How long one rebuild may hold the lock before another process may take over.
const LOCK_TTL: Duration = Duration::from_secs(300);
/// Partitions restored at once.
const PARALLEL_RESTORES: usize = 8;

/// What `ensure` found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryOutcome {
    /// Redis holds the store.
    Present,
    /// This process rebuilt Redis from Postgres.
    Rebuilt {
        /// Partitions written (the rest already had a marker).
        partitions: u32,
        /// Time taken.
        elapsed: Duration,
    },
    /// Another process rebuilt it while this one waited.
    RebuiltElsewhere,
}

/// Keeps Redis holding the store.
pub struct Recovery {
    engine: Arc<Engine>,
    db: PgPool,
    /// Period of the marker check.
    interval: Duration,
}

impl Recovery {
    /// Recovery for `engine`'s store, whose system of record is `db`.
    pub fn new(engine: Arc<Engine>, db: PgPool, interval: Duration) -> Self {
        Self { engine, db, interval }
    }

    /// Makes sure Redis holds the store, rebuilding it if needed. Marks the
    /// engine ready when done.
    pub async fn ensure(&self) -> anyhow::Result<RecoveryOutcome> {
        if self.engine.generation().await?.is_some() {
            self.engine.set_ready(true);
            return Ok(RecoveryOutcome::Present);
        }
        self.engine.set_ready(false);
        let owner = uuid::Uuid::new_v4().to_string();
        if !self.engine.try_lock_rebuild(&owner, LOCK_TTL).await? {
            // Someone else is rebuilding: wait for the marker.
            let deadline = Instant::now() + LOCK_TTL;
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if self.engine.generation().await?.is_some() {
                    self.engine.set_ready(true);
                    return Ok(RecoveryOutcome::RebuiltElsewhere);
                }
            }
            anyhow::bail!("another process held the rebuild lock for {LOCK_TTL:?} without finishing");
        }
        let result = self.rebuild().await;
        if let Err(e) = self.engine.unlock_rebuild().await {
            tracing::warn!(error = %e, "could not release the rebuild lock (it expires by itself)");
        }
        result
    }

    async fn rebuild(&self) -> anyhow::Result<RecoveryOutcome> {
        let started = Instant::now();
        let settings = self.engine.settings().clone();
        let keys = self.engine.keys().clone();
        tracing::warn!("redis does not hold the store (a new store, or redis lost it): rebuilding from postgres");
        // The generation row is held for the whole rebuild: a reconciler
        // batch takes it shared before writing, so none commits between the
        // read below and the new generation, and a batch read from the old
        // Redis is refused afterwards (its generation no longer matches).
        sqlx::query("INSERT INTO store_meta (key, value) VALUES ('generation', '') ON CONFLICT (key) DO NOTHING")
            .execute(&self.db)
            .await
            .context("recording the generation")?;
        let mut tx = self.db.begin().await?;
        sqlx::query("SELECT value FROM store_meta WHERE key = 'generation' FOR UPDATE")
            .execute(&mut *tx)
            .await
            .context("locking the generation")?;
        let data = load_restore_data(&mut tx, &keys, settings.tombstone, settings.operation_retention)
            .await
            .context("reading the system of record")?;
        let generation = uuid::Uuid::new_v4().to_string();
        let empty = PartitionRestore::default();
        let written: Vec<bool> = futures::stream::iter(0..keys.partitions())
            .map(|p| {
                let part = data.get(&p).unwrap_or(&empty);
                let engine = &self.engine;
                let generation = &generation;
                async move { engine.restore_partition(p, generation, part).await }
            })
            .buffer_unordered(PARALLEL_RESTORES)
            .try_collect()
            .await
            .context("restoring partitions")?;
        Reconciler::create_groups(&self.engine).await.context("creating the stream consumer groups")?;
        sqlx::query("UPDATE store_meta SET value = $1 WHERE key = 'generation'")
            .bind(&generation)
            .execute(&mut *tx)
            .await
            .context("recording the generation")?;
        self.engine.set_generation(&generation).await?;
        tx.commit().await.context("recording the generation")?;
        self.engine.set_ready(true);
        let partitions = u32::try_from(written.iter().filter(|w| **w).count()).unwrap_or(u32::MAX);
        let elapsed = started.elapsed();
        tracing::warn!(partitions, ?elapsed, %generation, "redis rebuilt from postgres");
        Ok(RecoveryOutcome::Rebuilt { partitions, elapsed })
    }

    /// Checks every interval, and at once when a call finds a missing
    /// marker; rebuilds when needed. Errors (Postgres down) are retried.
    pub async fn run_until_stopped(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
                _ = self.engine.lost() => {}
            }
            match self.ensure().await {
                Ok(RecoveryOutcome::Present) => {}
                Ok(outcome) => tracing::info!(?outcome, "store restored in redis"),
                Err(e) => tracing::warn!(error = format!("{e:#}"), "generation check failed; retrying"),
            }
        }
    }
}
