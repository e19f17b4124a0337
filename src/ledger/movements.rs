//! The ledger of one SKU, newest first.

use std::time::SystemTime;

use sqlx::PgPool;

use crate::catalog::{PageQuery, PageSize, PageToken};

/// One ledger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// Ledger row id (insertion order).
    pub id: i64,
    /// What.
    pub sku: String,
    /// Where.
    pub location_id: String,
    /// reserve, commit, fulfill, release, expire, adjust, po_submit,
    /// po_receive or po_cancel.
    pub kind: String,
    /// on_hand, reserved, committed, in_transit deltas.
    pub deltas: [i64; 4],
    /// The order, for reservation movements.
    pub order_id: Option<String>,
    /// The operation id, for adjustments and PO movements.
    pub operation_id: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// Redis time of the change.
    pub occurred_at: SystemTime,
}

type Row = (
    i64,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    chrono::DateTime<chrono::Utc>,
);

/// The paging query of the movements of `sku` at `location` (None: all): a
/// token issued for one SKU or location is refused for another.
pub fn movements_query<'a>(sku: &'a str, location: Option<&'a str>) -> PageQuery<'a> {
    PageQuery::Movements { sku, location_id: location }
}

/// A page of movements of `sku` (at `location`, or all), newest first, with
/// ledger ids below `before` (decoded from a page token of
/// [`movements_query`]).
pub async fn list_movements(
    db: &PgPool,
    sku: &str,
    location: Option<&str>,
    size: PageSize,
    before: Option<i64>,
) -> Result<(Vec<Movement>, Option<PageToken>), sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, sku, location_id, kind, on_hand_delta, reserved_delta, committed_delta, in_transit_delta,
                order_id, operation_id, reason, occurred_at
         FROM ledger
         WHERE sku = $1 AND ($2::text IS NULL OR location_id = $2) AND ($3::bigint IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4",
    )
    .bind(sku)
    .bind(location)
    .bind(before)
    .bind(i64::from(size.get()) + 1)
    .fetch_all(db)
    .await?;
    let mut out: Vec<Movement> = rows
        .into_iter()
        .map(|(id, sku, location_id, kind, doh, drs, dcm, dit, order_id, operation_id, reason, at)| Movement {
            id,
            sku,
            location_id,
            kind,
            deltas: [doh, drs, dcm, dit],
            order_id,
            operation_id,
            reason,
            occurred_at: at.into(),
        })
        .collect();
    let next = if out.len() > size.get() as usize {
        out.truncate(size.get() as usize);
        out.last().map(|m| PageToken::after_number(movements_query(sku, location), m.id))
    } else {
        None
    };
    Ok((out, next))
}
