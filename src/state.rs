//! What the handlers share.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::PgPool;

use crate::catalog::{LocationCache, LocationStore, SkuStore, SupplierStore};
use crate::metrics::Metrics;
use crate::reconcile::ReconcileStats;
use crate::replenishment::Replenishment;
use crate::reservation::Engine;

/// Shared handles, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The reservation engine (Redis).
    pub engine: Arc<Engine>,
    /// SKU table.
    pub skus: SkuStore,
    /// Location table.
    pub locations: LocationStore,
    /// Locations in allocation order, in memory.
    pub location_cache: LocationCache,
    /// Supplier table.
    pub suppliers: SupplierStore,
    /// Suggestions, reorder checks and purchase orders.
    pub replenishment: Replenishment,
    /// The system of record.
    pub db: PgPool,
    /// Reconciler counters (lag, events).
    pub reconcile: Arc<ReconcileStats>,
    /// The exported series.
    pub metrics: Arc<Metrics>,
    /// Whether the hot path was ready at the last health probe (false from
    /// the moment a shutdown starts).
    pub hot_path: Arc<AtomicBool>,
}

impl AppState {
    /// Whether the hot path is ready (Redis answers and holds the store).
    pub fn hot_path_up(&self) -> bool {
        self.hot_path.load(Ordering::Relaxed) && self.engine.is_ready()
    }
}
