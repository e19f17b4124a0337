//! ReservationService: parse, call the engine, map back.

use tonic::{Request, Response, Status};

use super::convert::{Violations, duration};
use super::proto::{self, reservation_service_server::ReservationService};
use crate::domain::{
    Channel, LineQuantity, LocationId, OrderId, ReleaseReason, ReserveLine, ReserveOutcome, ReserveRequest, Sku, Ttl,
};
use crate::state::AppState;

/// Most lines one order may reserve.
pub const MAX_LINES: usize = 100;

/// The ReservationService handlers.
pub struct ReservationApi {
    state: AppState,
}

impl ReservationApi {
    /// Handlers over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

fn order_id(v: &mut Violations, raw: String) -> Option<OrderId> {
    v.id("order_id", raw, OrderId::parse)
}

fn ttl(v: &mut Violations, raw: Option<prost_types::Duration>) -> Option<Ttl> {
    let d = v.check("ttl", duration(&raw?))?;
    v.check("ttl", Ttl::parse(d))
}

fn parse_reserve(r: proto::ReserveRequest) -> Result<ReserveRequest, Status> {
    let mut v = Violations::default();
    let order_id = order_id(&mut v, r.order_id);
    if r.lines.is_empty() || r.lines.len() > MAX_LINES {
        v.add("lines", format!("must have 1 to {MAX_LINES} lines, got {}", r.lines.len()));
    }
    let mut lines = Vec::with_capacity(r.lines.len().min(MAX_LINES));
    for (i, l) in r.lines.into_iter().enumerate().take(MAX_LINES) {
        let sku = v.id(&format!("lines[{i}].sku"), l.sku, Sku::parse);
        let quantity = v.check(&format!("lines[{i}].quantity"), LineQuantity::parse(l.quantity));
        let location = v.optional_id(&format!("lines[{i}].location_id"), l.location_id, LocationId::parse);
        if let (Some(sku), Some(quantity)) = (sku, quantity) {
            lines.push(ReserveLine { sku, quantity, location });
        }
    }
    let ttl = ttl(&mut v, r.ttl);
    let channel = v.optional_id("channel", r.channel, Channel::parse);
    v.finish()?;
    let order_id = order_id.ok_or_else(|| Status::internal("validated order_id missing"))?;
    Ok(ReserveRequest { order_id, lines, ttl, channel })
}

fn reservation(r: crate::domain::Reservation) -> Option<proto::Reservation> {
    Some(r.into())
}

#[tonic::async_trait]
impl ReservationService for ReservationApi {
    // The order id joins the span only once it is valid: a raw one may be
    // megabytes of control characters, which do not belong in the logs.
    #[tracing::instrument(skip_all, fields(order_id, outcome))]
    async fn reserve(
        &self,
        request: Request<proto::ReserveRequest>,
    ) -> Result<Response<proto::ReserveResponse>, Status> {
        let req = parse_reserve(request.into_inner())?;
        tracing::Span::current().record("order_id", req.order_id.as_str());
        // Explicit locations must exist; allocation uses the cached order.
        for (i, line) in req.lines.iter().enumerate() {
            if let Some(loc) = &line.location
                && !self.state.location_cache.contains(loc).await
            {
                let mut v = Violations::default();
                v.add(format!("lines[{i}].location_id"), format!("location {loc} is not in the catalog"));
                v.finish()?;
            }
        }
        let outcome = self.state.engine.reserve(&req, &self.state.location_cache.order()).await?;
        let label = match &outcome {
            ReserveOutcome::Reserved(_) => "reserved",
            ReserveOutcome::Existing(_) => "existing",
            ReserveOutcome::InsufficientStock(_) => "insufficient_stock",
            ReserveOutcome::StopSell(_) => "stop_sell",
            ReserveOutcome::UnknownSku(_) => "unknown_sku",
        };
        self.state.metrics.reservations.with_label_values(&[label]).inc();
        tracing::Span::current().record("outcome", label);
        use proto::ReserveOutcome as O;
        let resp = match outcome {
            ReserveOutcome::Reserved(r) | ReserveOutcome::Existing(r) => {
                proto::ReserveResponse { outcome: O::Reserved.into(), reservation: reservation(r), shortages: vec![] }
            }
            ReserveOutcome::InsufficientStock(s) => proto::ReserveResponse {
                outcome: O::InsufficientStock.into(),
                reservation: None,
                shortages: s
                    .into_iter()
                    .map(|s| proto::Shortage {
                        sku: s.sku,
                        location_id: s.location_id,
                        requested: s.requested,
                        available: s.available,
                    })
                    .collect(),
            },
            ReserveOutcome::StopSell(skus) => {
                proto::ReserveResponse { outcome: O::StopSell.into(), reservation: None, shortages: named(&req, skus) }
            }
            ReserveOutcome::UnknownSku(skus) => proto::ReserveResponse {
                outcome: O::UnknownSku.into(),
                reservation: None,
                shortages: named(&req, skus),
            },
        };
        tracing::debug!(outcome = ?resp.outcome(), "reserve");
        Ok(Response::new(resp))
    }

