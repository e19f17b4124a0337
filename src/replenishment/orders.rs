//! Purchase orders in Postgres, and their movements through the engine.
//!
//! Every change a PO makes to stock numbers (submit: into in_transit; a
//! receipt: in_transit to on_hand; cancel: what is still in transit out of
//! it) goes in this order:
//!
//! 1. One Postgres transaction takes the PO's row lock, checks the
//!    transition against the PO as it stands (a receipt against what is
//!    still expected: over-receipt is refused here, before anything
//!    changes), moves the PO (status, received quantities) and records the
//!    movement it asks of the engine in `po_movements`, unapplied.
//! 2. The engine applies the movement (po.lua) under its operation id:
//!    `po:<id>:submit`, `po:<id>:receive:<operation_id>`, `po:<id>:cancel`.
//! 3. The movement is marked applied.
//!
//! A crash or a Redis outage between 1 and 3 leaves the movement unapplied
//! in Postgres, never lost: the next call on that PO, or the replenishment
//! worker's next pass, applies it again, and the operation id makes the
//! engine skip what it already did (per partition: see reservation/po.rs).
//! So the PO row is always what was decided, and the stock numbers follow
//! it exactly once. The other order (engine first) could move stock for a
//! receipt that the PO never records when the process dies between the two,
//! and a later receipt could then pass the over-receipt check. Movements of
//! one PO are applied in the order they were recorded, so a receipt never
//! reaches the engine before its PO's submit.
//!
//! Replays: submitting a submitted PO and cancelling a cancelled one change
//! nothing; a receipt's operation id already recorded changes nothing. Each
//! still finishes the PO's unapplied movements and answers the PO.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

use super::ReplenishmentError;
use crate::catalog::{PageQuery, PageSize, PageToken};
use crate::domain::{LocationId, PoId, Sku};
use crate::reservation::{Engine, EngineError, PoMoveKind, PoMoveLine};

/// Where a purchase order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PoStatus {
    /// Being put together by reorder checks; nothing in transit yet.
    Draft,
    /// Sent to the supplier: its quantities are in transit.
    Submitted,
    /// Some received, the rest still in transit.
    PartiallyReceived,
    /// Everything received.
    Received,
    /// Cancelled: what was still in transit left it.
    Cancelled,
}

impl PoStatus {
    /// The status as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "DRAFT",
            Self::Submitted => "SUBMITTED",
            Self::PartiallyReceived => "PARTIALLY_RECEIVED",
            Self::Received => "RECEIVED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// A stored status.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "DRAFT" => Some(Self::Draft),
            "SUBMITTED" => Some(Self::Submitted),
            "PARTIALLY_RECEIVED" => Some(Self::PartiallyReceived),
            "RECEIVED" => Some(Self::Received),
            "CANCELLED" => Some(Self::Cancelled),
            _ => None,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Self::Draft => "a draft",
            Self::Submitted => "submitted",
            Self::PartiallyReceived => "partially received",
            Self::Received => "received",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One line of a PO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoLine {
    /// What.
    pub sku: String,
    /// Units ordered.
    pub quantity: i64,
    /// Units received so far.
    pub received: i64,
}

/// A purchase order: one supplier, one location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseOrder {
    /// The key.
    pub po_id: String,
    /// Who it is ordered from.
    pub supplier_id: String,
    /// Where it is delivered.
    pub location_id: String,
    /// Where it stands.
    pub status: PoStatus,
    /// Its lines, by SKU.
    pub lines: Vec<PoLine>,
    /// When the first line was ordered.
    pub created_at: SystemTime,
    /// When it was submitted, if it was.
    pub submitted_at: Option<SystemTime>,
}

/// One line of a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptLine {
    /// What arrived.
    pub sku: Sku,
    /// How many (positive).
    pub quantity: i64,
}

/// A movement's change to one SKU, as `po_movements.lines` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct MovementLine {
    sku: String,
    on_hand: i64,
    in_transit: i64,
}

/// The engine operation id of a PO's submit.
pub fn submit_operation(po: &str) -> String {
    format!("po:{po}:submit")
}

/// The engine operation id of a receipt with the caller's operation id.
pub fn receive_operation(po: &str, operation_id: &str) -> String {
    format!("po:{po}:receive:{operation_id}")
}

