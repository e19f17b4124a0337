//! CatalogService: SKUs, locations and suppliers in Postgres.

use tonic::{Request, Response, Status};

use super::convert::{Violations, timestamp};
use super::proto::{self, catalog_service_server::CatalogService};
use crate::catalog::{
    Location, Money, NewLocation, NewSku, NewSupplier, PageQuery, PageSize, PageToken, SkuRecord, Supplier,
};
use crate::domain::{LocationId, Sku, SupplierId};
use crate::state::AppState;

/// Longest display name.
pub const MAX_NAME_LEN: usize = 256;
/// Largest case pack.
pub const MAX_CASE_PACK: i64 = 100_000;
/// Largest static reorder point.
pub const MAX_REORDER_POINT: i64 = 1_000_000_000;
/// Largest location priority.
pub const MAX_PRIORITY: i32 = 1_000_000;
/// Largest fallback velocity (units per day).
pub const MAX_FALLBACK_VELOCITY: f64 = 1_000_000.0;
/// Longest supplier lead time, in days.
pub const MAX_LEAD_TIME_DAYS: i32 = 365;
/// Largest minimum order quantity.
pub const MAX_MIN_ORDER_QUANTITY: i64 = 1_000_000_000;

/// The CatalogService handlers.
pub struct CatalogApi {
    state: AppState,
}

impl CatalogApi {
    /// Handlers over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

fn name(v: &mut Violations, field: &str, s: String) -> String {
    let n = s.chars().count();
    if n == 0 || n > MAX_NAME_LEN {
        v.add(field, format!("must be 1 to {MAX_NAME_LEN} characters, got {n}"));
    } else if s.chars().any(char::is_control) {
        v.add(field, "must not contain control characters");
    }
    s
}

/// The page size and the key to resume after, for a list of `query`.
pub(super) fn page(v: &mut Violations, query: PageQuery<'_>, size: i32, token: &str) -> (PageSize, Option<String>) {
    let size =
        v.check("page_size", PageSize::parse(size)).unwrap_or(PageSize::parse(0).unwrap_or_else(|_| unreachable!()));
    let after = v.check("page_token", PageToken::decode_key(query, token)).flatten();
    (size, after)
}

fn sku_proto(s: SkuRecord) -> proto::Sku {
    proto::Sku {
        sku: s.sku,
        name: s.name,
        unit_price: s.unit_price,
        unit_cost: s.unit_cost,
        supplier_id: s.supplier_id.unwrap_or_default(),
        reorder_point: s.reorder_point,
        case_pack: i64::from(s.case_pack),
        create_time: Some(timestamp(s.create_time)),
        update_time: Some(timestamp(s.update_time)),
        fallback_velocity: s.fallback_velocity,
    }
}

fn supplier_proto(s: Supplier) -> proto::Supplier {
    proto::Supplier {
        supplier_id: s.supplier_id,
        name: s.name,
        lead_time_days: s.lead_time_days,
        min_order_quantity: s.min_order_quantity,
        notify_url: s.notify_url,
        auto_submit: s.auto_submit,
        service_level: s.service_level,
        create_time: Some(timestamp(s.create_time)),
        update_time: Some(timestamp(s.update_time)),
    }
}

fn parse_supplier(r: proto::UpsertSupplierRequest) -> Result<NewSupplier, Status> {
    let mut v = Violations::default();
    let supplier_id = v.id("supplier_id", r.supplier_id, SupplierId::parse);
    let name = name(&mut v, "name", r.name);
    if !(0..=MAX_LEAD_TIME_DAYS).contains(&r.lead_time_days) {
        v.add("lead_time_days", format!("must be between 0 and {MAX_LEAD_TIME_DAYS}, got {}", r.lead_time_days));
    }
    if !(0..=MAX_MIN_ORDER_QUANTITY).contains(&r.min_order_quantity) {
        v.add(
            "min_order_quantity",
            format!("must be between 0 and {MAX_MIN_ORDER_QUANTITY}, got {}", r.min_order_quantity),
        );
    }
    v.check("notify_url", crate::replenishment::check_notify_url(&r.notify_url));
    if let Some(level) = r.service_level
        && !(level > 0.5 && level < 1.0)
    {
        v.add("service_level", format!("must be above 0.5 and below 1 (e.g. 0.95), got {level}"));
    }
    v.finish()?;
    let supplier_id = supplier_id.ok_or_else(|| Status::internal("validated supplier_id missing"))?;
    Ok(NewSupplier {
        supplier_id,
        name,
        lead_time_days: r.lead_time_days,
        min_order_quantity: r.min_order_quantity,
        notify_url: r.notify_url,
        auto_submit: r.auto_submit,
        service_level: r.service_level,
    })
}

fn location_proto(l: Location) -> proto::Location {
    proto::Location {
        location_id: l.location_id,
        name: l.name,
        priority: l.priority,
        create_time: Some(timestamp(l.create_time)),
        update_time: Some(timestamp(l.update_time)),
    }
}

fn parse_sku(r: proto::UpsertSkuRequest) -> Result<NewSku, Status> {
    let mut v = Violations::default();
    let sku = v.id("sku", r.sku, Sku::parse);
    let name = name(&mut v, "name", r.name);
    let unit_price = v.check("unit_price", Money::parse(&r.unit_price));
    let unit_cost = v.check("unit_cost", Money::parse(&r.unit_cost));
    let supplier_id = v.optional_id("supplier_id", r.supplier_id, SupplierId::parse).map(SupplierId::into_string);
    if let Some(rp) = r.reorder_point
        && !(0..=MAX_REORDER_POINT).contains(&rp)
    {
        v.add("reorder_point", format!("must be between 0 and {MAX_REORDER_POINT}, got {rp}"));
    }
    if let Some(f) = r.fallback_velocity
        && !(0.0..=MAX_FALLBACK_VELOCITY).contains(&f)
    {
        v.add("fallback_velocity", format!("must be between 0 and {MAX_FALLBACK_VELOCITY} units a day, got {f}"));
    }
    let case_pack = match r.case_pack {
        None => 1,
        Some(n) if (1..=MAX_CASE_PACK).contains(&n) => n,
        Some(n) => {
            v.add("case_pack", format!("must be between 1 and {MAX_CASE_PACK} (unset means 1), got {n}"));
            1
        }
    };
    v.finish()?;
    match (sku, unit_price, unit_cost) {
        (Some(sku), Some(unit_price), Some(unit_cost)) => Ok(NewSku {
            sku,
            name,
            unit_price,
            unit_cost,
            supplier_id,
            reorder_point: r.reorder_point,
            case_pack: i32::try_from(case_pack).unwrap_or(1),
            fallback_velocity: r.fallback_velocity,
        }),
        _ => Err(Status::internal("validated fields missing")),
    }
}

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    async fn upsert_sku(&self, request: Request<proto::UpsertSkuRequest>) -> Result<Response<proto::Sku>, Status> {
        let new = parse_sku(request.into_inner())?;
        let stored = self.state.skus.upsert(&new).await?;
        // After Postgres: a failure here leaves the SKU in the catalog but not
        // yet sellable; the caller's retry (an upsert) registers it.
        self.state.engine.register_sku(&new.sku).await?;
        Ok(Response::new(sku_proto(stored)))
    }

