//! The rules of cycle counting, as plain functions: the gates a count goes
//! through, the ABC split, and when each SKU is due. No I/O; the design page
//! ("Cycle counting" in DESIGN.md) reads as these functions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Gates are in basis points (1/10000) of the baseline: integer arithmetic,
/// so this file and count.lua decide alike to the unit.
pub const BASIS_POINTS: i64 = 10_000;

/// Where a count's difference stops being corrected at once, and where it
/// stops selling. From `STOCKD_COUNT_ADJUST_THRESHOLD`,
/// `STOCKD_COUNT_STOP_THRESHOLD` and `STOCKD_COUNT_MIN_UNITS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountGates {
    /// A difference up to this share of the baseline is corrected at once
    /// (basis points; 500 = 5%).
    pub adjust_bp: u32,
    /// Past this share selling stops too (basis points; 1000 = 10%). At
    /// least `adjust_bp`.
    pub stop_bp: u32,
    /// A difference of fewer units than this is corrected at once whatever
    /// its share (2: one unit off is never an emergency, 1 of 3 included).
    pub min_units: u32,
}

impl Default for CountGates {
    fn default() -> Self {
        Self { adjust_bp: 500, stop_bp: 1000, min_units: 2 }
    }
}

/// What a count did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CountAction {
    /// The shelf agrees with on_hand.
    Matched,
    /// The difference was small: on_hand was set to the count.
    Adjusted,
    /// Over the adjust gate: an investigation opened; on_hand stays.
    Investigation,
    /// Over the stop gate: an investigation opened and selling stopped at
    /// that SKU-location.
    StopSell,
}

impl CountAction {
    /// The word count.lua and Postgres use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Matched => "MATCHED",
            Self::Adjusted => "ADJUSTED",
            Self::Investigation => "INVESTIGATION",
            Self::StopSell => "STOP_SELL",
        }
    }

    /// The action of a word from `as_str`.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "MATCHED" => Some(Self::Matched),
            "ADJUSTED" => Some(Self::Adjusted),
            "INVESTIGATION" => Some(Self::Investigation),
            "STOP_SELL" => Some(Self::StopSell),
            _ => None,
        }
    }

    /// Whether the count opened an investigation.
    pub fn investigates(self) -> bool {
        matches!(self, Self::Investigation | Self::StopSell)
    }
}

/// `|counted - expected| / max(expected, 1)`: the share of the baseline the
/// shelf is off by. A zero (or negative) baseline with stock found counts
/// every unit as 100%.
pub fn discrepancy(expected: i64, counted: i64) -> f64 {
    let diff = (i128::from(counted) - i128::from(expected)).unsigned_abs();
    diff as f64 / expected.max(1) as f64
}

/// The gates, in order (count.lua follows this function):
/// no difference: MATCHED; fewer than `min_units` off, or within the adjust
/// gate: ADJUSTED; within the stop gate: INVESTIGATION; past it: STOP_SELL.
pub fn decide(expected: i64, counted: i64, gates: &CountGates) -> CountAction {
    let diff = (i128::from(counted) - i128::from(expected)).abs();
    let base = i128::from(expected.max(1));
    let bp = |gate: u32| i128::from(gate) * base;
    let scaled = diff * i128::from(BASIS_POINTS);
    if diff == 0 {
        CountAction::Matched
    } else if diff < i128::from(gates.min_units) || scaled <= bp(gates.adjust_bp) {
        CountAction::Adjusted
    } else if scaled <= bp(gates.stop_bp) {
        CountAction::Investigation
    } else {
        CountAction::StopSell
    }
}

/// Counts and what the default gates make of them, as (expected, counted,
/// action): checked against `decide` by the unit tests here, and run through
/// count.lua by tests/cycle_counts.rs, so the function and the script agree.
pub const GATE_TABLE: &[(i64, i64, CountAction)] = &[
    (50, 50, CountAction::Matched),
    (0, 0, CountAction::Matched),
    (100, 97, CountAction::Adjusted),
    (100, 105, CountAction::Adjusted),
    (100, 106, CountAction::Investigation),
    (100, 93, CountAction::Investigation),
    (100, 90, CountAction::Investigation),
    (100, 89, CountAction::StopSell),
    (50, 38, CountAction::StopSell),
    (3, 2, CountAction::Adjusted),
    (3, 1, CountAction::StopSell),
    (0, 1, CountAction::Adjusted),
    (0, 2, CountAction::StopSell),
    (20, 21, CountAction::Adjusted),
    (20, 22, CountAction::Investigation),
    (-3, 0, CountAction::StopSell),
    (1_000_000_000, 0, CountAction::StopSell),
];

