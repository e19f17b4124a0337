//! Suppliers in Postgres: who replenishes a SKU, how long they take, the
//! smallest line they accept, and how they hear of a purchase order.

use std::time::SystemTime;

use sqlx::PgPool;

use super::{CatalogError, PageQuery, PageSize, PageToken};
use crate::domain::SupplierId;

/// A supplier to create or update.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSupplier {
    /// The key.
    pub supplier_id: SupplierId,
    /// Display name (also in the notification's text), 1-256 characters.
    pub name: String,
    /// Days from submitting a PO to its arrival (>= 0).
    pub lead_time_days: i32,
    /// Fewest units one PO line may ask for (0: no minimum).
    pub min_order_quantity: i64,
    /// http:// URL notified of each created or changed PO; empty: none.
    pub notify_url: String,
    /// Whether the reorder check submits its POs at once (else they wait as drafts).
    pub auto_submit: bool,
    /// Service level in (0.5, 1); None: the global default.
    pub service_level: Option<f64>,
}

/// A supplier as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Supplier {
    /// The key.
    pub supplier_id: String,
    /// Display name.
    pub name: String,
    /// Lead time in days.
    pub lead_time_days: i32,
    /// Minimum units per line.
    pub min_order_quantity: i64,
    /// Notification URL ("" for none).
    pub notify_url: String,
    /// Auto-submit.
    pub auto_submit: bool,
    /// Service level, if not the global default.
    pub service_level: Option<f64>,
    /// First written.
    pub create_time: SystemTime,
    /// Last written.
    pub update_time: SystemTime,
}

#[derive(sqlx::FromRow)]
struct Row {
    supplier_id: String,
    name: String,
    lead_time_days: i32,
    min_order_quantity: i64,
    notify_url: String,
    auto_submit: bool,
    service_level: Option<f64>,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
}

impl From<Row> for Supplier {
    fn from(r: Row) -> Self {
        Supplier {
            supplier_id: r.supplier_id,
            name: r.name,
            lead_time_days: r.lead_time_days,
            min_order_quantity: r.min_order_quantity,
            notify_url: r.notify_url,
            auto_submit: r.auto_submit,
            service_level: r.service_level,
            create_time: r.create_time.into(),
            update_time: r.update_time.into(),
        }
    }
}

const COLUMNS: &str = "supplier_id, name, lead_time_days, min_order_quantity, notify_url, auto_submit, \
                       service_level, create_time, update_time";

/// Supplier table access.
#[derive(Clone)]
pub struct SupplierStore {
    pool: PgPool,
}

impl SupplierStore {
    /// Access through `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Creates or updates a supplier; returns it as stored.
    pub async fn upsert(&self, s: &NewSupplier) -> Result<Supplier, CatalogError> {
        let row: Row = sqlx::query_as(&format!(
            "INSERT INTO suppliers (supplier_id, name, lead_time_days, min_order_quantity, notify_url, auto_submit,
                                    service_level)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (supplier_id) DO UPDATE SET name = EXCLUDED.name,
                 lead_time_days = EXCLUDED.lead_time_days, min_order_quantity = EXCLUDED.min_order_quantity,
                 notify_url = EXCLUDED.notify_url, auto_submit = EXCLUDED.auto_submit,
                 service_level = EXCLUDED.service_level, update_time = now()
             RETURNING {COLUMNS}"
        ))
        .bind(s.supplier_id.as_str())
        .bind(&s.name)
        .bind(s.lead_time_days)
        .bind(s.min_order_quantity)
        .bind(&s.notify_url)
        .bind(s.auto_submit)
        .bind(s.service_level)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.into())
    }

    /// One supplier; NotFound when there is none.
    pub async fn get(&self, id: &SupplierId) -> Result<Supplier, CatalogError> {
        let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM suppliers WHERE supplier_id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(Into::into).ok_or_else(|| CatalogError::NotFound(format!("supplier {id}")))
    }

    /// A page of suppliers in key order, after `after`; the token is set when more follow.
    pub async fn list(
        &self,
        size: PageSize,
        after: Option<&str>,
    ) -> Result<(Vec<Supplier>, Option<PageToken>), CatalogError> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM suppliers WHERE $1::text IS NULL OR supplier_id > $1 ORDER BY supplier_id LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(size.get()) + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut suppliers: Vec<Supplier> = rows.into_iter().map(Into::into).collect();
        let next = if suppliers.len() > size.get() as usize {
            suppliers.truncate(size.get() as usize);
            suppliers.last().map(|s| PageToken::after_key(PageQuery::Suppliers, &s.supplier_id))
        } else {
            None
        };
        Ok((suppliers, next))
    }
}
