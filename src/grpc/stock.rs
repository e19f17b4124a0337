//! StockService: levels and physical adjustments.

use tonic::{Request, Response, Status};

use super::convert::{Violations, location_level, timestamp};
use super::proto::{self, stock_service_server::StockService};
use crate::catalog::{PageSize, PageToken};
use crate::domain::{LocationId, OnHand, OperationId, Sku, StockDelta};
use crate::ledger::{Movement, list_movements, movements_query};
use crate::reservation::{Adjusted, StockChange};
use crate::state::AppState;

/// Most SKUs one availability read may ask for.
pub const MAX_AVAILABILITY_SKUS: usize = 1000;

/// The StockService handlers.
pub struct StockApi {
    state: AppState,
}

impl StockApi {
    /// Handlers over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Checks the location exists, applies the change, and answers.
    async fn apply(
        &self,
        target: Target,
        change: StockChange,
        reason: proto::AdjustmentReason,
    ) -> Result<(Adjusted, OperationId), Status> {
        let Target { sku, location, operation_id } = target;
        if !self.state.location_cache.contains(&location).await {
            return Err(Status::not_found(format!("location {location} is not in the catalog")));
        }
        let op = operation_id.unwrap_or_else(OperationId::generate);
        let adjusted = self.state.engine.adjust(&sku, &location, change, &op, reason_word(reason)).await?;
        Ok((adjusted, op))
    }
}

struct Target {
    sku: Sku,
    location: LocationId,
    operation_id: Option<OperationId>,
}

fn parse_target(
    v: &mut Violations,
    sku: String,
    location_id: String,
    operation_id: String,
    reason: i32,
) -> (Option<Target>, proto::AdjustmentReason) {
    let sku = v.id("sku", sku, Sku::parse);
    let location = v.id("location_id", location_id, LocationId::parse);
    let operation_id = v.optional_id("operation_id", operation_id, OperationId::parse);
    let reason = match proto::AdjustmentReason::try_from(reason) {
        Ok(proto::AdjustmentReason::Unspecified) | Err(_) => {
            v.add("reason", "must be one of ADJUSTMENT_REASON_RECEIVED, _DAMAGED, _RETURNED, _SHRINKAGE, _CORRECTION, _COUNT, _IMPORT");
            proto::AdjustmentReason::Unspecified
        }
        Ok(r) => r,
    };
    let target = match (sku, location) {
        (Some(sku), Some(location)) => Some(Target { sku, location, operation_id }),
        _ => None,
    };
    (target, reason)
}

fn reason_word(r: proto::AdjustmentReason) -> &'static str {
    use proto::AdjustmentReason as R;
    match r {
        R::Unspecified => "unspecified",
        R::Received => "received",
        R::Damaged => "damaged",
        R::Returned => "returned",
        R::Shrinkage => "shrinkage",
        R::Correction => "correction",
        R::Count => "count",
        R::Import => "import",
    }
}

