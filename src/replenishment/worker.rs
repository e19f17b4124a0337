//! The replenishment worker, on one replica at a time (a Postgres advisory
//! lock of its own, beside the reconciler's). Each round:
//!
//! 1. applies PO movements left unapplied (a crash or a Redis outage
//!    between a PO's change in Postgres and the engine: see orders.rs);
//! 2. **watches the ledger**: the SKU-locations of the rows written since the
//!    last round whose position went down (a reserve, a negative adjustment,
//!    a PO cancel) are checked at once, so a best seller's reorder follows
//!    the sale that crossed its point by about one round. It reads the
//!    ledger's tail by id, where the reconciler already put every reconciled
//!    change, rather than asking the reconciler to report them: the
//!    reconciler's hot loop stays as it is, the two may lead on different
//!    replicas, and the place read up to is kept in Postgres
//!    (`reorder_watch`), so a new leader goes on from there. (Ledger ids
//!    grow in commit order because the reconciler, one leader at a time,
//!    writes one transaction after another; anything missed is caught by 3.)
//! 3. **sweeps** every SKU-location when the sweep interval has passed (and
//!    when it starts leading);
//! 4. sends the notifications that are due.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::check::run_check;
use super::notify::{Notifier, NotifyOutcome};
use super::orders::PurchaseOrders;
use super::{ReplenishmentError, ReplenishmentSettings};
use crate::reconcile::LeaderLock;
use crate::reservation::Engine;

/// Most ledger rows the watch reads in one round (the rest wait for the next).
const WATCH_BATCH: i64 = 100_000;

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    /// Unapplied PO movements applied.
    pub movements: u64,
    /// SKU-locations the watch checked.
    pub watched: usize,
    /// Whether every SKU-location was checked.
    pub swept: bool,
    /// POs created or given lines.
    pub ordered: Vec<String>,
    /// Notifications sent.
    pub notified: NotifyOutcome,
}

/// The worker of one store.
pub struct ReplenishmentWorker {
    db: PgPool,
    orders: PurchaseOrders,
    notifier: Notifier,
    settings: ReplenishmentSettings,
    /// The leader lock's key (per Redis prefix, like the reconciler's).
    lock_key: i64,
    /// The last ledger id the watch has read (None: read it from Postgres).
    watermark: Option<i64>,
    /// When the last full sweep ran (None: never, since leading).
    last_sweep: Option<Instant>,
}

impl ReplenishmentWorker {
    /// A worker for `engine`'s store in `db`.
    pub fn new(db: PgPool, engine: Arc<Engine>, settings: ReplenishmentSettings) -> Self {
        let lock_key =
            i64::from(crc32fast::hash(format!("stockd:replenishment:{}", engine.keys().prefix()).as_bytes()));
        Self {
            orders: PurchaseOrders::new(db.clone(), engine),
            notifier: Notifier::new(db.clone(), settings.clone()),
            db,
            settings,
            lock_key,
            watermark: None,
            last_sweep: None,
        }
    }

    /// One round (see the module docs). Movements that cannot be applied
    /// yet (Redis down) are logged and left for the next round; a Postgres
    /// failure ends the round with the error.
    pub async fn try_execute_task(&mut self) -> Result<Round, ReplenishmentError> {
        let mut round = Round::default();
        let pending = self.orders.apply_pending(None).await?;
        round.movements = pending.applied;
        if let Some(e) = pending.error {
            tracing::warn!(error = %e, "replenishment: PO movements wait for the engine");
        }
        let (last, changed) = self.changed_since_watermark().await?;
        if !changed.is_empty() {
            let outcome = run_check(&self.db, &self.orders, &self.settings, Some(&changed)).await?;
            round.watched = outcome.assessed;
            round.ordered.extend(outcome.changed.into_iter().map(|po| po.po_id));
        }
        if let Some(last) = last {
            self.save_watermark(last).await?;
        }
        if self.last_sweep.is_none_or(|at| at.elapsed() >= self.settings.sweep_interval) {
            let outcome = run_check(&self.db, &self.orders, &self.settings, None).await?;
            self.last_sweep = Some(Instant::now());
            round.swept = true;
            round.ordered.extend(outcome.changed.into_iter().map(|po| po.po_id));
        }
        round.notified = self.notifier.try_execute_task().await?;
        Ok(round)
    }

    /// The SKU-locations whose position went down in the ledger rows after
    /// the watermark, and the last id read (None when there was nothing).
    async fn changed_since_watermark(&mut self) -> Result<(Option<i64>, Vec<(String, String)>), sqlx::Error> {
        let from = match self.watermark {
            Some(w) => w,
            None => {
                let stored: Option<i64> =
                    sqlx::query_scalar("SELECT last_ledger_id FROM reorder_watch").fetch_optional(&self.db).await?;
                match stored {
                    Some(w) => w,
                    // Never watched: from here on (the sweep covers the past).
                    None => sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM ledger").fetch_one(&self.db).await?,
                }
            }
        };
        self.watermark = Some(from);
        let (last, keys): (Option<i64>, Vec<String>) = sqlx::query_as(
            "SELECT max(id), coalesce(array_agg(DISTINCT sku || E'\\t' || location_id) FILTER (WHERE down), '{}')
             FROM (SELECT id, sku, location_id,
                          on_hand_delta - reserved_delta - committed_delta + in_transit_delta < 0 AS down
                   FROM ledger WHERE id > $1 ORDER BY id LIMIT $2) r",
        )
        .bind(from)
        .bind(WATCH_BATCH)
        .fetch_one(&self.db)
        .await?;
        let changed =
            keys.into_iter().filter_map(|k| k.split_once('\t').map(|(s, l)| (s.to_owned(), l.to_owned()))).collect();
        Ok((last, changed))
    }

    async fn save_watermark(&mut self, last: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO reorder_watch (singleton, last_ledger_id) VALUES (true, $1)
             ON CONFLICT (singleton) DO UPDATE SET last_ledger_id = EXCLUDED.last_ledger_id",
        )
        .bind(last)
        .execute(&self.db)
        .await?;
        self.watermark = Some(last);
        Ok(())
    }

    /// Leads when it can and runs rounds every watch interval until stopped;
    /// errors (Postgres down) are logged and the next round tries again.
    pub async fn run_until_stopped(mut self, stop: CancellationToken) {
        let mut lock: Option<LeaderLock> = None;
        let mut checked = Instant::now();
        loop {
            if lock.is_none() {
                match LeaderLock::try_acquire(&self.db, self.lock_key).await {
                    Ok(Some(l)) => {
                        tracing::info!("replenishment: leading");
                        lock = Some(l);
                        // Whatever was read before belongs to an earlier term.
                        self.watermark = None;
                        self.last_sweep = None;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "replenishment: cannot reach postgres for the leader lock"),
                }
            }
            if let Some(l) = &mut lock {
                match self.try_execute_task().await {
                    Ok(round) if round != Round::default() => tracing::debug!(?round, "replenishment round"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "replenishment round failed; retrying"),
                }
                if checked.elapsed() > Duration::from_secs(2) {
                    checked = Instant::now();
                    if !l.still_held().await {
                        tracing::warn!("replenishment: lost the leader lock");
                        lock = None;
                    }
                }
            }
            let wait = if lock.is_some() { self.settings.watch_interval } else { Duration::from_secs(1) };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        if let Some(l) = lock {
            l.release().await;
        }
    }
}
