//! Reorder suggestions: one set-based query over the SKU-locations asked
//! for (all, a page, or the ones the ledger says changed), then the policy
//! (policy.rs) applied to each row in Rust.
//!
//! The query reads, per SKU-location with a known supplier: its levels (the
//! snapshot), its SKU's and supplier's settings, what open draft POs hold
//! for it (on_order), whether an open PO still expects some of it, and its
//! ledger rows in the window that moved on_hand (their day, delta, and
//! whether each is a sale) gathered into arrays.
//! The history comes from the `ledger_on_hand_moves` index (SKU-location,
//! time; only rows that moved on_hand), one index-only range scan per
//! SKU-location bounded by the window, whatever the ledger's length.

use std::collections::BTreeMap;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::ReplenishmentSettings;
use super::policy::{self, DAY, DayMoves, Demand, OrderInputs};

/// Which SKU-locations to assess.
#[derive(Debug, Clone, Default)]
pub struct Scope<'a> {
    /// Only this location.
    pub location: Option<&'a str>,
    /// Only SKUs of this supplier.
    pub supplier: Option<&'a str>,
    /// Only SKU-locations after this (sku, location) key (a page token).
    pub after: Option<(&'a str, &'a str)>,
    /// At most this many (a page), in (sku, location) order.
    pub limit: Option<i64>,
    /// Only these (sku, location) pairs (the ones the ledger says changed).
    pub only: Option<&'a [(String, String)]>,
}

/// One SKU-location's reorder figures (the API's suggestion).
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// What.
    pub sku: String,
    /// Where.
    pub location_id: String,
    /// Who supplies it.
    pub supplier_id: String,
    /// Demand: velocity (units per day), σ, and where they come from.
    pub demand: Demand,
    /// The supplier's lead time.
    pub lead_time_days: u32,
    /// `ceil(z × σ × √lead_time)`.
    pub safety_stock: i64,
    /// `ceil(velocity × lead_time) + safety_stock`, or the SKU's static point.
    pub reorder_point: i64,
    /// Whether the reorder point is the SKU's static one.
    pub static_reorder_point: bool,
    /// on_hand − reserved − committed.
    pub available: i64,
    /// On its way (submitted POs).
    pub in_transit: i64,
    /// In open draft POs.
    pub on_order: i64,
    /// available + in_transit + on_order.
    pub position: i64,
    /// Days the available stock lasts at the velocity (None: no demand).
    pub days_of_cover: Option<f64>,
    /// When available runs out at the velocity, if nothing arrives.
    pub stockout_date: Option<SystemTime>,
    /// What to order now (0 unless at or below the reorder point).
    pub order_quantity: i64,
    /// position <= reorder point, and there is demand (a velocity or a
    /// static point).
    pub below_reorder_point: bool,
    /// An open PO (draft, submitted or partly received) still expects this
    /// SKU here: the reorder check adds no second line.
    pub covered_by_open_po: bool,
}

/// A row of the query.
#[derive(sqlx::FromRow)]
struct Row {
    sku: String,
    location_id: String,
    on_hand: i64,
    reserved: i64,
    committed: i64,
    in_transit: i64,
    supplier_id: String,
    static_point: Option<i64>,
    case_pack: i32,
    fallback_velocity: Option<f64>,
    sku_created: DateTime<Utc>,
    lead_time_days: i32,
    min_order_quantity: i64,
    service_level: Option<f64>,
    on_order: i64,
    covered: bool,
    days: Option<Vec<i32>>,
    deltas: Option<Vec<i64>>,
    fulfils: Option<Vec<bool>>,
    now: DateTime<Utc>,
}