    async fn extend(&self, request: Request<proto::ExtendRequest>) -> Result<Response<proto::ExtendResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let order = order_id(&mut v, r.order_id);
        if r.ttl.is_none() {
            v.add("ttl", "is required");
        }
        let ttl = ttl(&mut v, r.ttl);
        v.finish()?;
        let (Some(order), Some(ttl)) = (order, ttl) else { return Err(Status::internal("validated fields missing")) };
        let res = self.state.engine.extend(&order, ttl).await?;
        Ok(Response::new(proto::ExtendResponse { reservation: reservation(res) }))
    }

    async fn commit(&self, request: Request<proto::CommitRequest>) -> Result<Response<proto::CommitResponse>, Status> {
        let order = parse_order(request.into_inner().order_id)?;
        let res = self.state.engine.commit(&order).await?;
        Ok(Response::new(proto::CommitResponse { reservation: reservation(res) }))
    }

    async fn fulfill(
        &self,
        request: Request<proto::FulfillRequest>,
    ) -> Result<Response<proto::FulfillResponse>, Status> {
        let order = parse_order(request.into_inner().order_id)?;
        let res = self.state.engine.fulfill(&order).await?;
        Ok(Response::new(proto::FulfillResponse { reservation: reservation(res) }))
    }

    async fn release(
        &self,
        request: Request<proto::ReleaseRequest>,
    ) -> Result<Response<proto::ReleaseResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let order = order_id(&mut v, r.order_id);
        let reason = v.check("reason", ReleaseReason::parse(r.reason));
        v.finish()?;
        let (Some(order), Some(reason)) = (order, reason) else {
            return Err(Status::internal("validated fields missing"));
        };
        let res = self.state.engine.release(&order, &reason).await?;
        Ok(Response::new(proto::ReleaseResponse { reservation: reservation(res) }))
    }

    async fn get_reservation(
        &self,
        request: Request<proto::GetReservationRequest>,
    ) -> Result<Response<proto::Reservation>, Status> {
        let order = parse_order(request.into_inner().order_id)?;
        let res = self.state.engine.get_reservation(&order).await?;
        Ok(Response::new(res.into()))
    }
}

fn parse_order(raw: String) -> Result<OrderId, Status> {
    let mut v = Violations::default();
    let order = order_id(&mut v, raw);
    v.finish()?;
    order.ok_or_else(|| Status::internal("validated order_id missing"))
}

/// Shortage entries for SKUs refused as a whole (stopped or unknown): what the
/// order asked of each, and nothing available.
fn named(req: &ReserveRequest, skus: Vec<String>) -> Vec<proto::Shortage> {
    skus.into_iter()
        .map(|sku| {
            let requested = req.lines.iter().filter(|l| l.sku.as_str() == sku).map(|l| l.quantity.get()).sum();
            proto::Shortage { sku, location_id: String::new(), requested, available: 0 }
        })
        .collect()
}
