//! `reorder`: how long a reorder check takes at scale. Seeds a schema of its
//! own with S SKUs at L locations (S × L SKU-locations, 20 suppliers) and D
//! days of ledger history, then times the suggestion query over every
//! SKU-location (the one set-based query a check runs), and a whole reorder
//! check (the query, then the draft POs it makes) twice: the second finds
//! every line already on order and makes nothing.
//!
//! The history: each SKU-location sells on 4 days in 5 (1 + up to twice its
//! rate units, the rate falling with the SKU's number as a long tail does),
//! and is restocked every 14 days; its ledger rows are written straight into
//! Postgres, then VACUUM ANALYZE sets the visibility map as autovacuum does
//! for an insert-only table (the velocity query reads an index only). Only
//! rows that move on_hand are written: reservation rows (reserve, commit,
//! release) are not in the index the query reads.
//! Nothing here talks to stockd or Redis.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use stockd::config::Config;
use stockd::replenishment::{PurchaseOrders, ReplenishmentSettings, Scope, run_check, suggestions};
use stockd::reservation::{Engine, Keys};

use crate::progress;

/// Settings of the reorder scenario.
#[derive(Debug, Clone, Args)]
pub struct ReorderArgs {
    /// Postgres to seed (a schema of its own there).
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    /// The schema seeded; dropped first, and afterwards unless --keep.
    #[arg(long, default_value = "bench_reorder")]
    pub schema: String,
    /// SKUs.
    #[arg(long, default_value_t = 50_000)]
    pub skus: u32,
    /// Locations each SKU is stocked at.
    #[arg(long, default_value_t = 2)]
    pub locations: u32,
    /// Days of ledger history.
    #[arg(long, default_value_t = 90)]
    pub days: u32,
    /// The velocity window (STOCKD_REORDER_WINDOW_DAYS).
    #[arg(long, default_value_t = 28)]
    pub window_days: u32,
    /// Timed runs of the suggestion query (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Keep the seeded schema afterwards (and reuse it if it has the same shape).
    #[arg(long)]
    pub keep: bool,
    /// Print the query plan (EXPLAIN ANALYZE) of one suggestion query.
    #[arg(long)]
    pub explain: bool,
}

/// The JSON line.
#[derive(Debug, Serialize)]
struct ReorderSummary {
    scenario: &'static str,
    sku_locations: u64,
    days: u32,
    window_days: u32,
    ledger_rows: i64,
    seed_s: f64,
    suggestions_s: Vec<f64>,
    suggestions_median_s: f64,
    below_reorder_point: usize,
    check_s: f64,
    check_pos: usize,
    recheck_s: f64,
    recheck_pos: usize,
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Runs the scenario and prints its JSON line.
pub async fn run(a: &ReorderArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.skus > 0 && a.locations > 0 && a.days > 0 && a.runs > 0, "sizes must be positive");
    let config = Config {
        database_url: a.database_url.clone(),
        database_schema: Some(a.schema.clone()),
        database_pool_size: 2,
        ..Config::default()
    };
    let base = Config { database_schema: None, ..config.clone() };
    let admin = stockd::db::connect(&base).await?;
    let shape = format!("{}x{}x{}", a.skus, a.locations, a.days);
    let reuse = a.keep && seeded_shape(&admin, &a.schema).await.as_deref() == Some(shape.as_str());
    if !reuse {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", a.schema)).execute(&admin).await?;
    }
    let db = stockd::db::connect(&config).await?;
    let seed_started = Instant::now();
    if !reuse {
        stockd::db::migrate(&db, &config).await?;
        seed(&db, a).await?;
        sqlx::query("INSERT INTO store_meta (key, value) VALUES ('bench_reorder_shape', $1)")
            .bind(&shape)
            .execute(&db)
            .await?;
    }
    let seed_s = secs(seed_started.elapsed());
    let ledger_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger").fetch_one(&db).await?;
    progress!(
        "{} SKU-locations, {ledger_rows} ledger rows (seeded in {seed_s} s)",
        u64::from(a.skus) * u64::from(a.locations)
    );

    let settings = ReplenishmentSettings { window_days: a.window_days, ..ReplenishmentSettings::default() };
    if a.explain {
        explain(&db, &settings).await?;
    }
    let mut times = Vec::new();
    let mut below = 0;
    for i in 0..a.runs {
        let mut conn = db.acquire().await?;
        let started = Instant::now();
        let all = suggestions(&mut conn, &Scope::default(), &settings).await?;
        let took = started.elapsed();
        below = all.iter().filter(|s| s.below_reorder_point).count();
        progress!(
            "suggestions run {}: {} SKU-locations in {:.3} s ({below} below)",
            i + 1,
            all.len(),
            took.as_secs_f64()
        );
        times.push(secs(took));
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];

    // The engine is never reached: no supplier of this scenario auto-submits.
    let keys = Keys::new("stockd-bench-reorder", 1).map_err(anyhow::Error::msg)?;
    let engine = Engine::new(&config.redis_url, keys, stockd::startup::engine_settings(&config))?;
    let orders = PurchaseOrders::new(db.clone(), std::sync::Arc::new(engine));
    let started = Instant::now();
    let first = run_check(&db, &orders, &settings, None).await.context("reorder check")?;
    let check_s = secs(started.elapsed());
    progress!("reorder check: {} POs in {check_s} s", first.changed.len());
    let started = Instant::now();
    let second = run_check(&db, &orders, &settings, None).await.context("second reorder check")?;
    let recheck_s = secs(started.elapsed());
    progress!("second reorder check: {} POs in {recheck_s} s", second.changed.len());

