//! Prometheus metrics, one registry per running stockd (so tests in one
//! process do not share counts). Series are prefixed `stockd_`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::reconcile::ReconcileStats;
use crate::reservation::Engine;

/// Latency buckets in seconds: sub-millisecond to a few seconds.
const BUCKETS: &[f64] = &[0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Every series stockd exports.
pub struct Metrics {
    registry: Registry,
    /// Reserve answers by outcome (reserved, existing, insufficient_stock, stop_sell, unknown_sku).
    pub reservations: IntCounterVec,
    /// gRPC call latency by method and status code.
    pub rpc_duration: HistogramVec,
    /// Calls refused because too many were in progress.
    pub overload_rejections: IntCounter,
    /// gRPC calls holding a request slot (from the arrival of the request
    /// message until the response is sent).
    pub calls_in_progress: IntGauge,
    /// Open connections by port (grpc, http).
    pub connections: IntGaugeVec,
    /// Connections stockd closed, by port and reason (over_limit: refused at
    /// accept; idle; send_timeout: the client did not read).
    pub connections_closed: IntCounterVec,
    /// Lua script latency by script.
    pub script_duration: HistogramVec,
    /// Orders carried by each Reserve script call (coalescing, see batch.rs).
    pub reserve_batch_orders: Histogram,
    /// Script calls that failed (Redis down, timeout, script error) by script.
    pub script_errors: IntCounterVec,
    /// Holds released by the sweeper (idle SKUs).
    pub sweeper_released: IntCounter,
    /// Uncommitted holds right now (read at scrape time).
    active_holds: IntGauge,
    /// Stream entries not yet in Postgres (read at scrape time).
    backlog: IntGauge,
    /// Seconds since the oldest event not yet in Postgres (read at scrape
    /// time, in Redis time): it keeps rising while the reconciler fails.
    reconcile_lag: Gauge,
    /// Events written to the ledger by this process.
    reconciled_events: IntGauge,
    /// Expiry events written to the ledger by this process.
    reconciled_expiries: IntGauge,
    /// Failed reconcile batches (retried).
    reconcile_failures: IntGauge,
    /// 1 when this process leads the reconciler.
    reconcile_leader: IntGauge,
    /// SKU-locations the last drift check found disagreeing.
    drift_mismatches: IntGauge,
    /// Unresolved events in the reconciler's quarantine.
    quarantined: IntGauge,
    /// 1 when the hot path (Redis, holding the store) is ready.
    ready: IntGauge,
    /// Cycle counts recorded, by action (MATCHED, ADJUSTED, INVESTIGATION, STOP_SELL).
    pub cycle_counts: IntCounterVec,
    /// Counts that found a difference, by the SKU's ABC class.
    pub count_discrepancies: IntCounterVec,
    /// Open count investigations (from Postgres; see cycle_count).
    pub open_investigations: IntGauge,
    /// SKU-locations where selling is stopped (from Postgres; see cycle_count).
    pub stopped_sku_locations: IntGauge,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()), labels)?;
    r.register(Box::new(h.clone()))?;
    Ok(h)
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

