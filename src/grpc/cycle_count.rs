//! CycleCountService: ABC classes, due counts, counts and investigations.
//! Parses and converts; the steps are in `cycle_count::CycleCounts`.

use tonic::{Request, Response, Status};

use super::convert::{Violations, timestamp};
use super::proto::{self, cycle_count_service_server::CycleCountService};
use crate::catalog::{PageQuery, PageSize, PageToken};
use crate::cycle_count::{
    AbcClass, AbcEntry, CountAction, CountSubmission, CycleCounts, DueCount, Investigation, InvestigationStatus,
    Resolution,
};
use crate::domain::{LocationId, OnHand, OperationId, Sku};

/// Longest `counted_by` / `resolved_by`, in characters.
pub const MAX_WHO_LEN: usize = 100;
/// Longest resolution note, in characters.
pub const MAX_NOTE_LEN: usize = 1000;

/// The CycleCountService handlers.
pub struct CycleCountApi {
    counts: CycleCounts,
}

impl CycleCountApi {
    /// Handlers over `counts`.
    pub fn new(counts: CycleCounts) -> Self {
        Self { counts }
    }
}

/// A person's name as the counter or resolver gives it: 1-100 characters,
/// no control characters.
fn who(v: &mut Violations, field: &str, s: String) -> String {
    let n = s.chars().count();
    if n == 0 || n > MAX_WHO_LEN {
        v.add(field, format!("must be 1 to {MAX_WHO_LEN} characters, got {n}"));
    } else if s.chars().any(char::is_control) {
        v.add(field, "must not contain control characters");
    }
    s
}

/// The page size, and the decoded token of `query` (the key to resume after).
fn page(v: &mut Violations, query: PageQuery<'_>, size: i32, token: &str) -> (Option<PageSize>, Option<String>) {
    (v.check("page_size", PageSize::parse(size)), v.check("page_token", PageToken::decode_key(query, token)).flatten())
}

fn next_token(t: Option<PageToken>) -> String {
    t.map(|t| t.as_str().to_owned()).unwrap_or_default()
}

fn class_from(c: AbcClass) -> proto::AbcClass {
    match c {
        AbcClass::A => proto::AbcClass::A,
        AbcClass::B => proto::AbcClass::B,
        AbcClass::C => proto::AbcClass::C,
    }
}

fn action_from(a: CountAction) -> proto::CountAction {
    match a {
        CountAction::Matched => proto::CountAction::Matched,
        CountAction::Adjusted => proto::CountAction::Adjusted,
        CountAction::Investigation => proto::CountAction::Investigation,
        CountAction::StopSell => proto::CountAction::StopSell,
    }
}

fn entry_proto(e: AbcEntry) -> proto::AbcClassEntry {
    proto::AbcClassEntry {
        sku: e.sku,
        abc_class: class_from(e.class).into(),
        revenue: e.revenue,
        overridden: e.overridden,
    }
}

fn due_proto(d: DueCount) -> proto::DueCount {
    proto::DueCount {
        sku: d.sku,
        location_id: d.location_id,
        abc_class: class_from(d.class).into(),
        last_counted_at: d.last_counted_at.map(timestamp),
        due_at: Some(timestamp(d.due_at)),
        overdue: d.overdue,
    }
}

fn investigation_proto(i: Investigation) -> proto::Investigation {
    proto::Investigation {
        investigation_id: i.investigation_id,
        sku: i.sku,
        location_id: i.location_id,
        expected: i.expected,
        counted: i.counted,
        discrepancy: i.discrepancy,
        stop_sell: i.stop_sell,
        status: match i.status {
            InvestigationStatus::Open => proto::InvestigationStatus::Open,
            InvestigationStatus::Resolved => proto::InvestigationStatus::Resolved,
        }
        .into(),
        opened_at: Some(timestamp(i.opened_at)),
        resolved_at: i.resolved_at.map(timestamp),
        resolved_by: i.resolved_by.unwrap_or_default(),
        accepted_on_hand: i.accepted_on_hand,
        note: i.note,
        opened_by: i.opened_by,
    }
}

fn missing() -> Status {
    Status::internal("validated fields missing")
}

