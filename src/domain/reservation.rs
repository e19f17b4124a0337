//! Reservations as the engine reports them.

use std::time::SystemTime;

use super::{Channel, LineQuantity, LocationId, OrderId, Sku, Ttl};

/// Longest release reason kept.
pub const MAX_REASON_LEN: usize = 256;

/// Lifecycle of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReservationStatus {
    /// Holding stock until `expires_at`.
    Active,
    /// Being picked; no longer expires.
    Committed,
    /// Shipped.
    Fulfilled,
    /// Cancelled; stock returned.
    Released,
    /// Not committed in time; stock returned.
    Expired,
}

impl ReservationStatus {
    /// Parses the status word the scripts store.
    pub fn from_script(s: &str) -> Option<Self> {
        Some(match s {
            "ACTIVE" => Self::Active,
            "COMMITTED" => Self::Committed,
            "FULFILLED" => Self::Fulfilled,
            "RELEASED" => Self::Released,
            "EXPIRED" => Self::Expired,
            _ => return None,
        })
    }

    /// Whether stock is still held (reserved or committed) for it.
    pub fn holds_stock(self) -> bool {
        matches!(self, Self::Active | Self::Committed)
    }
}

/// One line of a reserve request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveLine {
    /// What.
    pub sku: Sku,
    /// How many.
    pub quantity: LineQuantity,
    /// Where; `None` lets the engine allocate by location priority.
    pub location: Option<LocationId>,
}

/// A validated reserve request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveRequest {
    /// Idempotency key.
    pub order_id: OrderId,
    /// 1..=100 lines.
    pub lines: Vec<ReserveLine>,
    /// `None`: the server default.
    pub ttl: Option<Ttl>,
    /// Where the order came from.
    pub channel: Option<Channel>,
}

/// Free-text reason for a release, at most 256 characters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReleaseReason(String);

impl ReleaseReason {
    /// Accepts up to 256 printable characters.
    pub fn parse(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        if s.chars().count() > MAX_REASON_LEN {
            return Err(format!("must be at most {MAX_REASON_LEN} characters"));
        }
        if s.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(s))
    }

    /// The reason as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A held line: one SKU at one location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationLine {
    /// What.
    pub sku: String,
    /// Where it is held.
    pub location_id: String,
    /// How many.
    pub quantity: i64,
}

/// A reservation as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The order.
    pub order_id: String,
    /// Where it is in its lifecycle.
    pub status: ReservationStatus,
    /// What it holds (or held), one line per SKU-location.
    pub lines: Vec<ReservationLine>,
    /// When it was made (Redis clock).
    pub created_at: SystemTime,
    /// When an active reservation lapses (Redis clock).
    pub expires_at: SystemTime,
    /// The channel given at reserve time, if any.
    pub channel: String,
    /// Why it was released, if it was.
    pub release_reason: String,
}

/// A line that could not be filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    /// What.
    pub sku: String,
    /// Where; empty when the engine was allocating across locations.
    pub location_id: String,
    /// Asked for.
    pub requested: i64,
    /// What could have been had.
    pub available: i64,
}

/// The answer to a reserve request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Every line is held now.
    Reserved(Reservation),
    /// The order already had this reservation; nothing more was held.
    Existing(Reservation),
    /// Some lines could not be filled; nothing is held.
    InsufficientStock(Vec<Shortage>),
    /// These SKUs are stopped; nothing is held.
    StopSell(Vec<String>),
    /// These SKUs are not in the catalog; nothing is held.
    UnknownSku(Vec<String>),
}
