//! What can go wrong in cycle counting.

use crate::reservation::EngineError;

/// Errors of the cycle count calls; `grpc/error.rs` maps them to statuses.
#[derive(Debug, thiserror::Error)]
pub enum CycleCountError {
    /// No such SKU, location or investigation.
    #[error("{0} not found")]
    NotFound(String),
    /// The state forbids it (an investigation resolved already, a count of a
    /// SKU-location under investigation, an operation id used for another
    /// count); nothing changed.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The engine refused or could not be reached.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Postgres is unreachable or failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}