    async fn get_sku(&self, request: Request<proto::GetSkuRequest>) -> Result<Response<proto::Sku>, Status> {
        let mut v = Violations::default();
        let sku = v.id("sku", request.into_inner().sku, Sku::parse);
        v.finish()?;
        let sku = sku.ok_or_else(|| Status::internal("validated sku missing"))?;
        Ok(Response::new(sku_proto(self.state.skus.get(&sku).await?)))
    }

    async fn list_skus(
        &self,
        request: Request<proto::ListSkusRequest>,
    ) -> Result<Response<proto::ListSkusResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let (size, after) = page(&mut v, PageQuery::Skus, r.page_size, &r.page_token);
        v.finish()?;
        let (skus, next) = self.state.skus.list(size, after.as_deref()).await?;
        Ok(Response::new(proto::ListSkusResponse {
            skus: skus.into_iter().map(sku_proto).collect(),
            next_page_token: next.map(|t| t.as_str().to_owned()).unwrap_or_default(),
        }))
    }

    async fn upsert_location(
        &self,
        request: Request<proto::UpsertLocationRequest>,
    ) -> Result<Response<proto::Location>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let location_id = v.id("location_id", r.location_id, LocationId::parse);
        let name = name(&mut v, "name", r.name);
        if !(0..=MAX_PRIORITY).contains(&r.priority) {
            v.add("priority", format!("must be between 0 and {MAX_PRIORITY}, got {}", r.priority));
        }
        v.finish()?;
        let location_id = location_id.ok_or_else(|| Status::internal("validated location_id missing"))?;
        let stored = self.state.locations.upsert(&NewLocation { location_id, name, priority: r.priority }).await?;
        if let Err(e) = self.state.location_cache.refresh().await {
            tracing::warn!(error = %e, "location cache refresh failed after upsert");
        }
        Ok(Response::new(location_proto(stored)))
    }

    async fn upsert_supplier(
        &self,
        request: Request<proto::UpsertSupplierRequest>,
    ) -> Result<Response<proto::Supplier>, Status> {
        let new = parse_supplier(request.into_inner())?;
        Ok(Response::new(supplier_proto(self.state.suppliers.upsert(&new).await?)))
    }

    async fn get_supplier(
        &self,
        request: Request<proto::GetSupplierRequest>,
    ) -> Result<Response<proto::Supplier>, Status> {
        let mut v = Violations::default();
        let id = v.id("supplier_id", request.into_inner().supplier_id, SupplierId::parse);
        v.finish()?;
        let id = id.ok_or_else(|| Status::internal("validated supplier_id missing"))?;
        Ok(Response::new(supplier_proto(self.state.suppliers.get(&id).await?)))
    }

    async fn list_suppliers(
        &self,
        request: Request<proto::ListSuppliersRequest>,
    ) -> Result<Response<proto::ListSuppliersResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let (size, after) = page(&mut v, PageQuery::Suppliers, r.page_size, &r.page_token);
        v.finish()?;
        let (suppliers, next) = self.state.suppliers.list(size, after.as_deref()).await?;
        Ok(Response::new(proto::ListSuppliersResponse {
            suppliers: suppliers.into_iter().map(supplier_proto).collect(),
            next_page_token: next.map(|t| t.as_str().to_owned()).unwrap_or_default(),
        }))
    }

    async fn list_locations(
        &self,
        request: Request<proto::ListLocationsRequest>,
    ) -> Result<Response<proto::ListLocationsResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let (size, after) = page(&mut v, PageQuery::Locations, r.page_size, &r.page_token);
        v.finish()?;
        let (locations, next) = self.state.locations.list(size, after.as_deref()).await?;
        Ok(Response::new(proto::ListLocationsResponse {
            locations: locations.into_iter().map(location_proto).collect(),
            next_page_token: next.map(|t| t.as_str().to_owned()).unwrap_or_default(),
        }))
    }
}