/// The suggestion query (public for `stockd-bench reorder --explain`).
/// Binds: $1 location, $2 supplier, $3 and $4 the (sku, location) to start
/// after, $5 the limit, $6 and $7 the (sku, location) pairs to keep, each
/// NULL for none; $8 the window in days.
pub const SUGGESTIONS_QUERY: &str = "
WITH cand AS MATERIALIZED (
    SELECT s.sku, s.location_id, s.on_hand, s.reserved, s.committed, s.in_transit,
           k.supplier_id, k.reorder_point AS static_point, k.case_pack, k.fallback_velocity,
           k.create_time AS sku_created, p.lead_time_days, p.min_order_quantity, p.service_level
    FROM stock_levels s
    JOIN skus k ON k.sku = s.sku
    JOIN suppliers p ON p.supplier_id = k.supplier_id
    WHERE ($1::text IS NULL OR s.location_id = $1)
      AND ($2::text IS NULL OR k.supplier_id = $2)
      AND ($3::text IS NULL OR (s.sku, s.location_id) > ($3::text, $4::text))
      AND ($6::text[] IS NULL
           OR (s.sku, s.location_id) IN (SELECT o.sku, o.location_id
                                         FROM unnest($6::text[], $7::text[]) AS o(sku, location_id)))
    ORDER BY s.sku, s.location_id
    LIMIT $5
),
open_lines AS (
    SELECT po.location_id, l.sku,
           sum(l.quantity) FILTER (WHERE po.status = 'DRAFT')::bigint AS on_order,
           bool_or(l.received < l.quantity) AS covered
    FROM purchase_orders po
    JOIN purchase_order_lines l ON l.po_id = po.po_id
    WHERE po.status IN ('DRAFT', 'SUBMITTED', 'PARTIALLY_RECEIVED')
    GROUP BY po.location_id, l.sku
)
SELECT c.sku, c.location_id, c.on_hand, c.reserved, c.committed, c.in_transit, c.supplier_id, c.static_point,
       c.case_pack, c.fallback_velocity, c.sku_created, c.lead_time_days, c.min_order_quantity, c.service_level,
       coalesce(o.on_order, 0)::bigint AS on_order, coalesce(o.covered, false) AS covered,
       h.days, h.deltas, h.fulfils, now() AS now
FROM cand c
LEFT JOIN open_lines o ON o.sku = c.sku AND o.location_id = c.location_id
LEFT JOIN LATERAL (
    -- Each row's day (whole days before now: the interval's day field, its
    -- time part being under 24 h), delta and whether it is a sale, summed
    -- per day in Rust (cheaper than a grouping per SKU-location here).
    SELECT array_agg(date_part('day', now() - l.occurred_at)::int) AS days,
           array_agg(l.on_hand_delta) AS deltas,
           array_agg(l.kind = 'fulfill') AS fulfils
    FROM ledger l
    WHERE l.sku = c.sku AND l.location_id = c.location_id AND l.on_hand_delta <> 0
      AND l.occurred_at > now() - make_interval(days => $8)
) h ON true
ORDER BY c.sku, c.location_id";

/// The suggestions for `scope`, in (sku, location) order, computed in one
/// query on `db` (a transaction's connection, when the caller acts on them).
pub async fn suggestions(
    db: &mut PgConnection,
    scope: &Scope<'_>,
    settings: &ReplenishmentSettings,
) -> Result<Vec<Suggestion>, sqlx::Error> {
    let (only_skus, only_locations): (Option<Vec<&str>>, Option<Vec<&str>>) = match scope.only {
        Some(pairs) => (
            Some(pairs.iter().map(|(s, _)| s.as_str()).collect()),
            Some(pairs.iter().map(|(_, l)| l.as_str()).collect()),
        ),
        None => (None, None),
    };
    let rows: Vec<Row> = sqlx::query_as(SUGGESTIONS_QUERY)
        .bind(scope.location)
        .bind(scope.supplier)
        .bind(scope.after.map(|(s, _)| s))
        .bind(scope.after.map(|(_, l)| l))
        .bind(scope.limit)
        .bind(only_skus)
        .bind(only_locations)
        .bind(i32::try_from(settings.window_days).unwrap_or(i32::MAX))
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| assess(r, settings)).collect())
}

/// Days of history a SKU-location has, at most the window: since the SKU
/// was created, or since its oldest move in the window when that is older
/// (history loaded from elsewhere).
fn days_known(created: DateTime<Utc>, now: DateTime<Utc>, oldest_move_day: Option<u32>, window_days: u32) -> u32 {
    let age = (now - created).num_seconds().max(0) as f64 / DAY.as_secs_f64();
    let by_age = u32::try_from(age.ceil() as i64).unwrap_or(u32::MAX);
    let by_moves = oldest_move_day.map_or(0, |d| d.saturating_add(1));
    by_age.max(by_moves).min(window_days)
}

