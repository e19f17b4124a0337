//! The catalog: SKUs, locations and suppliers, written to Postgres directly
//! (they are not stock numbers). A new SKU is registered with the engine so
//! that it can be stocked and reserved; locations are cached in priority
//! order for allocation.

mod error;
mod locations;
mod money;
mod page;
mod skus;
mod suppliers;

pub use error::CatalogError;
pub use locations::{Location, LocationCache, LocationStore, NewLocation};
pub use money::Money;
pub use page::{PageQuery, PageSize, PageToken, PageTokenError};
pub use skus::{NewSku, SkuRecord, SkuStore};
pub use suppliers::{NewSupplier, Supplier, SupplierStore};
