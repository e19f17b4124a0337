//! Cycle counts in the engine: a count judged against on_hand at its instant
//! (count.lua), and the resolution of an investigation (resolve_count.lua).
//! What the gates mean is `cycle_count::policy`; this file builds the calls
//! and reads the replies.

use super::Engine;
use super::EngineError;
use super::engine::{Adjusted, millis};
use super::keys::Keys;
use super::reply::Reply;
use super::scripts::SCRIPTS;
use crate::cycle_count::{CountAction, CountGates};
use crate::domain::{Levels, LocationId, OnHand, OperationId, Sku};

/// What a count found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// on_hand when the count was judged.
    pub expected: i64,
    /// What the shelf held.
    pub counted: i64,
    /// What the gates made of it.
    pub action: CountAction,
    /// The investigation opened, for INVESTIGATION and STOP_SELL.
    pub investigation_id: Option<String>,
    /// The count was submitted before with this operation id: this is the
    /// answer it got then, and nothing changed now.
    pub replayed: bool,
}

/// The result of resolving an investigation in the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The levels after it, and what on_hand moved by.
    pub adjusted: Adjusted,
    /// The location's stop flag was lifted by this call.
    pub lifted: bool,
}

impl Engine {
    /// Counts `sku` at `location`: compares `counted` with on_hand now,
    /// through `gates`, and corrects on_hand or stops the location in the
    /// same step (count.lua). `investigation_id` names the investigation if
    /// one opens. Once per operation id: a count submitted again answers as
    /// the first time. A count of a SKU the catalog never registered is
    /// `UnknownSku`.
    pub async fn count(
        &self,
        sku: &Sku,
        location: &LocationId,
        counted: OnHand,
        op: &OperationId,
        investigation_id: &str,
        gates: &CountGates,
    ) -> Result<Counted, EngineError> {
        let mut keys: Vec<String> = self.single_partition(sku).into();
        keys.push(self.keys().count_answer(sku.as_str(), op.as_str()));
        let args = [
            sku.to_string(),
            location.to_string(),
            counted.get().to_string(),
            op.to_string(),
            millis(self.settings().operation_retention).to_string(),
            Keys::operation_member(op.as_str()),
            investigation_id.to_owned(),
            gates.adjust_bp.to_string(),
            gates.stop_bp.to_string(),
            gates.min_units.to_string(),
        ];
        let v = self.run(&SCRIPTS.count, &keys, 1, &args).await?;
        let mut r = Reply::new("count", v)?;
        let tag = r.string()?;
        let word = r.string()?;
        let (expected, counted_now) = (r.int()?, r.int()?);
        let investigation = r.string()?;
        let (for_sku, for_location) = (r.string()?, r.string()?);
        let bad = |detail: String| EngineError::Protocol { script: "count", detail };
        let replayed = match tag.as_str() {
            "OK" => false,
            "DUP" => true,
            "UNKNOWN" => return Err(EngineError::UnknownSku(sku.to_string())),
            "RANGE" => {
                return Err(EngineError::OutOfRange {
                    field: "counted",
                    detail: format!("{} is outside 0..={}", counted.get(), crate::domain::MAX_ON_HAND),
                });
            }
            "LOST" => {
                return Err(EngineError::FailedPrecondition(format!(
                    "operation {op} was applied, but its answer is no longer kept (Redis was rebuilt since): \
                     submit the count with a new operation id"
                )));
            }
            other => return Err(bad(format!("tag {other:?}"))),
        };
        if replayed && (for_sku != sku.as_str() || for_location != location.as_str()) {
            return Err(EngineError::FailedPrecondition(format!(
                "operation {op} was used for a count of {for_sku} at {for_location}"
            )));
        }
        let action = CountAction::parse(&word).ok_or_else(|| bad(format!("action {word:?}")))?;
        Ok(Counted {
            expected,
            counted: counted_now,
            action,
            investigation_id: (!investigation.is_empty()).then_some(investigation),
            replayed,
        })
    }

    /// Resolves an investigation of `sku` at `location` in one step: on_hand
    /// is set to `accepted` (reason count), and the location's stop flag is
    /// lifted when `lift` (resolve_count.lua). Once per operation id.
    pub async fn resolve_count(
        &self,
        sku: &Sku,
        location: &LocationId,
        accepted: OnHand,
        op: &OperationId,
        lift: bool,
    ) -> Result<Resolved, EngineError> {
        let keys = self.single_partition(sku);
        let args = [
            sku.to_string(),
            location.to_string(),
            accepted.get().to_string(),
            op.to_string(),
            millis(self.settings().operation_retention).to_string(),
            Keys::operation_member(op.as_str()),
            if lift { "1" } else { "0" }.to_owned(),
        ];
        let v = self.run(&SCRIPTS.resolve_count, &keys, 1, &args).await?;
        let mut r = Reply::new("resolve_count", v)?;
        let tag = r.string()?;
        let levels = Levels { on_hand: r.int()?, reserved: r.int()?, committed: r.int()?, in_transit: r.int()? };
        let delta = r.int()?;
        let lifted = r.int()? == 1;
        match tag.as_str() {
            "OK" => Ok(Resolved { adjusted: Adjusted { levels, delta, replayed: false }, lifted }),
            "DUP" => Ok(Resolved { adjusted: Adjusted { levels, delta: 0, replayed: true }, lifted: false }),
            "UNKNOWN" => Err(EngineError::UnknownSku(sku.to_string())),
            "RANGE" => Err(EngineError::OutOfRange {
                field: "accepted_on_hand",
                detail: format!("{} is outside 0..={}", accepted.get(), crate::domain::MAX_ON_HAND),
            }),
            other => Err(EngineError::Protocol { script: "resolve_count", detail: format!("tag {other:?}") }),
        }
    }
}
