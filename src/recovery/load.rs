//! Reads what a rebuild needs from Postgres and shapes it the way the
//! scripts store it (see reservation/lua/common.lua).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;

use crate::reservation::{HeaderRestore, Keys, PartitionRestore};

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[derive(sqlx::FromRow)]
struct ResRow {
    order_id: String,
    status: String,
    channel: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    release_reason: String,
    updated_at: DateTime<Utc>,
}

/// Everything to restore, per partition: every catalog SKU with its levels
/// and stop flags (everywhere, and per location), the holds of live reservations, the headers of live orders
/// and of ended ones still within `tombstone`, and operation ids applied
/// within `op_retention`.
pub async fn load_restore_data(
    db: &mut PgConnection,
    keys: &Keys,
    tombstone: Duration,
    op_retention: Duration,
) -> anyhow::Result<BTreeMap<u32, PartitionRestore>> {
    let mut out: BTreeMap<u32, PartitionRestore> = BTreeMap::new();

    // SKUs: the catalog, with the last reconciled levels and flags.
    let skus: Vec<(String, Option<bool>)> =
        sqlx::query_as("SELECT s.sku, f.stop_sell FROM skus s LEFT JOIN sku_flags f USING (sku) ORDER BY s.sku")
            .fetch_all(&mut *db)
            .await?;
    let levels: Vec<(String, String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT sku, location_id, on_hand, reserved, committed, in_transit FROM stock_levels ORDER BY sku, location_id",
    )
    .fetch_all(&mut *db)
    .await?;
    let mut by_sku: BTreeMap<String, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
    for (sku, loc, oh, rs, cm, it) in levels {
        by_sku.entry(sku).or_default().insert(loc, json!([oh, rs, cm, it]));
    }
    // Locations where selling is stopped: as reconciled, and wherever an
    // open investigation stopped it. The investigations are written as soon
    // as the engine answers, so a stop (or its lifting by a resolution) that
    // was not yet reconciled when Redis was lost is not lost with it.
    let stops: Vec<(String, String)> = sqlx::query_as(
        "SELECT f.sku, f.location_id FROM stop_sell_locations f
         WHERE f.stop_sell AND NOT EXISTS (
             SELECT 1 FROM investigations i
             WHERE i.sku = f.sku AND i.location_id = f.location_id AND i.status = 'RESOLVED'
               AND i.stop_sell AND i.resolved_at > f.updated_at)
         UNION SELECT sku, location_id FROM investigations WHERE status = 'OPEN' AND stop_sell",
    )
    .fetch_all(&mut *db)
    .await?;
    let mut stops_of: BTreeMap<String, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
    for (sku, loc) in stops {
        stops_of.entry(sku).or_default().insert(loc, json!(1));
    }
    for (sku, stop) in skus {
        let l = by_sku.remove(&sku).unwrap_or_default();
        let mut rec = json!({ "stop": i32::from(stop.unwrap_or(false)), "l": l });
        // Only a non-empty set is stored (see common.lua).
        if let Some(s) = stops_of.remove(&sku) {
            rec["s"] = serde_json::Value::Object(s);
        }
        out.entry(keys.partition_of(&sku)).or_default().skus.push((sku, rec.to_string()));
    }

    // Reservations: live ones and recent tombstones.
    let now = now_ms();
    let rows: Vec<ResRow> = sqlx::query_as(
        "SELECT order_id, status, channel, created_at, expires_at, release_reason, updated_at FROM reservations
         WHERE status IN ('ACTIVE', 'COMMITTED') OR updated_at > now() - make_interval(secs => $1)",
    )
    .bind(tombstone.as_secs_f64())
    .fetch_all(&mut *db)
    .await?;
    let lines: Vec<(String, String, String, i64)> = sqlx::query_as(
        // The reservation_lines view, for the headers above only (through
        // ledger_by_order), rather than the whole view and a join after it.
        "SELECT r.order_id, l.sku, l.location_id, sum(l.reserved_delta)::bigint FROM reservations r
         JOIN ledger l ON l.order_id = r.order_id AND l.kind = 'reserve' AND l.occurred_at = r.created_at
         WHERE r.status IN ('ACTIVE', 'COMMITTED') OR r.updated_at > now() - make_interval(secs => $1)
         GROUP BY r.order_id, l.sku, l.location_id
         ORDER BY r.order_id, l.sku, l.location_id",
    )
    .bind(tombstone.as_secs_f64())
    .fetch_all(&mut *db)
    .await?;
    let mut lines_of: BTreeMap<String, Vec<(String, String, i64)>> = BTreeMap::new();
    for (order, sku, loc, q) in lines {
        lines_of.entry(order).or_default().push((sku, loc, q));
    }
    let tomb = millis(tombstone);
    for r in rows {
        let lines = lines_of.remove(&r.order_id).unwrap_or_default();
        let ea = ms(r.expires_at);
        let live = matches!(r.status.as_str(), "ACTIVE" | "COMMITTED");
        if live {
            // One hold per partition the lines live in.
            let committed = r.status == "COMMITTED";
            let mut per_part: BTreeMap<u32, Vec<serde_json::Value>> = BTreeMap::new();
            for (sku, loc, q) in &lines {
                per_part.entry(keys.partition_of(sku)).or_default().push(json!([sku, loc, q]));
            }
            for (p, l) in per_part {
                let hold = json!({ "c": i32::from(committed), "l": l });
                let expiry = (!committed).then_some(ea);
                out.entry(p).or_default().holds.push((r.order_id.clone(), hold.to_string(), expiry));
            }
        }
        let ttl_ms = match r.status.as_str() {
            "COMMITTED" => 0,
            "ACTIVE" => (ea - now).max(0) + tomb,
            _ => ms(r.updated_at) + tomb - now,
        };
        if !live && ttl_ms <= 0 {
            continue;
        }
        let mut fields = vec![
            ("st".to_owned(), r.status.clone()),
            ("ca".to_owned(), ms(r.created_at).to_string()),
            ("ea".to_owned(), ea.to_string()),
            ("ch".to_owned(), r.channel.clone()),
            ("rr".to_owned(), r.release_reason.clone()),
            ("n".to_owned(), lines.len().to_string()),
        ];
        for (i, (sku, loc, q)) in lines.iter().enumerate() {
            let i = i + 1;
            fields.push((format!("s{i}"), sku.clone()));
            fields.push((format!("l{i}"), loc.clone()));
            fields.push((format!("q{i}"), q.to_string()));
        }
        let header = HeaderRestore { order_id: r.order_id.clone(), fields, ttl_ms };
        out.entry(keys.partition_of(&r.order_id)).or_default().headers.push(header);
    }

    // Operation ids still remembered.
    let ops: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT operation_id, sku, applied_at FROM applied_operations WHERE applied_at > now() - make_interval(secs => $1)",
    )
    .bind(op_retention.as_secs_f64())
    .fetch_all(&mut *db)
    .await?;
    let keep = millis(op_retention);
    for (op, sku, at) in ops {
        out.entry(keys.partition_of(&sku)).or_default().ops.push((op, ms(at) + keep));
    }
    Ok(out)
}
