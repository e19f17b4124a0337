//! What can go wrong in replenishment.

use crate::catalog::CatalogError;
use crate::reservation::EngineError;

/// Errors of suggestions, reorder checks and purchase orders.
#[derive(Debug, thiserror::Error)]
pub enum ReplenishmentError {
    /// No such purchase order or supplier.
    #[error("{0} not found")]
    NotFound(String),
    /// The PO's state forbids the transition (submitting a cancelled PO,
    /// receiving a draft); nothing changed.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Request fields that the PO refuses (a SKU not on it, more than is
    /// still expected): (field, why) for each; nothing changed.
    #[error("invalid lines: {0:?}")]
    InvalidLines(Vec<(String, String)>),
    /// The engine refused or could not be reached. Postgres already records
    /// the PO's change; the movement is applied when the PO is called again
    /// or by the replenishment worker.
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    /// Postgres is unreachable or failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<CatalogError> for ReplenishmentError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::NotFound(what) => ReplenishmentError::NotFound(what),
            CatalogError::Database(e) => ReplenishmentError::Database(e),
        }
    }
}
