//! The drift check: Redis levels against the Postgres snapshot, and the
//! snapshot against the ledger: its sums as the reconciler keeps them
//! (`stock_levels.ledger_*`, beside the snapshot; the periodic check: its
//! cost grows with the catalog, not with the ledger's history), or the
//! ledger replayed from zero (`stockd check`, which also checks those sums).
//! Differences are listed; `repair_snapshot` fixes the snapshot (and the
//! sums) from the ledger where the ledger agrees with Redis, and refuses to
//! guess where it does not. A difference at a SKU-location with events in
//! the reconciler's quarantine is listed with them (an event Postgres refused
//! is in Redis and not in the ledger): it is theirs to explain, not hidden.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::domain::{Levels, Sku};
use crate::reconcile::ReconcileStats;
use crate::reconcile::quarantine::{Held, held_by_location};
use crate::reservation::Engine;

/// One SKU-location where the three sources disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// What.
    pub sku: String,
    /// Where.
    pub location_id: String,
    /// Redis now; None when its partition had unreconciled events (not compared).
    pub redis: Option<Levels>,
    /// The Postgres snapshot.
    pub snapshot: Levels,
    /// The ledger: replayed from zero, or its kept sums (see `LedgerSide`).
    pub ledger: Levels,
    /// The ledger's sums as the reconciler keeps them.
    pub totals: Levels,
    /// Unresolved events in quarantine for this SKU-location and what they
    /// would change: a difference they account for is theirs.
    pub quarantined: Held,
}

/// What the snapshot is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerSide {
    /// The sums the reconciler keeps with every batch (`stock_levels.ledger_*`).
    Totals,
    /// The whole ledger summed anew; the kept sums are compared with it too.
    Replayed,
}

/// The result of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriftReport {
    /// SKU-locations compared.
    pub checked: usize,
    /// Where they disagree.
    pub mismatches: Vec<Mismatch>,
    /// Partitions whose Redis levels were not compared because events were
    /// still on their way to Postgres.
    pub in_flight_partitions: Vec<u32>,
}

type Key = (String, String);
/// A row of levels per SKU-location, as queried.
type LevelsRow = (String, String, i64, i64, i64, i64);
/// A snapshot row: the levels and the ledger's sums kept beside them.
type SnapshotRow = (String, String, i64, i64, i64, i64, i64, i64, i64, i64);

fn levels((oh, rs, cm, it): (i64, i64, i64, i64)) -> Levels {
    Levels { on_hand: oh, reserved: rs, committed: cm, in_transit: it }
}

/// Compares Redis, the snapshot and the ledger (`side`) for every catalog SKU.
pub async fn check_drift(engine: &Engine, db: &PgPool, side: LedgerSide) -> anyhow::Result<DriftReport> {
    let before = engine.stream_lengths().await?;

    // Snapshot and ledger from one consistent view.
    let mut tx = db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
    let rows: Vec<SnapshotRow> = sqlx::query_as(
        "SELECT sku, location_id, on_hand, reserved, committed, in_transit,
                ledger_on_hand, ledger_reserved, ledger_committed, ledger_in_transit
         FROM stock_levels",
    )
    .fetch_all(&mut *tx)
    .await?;
    let replayed: Option<Vec<LevelsRow>> = match side {
        LedgerSide::Totals => None,
        LedgerSide::Replayed => Some(
            sqlx::query_as(
                "SELECT sku, location_id, sum(on_hand_delta)::bigint, sum(reserved_delta)::bigint,
                        sum(committed_delta)::bigint, sum(in_transit_delta)::bigint
                 FROM ledger GROUP BY sku, location_id",
            )
            .fetch_all(&mut *tx)
            .await?,
        ),
    };
    let skus: Vec<String> = sqlx::query_scalar("SELECT sku FROM skus ORDER BY sku").fetch_all(&mut *tx).await?;
    tx.commit().await?;
    let held = held_by_location(db).await?;

    let (mut snap, mut totals) = (BTreeMap::new(), BTreeMap::new());
    for (sku, loc, oh, rs, cm, it, sum_oh, sum_rs, sum_cm, sum_it) in rows {
        snap.insert((sku.clone(), loc.clone()), levels((oh, rs, cm, it)));
        totals.insert((sku, loc), levels((sum_oh, sum_rs, sum_cm, sum_it)));
    }
    let by_key = |rows: Vec<LevelsRow>| -> BTreeMap<Key, Levels> {
        rows.into_iter().map(|(s, l, a, b, c, d)| ((s, l), levels((a, b, c, d)))).collect()
    };
    let ledger = replayed.map_or_else(|| totals.clone(), by_key);
    let mut redis: BTreeMap<Key, Levels> = BTreeMap::new();
    let parsed: Vec<Sku> = skus.iter().filter_map(|s| Sku::parse(s.as_str()).ok()).collect();
    for chunk in parsed.chunks(1000) {
        for item in engine.levels(chunk, None).await? {
            for l in item.locations {
                redis.insert((item.sku.clone(), l.location_id), l.levels);
            }
        }
    }
    let after = engine.stream_lengths().await?;
    let in_flight: BTreeSet<u32> = before
        .iter()
        .zip(&after)
        .enumerate()
        .filter(|(_, (b, a))| **b > 0 || **a > 0)
        .filter_map(|(p, _)| u32::try_from(p).ok())
        .collect();

    let keys: BTreeSet<&Key> = snap.keys().chain(ledger.keys()).chain(totals.keys()).chain(redis.keys()).collect();
    let mut report = DriftReport { checked: keys.len(), ..DriftReport::default() };
    for key in keys {
        let in_flight_here = in_flight.contains(&engine.keys().partition_of(&key.0));
        let r = (!in_flight_here).then(|| redis.get(key).copied().unwrap_or_default());
        let s = snap.get(key).copied().unwrap_or_default();
        let l = ledger.get(key).copied().unwrap_or_default();
        let t = totals.get(key).copied().unwrap_or_default();
        if s != l || t != l || r.is_some_and(|r| r != s) {
            report.mismatches.push(Mismatch {
                sku: key.0.clone(),
                location_id: key.1.clone(),
                redis: r,
                snapshot: s,
                ledger: l,
                totals: t,
                quarantined: held.get(key).copied().unwrap_or_default(),
            });
        }
    }
    report.in_flight_partitions = in_flight.into_iter().collect();
    Ok(report)
}