/// The engine operation id of a PO's cancel.
pub fn cancel_operation(po: &str) -> String {
    format!("po:{po}:cancel")
}

/// A new PO id: `PO-<date>-<8 hex>`, so that ids sort by creation day.
pub fn new_po_id() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("PO-{}-{}", Utc::now().format("%Y%m%d"), &random[..8])
}

/// Purchase orders and their movements.
#[derive(Clone)]
pub struct PurchaseOrders {
    db: PgPool,
    engine: Arc<Engine>,
}

#[derive(sqlx::FromRow)]
struct HeaderRow {
    po_id: String,
    supplier_id: String,
    location_id: String,
    status: String,
    created_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
}

/// Reads the POs named by `ids` with their lines, in the order given
/// (missing ids are skipped).
pub async fn load(db: &mut PgConnection, ids: &[String]) -> Result<Vec<PurchaseOrder>, sqlx::Error> {
    let headers: Vec<HeaderRow> = sqlx::query_as(
        "SELECT po_id, supplier_id, location_id, status, created_at, submitted_at
         FROM purchase_orders WHERE po_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut *db)
    .await?;
    let lines: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT po_id, sku, quantity, received FROM purchase_order_lines WHERE po_id = ANY($1) ORDER BY po_id, sku",
    )
    .bind(ids)
    .fetch_all(&mut *db)
    .await?;
    let mut lines_of: BTreeMap<String, Vec<PoLine>> = BTreeMap::new();
    for (po, sku, quantity, received) in lines {
        lines_of.entry(po).or_default().push(PoLine { sku, quantity, received });
    }
    let mut by_id: BTreeMap<String, PurchaseOrder> = headers
        .into_iter()
        .map(|h| {
            let po = PurchaseOrder {
                lines: lines_of.remove(&h.po_id).unwrap_or_default(),
                status: PoStatus::parse(&h.status).unwrap_or(PoStatus::Draft),
                po_id: h.po_id.clone(),
                supplier_id: h.supplier_id,
                location_id: h.location_id,
                created_at: h.created_at.into(),
                submitted_at: h.submitted_at.map(Into::into),
            };
            (h.po_id, po)
        })
        .collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// Takes the PO's row lock; its status and location.
async fn lock(tx: &mut PgConnection, id: &PoId) -> Result<(PoStatus, String), ReplenishmentError> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT status, location_id FROM purchase_orders WHERE po_id = $1 FOR UPDATE")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    let (status, location) = row.ok_or_else(|| ReplenishmentError::NotFound(format!("purchase order {id}")))?;
    let status = PoStatus::parse(&status)
        .ok_or_else(|| ReplenishmentError::FailedPrecondition(format!("purchase order {id} has status {status}")))?;
    Ok((status, location))
}

