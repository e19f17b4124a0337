//! ReplenishmentService: reorder suggestions, reorder checks and purchase
//! orders.

use std::collections::BTreeSet;

use tonic::{Request, Response, Status};

use super::catalog::page;
use super::convert::{Violations, timestamp};
use super::proto::{self, replenishment_service_server::ReplenishmentService};
use crate::catalog::{PageQuery, PageToken};
use crate::domain::{LocationId, OperationId, PoId, Sku, SupplierId};
use crate::replenishment::policy::VelocityBasis;
use crate::replenishment::{PoStatus, PurchaseOrder, ReceiptLine, Scope, Suggestion};
use crate::state::AppState;

/// Most lines one receipt may carry.
pub const MAX_RECEIPT_LINES: usize = 1000;
/// Largest quantity of one receipt line.
pub const MAX_RECEIPT_QUANTITY: i64 = 1_000_000_000;
/// SKU-locations assessed per query while filling a below-only page.
const BELOW_ONLY_CHUNK: i64 = 1000;

/// The ReplenishmentService handlers.
pub struct ReplenishmentApi {
    state: AppState,
}

impl ReplenishmentApi {
    /// Handlers over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// NOT_FOUND unless the supplier exists.
    async fn known_supplier(&self, id: &SupplierId) -> Result<(), Status> {
        if self.state.replenishment.supplier_exists(id.as_str()).await? {
            Ok(())
        } else {
            Err(Status::not_found(format!("supplier {id} not found")))
        }
    }
}

fn basis(b: VelocityBasis) -> proto::VelocityBasis {
    match b {
        VelocityBasis::History => proto::VelocityBasis::History,
        VelocityBasis::NewSku => proto::VelocityBasis::NewSku,
        VelocityBasis::Fallback => proto::VelocityBasis::Fallback,
        VelocityBasis::NoHistory => proto::VelocityBasis::NoHistory,
    }
}

fn suggestion_proto(s: Suggestion) -> proto::ReorderSuggestion {
    proto::ReorderSuggestion {
        sku: s.sku,
        location_id: s.location_id,
        supplier_id: s.supplier_id,
        velocity_per_day: s.demand.velocity,
        sigma_daily: s.demand.sigma,
        lead_time_days: i32::try_from(s.lead_time_days).unwrap_or(i32::MAX),
        safety_stock: s.safety_stock,
        reorder_point: s.reorder_point,
        available: s.available,
        in_transit: s.in_transit,
        on_order: s.on_order,
        position: s.position,
        days_of_cover: s.days_of_cover,
        stockout_date: s.stockout_date.map(timestamp),
        order_quantity: s.order_quantity,
        below_reorder_point: s.below_reorder_point,
        velocity_basis: basis(s.demand.basis).into(),
        history_days: i32::try_from(s.demand.days_used).unwrap_or(i32::MAX),
        static_reorder_point: s.static_reorder_point,
        covered_by_open_po: s.covered_by_open_po,
    }
}

fn status_proto(s: PoStatus) -> proto::PurchaseOrderStatus {
    match s {
        PoStatus::Draft => proto::PurchaseOrderStatus::Draft,
        PoStatus::Submitted => proto::PurchaseOrderStatus::Submitted,
        PoStatus::PartiallyReceived => proto::PurchaseOrderStatus::PartiallyReceived,
        PoStatus::Received => proto::PurchaseOrderStatus::Received,
        PoStatus::Cancelled => proto::PurchaseOrderStatus::Cancelled,
    }
}

fn po_proto(po: PurchaseOrder) -> proto::PurchaseOrder {
    proto::PurchaseOrder {
        po_id: po.po_id,
        supplier_id: po.supplier_id,
        location_id: po.location_id,
        status: status_proto(po.status).into(),
        lines: po
            .lines
            .into_iter()
            .map(|l| proto::PurchaseOrderLine { sku: l.sku, quantity: l.quantity, received: l.received })
            .collect(),
        created_at: Some(timestamp(po.created_at)),
        submitted_at: po.submitted_at.map(timestamp),
    }
}

/// The key a suggestions page token carries: sku, tab, location.
fn suggestion_key(s: &Suggestion) -> String {
    format!("{}\t{}", s.sku, s.location_id)
}

