//! The reorder check: suggestions below their reorder point become draft PO
//! lines, one PO per supplier and location (merged into its open draft,
//! else a new one), with a notification queued for each PO created or
//! changed; auto-submit suppliers' drafts are then submitted.
//!
//! One check at a time per store (a Postgres advisory lock held for the
//! transaction): the RPC on any replica and the leader's worker may both
//! start one, and the second then sees the first's lines. The suggestions are computed in
//! the same transaction, so "an open PO already covers it" and "on order"
//! are read under the lock, and a SKU-location never gets a second line.

use std::collections::BTreeSet;

use sqlx::{PgConnection, PgPool};

use super::orders::{self, PurchaseOrder, PurchaseOrders, new_po_id};
use super::suggest::{self, Scope};
use super::{ReplenishmentError, ReplenishmentSettings};
use crate::domain::PoId;

/// What one check did.
#[derive(Debug, Default)]
pub struct CheckOutcome {
    /// SKU-locations assessed.
    pub assessed: usize,
    /// The POs created or given new lines, as they stand after the check
    /// (auto-submitted ones submitted).
    pub changed: Vec<PurchaseOrder>,
}

/// Runs a check over `only` (the SKU-locations the ledger says changed) or,
/// with None, every SKU-location.
pub async fn run_check(
    db: &PgPool,
    orders: &PurchaseOrders,
    settings: &ReplenishmentSettings,
    only: Option<&[(String, String)]>,
) -> Result<CheckOutcome, ReplenishmentError> {
    let mut tx = db.begin().await?;
    // Advisory locks are database-wide; the key names the schema, so stores
    // sharing a database (a schema each) do not wait for each other.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('stockd:reorder-check:' || current_schema()))")
        .execute(&mut *tx)
        .await?;
    let scope = Scope { only, ..Scope::default() };
    let suggestions = Box::pin(suggest::suggestions(&mut tx, &scope, settings)).await?;
    let assessed = suggestions.len();
    let mut touched: Vec<String> = Vec::new();
    for ((supplier, location), lines) in suggest::to_order(&suggestions) {
        touched.extend(add_to_draft(&mut tx, &supplier, &location, &lines).await?);
    }
    // Drafts of auto-submit suppliers, these and any left by a check that
    // stopped before submitting them.
    let auto: Vec<String> = sqlx::query_scalar(
        "SELECT po.po_id FROM purchase_orders po JOIN suppliers s ON s.supplier_id = po.supplier_id
         WHERE po.status = 'DRAFT' AND s.auto_submit ORDER BY po.po_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    for id in &auto {
        let Ok(id) = PoId::parse(id.as_str()) else { continue };
        // A submit that fails here is recorded or not at all (see orders.rs):
        // the worker finishes it, and the check still reports its POs.
        if let Err(e) = Box::pin(orders.submit(&id)).await {
            tracing::warn!(po = %id, error = %e, "auto-submit did not finish; the worker retries it");
        }
    }
    let mut conn = db.acquire().await?;
    let changed = orders::load(&mut conn, &touched).await?;
    if !changed.is_empty() {
        tracing::info!(pos = changed.len(), assessed, "reorder check ordered");
    }
    Ok(CheckOutcome { assessed, changed })
}

/// Adds lines (sku, quantity) to the open draft of `supplier` at
/// `location`, creating it when there is none, and queues its notification.
/// Returns the PO id when a line was added.
async fn add_to_draft(
    tx: &mut PgConnection,
    supplier: &str,
    location: &str,
    lines: &[(String, i64)],
) -> Result<Option<String>, ReplenishmentError> {
    // Under the row lock: a submit of that draft meanwhile either finished
    // first (the draft is gone: a new one is made) or waits for this.
    let open: Option<String> = sqlx::query_scalar(
        "SELECT po_id FROM purchase_orders WHERE supplier_id = $1 AND location_id = $2 AND status = 'DRAFT'
         FOR UPDATE",
    )
    .bind(supplier)
    .bind(location)
    .fetch_optional(&mut *tx)
    .await?;
    let (po_id, event) = match open {
        Some(id) => (id, "changed"),
        None => {
            let id = new_po_id();
            sqlx::query(
                "INSERT INTO purchase_orders (po_id, supplier_id, location_id, status) VALUES ($1, $2, $3, 'DRAFT')",
            )
            .bind(&id)
            .bind(supplier)
            .bind(location)
            .execute(&mut *tx)
            .await?;
            (id, "created")
        }
    };
    let skus: Vec<&str> = lines.iter().map(|(s, _)| s.as_str()).collect();
    let quantities: Vec<i64> = lines.iter().map(|(_, q)| *q).collect();
    // A SKU already on this draft keeps its line (the suggestion query saw
    // it as covered; this guards a draft that changed in between).
    let added: BTreeSet<String> = sqlx::query_scalar(
        "INSERT INTO purchase_order_lines (po_id, sku, quantity)
         SELECT $1, s, q FROM UNNEST($2::text[], $3::bigint[]) AS u(s, q)
         ON CONFLICT (po_id, sku) DO NOTHING
         RETURNING sku",
    )
    .bind(&po_id)
    .bind(&skus)
    .bind(&quantities)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    if added.is_empty() {
        return Ok(None);
    }
    sqlx::query("UPDATE purchase_orders SET updated_at = now() WHERE po_id = $1")
        .bind(&po_id)
        .execute(&mut *tx)
        .await?;
    // In the same transaction as the lines: a PO is never changed without
    // its notification queued (when the supplier wants one).
    sqlx::query(
        "INSERT INTO po_notifications (po_id, event)
         SELECT $1, $2 FROM suppliers WHERE supplier_id = $3 AND notify_url <> ''",
    )
    .bind(&po_id)
    .bind(event)
    .bind(supplier)
    .execute(&mut *tx)
    .await?;
    Ok(Some(po_id))
}
