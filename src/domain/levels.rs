//! The five numbers.

/// The four stored numbers of a SKU somewhere; `available` is derived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Levels {
    /// Physically in the building.
    pub on_hand: i64,
    /// Held for orders not yet being picked.
    pub reserved: i64,
    /// Being picked or packed.
    pub committed: i64,
    /// On its way from a supplier.
    pub in_transit: i64,
}

impl Levels {
    /// What can be sold: on_hand - reserved - committed. Negative only after
    /// a physical adjustment (shrinkage).
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved - self.committed
    }

    /// Field-wise sum, for totals over locations.
    pub fn plus(self, o: Levels) -> Levels {
        Levels {
            on_hand: self.on_hand + o.on_hand,
            reserved: self.reserved + o.reserved,
            committed: self.committed + o.committed,
            in_transit: self.in_transit + o.in_transit,
        }
    }
}

/// Levels of one SKU at one location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationLevels {
    /// Where.
    pub location_id: String,
    /// The numbers there.
    pub levels: Levels,
    /// Selling is stopped here (for the whole SKU, or at this location
    /// while a count discrepancy is investigated).
    pub stop_sell: bool,
}

/// Everything the engine knows about one SKU's stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuLevels {
    /// The SKU asked for.
    pub sku: String,
    /// False when the catalog never registered it (then `locations` is empty).
    pub known: bool,
    /// Selling is stopped at every location (or for the whole SKU).
    pub stop_sell: bool,
    /// Per location, sorted by location id.
    pub locations: Vec<LocationLevels>,
}

impl SkuLevels {
    /// The sums over all locations listed.
    pub fn total(&self) -> Levels {
        self.locations.iter().fold(Levels::default(), |acc, l| acc.plus(l.levels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_is_on_hand_minus_reserved_minus_committed() {
        let l = Levels { on_hand: 200, reserved: 45, committed: 12, in_transit: 80 };
        assert_eq!(l.available(), 143);
    }

    #[test]
    fn total_sums_every_location() {
        let at = |id: &str, on_hand| LocationLevels {
            location_id: id.into(),
            levels: Levels { on_hand, reserved: 1, committed: 2, in_transit: 3 },
            stop_sell: false,
        };
        let s = SkuLevels { sku: "A".into(), known: true, stop_sell: false, locations: vec![at("x", 10), at("y", 5)] };
        assert_eq!(s.total(), Levels { on_hand: 15, reserved: 2, committed: 4, in_transit: 6 });
        assert_eq!(s.total().available(), 9);
    }
}
