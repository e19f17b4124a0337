//! What the handlers share.

use std::sync::Arc;

use sqlx::PgPool;

use crate::catalog::{LocationCache, LocationStore, SkuStore};
use crate::reconcile::ReconcileStats;
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
    /// The system of record.
    pub db: PgPool,
    /// Reconciler counters (lag, events).
    pub reconcile: Arc<ReconcileStats>,
}
