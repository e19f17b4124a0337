//! Investigations in Postgres: opened by a count past the adjust gate (see
//! counts.rs `insert`), resolved once with who, why and the accepted on_hand.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::catalog::{PageQuery, PageSize, PageToken};

/// Where an investigation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvestigationStatus {
    /// Waiting for someone to find out what happened.
    Open,
    /// Closed with an accepted on_hand.
    Resolved,
}

impl InvestigationStatus {
    /// The status as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Resolved => "RESOLVED",
        }
    }
}

/// One investigation.
#[derive(Debug, Clone, PartialEq)]
pub struct Investigation {
    /// Its id.
    pub investigation_id: String,
    /// What.
    pub sku: String,
    /// Where.
    pub location_id: String,
    /// on_hand when the count was judged.
    pub expected: i64,
    /// What the count found.
    pub counted: i64,
    /// |counted - expected| / max(expected, 1).
    pub discrepancy: f64,
    /// The count stopped selling at the SKU-location.
    pub stop_sell: bool,
    /// Open or resolved.
    pub status: InvestigationStatus,
    /// Who counted.
    pub opened_by: String,
    /// When the count was recorded.
    pub opened_at: SystemTime,
    /// When it was resolved.
    pub resolved_at: Option<SystemTime>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// The on_hand set when it was resolved.
    pub accepted_on_hand: Option<i64>,
    /// Why, as the resolver wrote it.
    pub note: String,
}

const COLUMNS: &str = "investigation_id, sku, location_id, expected, counted, discrepancy, stop_sell, status, \
                       opened_by, opened_at, resolved_at, resolved_by, accepted_on_hand, note, seq";

#[derive(sqlx::FromRow)]
struct Row {
    investigation_id: String,
    sku: String,
    location_id: String,
    expected: i64,
    counted: i64,
    discrepancy: f64,
    stop_sell: bool,
    status: String,
    opened_by: String,
    opened_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    resolved_by: Option<String>,
    accepted_on_hand: Option<i64>,
    note: String,
    seq: i64,
}

impl From<Row> for Investigation {
    fn from(r: Row) -> Self {
        Investigation {
            investigation_id: r.investigation_id,
            sku: r.sku,
            location_id: r.location_id,
            expected: r.expected,
            counted: r.counted,
            discrepancy: r.discrepancy,
            stop_sell: r.stop_sell,
            status: if r.status == "OPEN" { InvestigationStatus::Open } else { InvestigationStatus::Resolved },
            opened_by: r.opened_by,
            opened_at: r.opened_at.into(),
            resolved_at: r.resolved_at.map(Into::into),
            resolved_by: r.resolved_by,
            accepted_on_hand: r.accepted_on_hand,
            note: r.note,
        }
    }
}

/// One investigation by id.
pub async fn get(db: &PgPool, id: &str) -> Result<Option<Investigation>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM investigations WHERE investigation_id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(row.map(Into::into))
}

/// The open investigation of a SKU-location, if any.
pub async fn open_at(db: &PgPool, sku: &str, location: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT investigation_id FROM investigations WHERE sku = $1 AND location_id = $2 AND status = 'OPEN' LIMIT 1",
    )
    .bind(sku)
    .bind(location)
    .fetch_optional(db)
    .await
}

/// Whether another open investigation than `except` stopped this SKU-location.
pub async fn other_open_stop(db: &PgPool, sku: &str, location: &str, except: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM investigations WHERE sku = $1 AND location_id = $2 AND status = 'OPEN'
                        AND stop_sell AND investigation_id <> $3)",
    )
    .bind(sku)
    .bind(location)
    .bind(except)
    .fetch_one(db)
    .await
}

/// Marks an open investigation resolved; None when it is not open (any more).
pub async fn mark_resolved(
    db: &PgPool,
    id: &str,
    accepted: i64,
    resolved_by: &str,
    note: &str,
) -> Result<Option<Investigation>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "UPDATE investigations SET status = 'RESOLVED', resolved_at = now(), resolved_by = $2,
             accepted_on_hand = $3, note = $4
         WHERE investigation_id = $1 AND status = 'OPEN'
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(resolved_by)
    .bind(accepted)
    .bind(note)
    .fetch_optional(db)
    .await?;
    Ok(row.map(Into::into))
}

/// A page of investigations (with `status`, or all), oldest first, after
/// the one at `after` (a position from a page token).
pub async fn list(
    db: &PgPool,
    status: Option<InvestigationStatus>,
    size: PageSize,
    after: Option<i64>,
) -> Result<(Vec<Investigation>, Option<PageToken>), sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM investigations
         WHERE ($1::text IS NULL OR status = $1) AND ($2::bigint IS NULL OR seq > $2)
         ORDER BY seq LIMIT $3"
    ))
    .bind(status.map(InvestigationStatus::as_str))
    .bind(after)
    .bind(i64::from(size.get()) + 1)
    .fetch_all(db)
    .await?;
    let mut rows = rows;
    let next = if rows.len() > size.get() as usize {
        rows.truncate(size.get() as usize);
        let query = PageQuery::Investigations { status: status.map(InvestigationStatus::as_str) };
        rows.last().map(|r| PageToken::after_number(query, r.seq))
    } else {
        None
    };
    Ok((rows.into_iter().map(Into::into).collect(), next))
}

/// (open investigations, SKU-locations stopped) for the gauges. Stops are
/// as reconciled, and those of open investigations not yet reconciled.
pub async fn gauges(db: &PgPool) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM investigations WHERE status = 'OPEN'),
                (SELECT count(*) FROM (SELECT sku, location_id FROM stop_sell_locations WHERE stop_sell
                                       UNION SELECT sku, location_id FROM investigations
                                             WHERE status = 'OPEN' AND stop_sell) s)",
    )
    .fetch_one(db)
    .await
}
