//! The steps of each cycle count call, between the gRPC handlers (which
//! parse and convert) and the engine and Postgres.

use std::sync::Arc;
use std::time::SystemTime;

use sqlx::PgPool;

use super::counts::{self, CountRecord};
use super::investigations::{self, Investigation, InvestigationStatus};
use super::policy::{AbcClass, CountAction, day_of, discrepancy, start_of};
use super::{AbcEntry, CycleCountError, CycleCountSettings, classes};
use crate::catalog::{LocationCache, PageQuery, PageSize, PageToken};
use crate::domain::{LocationId, OnHand, OperationId, Sku};
use crate::metrics::Metrics;
use crate::reservation::Engine;

/// A count as submitted (parsed at the edge).
#[derive(Debug, Clone)]
pub struct CountSubmission {
    /// What was counted.
    pub sku: Sku,
    /// Where.
    pub location: LocationId,
    /// What the shelf held.
    pub counted: OnHand,
    /// Who counted (a short name).
    pub counted_by: String,
    /// The idempotency key.
    pub operation_id: OperationId,
}

/// The answer to a count (the same every time its operation id is submitted).
#[derive(Debug, Clone, PartialEq)]
pub struct CountAnswer {
    /// on_hand when it was judged.
    pub expected: i64,
    /// What the shelf held.
    pub counted: i64,
    /// |counted - expected| / max(expected, 1).
    pub discrepancy: f64,
    /// What the gates made of it.
    pub action: CountAction,
    /// The investigation it opened.
    pub investigation_id: Option<String>,
}

/// Closing an investigation (parsed at the edge).
#[derive(Debug, Clone)]
pub struct Resolution {
    /// Which.
    pub investigation_id: String,
    /// The on_hand to set.
    pub accepted: OnHand,
    /// Who (a short name).
    pub resolved_by: String,
    /// Why.
    pub note: String,
}

/// A SKU-location due for a count. Blind: no expected quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCount {
    /// What.
    pub sku: String,
    /// Where.
    pub location_id: String,
    /// Its class, which sets how often.
    pub class: AbcClass,
    /// Its last count, if any.
    pub last_counted_at: Option<SystemTime>,
    /// The start (UTC) of the day it is due.
    pub due_at: SystemTime,
    /// That day has passed.
    pub overdue: bool,
}

/// Cycle counting over the engine and Postgres.
#[derive(Clone)]
pub struct CycleCounts {
    db: PgPool,
    engine: Arc<Engine>,
    locations: LocationCache,
    settings: CycleCountSettings,
    metrics: Arc<Metrics>,
}

/// Candidates read per round while a page of due counts fills.
const DUE_SCAN: i64 = 500;

fn answer(c: &CountRecord) -> CountAnswer {
    CountAnswer {
        expected: c.expected,
        counted: c.counted,
        discrepancy: c.discrepancy,
        action: c.action,
        investigation_id: c.investigation_id.clone(),
    }
}

impl CycleCounts {
    /// Cycle counting over these handles.
    pub fn new(
        db: PgPool,
        engine: Arc<Engine>,
        locations: LocationCache,
        settings: CycleCountSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self { db, engine, locations, settings, metrics }
    }

    /// The settings in force.
    pub fn settings(&self) -> &CycleCountSettings {
        &self.settings
    }