/// An ABC class: how much a SKU matters, and so how often it is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AbcClass {
    /// The top sellers by revenue.
    A,
    /// The middle.
    B,
    /// The rest, and everything that did not sell.
    C,
}

impl AbcClass {
    /// The letter stored in Postgres.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
        }
    }

    /// The class of a stored letter.
    pub fn parse(letter: &str) -> Option<Self> {
        match letter {
            "A" => Some(Self::A),
            "B" => Some(Self::B),
            "C" => Some(Self::C),
            _ => None,
        }
    }
}

/// How SKUs are split into classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbcMethod {
    /// By rank, as the seed says: A the top `a_percent` of SKUs by revenue,
    /// B the next `b_percent`, C the rest.
    Rank,
    /// By cumulative revenue share: A the SKUs making the first 80% of
    /// revenue, B the next 15%, C the rest.
    RevenueShare,
}

/// The split: the method and, for `Rank`, the shares of SKUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbcSplit {
    /// How.
    pub method: AbcMethod,
    /// Share of SKUs in A, percent (20).
    pub a_percent: u32,
    /// Share of SKUs in B, percent (30).
    pub b_percent: u32,
}

impl Default for AbcSplit {
    fn default() -> Self {
        Self { method: AbcMethod::Rank, a_percent: 20, b_percent: 30 }
    }
}

/// Cumulative revenue shares that close A and B under `RevenueShare`, percent.
const SHARE_A: i128 = 80;
const SHARE_AB: i128 = 95;

/// Classes for SKUs with their trailing revenue (any unit, e.g. 1/10000 of
/// a currency unit), in the order given. SKUs are ranked by revenue, highest
/// first, ties by SKU (so the split is the same every day for the same
/// numbers). A SKU with no revenue is C whatever its rank. Under `Rank`, A
/// holds the first ceil(n × a%) SKUs and A and B together ceil(n × (a+b)%):
/// with 10 SKUs, 2 A, 3 B, 5 C.
pub fn classify(revenues: &[(String, i128)], split: &AbcSplit) -> Vec<AbcClass> {
    let mut order: Vec<usize> = (0..revenues.len()).collect();
    order.sort_by(|&i, &j| revenues[j].1.cmp(&revenues[i].1).then_with(|| revenues[i].0.cmp(&revenues[j].0)));
    let mut classes = vec![AbcClass::C; revenues.len()];
    let n = revenues.len() as u128;
    let ceil_share = |pct: u32| (n * u128::from(pct)).div_ceil(100) as usize;
    let (a_n, ab_n) = (ceil_share(split.a_percent), ceil_share(split.a_percent + split.b_percent));
    let total: i128 = revenues.iter().map(|r| r.1.max(0)).sum();
    let mut before: i128 = 0;
    for (rank, &i) in order.iter().enumerate() {
        let revenue = revenues[i].1;
        if revenue <= 0 {
            continue;
        }
        classes[i] = match split.method {
            AbcMethod::Rank if rank < a_n => AbcClass::A,
            AbcMethod::Rank if rank < ab_n => AbcClass::B,
            AbcMethod::Rank => AbcClass::C,
            // The SKU that crosses a cutoff still belongs to the class below it.
            AbcMethod::RevenueShare if before * 100 < SHARE_A * total => AbcClass::A,
            AbcMethod::RevenueShare if before * 100 < SHARE_AB * total => AbcClass::B,
            AbcMethod::RevenueShare => AbcClass::C,
        };
        before += revenue;
    }
    classes
}

/// How often each class is counted, in days (`STOCKD_COUNT_DAYS_A`, `_B`,
/// `_C`: 7, 30, 90).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// A: weekly.
    pub a_days: u32,
    /// B: monthly.
    pub b_days: u32,
    /// C: quarterly.
    pub c_days: u32,
}

