//! The gRPC transport: generated code (`proto`), request validation and
//! conversion at the edge (`convert`), one error mapping (`error`), thin
//! handlers per service, and the health reporter.

mod catalog;
mod convert;
mod cycle_count;
mod error;
mod health;
mod middleware;
mod replenishment;
mod reservation;
mod stock;

pub use catalog::CatalogApi;
pub use cycle_count::CycleCountApi;
pub use health::{HEALTH_SERVICES, HealthMonitor};
pub use middleware::{CallLimits, GuardLayer};
pub use replenishment::ReplenishmentApi;
pub use reservation::ReservationApi;
pub use stock::StockApi;

/// Code generated from `proto/inventory/v1`, fenced here with its lints allowed.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
pub mod proto {
    tonic::include_proto!("inventory.v1");

    /// The encoded descriptors of `inventory.v1`, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("inventory_descriptor");
}