/// Sets the snapshot and the kept sums to the ledger where the ledger agrees
/// with Redis (in a report of `LedgerSide::Totals` the ledger is those sums,
/// so only the snapshot can move). Returns (repaired, refused): a mismatch
/// whose ledger disagrees with Redis (or whose Redis side was not compared)
/// is left alone.
pub async fn repair_snapshot(db: &PgPool, report: &DriftReport) -> anyhow::Result<(Vec<Mismatch>, Vec<Mismatch>)> {
    let (mut repaired, mut refused) = (Vec::new(), Vec::new());
    for m in &report.mismatches {
        if m.redis != Some(m.ledger) {
            refused.push(m.clone());
            continue;
        }
        let l = m.ledger;
        let mut tx = db.begin().await?;
        sqlx::query(
            "INSERT INTO stock_levels (sku, location_id, on_hand, reserved, committed, in_transit, partition,
                                       stream_ms, stream_seq, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, -1, 0, 0, now())
             ON CONFLICT (sku, location_id) DO UPDATE SET on_hand = EXCLUDED.on_hand, reserved = EXCLUDED.reserved,
                 committed = EXCLUDED.committed, in_transit = EXCLUDED.in_transit, updated_at = now()",
        )
        .bind(&m.sku)
        .bind(&m.location_id)
        .bind(l.on_hand)
        .bind(l.reserved)
        .bind(l.committed)
        .bind(l.in_transit)
        .execute(&mut *tx)
        .await?;
        // The sums anew from this SKU-location's rows (ledger_by_sku). The
        // statement above locked the row: a reconciler batch adding to it
        // waits, and its rows, not yet committed, are added after this; one
        // that committed first is in the sums, as this statement reads the
        // ledger as it is once the lock is had.
        sqlx::query(
            "UPDATE stock_levels AS t SET ledger_on_hand = l.oh, ledger_reserved = l.rs, ledger_committed = l.cm,
                 ledger_in_transit = l.it
             FROM (SELECT coalesce(sum(on_hand_delta), 0)::bigint AS oh, coalesce(sum(reserved_delta), 0)::bigint AS rs,
                          coalesce(sum(committed_delta), 0)::bigint AS cm,
                          coalesce(sum(in_transit_delta), 0)::bigint AS it
                   FROM ledger WHERE sku = $1 AND location_id = $2) AS l
             WHERE t.sku = $1 AND t.location_id = $2",
        )
        .bind(&m.sku)
        .bind(&m.location_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        repaired.push(m.clone());
    }
    Ok((repaired, refused))
}

/// Runs the check periodically and exports the number of mismatches.
pub async fn run_drift_checks(
    engine: Arc<Engine>,
    db: PgPool,
    every: Duration,
    stats: Arc<ReconcileStats>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match check_drift(&engine, &db, LedgerSide::Totals).await {
            Ok(r) => {
                stats.drift.store(r.mismatches.len() as u64, Ordering::Relaxed);
                if !r.mismatches.is_empty() {
                    let quarantined = r.mismatches.iter().filter(|m| m.quarantined.events > 0).count();
                    tracing::warn!(mismatches = r.mismatches.len(), with_quarantined_events = quarantined, first = ?r.mismatches.first(), "drift between redis and postgres");
                }
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "drift check failed"),
        }
    }
}
