//! Every domain error becomes a gRPC status here, and only here.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::catalog::CatalogError;
use crate::replenishment::ReplenishmentError;
use crate::reservation::EngineError;

/// INVALID_ARGUMENT with a google.rpc.BadRequest naming every bad field.
pub fn invalid(violations: Vec<FieldViolation>) -> Status {
    let summary = violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; ");
    Status::with_error_details(Code::InvalidArgument, summary, ErrorDetails::with_bad_request(violations))
}

impl From<EngineError> for Status {
    fn from(e: EngineError) -> Self {
        match &e {
            EngineError::ReservationNotFound(_) | EngineError::UnknownSku(_) => Status::not_found(e.to_string()),
            EngineError::FailedPrecondition(_) => Status::failed_precondition(e.to_string()),
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
