//! Purchase-order movements through the engine (po.lua): submit moves the
//! ordered quantities into in_transit, a receipt from in_transit to on_hand,
//! a cancel takes what is still in transit out of it.
//!
//! A PO's lines live in the partitions of their SKUs, so a movement is one
//! script call per partition, each all-or-nothing, all under the same
//! operation id. Each partition remembers the id (its ops index, restored
//! from Postgres after a Redis loss), so a movement interrupted half-way is
//! finished by calling it again: the partitions already done answer DUP.

use std::collections::BTreeMap;

use redis::Value;

use super::engine::{Engine, millis};
use super::reply::Reply;
use super::scripts::SCRIPTS;
use super::{EngineError, Keys};
use crate::domain::{LocationId, MAX_LEVEL, Sku};

/// Which movement (the events' kind says the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoMoveKind {
    /// Ordered quantities enter in_transit.
    Submit,
    /// Received quantities leave in_transit for on_hand.
    Receive,
    /// What is still in transit leaves it.
    Cancel,
}

impl PoMoveKind {
    /// The kind as events and the ledger name it.
    pub fn event_kind(self) -> &'static str {
        match self {
            Self::Submit => "po_submit",
            Self::Receive => "po_receive",
            Self::Cancel => "po_cancel",
        }
    }

    /// The kind named by `event_kind`.
    pub fn from_event_kind(kind: &str) -> Option<Self> {
        match kind {
            "po_submit" => Some(Self::Submit),
            "po_receive" => Some(Self::Receive),
            "po_cancel" => Some(Self::Cancel),
            _ => None,
        }
    }
}

/// The change one PO line makes to its SKU at the PO's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoMoveLine {
    /// What.
    pub sku: Sku,
    /// Added to on_hand (a receipt's quantity; else 0).
    pub on_hand: i64,
    /// Added to in_transit (positive on submit, negative on receipt and cancel).
    pub in_transit: i64,
}

/// What a movement did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoMoved {
    /// Partitions where it was applied now.
    pub applied: u32,
    /// Partitions that had it already (a replay; nothing changed there).
    pub replayed: u32,
}

impl Engine {
    /// Applies a PO movement at `location` under operation id `op` (see the
    /// module docs); `po_id` is recorded on its events. Every partition
    /// either applies its lines or answers DUP; a SKU unknown to the engine,
    /// or an in_transit that would fall below zero, refuses that partition
    /// before it changes anything (partitions before it in this call may
    /// have applied: calling again with the same id finishes the movement
    /// once the cause is fixed).
    pub async fn po_move(
        &self,
        kind: PoMoveKind,
        location: &LocationId,
        op: &str,
        po_id: &str,
        lines: &[PoMoveLine],
    ) -> Result<PoMoved, EngineError> {
        let mut by_partition: BTreeMap<u32, Vec<&PoMoveLine>> = BTreeMap::new();
        for line in lines {
            by_partition.entry(self.keys().partition_of(line.sku.as_str())).or_default().push(line);
        }
        let mut moved = PoMoved::default();
        let member = Keys::operation_member(op);
        let retention = millis(self.settings().operation_retention).to_string();
        for (p, lines) in by_partition {
            let keys = self.keys().partition(p).all().map(str::to_owned);
            let mut args = vec![
                kind.event_kind().to_owned(),
                location.to_string(),
                op.to_owned(),
                retention.clone(),
                member.clone(),
                po_id.to_owned(),
            ];
            for l in lines {
                args.extend([l.sku.to_string(), l.on_hand.to_string(), l.in_transit.to_string()]);
            }
            let v: Value = self.run(&SCRIPTS.po, &keys, 1, &args).await?;
            let mut r = Reply::new("po", v)?;
            match r.string()?.as_str() {
                "OK" => moved.applied += 1,
                "DUP" => moved.replayed += 1,
                "UNKNOWN" => return Err(EngineError::UnknownSku(r.string()?)),
                "RANGE" => {
                    return Err(EngineError::OutOfRange {
                        field: "lines",
                        detail: format!(
                            "{} would take on_hand or in_transit of {} at {location} past ±{MAX_LEVEL}",
                            kind.event_kind(),
                            r.string()?
                        ),
                    });
                }
                "SHORT" => {
                    let (sku, in_transit) = (r.string()?, r.int()?);
                    return Err(EngineError::FailedPrecondition(format!(
                        "{} would take in_transit of {sku} at {location} below zero (it is {in_transit})",
                        kind.event_kind()
                    )));
                }
                other => return Err(EngineError::Protocol { script: "po", detail: format!("tag {other:?}") }),
            }
        }
        Ok(moved)
    }
}