    db.close().await;
    if !a.keep {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", a.schema)).execute(&admin).await?;
    }
    admin.close().await;
    let summary = ReorderSummary {
        scenario: "reorder",
        sku_locations: u64::from(a.skus) * u64::from(a.locations),
        days: a.days,
        window_days: a.window_days,
        ledger_rows,
        seed_s,
        suggestions_s: times,
        suggestions_median_s: median,
        below_reorder_point: below,
        check_s,
        check_pos: first.changed.len(),
        recheck_s,
        recheck_pos: second.changed.len(),
    };
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

/// The shape a kept schema was seeded with, if any.
async fn seeded_shape(admin: &sqlx::PgPool, schema: &str) -> Option<String> {
    sqlx::query_scalar(&format!("SELECT value FROM \"{schema}\".store_meta WHERE key = 'bench_reorder_shape'"))
        .fetch_optional(admin)
        .await
        .ok()
        .flatten()
}

async fn seed(db: &sqlx::PgPool, a: &ReorderArgs) -> anyhow::Result<()> {
    let (skus, locations, days) = (i64::from(a.skus), i32::try_from(a.locations)?, i32::try_from(a.days)?);
    sqlx::query("INSERT INTO locations (location_id, name, priority) SELECT 'L' || l, 'L' || l, l FROM generate_series(1, $1) l")
        .bind(locations)
        .execute(db)
        .await?;
    sqlx::query(
        "INSERT INTO suppliers (supplier_id, name, lead_time_days, min_order_quantity)
         SELECT 'sup-' || s, 'Supplier ' || s, 3 + s % 12, (s % 4) * 25 FROM generate_series(1, 20) s",
    )
    .execute(db)
    .await?;
    // A long tail: SKU i sells about 30 / (1 + i mod 200) units a day.
    sqlx::query(
        "INSERT INTO skus (sku, name, supplier_id, case_pack)
         SELECT 'SKU-' || lpad(i::text, 7, '0'), 'SKU ' || i, 'sup-' || (1 + i % 20), (ARRAY[1, 1, 6, 12])[1 + i % 4]
         FROM generate_series(1, $1::bigint) i",
    )
    .bind(skus)
    .execute(db)
    .await?;
    sqlx::query(
        "INSERT INTO stock_levels (sku, location_id, on_hand, reserved, committed, in_transit, partition, stream_ms,
                                   stream_seq)
         SELECT 'SKU-' || lpad(i::text, 7, '0'), 'L' || l, floor(random() * 60 * 30.0 / (1 + i % 200))::bigint,
                0, 0, 0, 0, 0, 0
         FROM generate_series(1, $1::bigint) i, generate_series(1, $2) l",
    )
    .bind(skus)
    .bind(locations)
    .execute(db)
    .await?;
    for l in 1..=locations {
        let started = Instant::now();
        // Stream positions only need to be unique: (sku, location, day, kind).
        let rows = sqlx::query(
            "INSERT INTO ledger (partition, stream_ms, stream_seq, stream_idx, kind, sku, location_id, on_hand_delta,
                                 reserved_delta, committed_delta, in_transit_delta, occurred_at)
             SELECT -2, (i * 64 + $2) * 4096 + d, k, 0,
                    CASE k WHEN 0 THEN 'fulfill' ELSE 'adjust' END,
                    'SKU-' || lpad(i::text, 7, '0'), 'L' || $2,
                    CASE k WHEN 0 THEN -(1 + floor(random() * 2 * 30.0 / (1 + i % 200)))::bigint
                           ELSE ceil(14 * 30.0 / (1 + i % 200))::bigint END,
                    0, 0, 0, now() - make_interval(days => d) - make_interval(secs => random() * 86400)
             FROM generate_series(1, $1::bigint) i, generate_series(0, $3 - 1) d, generate_series(0, 1) k
             WHERE (k = 0 AND random() < 0.8) OR (k = 1 AND (d + i) % 14 = 0)",
        )
        .bind(skus)
        .bind(l)
        .bind(days)
        .execute(db)
        .await?
        .rows_affected();
        progress!("location L{l}: {rows} ledger rows in {:.1} s", started.elapsed().as_secs_f64());
    }
    sqlx::query("VACUUM (ANALYZE) ledger").execute(db).await?;
    sqlx::query("ANALYZE").execute(db).await?;
    Ok(())
}

async fn explain(db: &sqlx::PgPool, settings: &ReplenishmentSettings) -> anyhow::Result<()> {
    let plan: Vec<String> =
        sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS) {}", stockd::replenishment::SUGGESTIONS_QUERY))
            .bind(None::<&str>)
            .bind(None::<&str>)
            .bind(None::<&str>)
            .bind(None::<&str>)
            .bind(None::<i64>)
            .bind(None::<Vec<String>>)
            .bind(None::<Vec<String>>)
            .bind(i32::try_from(settings.window_days)?)
            .fetch_all(db)
            .await?;
    for line in plan {
        eprintln!("{line}");
    }
    Ok(())
}