    /// Judges a count against on_hand now (in the engine), then records it,
    /// and the investigation it opened, in Postgres. Submitted again with
    /// its operation id, it answers as the first time and changes nothing.
    /// A SKU-location under investigation is not counted again until the
    /// investigation is resolved (FAILED_PRECONDITION).
    pub async fn submit(&self, s: CountSubmission) -> Result<CountAnswer, CycleCountError> {
        if !self.locations.contains(&s.location).await {
            return Err(CycleCountError::NotFound(format!("location {}", s.location)));
        }
        let (sku, location, op) = (s.sku.as_str(), s.location.as_str(), s.operation_id.as_str());
        if let Some(prev) = counts::find(&self.db, op).await? {
            if prev.sku != sku || prev.location_id != location {
                return Err(CycleCountError::FailedPrecondition(format!(
                    "operation {op} was used for a count of {} at {}",
                    prev.sku, prev.location_id
                )));
            }
            return Ok(answer(&prev));
        }
        if let Some(open) = investigations::open_at(&self.db, sku, location).await? {
            return Err(CycleCountError::FailedPrecondition(format!(
                "investigation {open} of {sku} at {location} is open: resolve it (with the recount as \
                 accepted_on_hand) before counting again"
            )));
        }
        let class = classes::class_of(&self.db, sku).await?;
        let candidate_id = uuid::Uuid::new_v4().to_string();
        let c = self
            .engine
            .count(&s.sku, &s.location, s.counted, &s.operation_id, &candidate_id, &self.settings.gates)
            .await?;
        // After the engine: if this fails, the caller's retry with the same
        // operation id gets the engine's kept answer and records it then.
        let record = CountRecord {
            operation_id: op.to_owned(),
            sku: sku.to_owned(),
            location_id: location.to_owned(),
            abc_class: class,
            expected: c.expected,
            counted: c.counted,
            discrepancy: discrepancy(c.expected, c.counted),
            action: c.action,
            investigation_id: c.investigation_id,
            counted_by: s.counted_by,
        };
        if counts::insert(&self.db, &record).await? {
            self.metrics.cycle_counts.with_label_values(&[record.action.as_str()]).inc();
            if record.action != CountAction::Matched {
                self.metrics.count_discrepancies.with_label_values(&[class.as_str()]).inc();
            }
            self.refresh_gauges().await;
        }
        Ok(answer(&record))
    }

    /// Sets the accepted on_hand through the engine, lifts the stop the
    /// investigation put on its SKU-location (unless another open one
    /// stopped it too), and marks it resolved. Resolving twice is
    /// FAILED_PRECONDITION. The engine step is once per investigation
    /// (operation id `inv:<id>:resolve`), so a retry after a failure in
    /// between sets nothing twice.
    pub async fn resolve(&self, r: Resolution) -> Result<Investigation, CycleCountError> {
        let id = r.investigation_id.as_str();
        let inv = investigations::get(&self.db, id)
            .await?
            .ok_or_else(|| CycleCountError::NotFound(format!("investigation {id}")))?;
        if inv.status == InvestigationStatus::Resolved {
            return Err(already_resolved(&inv));
        }
        let stored = |what: &str, e: crate::domain::IdError| {
            CycleCountError::FailedPrecondition(format!("investigation {id} holds a bad {what}: {e}"))
        };
        let sku = Sku::parse(inv.sku.as_str()).map_err(|e| stored("sku", e))?;
        let location = LocationId::parse(inv.location_id.as_str()).map_err(|e| stored("location", e))?;
        let op = OperationId::parse(format!("inv:{id}:resolve")).map_err(|e| stored("id", e))?;
        let lift = inv.stop_sell && !investigations::other_open_stop(&self.db, &inv.sku, &inv.location_id, id).await?;
        self.engine.resolve_count(&sku, &location, r.accepted, &op, lift).await?;
        let resolved = investigations::mark_resolved(&self.db, id, r.accepted.get(), &r.resolved_by, &r.note).await?;
        self.refresh_gauges().await;
        match resolved {
            Some(done) => Ok(done),
            // Resolved by another call meanwhile (the engine step was one).
            None => match investigations::get(&self.db, id).await? {
                Some(now) => Err(already_resolved(&now)),
                None => Err(CycleCountError::NotFound(format!("investigation {id}"))),
            },
        }
    }

    /// A page of investigations (with `status`, or all), oldest first.
    pub async fn investigations(
        &self,
        status: Option<InvestigationStatus>,
        size: PageSize,
        after: Option<i64>,
    ) -> Result<(Vec<Investigation>, Option<PageToken>), CycleCountError> {
        Ok(investigations::list(&self.db, status, size, after).await?)
    }

