//! Quantities and durations accepted in requests.

use std::time::Duration;

/// Most units one reservation line may ask for.
pub const MAX_LINE_QUANTITY: i64 = 1_000_000;
/// Shortest hold a caller may ask for.
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// Longest hold a caller may ask for.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Largest single adjustment of on_hand, either way (AdjustStock's `delta`).
pub const MAX_DELTA: i64 = 1_000_000;
/// Largest on_hand a caller may set (SetOnHand, the CSV import).
pub const MAX_ON_HAND: i64 = 1_000_000_000;
/// Bound on every number the engine keeps for a SKU-location: no change may
/// take on_hand, reserved, committed or in_transit outside
/// `-MAX_LEVEL..=MAX_LEVEL`. It keeps every number, and every sum the ledger
/// keeps of them, far inside what both the scripts (Lua numbers are doubles,
/// exact to 2^53) and Postgres (bigint) hold exactly: a store would need
/// nine billion SKU-locations at the bound for a store-wide sum to overflow.
/// The scripts check the same bound (`LEVEL_LIMIT` in common.lua).
pub const MAX_LEVEL: i64 = 1_000_000_000;

// A level at the bound, plus or minus the largest change, stays exact in a
// Lua double; a set on_hand is within the bound.
const _: () = assert!(MAX_LEVEL + MAX_DELTA < 1 << 53 && MAX_ON_HAND <= MAX_LEVEL);

/// Why a number is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("must be between {min} and {max}, got {got}")]
    OutOfRange { min: i64, max: i64, got: i64 },
    #[error("must be between 1 s and 24 h")]
    TtlOutOfRange,
    #[error("must be non-zero and between -{max} and {max}, got {got}")]
    DeltaOutOfRange { max: i64, got: i64 },
}

/// A quantity on a reservation line: 1..=1,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LineQuantity(i64);

impl LineQuantity {
    /// Accepts 1..=1,000,000.
    pub fn parse(q: i64) -> Result<Self, QuantityError> {
        if (1..=MAX_LINE_QUANTITY).contains(&q) {
            Ok(Self(q))
        } else {
            Err(QuantityError::OutOfRange { min: 1, max: MAX_LINE_QUANTITY, got: q })
        }
    }

    /// The number of units.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A change to on_hand: non-zero, at most `MAX_DELTA` either way. Checked
/// with a range, not `abs()`: `i64::MIN.abs()` overflows (and wraps to
/// itself in release builds, which once let i64::MIN through).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockDelta(i64);

impl StockDelta {
    /// Accepts -1,000,000..=1,000,000 except 0.
    pub fn parse(d: i64) -> Result<Self, QuantityError> {
        if d != 0 && (-MAX_DELTA..=MAX_DELTA).contains(&d) {
            Ok(Self(d))
        } else {
            Err(QuantityError::DeltaOutOfRange { max: MAX_DELTA, got: d })
        }
    }

    /// The change.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// An absolute on_hand a caller sets: 0..=1,000,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnHand(i64);

impl OnHand {
    /// Accepts 0..=`MAX_ON_HAND`.
    pub fn parse(n: i64) -> Result<Self, QuantityError> {
        if (0..=MAX_ON_HAND).contains(&n) {
            Ok(Self(n))
        } else {
            Err(QuantityError::OutOfRange { min: 0, max: MAX_ON_HAND, got: n })
        }
    }

    /// The number of units.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// How long a reservation holds its stock: 1 s to 24 h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl(Duration);

impl Ttl {
    /// Accepts 1 s to 24 h inclusive.
    pub fn parse(d: Duration) -> Result<Self, QuantityError> {
        if (MIN_TTL..=MAX_TTL).contains(&d) { Ok(Self(d)) } else { Err(QuantityError::TtlOutOfRange) }
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }

    /// Whole milliseconds, as the scripts take them.
    pub fn as_millis(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_quantity_bounds_are_inclusive() {
        assert!(LineQuantity::parse(1).is_ok());
        assert!(LineQuantity::parse(MAX_LINE_QUANTITY).is_ok());
        assert!(LineQuantity::parse(0).is_err());
        assert!(LineQuantity::parse(-5).is_err());
        assert!(LineQuantity::parse(MAX_LINE_QUANTITY + 1).is_err());
    }

    #[test]
    fn deltas_are_bounded_both_ways_without_overflow() {
        for ok in [1, -1, MAX_DELTA, -MAX_DELTA] {
            assert_eq!(StockDelta::parse(ok).map(StockDelta::get), Ok(ok));
        }
        for bad in [0, MAX_DELTA + 1, -MAX_DELTA - 1, i64::MAX, i64::MIN, i64::MIN + 1] {
            assert!(StockDelta::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn on_hand_is_bounded() {
        assert!(OnHand::parse(0).is_ok());
        assert!(OnHand::parse(MAX_ON_HAND).is_ok());
        for bad in [-1, MAX_ON_HAND + 1, i64::MAX, i64::MIN] {
            assert!(OnHand::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ttl_bounds_are_inclusive() {
        assert!(Ttl::parse(Duration::from_secs(1)).is_ok());
        assert!(Ttl::parse(Duration::from_secs(86_400)).is_ok());
        assert!(Ttl::parse(Duration::from_millis(999)).is_err());
        assert!(Ttl::parse(Duration::from_secs(86_401)).is_err());
        assert_eq!(Ttl::parse(Duration::from_secs(2)).map(Ttl::as_millis), Ok(2000));
    }
}
