//! Closed-loop load: N workers, each issuing one request after the other until
//! a deadline, timing every request into its own HdrHistogram (no shared
//! state on the hot path), merged at the end.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cpu::{CpuSample, CpuUse, machine_ticks};

/// Longest latency the histograms track (60 s, in microseconds); slower
/// requests are recorded as this.
const MAX_LATENCY_US: u64 = 60_000_000;

/// How many distinct error messages a recorder keeps for the report.
const ERROR_SAMPLES: usize = 5;

/// What one worker (or, merged, all of them) saw.
pub struct Recorder {
    /// Latency of every request, in microseconds.
    hist: Histogram<u64>,
    /// Requests completed (successful or not).
    pub requests: u64,
    /// Requests that failed: a gRPC or SQL error, or an answer the scenario
    /// does not expect.
    pub errors: u64,
    /// Named outcomes (`reserved`, `insufficient`, `released`, ...).
    counts: BTreeMap<&'static str, u64>,
    /// The first few distinct error messages, so a failing run says why.
    error_samples: Vec<String>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        // 3 significant digits over 1 us..60 s: a few hundred KiB per worker.
        let hist = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap_or_else(|_| unreachable!());
        Self { hist, requests: 0, errors: 0, counts: BTreeMap::new(), error_samples: Vec::new() }
    }

    /// Runs and times one request. A failure is counted as an error (and its
    /// message kept as a sample) and gives `None`.
    pub async fn call<T, E: std::fmt::Display>(&mut self, request: impl Future<Output = Result<T, E>>) -> Option<T> {
        let started = Instant::now();
        let result = request.await;
        self.record(started.elapsed());
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(e.to_string());
                None
            }
        }
    }

    /// Records one completed request that took `took`.
    fn record(&mut self, took: Duration) {
        self.requests += 1;
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_LATENCY_US);
        self.hist.saturating_record(us);
    }

    /// Counts an error (the request itself is already recorded).
    pub fn error(&mut self, message: String) {
        self.errors += 1;
        if self.error_samples.len() < ERROR_SAMPLES && !self.error_samples.contains(&message) {
            self.error_samples.push(message);
        }
    }

    /// Counts one named outcome.
    pub fn count(&mut self, what: &'static str) {
        self.add(what, 1);
    }

    /// Counts `n` of a named quantity (order lines moved, say).
    pub fn add(&mut self, what: &'static str, n: u64) {
        *self.counts.entry(what).or_default() += n;
    }

    /// How many times `what` was counted.
    pub fn counted(&self, what: &str) -> u64 {
        self.counts.get(what).copied().unwrap_or(0)
    }

    /// The named outcomes.
    pub fn counts(&self) -> &BTreeMap<&'static str, u64> {
        &self.counts
    }

    /// The first distinct error messages.
    pub fn error_samples(&self) -> &[String] {
        &self.error_samples
    }

    /// Adds another worker's figures to these.
    pub fn merge(&mut self, other: Recorder) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.requests += other.requests;
        self.errors += other.errors;
        for (k, v) in other.counts {
            *self.counts.entry(k).or_default() += v;
        }
        for e in other.error_samples {
            if self.error_samples.len() < ERROR_SAMPLES && !self.error_samples.contains(&e) {
                self.error_samples.push(e);
            }
        }
    }

    /// The latency at quantile `q` (0..=1), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

/// The merged result of one measured phase.
pub struct Measured {
    /// Every worker's figures, merged.
    pub rec: Recorder,
    /// From the first request to the last answer (requests in flight at the
    /// deadline are waited for and counted).
    pub elapsed: Duration,
    /// CPU used by every process on the machine meanwhile (see cpu.rs).
    pub cpu: Option<CpuUse>,
}

impl Measured {
    /// Completed requests per second.
    pub fn throughput(&self) -> f64 {
        self.per_second(self.rec.requests)
    }

    /// `n` over the measured time (0 when none passed).
    pub fn per_second(&self, n: u64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { n as f64 / secs } else { 0.0 }
    }
}

