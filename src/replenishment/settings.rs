//! Tunables of replenishment, from `Config`.

use std::time::Duration;

/// How demand is measured, how much is ordered, and how the worker runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplenishmentSettings {
    /// Days of history velocity is measured over (28).
    pub window_days: u32,
    /// Days of cover beyond the lead time an order fills up to (30): the
    /// target cover is lead time + this.
    pub review_days: u32,
    /// Service level of suppliers that set none (0.95, z ≈ 1.645).
    pub service_level: f64,
    /// Period of the full reorder check over every SKU-location (1 h).
    pub sweep_interval: Duration,
    /// How often the worker reads the ledger for changed SKU-locations,
    /// applies unfinished PO movements and sends due notifications (2 s).
    pub watch_interval: Duration,
    /// Deadline of one notification request (10 s).
    pub notify_timeout: Duration,
    /// Delivery attempts before a notification is given up (20); the PO is
    /// never affected.
    pub notify_max_attempts: u32,
    /// Wait before the first retry (30 s), doubled per attempt up to an
    /// hour, with jitter.
    pub notify_backoff: Duration,
}

impl Default for ReplenishmentSettings {
    fn default() -> Self {
        Self {
            window_days: 28,
            review_days: 30,
            service_level: 0.95,
            sweep_interval: Duration::from_secs(3600),
            watch_interval: Duration::from_secs(2),
            notify_timeout: Duration::from_secs(10),
            notify_max_attempts: 20,
            notify_backoff: Duration::from_secs(30),
        }
    }
}