fn po_id(v: &mut Violations, id: String) -> Option<PoId> {
    v.id("po_id", id, PoId::parse)
}

#[tonic::async_trait]
impl ReplenishmentService for ReplenishmentApi {
    async fn get_reorder_suggestions(
        &self,
        request: Request<proto::GetReorderSuggestionsRequest>,
    ) -> Result<Response<proto::GetReorderSuggestionsResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let location = v.optional_id("location_id", r.location_id, LocationId::parse);
        let supplier = v.optional_id("supplier_id", r.supplier_id, SupplierId::parse);
        let query = PageQuery::ReorderSuggestions {
            location_id: location.as_ref().map(LocationId::as_str),
            supplier_id: supplier.as_ref().map(SupplierId::as_str),
            below_only: r.below_only,
        };
        let (size, after) = page(&mut v, query, r.page_size, &r.page_token);
        // The token resumes after a (SKU, location), joined by a tab (which
        // no identifier holds; decode_key checked both).
        let after = after.and_then(|a| a.split_once('\t').map(|(s, l)| (s.to_owned(), l.to_owned())));
        v.finish()?;
        if let Some(s) = &supplier {
            self.known_supplier(s).await?;
        }
        if let Some(l) = &location
            && !self.state.location_cache.contains(l).await
        {
            return Err(Status::not_found(format!("location {l} is not in the catalog")));
        }
        let want = size.get() as usize;
        // Below-only pages are filled from chunks of the full list: one
        // query per chunk, and most SKU-locations are not below.
        let chunk = if r.below_only { BELOW_ONLY_CHUNK } else { i64::from(size.get()) + 1 };
        let mut cursor = after;
        let mut page_items: Vec<Suggestion> = Vec::new();
        let mut more = false;
        loop {
            let scope = Scope {
                location: location.as_ref().map(LocationId::as_str),
                supplier: supplier.as_ref().map(SupplierId::as_str),
                after: cursor.as_ref().map(|(s, l)| (s.as_str(), l.as_str())),
                limit: Some(chunk),
                only: None,
            };
            let batch = self.state.replenishment.suggestions(&scope).await?;
            let exhausted = (batch.len() as i64) < chunk;
            cursor = batch.last().map(|s| (s.sku.clone(), s.location_id.clone()));
            for s in batch {
                if r.below_only && !s.below_reorder_point {
                    continue;
                }
                if page_items.len() == want {
                    more = true;
                    break;
                }
                page_items.push(s);
            }
            if more || exhausted || cursor.is_none() {
                break;
            }
        }
        let next = if more { page_items.last().map(|s| PageToken::after_key(query, &suggestion_key(s))) } else { None };
        Ok(Response::new(proto::GetReorderSuggestionsResponse {
            suggestions: page_items.into_iter().map(suggestion_proto).collect(),
            next_page_token: next.map(|t| t.as_str().to_owned()).unwrap_or_default(),
        }))
    }

    async fn run_reorder_check(
        &self,
        _request: Request<proto::RunReorderCheckRequest>,
    ) -> Result<Response<proto::RunReorderCheckResponse>, Status> {
        let outcome = self.state.replenishment.run_check().await?;
        Ok(Response::new(proto::RunReorderCheckResponse {
            purchase_orders: outcome.changed.into_iter().map(po_proto).collect(),
        }))
    }

    async fn list_purchase_orders(
        &self,
        request: Request<proto::ListPurchaseOrdersRequest>,
    ) -> Result<Response<proto::ListPurchaseOrdersResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let status = match proto::PurchaseOrderStatus::try_from(r.status) {
            Ok(proto::PurchaseOrderStatus::Unspecified) => None,
            Ok(proto::PurchaseOrderStatus::Draft) => Some(PoStatus::Draft),
            Ok(proto::PurchaseOrderStatus::Submitted) => Some(PoStatus::Submitted),
            Ok(proto::PurchaseOrderStatus::PartiallyReceived) => Some(PoStatus::PartiallyReceived),
            Ok(proto::PurchaseOrderStatus::Received) => Some(PoStatus::Received),
            Ok(proto::PurchaseOrderStatus::Cancelled) => Some(PoStatus::Cancelled),
            Err(_) => {
                v.add("status", format!("{} is not a PurchaseOrderStatus", r.status));
                None
            }
        };
        let supplier = v.optional_id("supplier_id", r.supplier_id, SupplierId::parse);
        let query = PageQuery::PurchaseOrders {
            status: status.map(PoStatus::as_str),
            supplier_id: supplier.as_ref().map(SupplierId::as_str),
        };
        let (size, after) = page(&mut v, query, r.page_size, &r.page_token);
        v.finish()?;
        if let Some(s) = &supplier {
            self.known_supplier(s).await?;
        }
        let (pos, next) = self
            .state
            .replenishment
            .orders()
            .list(status, supplier.as_ref().map(SupplierId::as_str), size, after.as_deref())
            .await?;
        Ok(Response::new(proto::ListPurchaseOrdersResponse {
            purchase_orders: pos.into_iter().map(po_proto).collect(),
            next_page_token: next.map(|t| t.as_str().to_owned()).unwrap_or_default(),
        }))
    }

    async fn get_purchase_order(
        &self,
        request: Request<proto::GetPurchaseOrderRequest>,
    ) -> Result<Response<proto::PurchaseOrder>, Status> {
        let mut v = Violations::default();
        let id = po_id(&mut v, request.into_inner().po_id);
        v.finish()?;
        let id = id.ok_or_else(|| Status::internal("validated po_id missing"))?;
        Ok(Response::new(po_proto(self.state.replenishment.orders().get(&id).await?)))
    }

    async fn submit_purchase_order(
        &self,
        request: Request<proto::SubmitPurchaseOrderRequest>,
    ) -> Result<Response<proto::PurchaseOrder>, Status> {
        let mut v = Violations::default();
        let id = po_id(&mut v, request.into_inner().po_id);
        v.finish()?;
        let id = id.ok_or_else(|| Status::internal("validated po_id missing"))?;
        Ok(Response::new(po_proto(self.state.replenishment.orders().submit(&id).await?)))
    }

    async fn receive_purchase_order(
        &self,
        request: Request<proto::ReceivePurchaseOrderRequest>,
    ) -> Result<Response<proto::PurchaseOrder>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let id = po_id(&mut v, r.po_id);
        let operation_id = v.id("operation_id", r.operation_id, OperationId::parse);
        if r.lines.is_empty() || r.lines.len() > MAX_RECEIPT_LINES {
            v.add("lines", format!("must list 1 to {MAX_RECEIPT_LINES} lines, got {}", r.lines.len()));
        }
        let mut seen = BTreeSet::new();
        let mut lines = Vec::with_capacity(r.lines.len());
        for (i, l) in r.lines.into_iter().take(MAX_RECEIPT_LINES).enumerate() {
            let sku = v.id(&format!("lines[{i}].sku"), l.sku, Sku::parse);
            if !(1..=MAX_RECEIPT_QUANTITY).contains(&l.quantity) {
                v.add(
                    format!("lines[{i}].quantity"),
                    format!("must be between 1 and {MAX_RECEIPT_QUANTITY}, got {}", l.quantity),
                );
            }
            if let Some(sku) = sku {
                if !seen.insert(sku.clone()) {
                    v.add(format!("lines[{i}].sku"), format!("{sku} is listed twice"));
                }
                lines.push(ReceiptLine { sku, quantity: l.quantity });
            }
        }
        v.finish()?;
        let (Some(id), Some(op)) = (id, operation_id) else { return Err(Status::internal("validated fields missing")) };
        let po = self.state.replenishment.orders().receive(&id, &lines, op.as_str()).await?;
        Ok(Response::new(po_proto(po)))
    }

    async fn cancel_purchase_order(
        &self,
        request: Request<proto::CancelPurchaseOrderRequest>,
    ) -> Result<Response<proto::PurchaseOrder>, Status> {
        let mut v = Violations::default();
        let id = po_id(&mut v, request.into_inner().po_id);
        v.finish()?;
        let id = id.ok_or_else(|| Status::internal("validated po_id missing"))?;
        Ok(Response::new(po_proto(self.state.replenishment.orders().cancel(&id).await?)))
    }
}
