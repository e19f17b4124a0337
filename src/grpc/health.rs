//! Keeps `grpc.health.v1` current. The hot path (ReservationService,
//! StockService, and the overall "") follows Redis only, so a Postgres outage
//! cannot take checkout down; CatalogService, CycleCountService and ReplenishmentService follow
//! Postgres.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::reservation::Engine;

/// Services whose health follows Redis.
pub const HOT_PATH: [&str; 3] = ["", "inventory.v1.ReservationService", "inventory.v1.StockService"];
/// Services whose health follows Postgres.
pub const POSTGRES: [&str; 3] =
    ["inventory.v1.CatalogService", "inventory.v1.CycleCountService", "inventory.v1.ReplenishmentService"];
/// Every name the health service answers for.
pub const HEALTH_SERVICES: [&str; 6] = [HOT_PATH[0], HOT_PATH[1], HOT_PATH[2], POSTGRES[0], POSTGRES[1], POSTGRES[2]];

/// Probes the backends and reports each service's status.
pub struct HealthMonitor {
    reporter: HealthReporter,
    engine: Arc<Engine>,
    db: PgPool,
    interval: Duration,
    /// The hot path's readiness, shared with /readyz.
    hot_path: Arc<AtomicBool>,
}

fn serving(up: bool) -> ServingStatus {
    if up { ServingStatus::Serving } else { ServingStatus::NotServing }
}

impl HealthMonitor {
    /// A monitor reporting through `reporter` every `interval`.
    pub fn new(
        reporter: HealthReporter,
        engine: Arc<Engine>,
        db: PgPool,
        interval: Duration,
        hot_path: Arc<AtomicBool>,
    ) -> Self {
        Self { reporter, engine, db, interval, hot_path }
    }

    /// Probes once and updates every status. Returns (redis up, postgres up).
    pub async fn try_execute_task(&self) -> (bool, bool) {
        // Serving needs Redis to answer and to hold the store: a Redis that
        // answers without the generation marker was wiped, and the rebuild
        // is woken at once.
        let redis_up = match self.engine.generation().await {
            Ok(Some(_)) => self.engine.is_ready(),
            Ok(None) => {
                self.engine.set_ready(false);
                false
            }
            Err(_) => false,
        };
        let pg_up = tokio::time::timeout(
            self.interval.max(Duration::from_millis(500)),
            sqlx::query("SELECT 1").execute(&self.db),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        self.hot_path.store(redis_up, Ordering::SeqCst);
        for s in HOT_PATH {
            self.reporter.set_service_status(s, serving(redis_up)).await;
        }
        for s in POSTGRES {
            self.reporter.set_service_status(s, serving(pg_up)).await;
        }
        (redis_up, pg_up)
    }

    /// Probes every interval until stopped, logging changes.
    pub async fn run_until_stopped(self, stop: CancellationToken) {
        let mut last = (true, true);
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let now = self.try_execute_task().await;
            if now.0 != last.0 {
                tracing::warn!(redis_up = now.0, "hot path health changed");
            }
            if now.1 != last.1 {
                tracing::warn!(postgres_up = now.1, "catalog health changed");
            }
            last = now;
        }
    }
}