#[tonic::async_trait]
impl CycleCountService for CycleCountApi {
    async fn list_abc_classes(
        &self,
        request: Request<proto::ListAbcClassesRequest>,
    ) -> Result<Response<proto::ListAbcClassesResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let (size, after) = page(&mut v, PageQuery::AbcClasses, r.page_size, &r.page_token);
        v.finish()?;
        let size = size.ok_or_else(missing)?;
        let (entries, next) = self.counts.classes(size, after.as_deref()).await?;
        Ok(Response::new(proto::ListAbcClassesResponse {
            classes: entries.into_iter().map(entry_proto).collect(),
            next_page_token: next_token(next),
        }))
    }

    async fn set_abc_class(
        &self,
        request: Request<proto::SetAbcClassRequest>,
    ) -> Result<Response<proto::AbcClassEntry>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let sku = v.id("sku", r.sku, Sku::parse);
        let class = match proto::AbcClass::try_from(r.abc_class) {
            Ok(proto::AbcClass::Unspecified) => None,
            Ok(proto::AbcClass::A) => Some(AbcClass::A),
            Ok(proto::AbcClass::B) => Some(AbcClass::B),
            Ok(proto::AbcClass::C) => Some(AbcClass::C),
            Err(_) => {
                v.add("abc_class", "must be ABC_CLASS_A, _B, _C, or ABC_CLASS_UNSPECIFIED to remove the override");
                None
            }
        };
        v.finish()?;
        let sku = sku.ok_or_else(missing)?;
        Ok(Response::new(entry_proto(self.counts.set_class(&sku, class).await?)))
    }

    async fn recompute_abc_classes(
        &self,
        _request: Request<proto::RecomputeAbcClassesRequest>,
    ) -> Result<Response<proto::RecomputeAbcClassesResponse>, Status> {
        let n = self.counts.recompute().await?;
        Ok(Response::new(proto::RecomputeAbcClassesResponse { skus: i64::try_from(n).unwrap_or(i64::MAX) }))
    }

    async fn list_due_counts(
        &self,
        request: Request<proto::ListDueCountsRequest>,
    ) -> Result<Response<proto::ListDueCountsResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let location = v.optional_id("location_id", r.location_id, LocationId::parse);
        let query = PageQuery::DueCounts { location_id: location.as_ref().map(LocationId::as_str) };
        let (size, after) = page(&mut v, query, r.page_size, &r.page_token);
        // The token resumes after a (location, SKU), joined by a tab (which
        // no identifier holds; decode_key checked both).
        let after = after.and_then(|a| a.split_once('\t').map(|(l, s)| (l.to_owned(), s.to_owned())));
        v.finish()?;
        let size = size.ok_or_else(missing)?;
        let (due, next) = self.counts.due(location.as_ref(), size, after).await?;
        Ok(Response::new(proto::ListDueCountsResponse {
            counts: due.into_iter().map(due_proto).collect(),
            next_page_token: next_token(next),
        }))
    }

    async fn submit_count(
        &self,
        request: Request<proto::SubmitCountRequest>,
    ) -> Result<Response<proto::SubmitCountResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let sku = v.id("sku", r.sku, Sku::parse);
        let location = v.id("location_id", r.location_id, LocationId::parse);
        let counted = v.check("counted", OnHand::parse(r.counted));
        let counted_by = who(&mut v, "counted_by", r.counted_by);
        let operation_id = v.optional_id("operation_id", r.operation_id, OperationId::parse);
        v.finish()?;
        let (Some(sku), Some(location), Some(counted)) = (sku, location, counted) else { return Err(missing()) };
        let operation_id = operation_id.unwrap_or_else(OperationId::generate);
        let op = operation_id.to_string();
        let a = self.counts.submit(CountSubmission { sku, location, counted, counted_by, operation_id }).await?;
        Ok(Response::new(proto::SubmitCountResponse {
            expected: a.expected,
            counted: a.counted,
            discrepancy: a.discrepancy,
            action: action_from(a.action).into(),
            investigation_id: a.investigation_id.unwrap_or_default(),
            operation_id: op,
        }))
    }

    async fn list_investigations(
        &self,
        request: Request<proto::ListInvestigationsRequest>,
    ) -> Result<Response<proto::ListInvestigationsResponse>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        let status = match proto::InvestigationStatus::try_from(r.status) {
            Ok(proto::InvestigationStatus::Unspecified) => None,
            Ok(proto::InvestigationStatus::Open) => Some(InvestigationStatus::Open),
            Ok(proto::InvestigationStatus::Resolved) => Some(InvestigationStatus::Resolved),
            Err(_) => {
                v.add("status", "must be INVESTIGATION_STATUS_OPEN, _RESOLVED or unspecified (all)");
                None
            }
        };
        let query = PageQuery::Investigations { status: status.map(InvestigationStatus::as_str) };
        let size = v.check("page_size", PageSize::parse(r.page_size));
        let after = v.check("page_token", PageToken::decode_number(query, &r.page_token)).flatten();
        v.finish()?;
        let size = size.ok_or_else(missing)?;
        let (found, next) = self.counts.investigations(status, size, after).await?;
        Ok(Response::new(proto::ListInvestigationsResponse {
            investigations: found.into_iter().map(investigation_proto).collect(),
            next_page_token: next_token(next),
        }))
    }

    async fn resolve_investigation(
        &self,
        request: Request<proto::ResolveInvestigationRequest>,
    ) -> Result<Response<proto::Investigation>, Status> {
        let r = request.into_inner();
        let mut v = Violations::default();
        // Investigation ids are identifiers (the server makes them).
        let id = v.id("investigation_id", r.investigation_id, OperationId::parse);
        let accepted = v.check("accepted_on_hand", OnHand::parse(r.accepted_on_hand));
        let resolved_by = who(&mut v, "resolved_by", r.resolved_by);
        let notes = r.note.chars().count();
        if notes > MAX_NOTE_LEN {
            v.add("note", format!("must be at most {MAX_NOTE_LEN} characters, got {notes}"));
        } else if r.note.chars().any(|c| c.is_control() && c != '\n') {
            v.add("note", "must not contain control characters other than line breaks");
        }
        v.finish()?;
        let (Some(id), Some(accepted)) = (id, accepted) else { return Err(missing()) };
        let resolution = Resolution { investigation_id: id.into_string(), accepted, resolved_by, note: r.note };
        Ok(Response::new(investigation_proto(self.counts.resolve(resolution).await?)))
    }
}
