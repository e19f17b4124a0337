//! What the gRPC handlers call: suggestions, reorder checks and purchase
//! orders of one store.

use std::sync::Arc;

use sqlx::PgPool;

use super::check::{CheckOutcome, run_check};
use super::orders::PurchaseOrders;
use super::suggest::{self, Scope, Suggestion};
use super::{ReplenishmentError, ReplenishmentSettings};
use crate::reservation::Engine;

/// Replenishment of one store. Cheap to clone.
#[derive(Clone)]
pub struct Replenishment {
    db: PgPool,
    orders: PurchaseOrders,
    settings: ReplenishmentSettings,
}

impl Replenishment {
    /// Replenishment over `db`, moving stock through `engine`.
    pub fn new(db: PgPool, engine: Arc<Engine>, settings: ReplenishmentSettings) -> Self {
        Self { orders: PurchaseOrders::new(db.clone(), engine), db, settings }
    }

    /// The settings in force.
    pub fn settings(&self) -> &ReplenishmentSettings {
        &self.settings
    }

    /// Purchase orders.
    pub fn orders(&self) -> &PurchaseOrders {
        &self.orders
    }

    /// The suggestions for `scope` (one query; see suggest.rs).
    pub async fn suggestions(&self, scope: &Scope<'_>) -> Result<Vec<Suggestion>, ReplenishmentError> {
        let mut conn = self.db.acquire().await?;
        // Boxed: the query's future nests deep enough that the handler's
        // async block, laid out around it, passed the compiler's depth limit.
        Ok(Box::pin(suggest::suggestions(&mut conn, scope, &self.settings)).await?)
    }

    /// A reorder check over every SKU-location now.
    pub async fn run_check(&self) -> Result<CheckOutcome, ReplenishmentError> {
        Box::pin(run_check(&self.db, &self.orders, &self.settings, None)).await
    }

    /// Whether a supplier exists.
    pub async fn supplier_exists(&self, supplier_id: &str) -> Result<bool, ReplenishmentError> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM suppliers WHERE supplier_id = $1)")
            .bind(supplier_id)
            .fetch_one(&self.db)
            .await?)
    }
}
