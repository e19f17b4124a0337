//! ABC classes in Postgres (`sku_abc`): computed from the ledger's trailing
//! revenue, overridden by hand. A catalog SKU with neither is C.

use std::time::SystemTime;

use chrono::DateTime;
use sqlx::PgPool;

use super::CycleCountError;
use super::policy::{AbcClass, AbcSplit, classify};
use crate::catalog::{PageQuery, PageSize, PageToken};
use crate::domain::Sku;

/// One SKU's class as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbcEntry {
    /// The SKU.
    pub sku: String,
    /// The class in force: the override, else the computed one, else C.
    pub class: AbcClass,
    /// Trailing revenue at the last computation, as decimal text ("1234.5").
    pub revenue: String,
    /// The class was set by hand.
    pub overridden: bool,
}

/// The store_meta key of the last computation's time (ms since the epoch).
const COMPUTED_AT: &str = "abc_computed_at";

type Row = (String, Option<String>, Option<String>, String);

fn entry((sku, computed, overridden, revenue): Row) -> AbcEntry {
    let class = overridden.as_deref().or(computed.as_deref()).and_then(AbcClass::parse).unwrap_or(AbcClass::C);
    AbcEntry { sku, class, revenue: trim_decimal(&revenue), overridden: overridden.is_some() }
}

/// "123.4500" as "123.45", "7.0000" as "7".
fn trim_decimal(s: &str) -> String {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s.to_owned() }
}

/// A page of every catalog SKU's class, in SKU order, after `after`.
pub async fn list(
    db: &PgPool,
    size: PageSize,
    after: Option<&str>,
) -> Result<(Vec<AbcEntry>, Option<PageToken>), sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT s.sku, a.computed_class, a.override_class, coalesce(a.revenue, 0)::text
         FROM skus s LEFT JOIN sku_abc a USING (sku)
         WHERE $1::text IS NULL OR s.sku > $1 ORDER BY s.sku LIMIT $2",
    )
    .bind(after)
    .bind(i64::from(size.get()) + 1)
    .fetch_all(db)
    .await?;
    let mut entries: Vec<AbcEntry> = rows.into_iter().map(entry).collect();
    let next = if entries.len() > size.get() as usize {
        entries.truncate(size.get() as usize);
        entries.last().map(|e| PageToken::after_key(PageQuery::AbcClasses, &e.sku))
    } else {
        None
    };
    Ok((entries, next))
}

/// The class in force for one SKU (C when it has none).
pub async fn class_of(db: &PgPool, sku: &str) -> Result<AbcClass, sqlx::Error> {
    let class: Option<String> =
        sqlx::query_scalar("SELECT coalesce(override_class, computed_class) FROM sku_abc WHERE sku = $1")
            .bind(sku)
            .fetch_optional(db)
            .await?
            .flatten();
    Ok(class.as_deref().and_then(AbcClass::parse).unwrap_or(AbcClass::C))
}

/// Sets (or with None removes) the override of a catalog SKU.
pub async fn set_override(db: &PgPool, sku: &Sku, class: Option<AbcClass>) -> Result<AbcEntry, CycleCountError> {
    let row: Option<Row> = sqlx::query_as(
        "INSERT INTO sku_abc (sku, override_class, override_at)
         SELECT sku, $2, now() FROM skus WHERE sku = $1
         ON CONFLICT (sku) DO UPDATE SET override_class = EXCLUDED.override_class, override_at = EXCLUDED.override_at
         RETURNING sku, computed_class, override_class, revenue::text",
    )
    .bind(sku.as_str())
    .bind(class.map(AbcClass::as_str))
    .fetch_optional(db)
    .await?;
    row.map(entry).ok_or_else(|| CycleCountError::NotFound(format!("sku {sku}")))
}

/// When the classes were last computed (None: never).
pub async fn computed_at(db: &PgPool) -> Result<Option<SystemTime>, sqlx::Error> {
    let ms: Option<String> =
        sqlx::query_scalar("SELECT value FROM store_meta WHERE key = $1").bind(COMPUTED_AT).fetch_optional(db).await?;
    Ok(ms.and_then(|v| v.parse::<i64>().ok()).and_then(DateTime::from_timestamp_millis).map(SystemTime::from))
}

/// Computes every catalog SKU's class from its revenue over the last
/// `window_days` (fulfilled quantity from the ledger × today's unit price)
/// and stores it; overrides stay. Returns how many SKUs were classed.
pub async fn recompute_classes(db: &PgPool, split: &AbcSplit, window_days: u32) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin().await?;
    // Revenue in 1/10000 of the currency unit (prices have four decimals):
    // a whole number, exact as i128 for any ledger.
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT s.sku, (coalesce(sum(-l.on_hand_delta), 0) * s.unit_price * 10000)::numeric(40, 0)::text
         FROM skus s
         LEFT JOIN ledger l ON l.sku = s.sku AND l.kind = 'fulfill'
             AND l.occurred_at > now() - make_interval(days => $1)
         GROUP BY s.sku, s.unit_price
         ORDER BY s.sku",
    )
    .bind(i32::try_from(window_days).unwrap_or(i32::MAX))
    .fetch_all(&mut *tx)
    .await?;
    let revenues: Vec<(String, i128)> =
        rows.into_iter().map(|(sku, r)| (sku, r.parse::<i128>().unwrap_or(0))).collect();
    let classes = classify(&revenues, split);
    sqlx::query(
        "INSERT INTO sku_abc (sku, computed_class, revenue, computed_at)
         SELECT s, c, round(r::numeric / 10000, 4), now() FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u(s, c, r)
         ON CONFLICT (sku) DO UPDATE SET computed_class = EXCLUDED.computed_class, revenue = EXCLUDED.revenue,
             computed_at = EXCLUDED.computed_at",
    )
    .bind(revenues.iter().map(|r| r.0.as_str()).collect::<Vec<_>>())
    .bind(classes.iter().map(|c| c.as_str()).collect::<Vec<_>>())
    .bind(revenues.iter().map(|r| r.1.to_string()).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO store_meta (key, value) VALUES ($1, (extract(epoch FROM now()) * 1000)::bigint::text)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
    )
    .bind(COMPUTED_AT)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(revenues.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_lose_their_trailing_zeros() {
        assert_eq!(trim_decimal("123.4500"), "123.45");
        assert_eq!(trim_decimal("7.0000"), "7");
        assert_eq!(trim_decimal("0"), "0");
        assert_eq!(trim_decimal("100"), "100");
    }

    #[test]
    fn the_override_wins_and_no_class_is_c() {
        let e = entry(("S".into(), Some("A".into()), Some("C".into()), "1.5000".into()));
        assert_eq!((e.class, e.overridden, e.revenue.as_str()), (AbcClass::C, true, "1.5"));
        let e = entry(("S".into(), Some("B".into()), None, "0".into()));
        assert_eq!((e.class, e.overridden), (AbcClass::B, false));
        let e = entry(("S".into(), None, None, "0".into()));
        assert_eq!((e.class, e.overridden), (AbcClass::C, false));
    }
}