/// Records a movement to apply (step 1 of the module docs).
async fn record_movement(
    tx: &mut PgConnection,
    op: &str,
    id: &PoId,
    kind: PoMoveKind,
    location: &str,
    lines: &[MovementLine],
) -> Result<(), ReplenishmentError> {
    let lines = serde_json::to_value(lines)
        .map_err(|e| ReplenishmentError::FailedPrecondition(format!("movement lines: {e}")))?;
    sqlx::query("INSERT INTO po_movements (operation_id, po_id, kind, location_id, lines) VALUES ($1, $2, $3, $4, $5)")
        .bind(op)
        .bind(id.as_str())
        .bind(kind.event_kind())
        .bind(location)
        .bind(lines)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn set_status(tx: &mut PgConnection, id: &PoId, status: PoStatus) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE purchase_orders SET status = $2, updated_at = now(),
             submitted_at = CASE WHEN $2 = 'SUBMITTED' THEN now() ELSE submitted_at END
         WHERE po_id = $1",
    )
    .bind(id.as_str())
    .bind(status.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// What a pass over unapplied movements did.
#[derive(Debug, Default)]
pub struct PendingOutcome {
    /// Movements applied (or found already applied in the engine).
    pub applied: u64,
    /// The first failure, if any (its PO's later movements wait for it).
    pub error: Option<EngineError>,
}

#[derive(sqlx::FromRow)]
struct MovementRow {
    operation_id: String,
    po_id: String,
    kind: String,
    location_id: String,
    lines: serde_json::Value,
}

/// Most movements one pass applies.
const PENDING_BATCH: i64 = 500;

impl PurchaseOrders {
    /// Purchase orders in `db`, moving stock through `engine`.
    pub fn new(db: PgPool, engine: Arc<Engine>) -> Self {
        Self { db, engine }
    }

    /// One purchase order.
    pub async fn get(&self, id: &PoId) -> Result<PurchaseOrder, ReplenishmentError> {
        let mut conn = self.db.acquire().await?;
        load(&mut conn, &[id.to_string()])
            .await?
            .pop()
            .ok_or_else(|| ReplenishmentError::NotFound(format!("purchase order {id}")))
    }

    /// A page of purchase orders in id order (ids sort by creation day),
    /// with this status and supplier when given.
    pub async fn list(
        &self,
        status: Option<PoStatus>,
        supplier: Option<&str>,
        size: PageSize,
        after: Option<&str>,
    ) -> Result<(Vec<PurchaseOrder>, Option<PageToken>), ReplenishmentError> {
        let mut conn = self.db.acquire().await?;
        let mut ids: Vec<String> = sqlx::query_scalar(
            "SELECT po_id FROM purchase_orders
             WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR supplier_id = $2)
               AND ($3::text IS NULL OR po_id > $3)
             ORDER BY po_id LIMIT $4",
        )
        .bind(status.map(PoStatus::as_str))
        .bind(supplier)
        .bind(after)
        .bind(i64::from(size.get()) + 1)
        .fetch_all(&mut *conn)
        .await?;
        let next = if ids.len() > size.get() as usize {
            ids.truncate(size.get() as usize);
            let query = PageQuery::PurchaseOrders { status: status.map(PoStatus::as_str), supplier_id: supplier };
            ids.last().map(|id| PageToken::after_key(query, id))
        } else {
            None
        };
        Ok((load(&mut conn, &ids).await?, next))
    }

    /// Draft -> submitted: the ordered quantities enter in_transit. A PO
    /// already submitted (or further) is answered as it is; a cancelled one
    /// is refused.
    pub async fn submit(&self, id: &PoId) -> Result<PurchaseOrder, ReplenishmentError> {
        let mut tx = self.db.begin().await?;
        let (status, location) = lock(&mut tx, id).await?;
        match status {
            PoStatus::Draft => {
                let lines: Vec<(String, i64)> =
                    sqlx::query_as("SELECT sku, quantity FROM purchase_order_lines WHERE po_id = $1 ORDER BY sku")
                        .bind(id.as_str())
                        .fetch_all(&mut *tx)
                        .await?;
                let moves: Vec<MovementLine> =
                    lines.into_iter().map(|(sku, q)| MovementLine { sku, on_hand: 0, in_transit: q }).collect();
                record_movement(&mut tx, &submit_operation(id.as_str()), id, PoMoveKind::Submit, &location, &moves)
                    .await?;
                set_status(&mut tx, id, PoStatus::Submitted).await?;
            }
            PoStatus::Cancelled => {
                return Err(ReplenishmentError::FailedPrecondition(format!(
                    "cannot submit purchase order {id}: it is cancelled"
                )));
            }
            PoStatus::Submitted | PoStatus::PartiallyReceived | PoStatus::Received => {}
        }
        tx.commit().await?;
        self.finish(id).await?;
        self.get(id).await
    }

    /// A partial or full receipt: in_transit -> on_hand for each line.
    /// `operation_id` (the caller's) makes it idempotent: the same id again
    /// changes nothing. A SKU not on the PO, or more than is still expected
    /// of a line, is refused before anything changes.
    pub async fn receive(
        &self,
        id: &PoId,
        lines: &[ReceiptLine],
        operation_id: &str,
    ) -> Result<PurchaseOrder, ReplenishmentError> {
        let op = receive_operation(id.as_str(), operation_id);
        let mut tx = self.db.begin().await?;
        let (status, location) = lock(&mut tx, id).await?;
        let seen: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM po_movements WHERE operation_id = $1)")
            .bind(&op)
            .fetch_one(&mut *tx)
            .await?;
        if !seen {
            if !matches!(status, PoStatus::Submitted | PoStatus::PartiallyReceived) {
                return Err(ReplenishmentError::FailedPrecondition(format!(
                    "cannot receive purchase order {id}: it is {}",
                    status.word()
                )));
            }
            let ordered: BTreeMap<String, (i64, i64)> = sqlx::query_as::<_, (String, i64, i64)>(
                "SELECT sku, quantity, received FROM purchase_order_lines WHERE po_id = $1",
            )
            .bind(id.as_str())
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(sku, q, r)| (sku, (q, r)))
            .collect();
            check_receipt(id, lines, &ordered)?;
            for l in lines {
                sqlx::query("UPDATE purchase_order_lines SET received = received + $3 WHERE po_id = $1 AND sku = $2")
                    .bind(id.as_str())
                    .bind(l.sku.as_str())
                    .bind(l.quantity)
                    .execute(&mut *tx)
                    .await?;
            }
            let all_in: bool =
                sqlx::query_scalar("SELECT bool_and(received = quantity) FROM purchase_order_lines WHERE po_id = $1")
                    .bind(id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
            let moves: Vec<MovementLine> = lines
                .iter()
                .map(|l| MovementLine { sku: l.sku.to_string(), on_hand: l.quantity, in_transit: -l.quantity })
                .collect();
            record_movement(&mut tx, &op, id, PoMoveKind::Receive, &location, &moves).await?;
            let next = if all_in { PoStatus::Received } else { PoStatus::PartiallyReceived };
            set_status(&mut tx, id, next).await?;
        }
        tx.commit().await?;
        self.finish(id).await?;
        self.get(id).await
    }

    /// Cancels a PO: what is still in transit leaves it (a draft has
    /// nothing in transit). Cancelling again changes nothing; a received PO
    /// cannot be cancelled.
    pub async fn cancel(&self, id: &PoId) -> Result<PurchaseOrder, ReplenishmentError> {
        let mut tx = self.db.begin().await?;
        let (status, location) = lock(&mut tx, id).await?;
        match status {
            PoStatus::Cancelled => {}
            PoStatus::Received => {
                return Err(ReplenishmentError::FailedPrecondition(format!(
                    "cannot cancel purchase order {id}: it is received"
                )));
            }
            PoStatus::Draft => set_status(&mut tx, id, PoStatus::Cancelled).await?,
            PoStatus::Submitted | PoStatus::PartiallyReceived => {
                let outstanding: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT sku, quantity - received FROM purchase_order_lines
                     WHERE po_id = $1 AND received < quantity ORDER BY sku",
                )
                .bind(id.as_str())
                .fetch_all(&mut *tx)
                .await?;
                let moves: Vec<MovementLine> =
                    outstanding.into_iter().map(|(sku, q)| MovementLine { sku, on_hand: 0, in_transit: -q }).collect();
                if !moves.is_empty() {
                    let op = cancel_operation(id.as_str());
                    record_movement(&mut tx, &op, id, PoMoveKind::Cancel, &location, &moves).await?;
                }
                set_status(&mut tx, id, PoStatus::Cancelled).await?;
            }
        }
        tx.commit().await?;
        self.finish(id).await?;
        self.get(id).await
    }

    /// Applies the PO's unapplied movements; the first failure is the answer.
    async fn finish(&self, id: &PoId) -> Result<(), ReplenishmentError> {
        match self.apply_pending(Some(id.as_str())).await?.error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Applies unapplied movements (of one PO, or all), oldest first. A
    /// movement that fails holds back its PO's later ones until the next
    /// pass; others go on.
    pub async fn apply_pending(&self, po: Option<&str>) -> Result<PendingOutcome, sqlx::Error> {
        let rows: Vec<MovementRow> = sqlx::query_as(
            "SELECT operation_id, po_id, kind, location_id, lines FROM po_movements
             WHERE applied_at IS NULL AND ($1::text IS NULL OR po_id = $1)
             ORDER BY seq LIMIT $2",
        )
        .bind(po)
        .bind(PENDING_BATCH)
        .fetch_all(&self.db)
        .await?;
        let mut outcome = PendingOutcome::default();
        let mut held_back: Vec<String> = Vec::new();
        for m in rows {
            if held_back.contains(&m.po_id) {
                continue;
            }
            match self.apply(&m).await {
                Ok(()) => {
                    sqlx::query("UPDATE po_movements SET applied_at = now() WHERE operation_id = $1")
                        .bind(&m.operation_id)
                        .execute(&self.db)
                        .await?;
                    outcome.applied += 1;
                }
                Err(e) => {
                    tracing::warn!(po = m.po_id, operation = m.operation_id, error = %e, "PO movement not applied yet");
                    held_back.push(m.po_id);
                    outcome.error.get_or_insert(e);
                }
            }
        }
        Ok(outcome)
    }

    async fn apply(&self, m: &MovementRow) -> Result<(), EngineError> {
        let bad = |detail: String| EngineError::Protocol { script: "po", detail };
        let kind = PoMoveKind::from_event_kind(&m.kind).ok_or_else(|| bad(format!("movement kind {}", m.kind)))?;
        let location = LocationId::parse(m.location_id.as_str()).map_err(|e| bad(format!("location: {e}")))?;
        let lines: Vec<MovementLine> =
            serde_json::from_value(m.lines.clone()).map_err(|e| bad(format!("movement lines: {e}")))?;
        let lines = lines
            .into_iter()
            .map(|l| {
                let sku = Sku::parse(l.sku).map_err(|e| bad(format!("sku: {e}")))?;
                Ok(PoMoveLine { sku, on_hand: l.on_hand, in_transit: l.in_transit })
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        self.engine.po_move(kind, &location, &m.operation_id, &m.po_id, &lines).await?;
        Ok(())
    }
}

/// Checks a receipt against the PO's lines (sku -> (ordered, received)):
/// every SKU on the PO, and no more than is still expected of it.
fn check_receipt(
    id: &PoId,
    lines: &[ReceiptLine],
    ordered: &BTreeMap<String, (i64, i64)>,
) -> Result<(), ReplenishmentError> {
    let mut bad = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        match ordered.get(l.sku.as_str()) {
            None => bad.push((format!("lines[{i}].sku"), format!("{} is not on purchase order {id}", l.sku))),
            Some((quantity, received)) if l.quantity > quantity - received => bad.push((
                format!("lines[{i}].quantity"),
                format!(
                    "{} is more than the {} still expected of {} ({quantity} ordered, {received} received)",
                    l.quantity,
                    quantity - received,
                    l.sku
                ),
            )),
            Some(_) => {}
        }
    }
    if bad.is_empty() { Ok(()) } else { Err(ReplenishmentError::InvalidLines(bad)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: i64) -> ReceiptLine {
        ReceiptLine { sku: Sku::parse(sku).expect("sku"), quantity }
    }

    #[test]
    fn a_receipt_may_take_what_is_still_expected_and_no_more() {
        let id = PoId::parse("PO-1").expect("id");
        let ordered: BTreeMap<String, (i64, i64)> =
            [("A".to_owned(), (10, 4)), ("B".to_owned(), (5, 0))].into_iter().collect();
        assert!(check_receipt(&id, &[line("A", 6), line("B", 1)], &ordered).is_ok());
        let Err(ReplenishmentError::InvalidLines(bad)) =
            check_receipt(&id, &[line("A", 7), line("C", 1), line("B", 5)], &ordered)
        else {
            panic!("refused")
        };
        let fields: Vec<&str> = bad.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["lines[0].quantity", "lines[1].sku"]);
    }

    #[test]
    fn statuses_round_trip_and_operation_ids_follow_the_design() {
        for s in
            [PoStatus::Draft, PoStatus::Submitted, PoStatus::PartiallyReceived, PoStatus::Received, PoStatus::Cancelled]
        {
            assert_eq!(PoStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(submit_operation("P1"), "po:P1:submit");
        assert_eq!(receive_operation("P1", "dock-7"), "po:P1:receive:dock-7");
        assert_eq!(cancel_operation("P1"), "po:P1:cancel");
        let id = new_po_id();
        assert!(PoId::parse(id.as_str()).is_ok() && id.starts_with("PO-"), "{id}");
    }
}