impl Metrics {
    /// A fresh registry with every series.
    pub fn new() -> prometheus::Result<Arc<Self>> {
        let r = Registry::new();
        let reconcile_lag = Gauge::new("stockd_reconcile_lag_seconds", "Age of the oldest event not yet in Postgres")?;
        r.register(Box::new(reconcile_lag.clone()))?;
        let overload_rejections =
            IntCounter::new("stockd_overload_rejections_total", "Calls refused with RESOURCE_EXHAUSTED")?;
        r.register(Box::new(overload_rejections.clone()))?;
        let reserve_batch_orders = Histogram::with_opts(
            HistogramOpts::new("stockd_reserve_batch_orders", "Orders carried by each Reserve script call")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1000.0]),
        )?;
        r.register(Box::new(reserve_batch_orders.clone()))?;
        let sweeper_released =
            IntCounter::new("stockd_sweeper_released_total", "Expired holds released by the sweeper")?;
        r.register(Box::new(sweeper_released.clone()))?;
        let connections = IntGaugeVec::new(Opts::new("stockd_connections", "Open connections by port"), &["port"])?;
        r.register(Box::new(connections.clone()))?;
        Ok(Arc::new(Self {
            reservations: counter_vec(&r, "stockd_reservations_total", "Reserve answers by outcome", &["outcome"])?,
            rpc_duration: histogram_vec(&r, "stockd_rpc_duration_seconds", "gRPC call latency", &["method", "code"])?,
            overload_rejections,
            calls_in_progress: gauge(&r, "stockd_calls_in_progress", "gRPC calls holding a request slot")?,
            connections,
            connections_closed: counter_vec(
                &r,
                "stockd_connections_closed_total",
                "Connections closed by stockd",
                &["port", "reason"],
            )?,
            script_duration: histogram_vec(&r, "stockd_script_duration_seconds", "Lua script latency", &["script"])?,
            reserve_batch_orders,
            script_errors: counter_vec(&r, "stockd_script_errors_total", "Failed script calls", &["script"])?,
            sweeper_released,
            active_holds: gauge(&r, "stockd_active_holds", "Uncommitted holds")?,
            backlog: gauge(&r, "stockd_reconcile_backlog", "Stream entries not yet in Postgres")?,
            reconcile_lag,
            reconciled_events: gauge(&r, "stockd_reconciled_events", "Ledger rows written by this process")?,
            reconciled_expiries: gauge(
                &r,
                "stockd_reconciled_expiries",
                "Expiries written to the ledger by this process",
            )?,
            reconcile_failures: gauge(&r, "stockd_reconcile_failures", "Failed reconcile batches")?,
            reconcile_leader: gauge(&r, "stockd_reconcile_leader", "1 when this process leads the reconciler")?,
            drift_mismatches: gauge(&r, "stockd_drift_mismatches", "SKU-locations in disagreement at the last check")?,
            quarantined: gauge(
                &r,
                "stockd_reconcile_quarantined_events",
                "Events the reconciler set apart (Postgres refused them), not yet resolved",
            )?,
            ready: gauge(&r, "stockd_ready", "1 when the hot path is ready")?,
            cycle_counts: counter_vec(&r, "stockd_cycle_counts_total", "Cycle counts recorded", &["action"])?,
            count_discrepancies: counter_vec(
                &r,
                "stockd_count_discrepancies_total",
                "Cycle counts that found a difference",
                &["abc_class"],
            )?,
            open_investigations: gauge(&r, "stockd_open_investigations", "Open count investigations")?,
            stopped_sku_locations: gauge(&r, "stockd_stopped_sku_locations", "SKU-locations where selling is stopped")?,
            registry: r,
        }))
    }

    /// The text exposition, after refreshing the gauges read at scrape time.
    pub async fn render(&self, engine: &Engine, stats: &ReconcileStats) -> String {
        if let Ok(n) = engine.active_holds().await {
            self.active_holds.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        if let Ok(b) = crate::reconcile::backlog(engine).await {
            self.backlog.set(i64::try_from(b.entries).unwrap_or(i64::MAX));
            self.reconcile_lag.set(b.lag_ms as f64 / 1000.0);
        }
        let get = |a: &std::sync::atomic::AtomicU64| i64::try_from(a.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        self.reconciled_events.set(get(&stats.events));
        self.reconciled_expiries.set(get(&stats.expiries));
        self.reconcile_failures.set(get(&stats.failures));
        self.reconcile_leader.set(i64::from(stats.leading.load(Ordering::Relaxed)));
        self.drift_mismatches.set(get(&stats.drift));
        self.quarantined.set(get(&stats.quarantined));
        self.ready.set(i64::from(engine.is_ready()));
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