#[tonic::async_trait]
impl StockService for StockApi {
    async fn get_availability(
        &self,
        request: Request<proto::GetAvailabilityRequest>,
    ) -> Result<Response<proto::GetAvailabilityResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        if r.skus.is_empty() || r.skus.len() > MAX_AVAILABILITY_SKUS {
            v.add("skus", format!("must list 1 to {MAX_AVAILABILITY_SKUS} SKUs, got {}", r.skus.len()));
        }
        let skus: Vec<Sku> = r
            .skus
            .into_iter()
            .take(MAX_AVAILABILITY_SKUS)
            .enumerate()
            .filter_map(|(i, s)| v.id(&format!("skus[{i}]"), s, Sku::parse))
            .collect();
        let location = v.optional_id("location_id", r.location_id, LocationId::parse);
        v.finish()?;
        let levels = self.state.engine.levels(&skus, location.as_ref()).await?;
        Ok(Response::new(proto::GetAvailabilityResponse { items: levels.into_iter().map(Into::into).collect() }))
    }

    async fn adjust_stock(
        &self,
        request: Request<proto::AdjustStockRequest>,
    ) -> Result<Response<proto::AdjustStockResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let (target, reason) = parse_target(&mut v, r.sku, r.location_id, r.operation_id, r.reason);
        let delta = v.check("delta", StockDelta::parse(r.delta));
        v.finish()?;
        let (Some(target), Some(delta)) = (target, delta) else {
            return Err(Status::internal("validated fields missing"));
        };
        let location = target.location.to_string();
        let (a, op) = self.apply(target, StockChange::Delta(delta.get()), reason).await?;
        Ok(Response::new(proto::AdjustStockResponse {
            level: Some(location_level(location, a.levels)),
            replayed: a.replayed,
            operation_id: op.into_string(),
        }))
    }

    async fn set_on_hand(
        &self,
        request: Request<proto::SetOnHandRequest>,
    ) -> Result<Response<proto::SetOnHandResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let (target, reason) = parse_target(&mut v, r.sku, r.location_id, r.operation_id, r.reason);
        let on_hand = v.check("on_hand", OnHand::parse(r.on_hand));
        v.finish()?;
        let (Some(target), Some(on_hand)) = (target, on_hand) else {
            return Err(Status::internal("validated fields missing"));
        };
        let location = target.location.to_string();
        let (a, op) = self.apply(target, StockChange::Set(on_hand.get()), reason).await?;
        Ok(Response::new(proto::SetOnHandResponse {
            level: Some(location_level(location, a.levels)),
            replayed: a.replayed,
            operation_id: op.into_string(),
            delta: a.delta,
        }))
    }

    async fn list_movements(
        &self,
        request: Request<proto::ListMovementsRequest>,
    ) -> Result<Response<proto::ListMovementsResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let sku = v.id("sku", r.sku, Sku::parse);
        let location = v.optional_id("location_id", r.location_id, LocationId::parse);
        let size = v.check("page_size", PageSize::parse(r.page_size));
        // A token names its query; only a valid sku can be checked against it
        // (the bad sku is already named).
        let before = match &sku {
            Some(sku) => {
                let query = movements_query(sku.as_str(), location.as_ref().map(LocationId::as_str));
                v.check("page_token", PageToken::decode_number(query, &r.page_token)).flatten()
            }
            None => None,
        };
        v.finish()?;
        let (Some(sku), Some(size)) = (sku, size) else { return Err(Status::internal("validated fields missing")) };
        let (movements, next) =
            list_movements(&self.state.db, sku.as_str(), location.as_ref().map(LocationId::as_str), size, before)
                .await
                .map_err(crate::catalog::CatalogError::Database)?;
        Ok(Response::new(proto::ListMovementsResponse {
            movements: movements.into_iter().map(movement).collect(),
            next_page_token: next.map(|t| t.as_str().to_owned()).unwrap_or_default(),
        }))
    }
}

fn movement(m: Movement) -> proto::Movement {
    use proto::MovementKind as K;
    let kind = match m.kind.as_str() {
        "reserve" => K::Reserve,
        "commit" => K::Commit,
        "fulfill" => K::Fulfill,
        "release" => K::Release,
        "expire" => K::Expire,
        "adjust" => K::Adjust,
        "po_submit" => K::PoSubmit,
        "po_receive" => K::PoReceive,
        "po_cancel" => K::PoCancel,
        _ => K::Unspecified,
    };
    proto::Movement {
        sku: m.sku,
        location_id: m.location_id,
        kind: kind.into(),
        on_hand_delta: m.deltas[0],
        reserved_delta: m.deltas[1],
        committed_delta: m.deltas[2],
        in_transit_delta: m.deltas[3],
        order_id: m.order_id.unwrap_or_default(),
        operation_id: m.operation_id.unwrap_or_default(),
        reason: m.reason.unwrap_or_default(),
        occurred_at: Some(timestamp(m.occurred_at)),
    }
}
