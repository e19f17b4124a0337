//! Domain types shared by the engine, the catalog and the transport. Nothing
//! here knows about protobuf, Redis or Postgres.

mod ids;
mod levels;
mod quantity;
mod reservation;

pub use ids::{Channel, IdError, LocationId, OperationId, OrderId, PoId, Sku, SupplierId};
pub use levels::{Levels, LocationLevels, SkuLevels};
pub use quantity::{LineQuantity, MAX_DELTA, MAX_LEVEL, MAX_ON_HAND, OnHand, QuantityError, StockDelta, Ttl};
pub use reservation::{
    ReleaseReason, Reservation, ReservationLine, ReservationStatus, ReserveLine, ReserveOutcome, ReserveRequest,
    Shortage,
};
