//! Every domain error becomes a gRPC status here, and only here.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::catalog::CatalogError;
use crate::cycle_count::CycleCountError;
use crate::replenishment::ReplenishmentError;
use crate::reservation::EngineError;

/// Most field violations an error carries in its details; the rest are
/// counted in the message. The message and details travel as HTTP/2
/// trailers, and common clients refuse trailers over 8 KiB (grpcio's default
/// soft limit; Go's and tonic's are 16 KiB): a request with every one of its
/// 1,000 fields bad once made 60-130 KB of trailers, and such a client saw
/// RESOURCE_EXHAUSTED, which callers retry, instead of INVALID_ARGUMENT.
pub const MAX_VIOLATIONS: usize = 20;
/// Most violations spelled out in the message itself (all are in the details).
const MAX_IN_MESSAGE: usize = 5;
/// Longest field name or description kept, in characters.
const MAX_TEXT: usize = 160;

/// `s` cut to `MAX_TEXT` characters (on a character boundary), marked when cut.
fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_TEXT) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

/// INVALID_ARGUMENT with a google.rpc.BadRequest naming the bad fields: the
/// first `MAX_VIOLATIONS` of them, each clipped, with the number left out in
/// the message, so that the status fits every standard client's limits
/// (about 4 KB at most).
pub fn invalid(violations: Vec<FieldViolation>) -> Status {
    let total = violations.len();
    let kept: Vec<FieldViolation> = violations
        .into_iter()
        .take(MAX_VIOLATIONS)
        .map(|v| FieldViolation::new(clip(&v.field), clip(&v.description)))
        .collect();
    let mut summary = kept
        .iter()
        .take(MAX_IN_MESSAGE)
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ");
    if total > MAX_IN_MESSAGE {
        summary.push_str(&format!("; and {} more", total - MAX_IN_MESSAGE));
        if total > kept.len() {
            summary.push_str(&format!(" ({} of {total} in the details)", kept.len()));
        }
    }
    Status::with_error_details(Code::InvalidArgument, summary, ErrorDetails::with_bad_request(kept))
}

impl From<EngineError> for Status {
    fn from(e: EngineError) -> Self {
        match &e {
            EngineError::ReservationNotFound(_) | EngineError::UnknownSku(_) => Status::not_found(e.to_string()),
            EngineError::FailedPrecondition(_) => Status::failed_precondition(e.to_string()),
            EngineError::OutOfRange { field, detail } => invalid(vec![FieldViolation::new(*field, detail.clone())]),
            EngineError::Unavailable(_) | EngineError::Timeout(_) => {
                tracing::warn!(error = %e, "redis unavailable");
                Status::unavailable(e.to_string())
            }
            EngineError::Protocol { .. } => {
                tracing::error!(error = %e, "engine protocol error");
                Status::internal(e.to_string())
            }
        }
    }
}

impl From<CatalogError> for Status {
    fn from(e: CatalogError) -> Self {
        match &e {
            CatalogError::NotFound(_) => Status::not_found(e.to_string()),
            CatalogError::Database(inner) => database(inner),
        }
    }
}

fn database(inner: &sqlx::Error) -> Status {
    tracing::warn!(error = %inner, "postgres error");
    match inner {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            Status::unavailable("database unavailable")
        }
        _ => Status::internal("database error"),
    }
}

impl From<ReplenishmentError> for Status {
    fn from(e: ReplenishmentError) -> Self {
        match e {
            ReplenishmentError::NotFound(_) => Status::not_found(e.to_string()),
            ReplenishmentError::FailedPrecondition(m) => Status::failed_precondition(m),
            ReplenishmentError::InvalidLines(bad) => {
                invalid(bad.into_iter().map(|(field, why)| FieldViolation::new(field, why)).collect())
            }
            ReplenishmentError::Engine(inner) => inner.into(),
            ReplenishmentError::Database(inner) => database(&inner),
        }
    }
}

impl From<CycleCountError> for Status {
    fn from(e: CycleCountError) -> Self {
        match e {
            CycleCountError::NotFound(_) => Status::not_found(e.to_string()),
            CycleCountError::FailedPrecondition(_) => Status::failed_precondition(e.to_string()),
            CycleCountError::Engine(inner) => inner.into(),
            CycleCountError::Database(inner) => CatalogError::Database(inner).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations(n: usize, field: &str, description: &str) -> Vec<FieldViolation> {
        (0..n).map(|i| FieldViolation::new(format!("{field}[{i}]"), description)).collect()
    }

    #[test]
    fn a_few_violations_are_all_named_in_the_message_and_the_details() {
        let status = invalid(violations(3, "skus", "must not be empty"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "skus[0]: must not be empty; skus[1]: must not be empty; skus[2]: must not be empty"
        );
        let bad = status.get_error_details().bad_request().cloned().expect("details");
        assert_eq!(bad.field_violations.len(), 3);
    }

    #[test]
    fn many_violations_are_capped_and_counted() {
        let status = invalid(violations(1000, "skus", &"x".repeat(10_000)));
        let bad = status.get_error_details().bad_request().cloned().expect("details");
        assert_eq!(bad.field_violations.len(), MAX_VIOLATIONS);
        assert_eq!(bad.field_violations[0].field, "skus[0]");
        assert_eq!(bad.field_violations[0].description.chars().count(), MAX_TEXT + 1, "clipped, with the mark");
        assert!(status.message().ends_with("; and 995 more (20 of 1000 in the details)"), "{}", status.message());
        let trailers = status.message().len() + status.details().len() * 4 / 3;
        assert!(trailers < 8 * 1024, "message and base64 details fit a client's 8 KiB: {trailers} bytes");
    }

    #[test]
    fn clipping_respects_character_boundaries() {
        let long: String = "é".repeat(MAX_TEXT + 10);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), MAX_TEXT + 1);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip("short"), "short");
    }
}
