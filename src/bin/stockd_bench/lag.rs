//! Reconcile lag as the system of record shows it: while the stockd phase
//! runs, the age of the newest event in stockd's ledger, sampled every
//! 100 ms. That is how far Postgres is behind Redis at a random moment (the
//! reconciler's read pause, its read and its write), measured from outside
//! stockd rather than taken from its own metric. Both clocks are the
//! machine's (events carry Redis time; the age is Postgres's clock minus it),
//! so this holds for a local run, not across machines.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::report::round;

const EVERY: Duration = Duration::from_millis(100);

/// Quantiles of the sampled lag, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LagFigures {
    /// Median age of the newest ledger event.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Oldest seen.
    pub max: f64,
    /// How many samples the figures come from.
    pub samples: usize,
}

/// A running sampler; `finish` stops it and gives the figures.
pub struct LagSampler {
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<Vec<f64>>>,
}

impl LagSampler {
    /// Starts sampling stockd's ledger in `database_url` (in `schema`, else
    /// the database's search path). `None` when there is no ledger there.
    pub async fn start(database_url: &str, schema: Option<&str>) -> anyhow::Result<Option<Self>> {
        let mut opts: sqlx::postgres::PgConnectOptions =
            database_url.parse().with_context(|| format!("--database-url {database_url}"))?;
        if let Some(s) = schema {
            opts = opts.options([("search_path", s)]);
        }
        let db =
            PgPoolOptions::new().max_connections(1).connect_with(opts).await.context("connecting the lag sampler")?;
        let ledger: Option<String> = sqlx::query_scalar("SELECT to_regclass('ledger')::text")
            .fetch_one(&db)
            .await
            .context("looking for the ledger")?;
        if ledger.is_none() {
            return Ok(None);
        }
        let stop = CancellationToken::new();
        let task = tokio::spawn(sample(db, stop.clone()));
        Ok(Some(Self { stop, task }))
    }

    /// Stops a sampler, if one was started; `None` when there was none or
    /// it took no sample (an empty ledger).
    pub async fn finish(sampler: Option<Self>) -> anyhow::Result<Option<LagFigures>> {
        let Some(s) = sampler else { return Ok(None) };
        s.stop.cancel();
        let samples = s.task.await.context("the lag sampler panicked")??;
        Ok(figures(samples))
    }
}

async fn sample(db: PgPool, stop: CancellationToken) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(samples),
            _ = tick.tick() => {}
        }
        // The newest row by id is the last one the reconciler wrote.
        let age: Option<f64> = sqlx::query_scalar(
            "SELECT (extract(epoch FROM clock_timestamp() - occurred_at) * 1000)::float8
             FROM ledger ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&db)
        .await
        .context("sampling the ledger")?;
        samples.extend(age);
    }
}

/// Nearest-rank quantiles of the samples.
fn figures(mut samples: Vec<f64>) -> Option<LagFigures> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    let at = |q: f64| samples[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    Some(LagFigures { p50: round(at(0.5), 1), p99: round(at(0.99), 1), max: round(samples[n - 1], 1), samples: n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank_over_the_samples() {
        let f = figures((1..=200).rev().map(f64::from).collect()).expect("samples");
        assert_eq!(f, LagFigures { p50: 100.0, p99: 198.0, max: 200.0, samples: 200 });
        let one = figures(vec![42.25]).expect("one sample");
        assert_eq!((one.p50, one.p99, one.max), (42.3, 42.3, 42.3));
        assert_eq!(figures(Vec::new()), None);
    }
}
