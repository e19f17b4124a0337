//! SKUs in Postgres.

use std::time::SystemTime;

use sqlx::PgPool;

use super::{CatalogError, Money, PageQuery, PageSize, PageToken};
use crate::domain::Sku;

/// A SKU to create or update.
#[derive(Debug, Clone)]
pub struct NewSku {
    /// The key.
    pub sku: Sku,
    /// Display name, 1-256 characters.
    pub name: String,
    /// Selling price.
    pub unit_price: Money,
    /// Landed cost.
    pub unit_cost: Money,
    /// Who supplies it, if known.
    pub supplier_id: Option<String>,
    /// Static reorder point, if any.
    pub reorder_point: Option<i64>,
    /// Units per case (>= 1).
    pub case_pack: i32,
    /// Units per day to assume while the SKU has too little history of its
    /// own (see replenishment/policy.rs), if any.
    pub fallback_velocity: Option<f64>,
}

/// A SKU as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SkuRecord {
    /// The key.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Decimal text.
    pub unit_price: String,
    /// Decimal text.
    pub unit_cost: String,
    /// Supplier, if any.
    pub supplier_id: Option<String>,
    /// Static reorder point, if any.
    pub reorder_point: Option<i64>,
    /// Units per case.
    pub case_pack: i32,
    /// Fallback velocity (units per day), if any.
    pub fallback_velocity: Option<f64>,
    /// First written.
    pub create_time: SystemTime,
    /// Last written.
    pub update_time: SystemTime,
}

const COLUMNS: &str = "sku, name, unit_price::text AS unit_price, unit_cost::text AS unit_cost, supplier_id, \
                       reorder_point, case_pack, fallback_velocity, create_time, update_time";

/// SKU table access.
#[derive(Clone)]
pub struct SkuStore {
    pool: PgPool,
}

#[derive(sqlx::FromRow)]
struct Row {
    sku: String,
    name: String,
    unit_price: String,
    unit_cost: String,
    supplier_id: Option<String>,
    reorder_point: Option<i64>,
    case_pack: i32,
    fallback_velocity: Option<f64>,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
}

impl From<Row> for SkuRecord {
    fn from(r: Row) -> Self {
        SkuRecord {
            sku: r.sku,
            name: r.name,
            unit_price: r.unit_price,
            unit_cost: r.unit_cost,
            supplier_id: r.supplier_id,
            reorder_point: r.reorder_point,
            case_pack: r.case_pack,
            fallback_velocity: r.fallback_velocity,
            create_time: r.create_time.into(),
            update_time: r.update_time.into(),
        }
    }
}

impl SkuStore {
    /// Access through `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Creates or updates a SKU; returns it as stored.
    pub async fn upsert(&self, s: &NewSku) -> Result<SkuRecord, CatalogError> {
        let sql = format!(
            "INSERT INTO skus (sku, name, unit_price, unit_cost, supplier_id, reorder_point, case_pack,
                               fallback_velocity)
             VALUES ($1, $2, $3::numeric, $4::numeric, $5, $6, $7, $8)
             ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name, unit_price = EXCLUDED.unit_price,
                 unit_cost = EXCLUDED.unit_cost, supplier_id = EXCLUDED.supplier_id,
                 reorder_point = EXCLUDED.reorder_point, case_pack = EXCLUDED.case_pack,
                 fallback_velocity = EXCLUDED.fallback_velocity, update_time = now()
             RETURNING {COLUMNS}"
        );
        let row: Row = sqlx::query_as(&sql)
            .bind(s.sku.as_str())
            .bind(&s.name)
            .bind(s.unit_price.as_str())
            .bind(s.unit_cost.as_str())
            .bind(&s.supplier_id)
            .bind(s.reorder_point)
            .bind(s.case_pack)
            .bind(s.fallback_velocity)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.into())
    }

    /// One SKU.
    pub async fn get(&self, sku: &Sku) -> Result<SkuRecord, CatalogError> {
        let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM skus WHERE sku = $1"))
            .bind(sku.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(Into::into).ok_or_else(|| CatalogError::NotFound(format!("sku {sku}")))
    }

    /// A page of SKUs in key order, after `after` (a decoded page token); the
    /// token is set when more follow.
    pub async fn list(
        &self,
        size: PageSize,
        after: Option<&str>,
    ) -> Result<(Vec<SkuRecord>, Option<PageToken>), CatalogError> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM skus WHERE $1::text IS NULL OR sku > $1 ORDER BY sku LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(size.get()) + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut skus: Vec<SkuRecord> = rows.into_iter().map(Into::into).collect();
        let next = if skus.len() > size.get() as usize {
            skus.truncate(size.get() as usize);
            skus.last().map(|s| PageToken::after_key(PageQuery::Skus, &s.sku))
        } else {
            None
        };
        Ok((skus, next))
    }

    /// Every SKU key, for re-registering them with the engine.
    pub async fn all_keys(&self) -> Result<Vec<String>, CatalogError> {
        Ok(sqlx::query_scalar("SELECT sku FROM skus ORDER BY sku").fetch_all(&self.pool).await?)
    }
}
