//! Catalog errors.

/// What can go wrong in the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No such SKU or location.
    #[error("{0} not found")]
    NotFound(String),
    /// Postgres is unreachable or failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}