    /// A page of every catalog SKU's class. Classes never computed are
    /// computed first (on demand; the leader recomputes them daily).
    pub async fn classes(
        &self,
        size: PageSize,
        after: Option<&str>,
    ) -> Result<(Vec<AbcEntry>, Option<PageToken>), CycleCountError> {
        if classes::computed_at(&self.db).await?.is_none() {
            self.recompute().await?;
        }
        Ok(classes::list(&self.db, size, after).await?)
    }

    /// Computes every SKU's class now. Returns how many SKUs were classed.
    pub async fn recompute(&self) -> Result<usize, CycleCountError> {
        Ok(classes::recompute_classes(&self.db, &self.settings.split, self.settings.window_days).await?)
    }

    /// Sets (Some) or removes (None) the class of a catalog SKU by hand.
    pub async fn set_class(&self, sku: &Sku, class: Option<AbcClass>) -> Result<AbcEntry, CycleCountError> {
        classes::set_override(&self.db, sku, class).await
    }

    /// A page of the SKU-locations due or overdue for a count today (UTC), at
    /// `location` or everywhere, in (location, SKU) order after `after`.
    /// Every SKU-location that has held stock is scheduled; one never
    /// counted is due.
    pub async fn due(
        &self,
        location: Option<&LocationId>,
        size: PageSize,
        after: Option<(String, String)>,
    ) -> Result<(Vec<DueCount>, Option<PageToken>), CycleCountError> {
        let today = day_of(SystemTime::now());
        let want = size.get() as usize;
        let mut found: Vec<DueCount> = Vec::new();
        let mut cursor = after;
        loop {
            let at = cursor.as_ref().map(|(l, s)| (l.as_str(), s.as_str()));
            let batch = counts::candidates(&self.db, location.map(LocationId::as_str), at, DUE_SCAN).await?;
            let last = batch.last().map(|c| (c.location_id.clone(), c.sku.clone()));
            let full = batch.len() as i64 == DUE_SCAN;
            for c in batch {
                let last_day = c.last_counted_at.map(day_of);
                let due = self.settings.schedule.due(&c.sku, c.class, last_day, today);
                if due.day <= today {
                    found.push(DueCount {
                        sku: c.sku,
                        location_id: c.location_id,
                        class: c.class,
                        last_counted_at: c.last_counted_at,
                        due_at: start_of(due.day),
                        overdue: due.overdue,
                    });
                }
            }
            if found.len() > want || !full {
                break;
            }
            cursor = last;
        }
        let next = if found.len() > want {
            found.truncate(want);
            let query = PageQuery::DueCounts { location_id: location.map(LocationId::as_str) };
            found.last().map(|d| PageToken::after_key(query, &format!("{}\t{}", d.location_id, d.sku)))
        } else {
            None
        };
        Ok((found, next))
    }

    /// Sets the open-investigation and stopped SKU-location gauges from
    /// Postgres (a failure leaves them as they were).
    pub async fn refresh_gauges(&self) {
        refresh_gauges(&self.db, &self.metrics).await;
    }
}

/// Sets the cycle count gauges from Postgres; logs and keeps them on failure.
pub(super) async fn refresh_gauges(db: &PgPool, metrics: &Metrics) {
    match investigations::gauges(db).await {
        Ok((open, stopped)) => {
            metrics.open_investigations.set(open);
            metrics.stopped_sku_locations.set(stopped);
        }
        Err(e) => tracing::warn!(error = %e, "reading the cycle count gauges"),
    }
}

fn already_resolved(inv: &Investigation) -> CycleCountError {
    CycleCountError::FailedPrecondition(format!(
        "investigation {} is already resolved (by {}, on_hand {})",
        inv.investigation_id,
        inv.resolved_by.as_deref().unwrap_or("?"),
        inv.accepted_on_hand.map_or_else(|| "?".to_owned(), |n| n.to_string())
    ))
}
