//! The summary a run prints: a few human lines, then one JSON object as the
//! last line of standard output (what CI and scripts read).

use serde::Serialize;

use crate::cpu::{self, CpuUse};
use crate::lag::LagFigures;
use crate::load::Measured;

/// The JSON summary. Field names and order are the contract.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// `flash-sale`, `catalog` or `floor`.
    pub scenario: &'static str,
    /// Workers (requests in flight).
    pub concurrency: usize,
    /// Measured seconds (from the first request to the last answer).
    pub duration_s: f64,
    /// Requests completed against stockd.
    pub requests: u64,
    /// requests / duration_s.
    pub throughput_rps: f64,
    /// Order lines the successful calls moved, per second: a reserve, commit,
    /// fulfil or release of an n-line order counts n (the flash sale: one per
    /// reserved request). It puts the scenarios on one scale: a catalog
    /// request carries about three lines, a flash-sale request one.
    pub lines_per_s: f64,
    /// Latency quantiles of those requests, milliseconds, as the client saw them.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Requests that failed (gRPC error, or an outcome the scenario rules out).
    pub errors: u64,
    /// Units promised beyond stock, read back from the server after the run;
    /// null for the floor, which keeps no levels to read back.
    pub oversold: Option<i64>,
    /// The seed's Postgres transaction at the same concurrency and duration;
    /// null when skipped.
    pub baseline: Option<BaselineSummary>,
    /// throughput_rps / baseline.throughput_rps.
    pub ratio_vs_baseline: Option<f64>,
    /// Age of the newest ledger event in Postgres during the stockd phase
    /// (see lag.rs); null without a ledger in the database.
    pub reconcile_lag_ms: Option<LagFigures>,
    /// CPU by process during the stockd phase (see cpu.rs); null without /proc.
    pub cpu: Option<CpuUse>,
    /// Catalog scenario only: Redis memory figures.
    #[serde(flatten)]
    pub memory: Option<MemoryFigures>,
}

/// The baseline's figures.
#[derive(Debug, Serialize)]
pub struct BaselineSummary {
    /// What ran.
    pub name: &'static str,
    pub throughput_rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Redis memory, from `used_memory` deltas; null when no `--redis-url`.
#[derive(Debug, Serialize)]
pub struct MemoryFigures {
    pub redis_bytes_per_sku_location: Option<f64>,
    pub redis_bytes_per_active_hold: Option<f64>,
}

/// The Recorder count of order lines moved (see `Summary::lines_per_s`).
pub const LINES: &str = "lines";

/// The baseline's name in the summary.
pub const BASELINE_NAME: &str = "postgres-select-for-update";

impl Summary {
    /// The common figures of a measured stockd phase and its baseline.
    pub fn new(
        scenario: &'static str,
        concurrency: usize,
        stockd: &Measured,
        oversold: i64,
        baseline: Option<&Measured>,
    ) -> Self {
        let throughput = stockd.throughput();
        let baseline = baseline.map(|b| BaselineSummary {
            name: BASELINE_NAME,
            throughput_rps: round(b.throughput(), 1),
            p50_ms: round(b.rec.quantile_ms(0.5), 3),
            p99_ms: round(b.rec.quantile_ms(0.99), 3),
        });
        let ratio =
            baseline.as_ref().filter(|b| b.throughput_rps > 0.0).map(|b| round(throughput / b.throughput_rps, 2));
        Self {
            scenario,
            concurrency,
            duration_s: round(stockd.elapsed.as_secs_f64(), 3),
            requests: stockd.rec.requests,
            throughput_rps: round(throughput, 1),
            lines_per_s: round(stockd.per_second(stockd.rec.counted(LINES)), 1),
            p50_ms: round(stockd.rec.quantile_ms(0.5), 3),
            p99_ms: round(stockd.rec.quantile_ms(0.99), 3),
            p999_ms: round(stockd.rec.quantile_ms(0.999), 3),
            errors: stockd.rec.errors,
            oversold: Some(oversold),
            baseline,
            ratio_vs_baseline: ratio,
            reconcile_lag_ms: None,
            cpu: stockd.cpu.clone(),
            memory: None,
        }
    }
}

/// `x` rounded to `digits` decimals.
pub fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

/// One line describing a measured phase (outcome counts, error samples).
pub fn describe(label: &str, m: &Measured) -> String {
    let counts: Vec<String> = m.rec.counts().iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut s = format!(
        "{label}: {} requests in {:.2} s = {:.0}/s; p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms; errors {}; {}",
        m.rec.requests,
        m.elapsed.as_secs_f64(),
        m.throughput(),
        m.rec.quantile_ms(0.5),
        m.rec.quantile_ms(0.99),
        m.rec.quantile_ms(0.999),
        m.rec.quantile_ms(1.0),
        m.rec.errors,
        counts.join(" ")
    );
    if let Some(c) = &m.cpu {
        s.push_str(&format!("\n  {}", cpu::describe(label, c)));
    }
    for e in m.rec.error_samples() {
        s.push_str(&format!("\n  error: {e}"));
    }
    s
}

/// One line on the reconcile lag of the stockd phase.
pub fn describe_lag(lag: Option<&LagFigures>) -> String {
    match lag {
        Some(l) => format!(
            "reconcile lag (age of the newest ledger event, sampled every 100 ms): p50 {:.1} ms, p99 {:.1} ms, \
             max {:.1} ms over {} samples",
            l.p50, l.p99, l.max, l.samples
        ),
        None => "reconcile lag: not measured (no stockd ledger in --database-url; see --stockd-schema)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::load::Recorder;

    #[test]
    fn the_json_has_exactly_the_contract_keys() {
        let mut rec = Recorder::new();
        rec.add(LINES, 3);
        rec.add(LINES, 4);
        let m = Measured { rec, elapsed: Duration::from_secs(2), cpu: None };
        let mut s = Summary::new("catalog", 4, &m, 0, Some(&m));
        let flash: serde_json::Value = serde_json::to_value(&s).expect("serializes");
        let keys: Vec<&str> = flash.as_object().expect("object").keys().map(String::as_str).collect();
        let mut want = vec![
            "scenario",
            "concurrency",
            "duration_s",
            "requests",
            "throughput_rps",
            "lines_per_s",
            "p50_ms",
            "p99_ms",
            "p999_ms",
            "errors",
            "oversold",
            "baseline",
            "ratio_vs_baseline",
            "reconcile_lag_ms",
            "cpu",
        ];
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        want.sort_unstable();
        assert_eq!(sorted, want);
        assert_eq!(flash["lines_per_s"], 3.5, "7 lines in 2 s");
        let b = flash["baseline"].as_object().expect("baseline object");
        assert!(["name", "throughput_rps", "p50_ms", "p99_ms"].iter().all(|k| b.contains_key(*k)));

        s.memory = Some(MemoryFigures { redis_bytes_per_sku_location: Some(1.5), redis_bytes_per_active_hold: None });
        let cat = serde_json::to_value(&s).expect("serializes");
        assert_eq!(cat["redis_bytes_per_sku_location"], 1.5);
        assert!(cat["redis_bytes_per_active_hold"].is_null());
    }

    #[test]
    fn rounding_keeps_the_asked_decimals() {
        assert_eq!(round(1.23456, 3), 1.235);
        assert_eq!(round(20_000.04, 1), 20_000.0);
    }
}
