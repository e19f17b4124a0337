//! The baseline stockd is compared with: the seed article's
//! `reserveInventory`, one Postgres transaction per order —
//!
//! ```text
//! BEGIN;
//! SELECT ... FROM inventory WHERE sku = $1 AND location_id = $2 FOR UPDATE;
//! -- available = on_hand - reserved - committed; too little: give up
//! UPDATE inventory SET reserved = reserved + $q WHERE ...;
//! INSERT INTO reservations (...) VALUES (..., now() + interval '30 minutes');
//! COMMIT;
//! ```
//!
//! — run over its own tables in a schema of its own (dropped and created per
//! run), through an sqlx pool with one connection per worker, so that every
//! worker always has a connection just like it always has a gRPC stream.
//! Commit, fulfil and release (for the catalog mix) are written in the same
//! style: lock the order's rows, then the inventory rows, in a fixed order.

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};

/// The result of one reservation attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// Every line is held.
    Yes,
    /// Some line had too little available; nothing is held.
    Insufficient,
}

/// The SQL of each step, with the schema filled in once.
struct Sql {
    lock_level: String,
    hold: String,
    insert_reservation: String,
    lock_order: String,
    commit_level: String,
    fulfil_level: String,
    release_level: String,
    set_status: String,
}

/// The baseline store: a pool and its schema.
pub struct Baseline {
    pool: PgPool,
    schema: String,
    sql: Sql,
}