impl Default for Schedule {
    fn default() -> Self {
        Self { a_days: 7, b_days: 30, c_days: 90 }
    }
}

/// One day in seconds; days are UTC days since the Unix epoch.
const DAY_SECS: u64 = 86_400;

/// The UTC day (since the Unix epoch) of `t`.
pub fn day_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() / DAY_SECS) as i64,
        Err(e) => -((e.duration().as_secs().div_ceil(DAY_SECS)) as i64),
    }
}

/// The start (00:00 UTC) of a day.
pub fn start_of(day: i64) -> SystemTime {
    let secs = day.unsigned_abs().saturating_mul(DAY_SECS);
    if day >= 0 { UNIX_EPOCH + Duration::from_secs(secs) } else { UNIX_EPOCH - Duration::from_secs(secs) }
}

/// When a SKU-location is next to be counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The day it is due.
    pub day: i64,
    /// The day has passed without a count.
    pub overdue: bool,
}

impl Schedule {
    /// The period of a class in days (at least 1).
    pub fn period(&self, class: AbcClass) -> i64 {
        let days = match class {
            AbcClass::A => self.a_days,
            AbcClass::B => self.b_days,
            AbcClass::C => self.c_days,
        };
        i64::from(days.max(1))
    }

    /// When `sku` of `class`, last counted on `last` (a day, or never), is
    /// due, seen from `today`.
    ///
    /// Each SKU has a slot: the days whose number is its stable hash modulo
    /// the period (crc32, the same on every replica and every day), so a
    /// class's SKUs spread over the days of its period and each day carries
    /// a similar share of the counting. A never-counted SKU is due at once:
    /// on its latest slot day up to today. A counted one is due on the slot
    /// day nearest a period after its last count (within half a period
    /// either way), so a count made off its slot is drawn back to it.
    pub fn due(&self, sku: &str, class: AbcClass, last: Option<i64>, today: i64) -> Due {
        let period = self.period(class);
        let slot = i64::from(crc32fast::hash(sku.as_bytes())) % period;
        let day = match last {
            None => today - (today - slot).rem_euclid(period),
            Some(last) => {
                let from = last + period - period / 2;
                from + (slot - from).rem_euclid(period)
            }
        };
        Due { day, overdue: day < today }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_count_goes_through_the_gates_of_the_design() {
        for &(expected, counted, action) in GATE_TABLE {
            assert_eq!(decide(expected, counted, &CountGates::default()), action, "{expected} -> {counted}");
        }
    }

    #[test]
    fn below_the_absolute_minimum_no_difference_is_an_emergency() {
        let gates = CountGates { min_units: 5, ..CountGates::default() };
        assert_eq!(decide(3, 7, &gates), CountAction::Adjusted, "4 units off, 133%, under the minimum of 5");
        assert_eq!(decide(3, 8, &gates), CountAction::StopSell);
        let none = CountGates { min_units: 0, ..CountGates::default() };
        assert_eq!(decide(3, 2, &none), CountAction::StopSell, "without a minimum, 1 of 3 is 33%");
    }

    #[test]
    fn the_discrepancy_is_the_share_of_the_baseline() {
        assert_eq!(discrepancy(50, 38), 0.24);
        assert_eq!(discrepancy(100, 103), 0.03);
        assert_eq!(discrepancy(0, 5), 5.0);
        assert_eq!(discrepancy(0, 1), 1.0, "a zero baseline with stock found counts every unit as 100%");
        assert_eq!(discrepancy(7, 7), 0.0);
        assert_eq!(discrepancy(-4, 0), 4.0);
    }

    #[test]
    fn actions_and_classes_round_trip_their_words() {
        for a in [CountAction::Matched, CountAction::Adjusted, CountAction::Investigation, CountAction::StopSell] {
            assert_eq!(CountAction::parse(a.as_str()), Some(a));
        }
        for c in [AbcClass::A, AbcClass::B, AbcClass::C] {
            assert_eq!(AbcClass::parse(c.as_str()), Some(c));
        }
        assert_eq!(CountAction::parse("LOST"), None);
        assert_eq!(AbcClass::parse("D"), None);
    }

    fn revenues(values: &[i128]) -> Vec<(String, i128)> {
        values.iter().enumerate().map(|(i, v)| (format!("S{i:02}"), *v)).collect()
    }

    #[test]
    fn by_rank_the_top_fifth_is_a_the_next_three_tenths_b_and_no_sales_are_c() {
        // Ten SKUs: 2 A, 3 B, 5 C; S09 has no sales.
        let r = revenues(&[500, 100, 900, 300, 200, 800, 50, 400, 10, 0]);
        use AbcClass::{A, B, C};
        assert_eq!(classify(&r, &AbcSplit::default()), [B, C, A, B, C, A, C, B, C, C]);
        // Only one SKU sold: A, and every other is C, however few they are.
        let one = revenues(&[0, 7, 0, 0, 0]);
        assert_eq!(classify(&one, &AbcSplit::default()), [C, A, C, C, C]);
        // Ties are broken by SKU, so the split is stable.
        let ties = revenues(&[5, 5, 5, 5, 5]);
        assert_eq!(classify(&ties, &AbcSplit::default()), [A, B, B, C, C]);
        assert!(classify(&[], &AbcSplit::default()).is_empty());
    }

    #[test]
    fn by_revenue_share_a_makes_the_first_eighty_percent() {
        let r = revenues(&[700, 150, 100, 30, 20, 0]);
        let split = AbcSplit { method: AbcMethod::RevenueShare, ..AbcSplit::default() };
        use AbcClass::{A, B, C};
        // Before each: 0 (A), 700 = 70% (A), 850 = 85% (B), 950 = 95% (C), 980 (C); no sales: C.
        assert_eq!(classify(&r, &split), [A, A, B, C, C, C]);
    }

    #[test]
    fn a_never_counted_sku_is_due_on_its_latest_slot_day() {
        let s = Schedule::default();
        let today = 20_000;
        for sku in ["A-1", "B-2", "C-3", "TEE-BLK-M"] {
            for class in [AbcClass::A, AbcClass::B, AbcClass::C] {
                let due = s.due(sku, class, None, today);
                assert!(due.day <= today && due.day > today - s.period(class), "{sku} {class:?} {due:?}");
                assert_eq!(due.overdue, due.day < today);
            }
        }
    }

    #[test]
    fn a_counted_sku_is_due_a_period_later_on_its_slot() {
        let s = Schedule::default();
        let sku = "TEE-BLK-M";
        let first = s.due(sku, AbcClass::A, None, 20_000);
        // Counted on its slot day: due exactly a week later.
        assert_eq!(s.due(sku, AbcClass::A, Some(first.day), first.day).day, first.day + 7);
        // Counted two days late: drawn back to its slot, 5 days on.
        assert_eq!(s.due(sku, AbcClass::A, Some(first.day + 2), first.day + 2).day, first.day + 7);
        // Counted today, due in a quarter as a C.
        let c = s.due(sku, AbcClass::C, Some(first.day), first.day);
        assert!(!c.overdue);
        assert!((first.day + 45..first.day + 135).contains(&c.day), "{c:?}");
        // Not counted since: overdue once the day has passed.
        assert!(s.due(sku, AbcClass::A, Some(first.day), first.day + 8).overdue);
        assert!(!s.due(sku, AbcClass::A, Some(first.day), first.day + 7).overdue);
    }

    #[test]
    fn slots_spread_a_class_over_the_days_of_its_period() {
        let s = Schedule::default();
        let mut per_day = [0u32; 7];
        for i in 0..7000 {
            let due = s.due(&format!("SKU-{i:05}"), AbcClass::A, None, 70);
            per_day[(70 - due.day) as usize] += 1;
        }
        // 1000 a day on average; a stable hash keeps each day near it.
        for n in per_day {
            assert!((850..=1150).contains(&n), "{per_day:?}");
        }
    }

    #[test]
    fn days_are_utc_days_since_the_epoch() {
        assert_eq!(day_of(UNIX_EPOCH), 0);
        assert_eq!(day_of(UNIX_EPOCH + Duration::from_secs(86_399)), 0);
        assert_eq!(day_of(UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 5)), 3);
        assert_eq!(start_of(3), UNIX_EPOCH + Duration::from_secs(86_400 * 3));
        assert_eq!(day_of(start_of(20_000)), 20_000);
    }
}