/// Runs `concurrency` workers until `duration` has passed, after waiting up
/// to `settle_for` for an idle machine (zero: not at all), announcing the
/// phase `label` on stderr so outside tools can sample just it. `worker(i,
/// deadline)` builds worker i's loop: it must stop starting requests once
/// `deadline` has passed and hand back its recorder.
pub async fn run<F, Fut>(
    label: &str,
    concurrency: usize,
    duration: Duration,
    settle_for: Duration,
    mut worker: F,
) -> anyhow::Result<Measured>
where
    F: FnMut(usize, Instant) -> Fut,
    Fut: Future<Output = Recorder> + Send + 'static,
{
    if !settle_for.is_zero() {
        match settle(settle_for).await {
            Some(idle) => crate::progress!("phase {label}: machine {:.0}% idle", idle * 100.0),
            None => crate::progress!("phase {label}: cannot read /proc/stat; not waiting"),
        }
    }
    crate::progress!("phase {label}: start ({concurrency} workers, {:.1} s)", duration.as_secs_f64());
    let cpu_before = CpuSample::take();
    let start = Instant::now();
    let deadline = start + duration;
    let mut set = JoinSet::new();
    for i in 0..concurrency {
        set.spawn(worker(i, deadline));
    }
    let mut rec = Recorder::new();
    while let Some(done) = set.join_next().await {
        rec.merge(done?);
    }
    let elapsed = start.elapsed();
    let cpu = cpu_before.zip(CpuSample::take()).map(|(before, after)| after.since(&before));
    crate::progress!("phase {label}: end ({} requests)", rec.requests);
    Ok(Measured { rec, elapsed, cpu })
}

/// Waits, at most `max_wait`, until the machine's CPUs are at least 85% idle
/// over a 2 s sample (Linux `/proc/stat`), so that a phase on a shared
/// machine does not start in the middle of someone else's build. Returns
/// the idle share last seen; `None` where `/proc/stat` cannot be read.
pub async fn settle(max_wait: Duration) -> Option<f64> {
    let started = Instant::now();
    loop {
        let (b0, t0) = machine_ticks()?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (b1, t1) = machine_ticks()?;
        let total = t1.saturating_sub(t0).max(1);
        let share = 1.0 - b1.saturating_sub(b0) as f64 / total as f64;
        if share >= 0.85 || started.elapsed() >= max_wait {
            return Some(share);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_request_is_recorded_and_counted_as_an_error() {
        let mut rec = Recorder::new();
        let ok = rec.call(async { Ok::<_, String>(7) }).await;
        let failed = rec.call(async { Err::<u8, _>("boom".to_string()) }).await;
        assert_eq!(ok, Some(7));
        assert_eq!(failed, None);
        assert_eq!(rec.requests, 2);
        assert_eq!(rec.errors, 1);
        assert_eq!(rec.error_samples(), ["boom".to_string()]);
    }

    #[test]
    fn merging_adds_requests_errors_counts_and_latencies() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        a.record(Duration::from_millis(1));
        a.count("reserved");
        b.record(Duration::from_millis(3));
        b.count("reserved");
        b.error("x".into());
        a.merge(b);
        assert_eq!(a.requests, 2);
        assert_eq!(a.errors, 1);
        assert_eq!(a.counted("reserved"), 2);
        assert!((a.quantile_ms(1.0) - 3.0).abs() < 0.01, "{}", a.quantile_ms(1.0));
    }

    #[tokio::test]
    async fn workers_stop_at_the_deadline() {
        let m = run("test", 4, Duration::from_millis(50), Duration::ZERO, |_, deadline| async move {
            let mut rec = Recorder::new();
            while Instant::now() < deadline {
                rec.call(async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Ok::<_, String>(())
                })
                .await;
            }
            rec
        })
        .await
        .expect("workers finish");
        assert!(m.rec.requests >= 4, "{}", m.rec.requests);
        assert!(m.elapsed < Duration::from_millis(500));
        assert!(m.throughput() > 0.0);
    }
}