impl Baseline {
    /// Connects `connections` connections to `database_url`, drops and
    /// creates `schema` with the seed's two tables.
    pub async fn create(database_url: &str, schema: &str, connections: u32) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !schema.is_empty() && schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "--baseline-schema must be letters, digits and _ only"
        );
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(1))
            .min_connections(connections.max(1))
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect(database_url)
            .await
            .with_context(|| format!("connecting the baseline to {database_url}"))?;
        let s = schema;
        for ddl in [
            format!("DROP SCHEMA IF EXISTS {s} CASCADE"),
            format!("CREATE SCHEMA {s}"),
            format!(
                "CREATE TABLE {s}.inventory (
                    sku text NOT NULL,
                    location_id text NOT NULL,
                    on_hand bigint NOT NULL,
                    reserved bigint NOT NULL DEFAULT 0,
                    committed bigint NOT NULL DEFAULT 0,
                    PRIMARY KEY (sku, location_id))"
            ),
            format!(
                "CREATE TABLE {s}.reservations (
                    id bigserial PRIMARY KEY,
                    order_id text NOT NULL,
                    sku text NOT NULL,
                    location_id text NOT NULL,
                    quantity bigint NOT NULL,
                    status text NOT NULL,
                    expires_at timestamptz NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now())"
            ),
            // Commit, fulfil and release find an order's lines by its id.
            format!("CREATE INDEX ON {s}.reservations (order_id)"),
        ] {
            sqlx::query(&ddl).execute(&pool).await.with_context(|| format!("baseline schema: {ddl}"))?;
        }
        let sql = Sql {
            lock_level: format!(
                "SELECT on_hand, reserved, committed FROM {s}.inventory WHERE sku = $1 AND location_id = $2 FOR UPDATE"
            ),
            hold: format!("UPDATE {s}.inventory SET reserved = reserved + $3 WHERE sku = $1 AND location_id = $2"),
            insert_reservation: format!(
                "INSERT INTO {s}.reservations (order_id, sku, location_id, quantity, status, expires_at)
                 VALUES ($1, $2, $3, $4, 'active', now() + make_interval(secs => $5))"
            ),
            lock_order: format!(
                "SELECT sku, location_id, quantity FROM {s}.reservations
                 WHERE order_id = $1 AND status = $2 ORDER BY sku, location_id FOR UPDATE"
            ),
            commit_level: format!(
                "UPDATE {s}.inventory SET reserved = reserved - $3, committed = committed + $3
                 WHERE sku = $1 AND location_id = $2"
            ),
            fulfil_level: format!(
                "UPDATE {s}.inventory SET committed = committed - $3, on_hand = on_hand - $3
                 WHERE sku = $1 AND location_id = $2"
            ),
            release_level: format!(
                "UPDATE {s}.inventory SET reserved = reserved - $3 WHERE sku = $1 AND location_id = $2"
            ),
            set_status: format!("UPDATE {s}.reservations SET status = $3 WHERE order_id = $1 AND status = $2"),
        };
        Ok(Self { pool, schema: schema.to_owned(), sql })
    }

    /// Makes every pool connection live (and its statements prepared on
    /// first use), so the measured phase does not pay for connecting.
    pub async fn warm(&self) -> anyhow::Result<()> {
        let n = self.pool.options().get_max_connections() as usize;
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            held.push(self.pool.acquire().await.context("baseline pool")?);
        }
        Ok(())
    }

    /// Stocks one SKU-location.
    pub async fn stock_one(&self, sku: &str, location: &str, on_hand: i64) -> anyhow::Result<()> {
        let q = format!("INSERT INTO {}.inventory (sku, location_id, on_hand) VALUES ($1, $2, $3)", self.schema);
        sqlx::query(&q).bind(sku).bind(location).bind(on_hand).execute(&self.pool).await?;
        Ok(())
    }

    /// Stocks SKUs `<sku_prefix><i>` for i in 0..skus at every location
    /// `<location_prefix><j>` for j in 1..=locations, in one statement.
    pub async fn stock_many(
        &self,
        sku_prefix: &str,
        skus: usize,
        location_prefix: &str,
        locations: usize,
        on_hand: i64,
    ) -> anyhow::Result<()> {
        let q = format!(
            "INSERT INTO {}.inventory (sku, location_id, on_hand)
             SELECT $1 || i, $2 || j, $3 FROM generate_series(0, $4 - 1) i, generate_series(1, $5) j",
            self.schema
        );
        sqlx::query(&q)
            .bind(sku_prefix)
            .bind(location_prefix)
            .bind(on_hand)
            .bind(i64::try_from(skus)?)
            .bind(i64::try_from(locations)?)
            .execute(&self.pool)
            .await?;
        sqlx::query(&format!("ANALYZE {}.inventory", self.schema)).execute(&self.pool).await?;
        Ok(())
    }

    /// The seed's reserveInventory for every line of one order, in one
    /// transaction. Lines are locked in (sku, location) order so that two
    /// orders cannot deadlock; a short line rolls the whole order back.
    pub async fn reserve(
        &self,
        order_id: &str,
        lines: &mut [(String, String, i64)],
        ttl_s: f64,
    ) -> Result<Reserved, sqlx::Error> {
        lines.sort();
        let mut tx = self.pool.begin().await?;
        for (sku, location, q) in lines.iter() {
            let row: Option<(i64, i64, i64)> =
                sqlx::query_as(&self.sql.lock_level).bind(sku).bind(location).fetch_optional(&mut *tx).await?;
            let available = row.map_or(0, |(on_hand, reserved, committed)| on_hand - reserved - committed);
            if available < *q {
                tx.rollback().await?;
                return Ok(Reserved::Insufficient);
            }
            sqlx::query(&self.sql.hold).bind(sku).bind(location).bind(q).execute(&mut *tx).await?;
            sqlx::query(&self.sql.insert_reservation)
                .bind(order_id)
                .bind(sku)
                .bind(location)
                .bind(q)
                .bind(ttl_s)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Reserved::Yes)
    }

    /// reserved -> committed.
    pub async fn commit(&self, order_id: &str) -> Result<(), sqlx::Error> {
        self.transition(order_id, "active", "committed", &self.sql.commit_level).await
    }

    /// committed -> shipped: committed and on_hand drop.
    pub async fn fulfil(&self, order_id: &str) -> Result<(), sqlx::Error> {
        self.transition(order_id, "committed", "fulfilled", &self.sql.fulfil_level).await
    }

    /// reserved -> available again.
    pub async fn release(&self, order_id: &str) -> Result<(), sqlx::Error> {
        self.transition(order_id, "active", "released", &self.sql.release_level).await
    }

    /// Locks the order's lines in status `from`, applies `level_sql` to each
    /// line's inventory row, and moves the lines to `to`.
    async fn transition(&self, order_id: &str, from: &str, to: &str, level_sql: &str) -> Result<(), sqlx::Error> {
        let mut tx: Transaction<'_, Postgres> = self.pool.begin().await?;
        let lines: Vec<(String, String, i64)> =
            sqlx::query_as(&self.sql.lock_order).bind(order_id).bind(from).fetch_all(&mut *tx).await?;
        if lines.is_empty() {
            tx.rollback().await?;
            return Err(sqlx::Error::RowNotFound);
        }
        for (sku, location, q) in &lines {
            sqlx::query(level_sql).bind(sku).bind(location).bind(q).execute(&mut *tx).await?;
        }
        sqlx::query(&self.sql.set_status).bind(order_id).bind(from).bind(to).execute(&mut *tx).await?;
        tx.commit().await
    }

    /// Units held beyond on_hand over all rows (the seed's guarantee says 0).
    pub async fn oversold(&self) -> anyhow::Result<i64> {
        let q = format!(
            "SELECT COALESCE(SUM(GREATEST(reserved + committed - on_hand, 0)), 0)::bigint FROM {}.inventory",
            self.schema
        );
        Ok(sqlx::query_scalar(&q).fetch_one(&self.pool).await?)
    }

    /// Drops the schema and closes the pool.
    /// After a measured phase: reports any oversell the baseline's own
    /// tables show, then drops its schema (once no worker holds it).
    pub async fn finish(this: std::sync::Arc<Self>) -> anyhow::Result<()> {
        let oversold = this.oversold().await?;
        if oversold != 0 {
            crate::progress!("baseline oversold {oversold} units");
        }
        if let Ok(b) = std::sync::Arc::try_unwrap(this) {
            b.drop_schema().await?;
        }
        Ok(())
    }

    pub async fn drop_schema(self) -> anyhow::Result<()> {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema)).execute(&self.pool).await?;
        self.pool.close().await;
        Ok(())
    }
}
