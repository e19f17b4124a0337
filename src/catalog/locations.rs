//! Locations in Postgres, and the in-process cache of their allocation order.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{CatalogError, PageQuery, PageSize, PageToken};
use crate::domain::LocationId;

/// A location to create or update.
#[derive(Debug, Clone)]
pub struct NewLocation {
    /// The key.
    pub location_id: LocationId,
    /// Display name.
    pub name: String,
    /// Lower numbers are allocated from first.
    pub priority: i32,
}

/// A location as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The key.
    pub location_id: String,
    /// Display name.
    pub name: String,
    /// Allocation priority (lower first).
    pub priority: i32,
    /// First written.
    pub create_time: SystemTime,
    /// Last written.
    pub update_time: SystemTime,
}

#[derive(sqlx::FromRow)]
struct Row {
    location_id: String,
    name: String,
    priority: i32,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
}

impl From<Row> for Location {
    fn from(r: Row) -> Self {
        Location {
            location_id: r.location_id,
            name: r.name,
            priority: r.priority,
            create_time: r.create_time.into(),
            update_time: r.update_time.into(),
        }
    }
}

/// Location table access.
#[derive(Clone)]
pub struct LocationStore {
    pool: PgPool,
}

impl LocationStore {
    /// Access through `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Creates or updates a location.
    pub async fn upsert(&self, l: &NewLocation) -> Result<Location, CatalogError> {
        let row: Row = sqlx::query_as(
            "INSERT INTO locations (location_id, name, priority) VALUES ($1, $2, $3)
             ON CONFLICT (location_id) DO UPDATE SET name = EXCLUDED.name, priority = EXCLUDED.priority,
                 update_time = now()
             RETURNING location_id, name, priority, create_time, update_time",
        )
        .bind(l.location_id.as_str())
        .bind(&l.name)
        .bind(l.priority)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.into())
    }

    /// A page of locations in allocation order (priority, then id), after the
    /// location `after` (a decoded page token).
    pub async fn list(
        &self,
        size: PageSize,
        after: Option<&str>,
    ) -> Result<(Vec<Location>, Option<PageToken>), CatalogError> {
        let all = self.all().await?;
        let start = after.map_or(0, |a| all.iter().position(|l| l.location_id == a).map_or(all.len(), |i| i + 1));
        let page: Vec<Location> = all.iter().skip(start).take(size.get() as usize).cloned().collect();
        let next = (start + page.len() < all.len())
            .then(|| page.last().map(|l| PageToken::after_key(PageQuery::Locations, &l.location_id)))
            .flatten();
        Ok((page, next))
    }

    /// Every location in allocation order.
    pub async fn all(&self) -> Result<Vec<Location>, CatalogError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT location_id, name, priority, create_time, update_time FROM locations ORDER BY priority, location_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

/// The locations in allocation order, kept in memory so the hot path does not
/// read Postgres. Refreshed periodically and after every local upsert; when
/// Postgres is down the last known order is kept.
#[derive(Clone)]
pub struct LocationCache {
    store: LocationStore,
    // A std lock: held only to copy a small Vec, never across an await.
    order: Arc<RwLock<Vec<LocationId>>>,
}

impl LocationCache {
    /// An empty cache over `store`; call `refresh` to fill it.
    pub fn new(store: LocationStore) -> Self {
        Self { store, order: Arc::default() }
    }

    /// Re-reads the order from Postgres.
    pub async fn refresh(&self) -> Result<(), CatalogError> {
        let ids = self.store.all().await?.into_iter().filter_map(|l| LocationId::parse(l.location_id).ok()).collect();
        *self.order.write().unwrap_or_else(|p| p.into_inner()) = ids;
        Ok(())
    }

    /// The allocation order as last read.
    pub fn order(&self) -> Vec<LocationId> {
        self.order.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether `id` is a catalog location; an unknown id triggers one refresh
    /// (another replica may have just created it).
    pub async fn contains(&self, id: &LocationId) -> bool {
        if self.order().contains(id) {
            return true;
        }
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "location refresh failed; using the cached list");
        }
        self.order().contains(id)
    }

    /// Refreshes every `every` until stopped.
    pub async fn run_until_stopped(self, every: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "location refresh failed; keeping the last known order");
            }
        }
    }
}