fn assess(r: Row, settings: &ReplenishmentSettings) -> Suggestion {
    let window = settings.window_days;
    let moves: Vec<DayMoves> = match (&r.days, &r.deltas, &r.fulfils) {
        (Some(days), Some(deltas), Some(fulfils)) => days
            .iter()
            .zip(deltas)
            .zip(fulfils)
            .map(|((&day, &delta), &fulfil)| DayMoves {
                // A time ahead of the database's clock counts as today.
                day: u32::try_from(day).unwrap_or(0),
                sold: if fulfil { -delta } else { 0 },
                moved: delta,
            })
            .collect(),
        _ => Vec::new(),
    };
    let oldest = moves.iter().map(|m| m.day).max();
    let known = days_known(r.sku_created, r.now, oldest, window);
    let sales = policy::in_stock_sales(r.on_hand, &moves, known);
    let demand = policy::demand(&sales, window, known < window, r.fallback_velocity);
    let lead_time_days = u32::try_from(r.lead_time_days).unwrap_or(0);
    let z = policy::z_score(r.service_level.unwrap_or(settings.service_level));
    let safety_stock = policy::safety_stock(z, demand.sigma, lead_time_days);
    let reorder_point = policy::reorder_point(demand.velocity, lead_time_days, safety_stock, r.static_point);
    let available = r.on_hand - r.reserved - r.committed;
    let position = available + r.in_transit + r.on_order;
    // A SKU-location nothing says sells (no velocity, no static point) is
    // never ordered, however empty: a discontinued SKU stays at zero.
    let has_demand = demand.velocity > 0.0 || r.static_point.is_some();
    let below = has_demand && position <= reorder_point;
    let order_quantity = if below {
        policy::order_quantity(&OrderInputs {
            velocity: demand.velocity,
            lead_time_days,
            review_days: settings.review_days,
            safety_stock,
            reorder_point,
            position,
            min_order_quantity: r.min_order_quantity,
            case_pack: i64::from(r.case_pack),
        })
    } else {
        0
    };
    let days_of_cover = policy::days_of_cover(available, demand.velocity);
    Suggestion {
        sku: r.sku,
        location_id: r.location_id,
        supplier_id: r.supplier_id,
        demand,
        lead_time_days,
        safety_stock,
        reorder_point,
        static_reorder_point: r.static_point.is_some(),
        available,
        in_transit: r.in_transit,
        on_order: r.on_order,
        position,
        days_of_cover,
        stockout_date: policy::stockout_date(r.now.into(), days_of_cover),
        order_quantity,
        below_reorder_point: below,
        covered_by_open_po: r.covered,
    }
}

/// Lines to order: the suggestions below their reorder point with a
/// quantity and no open PO expecting them, by (supplier, location).
pub fn to_order(suggestions: &[Suggestion]) -> BTreeMap<(String, String), Vec<(String, i64)>> {
    let mut out: BTreeMap<(String, String), Vec<(String, i64)>> = BTreeMap::new();
    for s in suggestions.iter().filter(|s| s.below_reorder_point && s.order_quantity > 0 && !s.covered_by_open_po) {
        out.entry((s.supplier_id.clone(), s.location_id.clone())).or_default().push((s.sku.clone(), s.order_quantity));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replenishment::policy::VelocityBasis;

    fn at(days_ago: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 - days_ago * 86_400, 0).unwrap_or_default()
    }

    #[test]
    fn history_is_counted_from_the_sku_or_its_oldest_move_whichever_is_older() {
        let now = at(0);
        assert_eq!(days_known(at(400), now, None, 28), 28, "an old SKU has the whole window");
        assert_eq!(days_known(at(3), now, None, 28), 3);
        assert_eq!(days_known(at(0), now, Some(20), 28), 21, "moves older than the SKU row count");
        assert_eq!(days_known(at(0), now, None, 28), 0);
    }

    fn suggestion(sku: &str, loc: &str, qty: i64, below: bool, covered: bool) -> Suggestion {
        Suggestion {
            sku: sku.into(),
            location_id: loc.into(),
            supplier_id: "acme".into(),
            demand: Demand { velocity: 1.0, sigma: 0.0, basis: VelocityBasis::History, days_used: 28 },
            lead_time_days: 1,
            safety_stock: 0,
            reorder_point: 1,
            static_reorder_point: false,
            available: 0,
            in_transit: 0,
            on_order: 0,
            position: 0,
            days_of_cover: Some(0.0),
            stockout_date: None,
            order_quantity: qty,
            below_reorder_point: below,
            covered_by_open_po: covered,
        }
    }

    #[test]
    fn only_uncovered_lines_below_their_point_are_ordered_grouped_by_supplier_and_location() {
        let list = [
            suggestion("A", "WH1", 5, true, false),
            suggestion("B", "WH1", 3, true, true),
            suggestion("C", "WH1", 0, false, false),
            suggestion("D", "WH2", 2, true, false),
            suggestion("E", "WH1", 4, true, false),
        ];
        let orders = to_order(&list);
        let wh1 = orders.get(&("acme".to_owned(), "WH1".to_owned())).cloned().unwrap_or_default();
        assert_eq!(wh1, vec![("A".to_owned(), 5), ("E".to_owned(), 4)]);
        assert_eq!(orders.len(), 2);
    }
}
