//! Quantities and durations accepted in requests.

use std::time::Duration;

/// Most units one reservation line may ask for.
pub const MAX_LINE_QUANTITY: i64 = 1_000_000;
/// Shortest hold a caller may ask for.
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// Longest hold a caller may ask for.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Why a number is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("must be between {min} and {max}, got {got}")]
    OutOfRange { min: i64, max: i64, got: i64 },
    #[error("must be between 1 s and 24 h")]
    TtlOutOfRange,
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
    fn ttl_bounds_are_inclusive() {
        assert!(Ttl::parse(Duration::from_secs(1)).is_ok());
        assert!(Ttl::parse(Duration::from_secs(86_400)).is_ok());
        assert!(Ttl::parse(Duration::from_millis(999)).is_err());
        assert!(Ttl::parse(Duration::from_secs(86_401)).is_err());
        assert_eq!(Ttl::parse(Duration::from_secs(2)).map(Ttl::as_millis), Ok(2000));
    }
}
