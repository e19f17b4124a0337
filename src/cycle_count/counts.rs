//! Counts in Postgres (`cycle_counts`): every count with who and when, the
//! investigation it opened, and what the due-count listing reads.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::policy::{AbcClass, CountAction};

/// One count as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct CountRecord {
    /// Its idempotency key.
    pub operation_id: String,
    /// What was counted.
    pub sku: String,
    /// Where.
    pub location_id: String,
    /// The SKU's class when counted.
    pub abc_class: AbcClass,
    /// on_hand when judged.
    pub expected: i64,
    /// What the shelf held.
    pub counted: i64,
    /// |counted - expected| / max(expected, 1).
    pub discrepancy: f64,
    /// What the gates made of it.
    pub action: CountAction,
    /// The investigation it opened.
    pub investigation_id: Option<String>,
    /// Who counted.
    pub counted_by: String,
}

type Row = (String, String, String, String, i64, i64, f64, String, Option<String>, String);

fn record(
    (operation_id, sku, location_id, class, expected, counted, discrepancy, action, inv, by): Row,
) -> CountRecord {
    CountRecord {
        operation_id,
        sku,
        location_id,
        abc_class: AbcClass::parse(&class).unwrap_or(AbcClass::C),
        expected,
        counted,
        discrepancy,
        // The table's CHECK admits only the four words.
        action: CountAction::parse(&action).unwrap_or(CountAction::Matched),
        investigation_id: inv,
        counted_by: by,
    }
}

/// The count recorded under an operation id, if any.
pub async fn find(db: &PgPool, operation_id: &str) -> Result<Option<CountRecord>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT operation_id, sku, location_id, abc_class, expected, counted, discrepancy, action, investigation_id,
                counted_by
         FROM cycle_counts WHERE operation_id = $1",
    )
    .bind(operation_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(record))
}

/// Records a count and, when it opened one, its investigation, in one
/// transaction. Returns false when the operation id was recorded already
/// (then nothing is written).
pub async fn insert(db: &PgPool, c: &CountRecord) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO cycle_counts (operation_id, sku, location_id, abc_class, expected, counted, discrepancy, action,
                                   investigation_id, counted_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (operation_id) DO NOTHING",
    )
    .bind(&c.operation_id)
    .bind(&c.sku)
    .bind(&c.location_id)
    .bind(c.abc_class.as_str())
    .bind(c.expected)
    .bind(c.counted)
    .bind(c.discrepancy)
    .bind(c.action.as_str())
    .bind(&c.investigation_id)
    .bind(&c.counted_by)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if inserted && let Some(id) = &c.investigation_id {
        sqlx::query(
            "INSERT INTO investigations (investigation_id, count_operation_id, sku, location_id, expected, counted,
                                         discrepancy, stop_sell, status, opened_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'OPEN', $9)
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(&c.operation_id)
        .bind(&c.sku)
        .bind(&c.location_id)
        .bind(c.expected)
        .bind(c.counted)
        .bind(c.discrepancy)
        .bind(c.action == CountAction::StopSell)
        .bind(&c.counted_by)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(inserted)
}

/// A SKU-location that may be due for a count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// What.
    pub sku: String,
    /// Where.
    pub location_id: String,
    /// Its class in force.
    pub class: AbcClass,
    /// Its last count, if any.
    pub last_counted_at: Option<SystemTime>,
}

/// sku, location, class in force, last counted.
type CandidateRow = (String, String, Option<String>, Option<DateTime<Utc>>);

/// Up to `limit` SKU-locations that have held stock (a row in the levels
/// snapshot) of catalog SKUs, at `location` or everywhere, in (location, SKU)
/// order after `after`, with their class and last count.
pub async fn candidates(
    db: &PgPool,
    location: Option<&str>,
    after: Option<(&str, &str)>,
    limit: i64,
) -> Result<Vec<Candidate>, sqlx::Error> {
    let rows: Vec<CandidateRow> = sqlx::query_as(
        "SELECT l.sku, l.location_id, coalesce(a.override_class, a.computed_class),
                (SELECT c.counted_at FROM cycle_counts c WHERE c.sku = l.sku AND c.location_id = l.location_id
                 ORDER BY c.counted_at DESC LIMIT 1)
         FROM stock_levels l
         JOIN skus s ON s.sku = l.sku
         LEFT JOIN sku_abc a ON a.sku = l.sku
         WHERE ($1::text IS NULL OR l.location_id = $1)
           AND ($2::text IS NULL OR (l.location_id, l.sku) > ($2, $3))
         ORDER BY l.location_id, l.sku
         LIMIT $4",
    )
    .bind(location)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(sku, location_id, class, last)| Candidate {
            sku,
            location_id,
            class: class.as_deref().and_then(AbcClass::parse).unwrap_or(AbcClass::C),
            last_counted_at: last.map(Into::into),
        })
        .collect())
}
