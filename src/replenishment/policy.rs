//! The reorder policy as plain functions, read like the design page: daily
//! sales with the days out of stock left out, one-off spikes capped, a
//! weighted velocity and its spread, the safety stock and reorder point they
//! give, and how much to order. No I/O: the suggestion query (suggest.rs)
//! feeds them one SKU-location at a time.
//!
//! - **Days.** Day k (k = 0, 1, ...) is the k-th 24 hours before now: day 0
//!   the last 24 hours. The window is `window_days` such days (default 28).
//! - **Out of stock.** on_hand at each day boundary is walked back from on_hand
//!   now with the ledger's on_hand moves of each day. A day that began or
//!   ended with nothing on hand is left out: its sales say how much there was,
//!   not how much was wanted. Days before a SKU-location's first stock are out
//!   of stock the same way.
//! - **Spikes.** With at least `MIN_DAYS_TO_CAP` days in stock, each day is
//!   capped at mean + `SPIKE_SIGMAS` × σ of the *other* days (σ at least one
//!   unit, so a slow seller's odd sale of two is not a spike). Leaving the day
//!   out of its own yardstick is what lets one spike be seen at all: counted
//!   in, it would raise σ enough to hide itself.
//! - **Weights.** Day k weighs `window_days − k`: yesterday counts as much as
//!   the oldest day of a 28-day window 28 times over, and the weight falls in
//!   a straight line between. velocity = Σ w·x / Σ w and σ = √(Σ w·(x − v)² /
//!   Σ w), over the days in stock (capped).
//! - **New SKUs.** A SKU-location with less history than the window uses the
//!   days it has; with fewer than `MIN_DAYS_TO_CAP` days in stock and a
//!   fallback velocity on the SKU it uses the fallback (σ = √fallback: sales
//!   counts taken as Poisson), and without days or fallback it has no demand.
//!   The basis says which.

use std::time::{Duration, SystemTime};

/// Days in stock needed before spikes are capped (and before a new SKU's own
/// history is preferred to its fallback velocity).
pub const MIN_DAYS_TO_CAP: usize = 7;
/// A day above mean + this many σ of the other days is capped there.
pub const SPIKE_SIGMAS: f64 = 3.0;
/// Taken off before rounding up, so that 2.0000000001 from floating point
/// arithmetic is ordered as 2, not 3.
const ROUNDING_SLACK: f64 = 1e-9;
/// One day.
pub const DAY: Duration = Duration::from_secs(86_400);

/// On_hand moves of one day of the window, as the ledger gives them (one
/// day may come in several parts: they add up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayMoves {
    /// Days before now (0: the last 24 hours).
    pub day: u32,
    /// Units fulfilled (shipped) that day.
    pub sold: i64,
    /// The sum of every on_hand delta that day (fulfilments, adjustments,
    /// receipts).
    pub moved: i64,
}

/// Where a velocity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VelocityBasis {
    /// A whole window of history (some days may be out of stock).
    History,
    /// Less history than the window (a new SKU-location): the days it has.
    NewSku,
    /// Too little history of its own: the SKU's fallback velocity.
    Fallback,
    /// No day in stock and no fallback: no demand known.
    NoHistory,
}

/// Velocity and spread of one SKU-location.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Demand {
    /// Units per day.
    pub velocity: f64,
    /// Standard deviation of daily sales.
    pub sigma: f64,
    /// Where the figures come from.
    pub basis: VelocityBasis,
    /// Days in stock the figures were computed from (0 for a fallback).
    pub days_used: u32,
}

/// Daily sales for days 0..`days` (0: the last 24 hours), `None` for a day
/// out of stock, from on_hand now and each day's moves (days without moves
/// may be missing from `moves`).
pub fn in_stock_sales(on_hand_now: i64, moves: &[DayMoves], days: u32) -> Vec<Option<i64>> {
    let mut per_day = vec![(0i64, 0i64); days as usize];
    for m in moves {
        if let Some(d) = per_day.get_mut(m.day as usize) {
            d.0 += m.sold;
            d.1 += m.moved;
        }
    }
    // on_hand at the end of day k: now for day 0, then walked back a day at a time.
    let mut end = on_hand_now;
    per_day
        .into_iter()
        .map(|(sold, moved)| {
            let start = end - moved;
            let in_stock = start > 0 && end > 0;
            end = start;
            in_stock.then_some(sold)
        })
        .collect()
}

/// Caps one-off spikes (see the module docs); `values` are the days in stock.
pub fn cap_spikes(values: &[f64]) -> Vec<f64> {
    let n = values.len();
    if n < MIN_DAYS_TO_CAP {
        return values.to_vec();
    }
    let sum: f64 = values.iter().sum();
    let squares: f64 = values.iter().map(|x| x * x).sum();
    let others = (n - 1) as f64;
    values
        .iter()
        .map(|&x| {
            let mean = (sum - x) / others;
            let variance = ((squares - x * x) / others - mean * mean).max(0.0);
            let cap = mean + SPIKE_SIGMAS * variance.sqrt().max(1.0);
            x.min(cap)
        })
        .collect()
}

/// The weighted mean and standard deviation of daily sales: `days` holds
/// (day k, units), each weighing `window_days − k`. None without days.
pub fn weighted_velocity(days: &[(u32, f64)], window_days: u32) -> Option<(f64, f64)> {
    let weight = |k: u32| f64::from(window_days.saturating_sub(k).max(1));
    let total: f64 = days.iter().map(|&(k, _)| weight(k)).sum();
    if days.is_empty() || total <= 0.0 {
        return None;
    }
    let mean = days.iter().map(|&(k, x)| weight(k) * x).sum::<f64>() / total;
    let variance = days.iter().map(|&(k, x)| weight(k) * (x - mean).powi(2)).sum::<f64>() / total;
    Some((mean, variance.sqrt()))
}

/// Velocity and σ of one SKU-location from its daily sales over the window
/// (`in_stock_sales`), whether its history is shorter than the window, and
/// the SKU's fallback velocity (see the module docs).
pub fn demand(sales: &[Option<i64>], window_days: u32, new: bool, fallback: Option<f64>) -> Demand {
    let in_stock: Vec<(u32, f64)> = sales
        .iter()
        .enumerate()
        .filter_map(|(k, s)| s.map(|s| (u32::try_from(k).unwrap_or(u32::MAX), s as f64)))
        .collect();
    let fallback_wins = in_stock.is_empty() || (new && in_stock.len() < MIN_DAYS_TO_CAP);
    if let (true, Some(f)) = (fallback_wins, fallback) {
        return Demand { velocity: f, sigma: f.sqrt(), basis: VelocityBasis::Fallback, days_used: 0 };
    }
    let capped = cap_spikes(&in_stock.iter().map(|&(_, x)| x).collect::<Vec<_>>());
    let days: Vec<(u32, f64)> = in_stock.iter().zip(capped).map(|(&(k, _), x)| (k, x)).collect();
    match weighted_velocity(&days, window_days) {
        None => Demand { velocity: 0.0, sigma: 0.0, basis: VelocityBasis::NoHistory, days_used: 0 },
        Some((velocity, sigma)) => Demand {
            velocity,
            sigma,
            basis: if new { VelocityBasis::NewSku } else { VelocityBasis::History },
            days_used: u32::try_from(days.len()).unwrap_or(u32::MAX),
        },
    }
}

/// The z-score of a service level (the probability of not running out
/// within a lead time): the standard normal quantile, by Acklam's rational
/// approximation (relative error below 1.2e-9). 0.95 gives 1.6449.
pub fn z_score(service_level: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] =
        [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    const LOW: f64 = 0.02425;
    let p = service_level.clamp(1e-12, 1.0 - 1e-12);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

/// Rounds up, forgiving floating point's last bits (see ROUNDING_SLACK).
fn ceil(x: f64) -> i64 {
    let c = (x - ROUNDING_SLACK).ceil();
    if c.is_finite() { (c as i64).max(0) } else { 0 }
}

/// `ceil(z × σ_daily × √lead_time_days)`.
pub fn safety_stock(z: f64, sigma_daily: f64, lead_time_days: u32) -> i64 {
    ceil(z * sigma_daily * f64::from(lead_time_days).sqrt())
}

/// `ceil(velocity × lead_time_days) + safety_stock`, or the static point when
/// the SKU has one.
pub fn reorder_point(velocity: f64, lead_time_days: u32, safety_stock: i64, static_point: Option<i64>) -> i64 {
    static_point.unwrap_or_else(|| ceil(velocity * f64::from(lead_time_days)) + safety_stock)
}

/// What the order is sized by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderInputs {
    /// Units per day.
    pub velocity: f64,
    /// Supplier lead time.
    pub lead_time_days: u32,
    /// Days of cover beyond the lead time to order up to.
    pub review_days: u32,
    /// Safety stock.
    pub safety_stock: i64,
    /// Reorder point.
    pub reorder_point: i64,
    /// available + in_transit + on_order.
    pub position: i64,
    /// The supplier's minimum per line (0: none).
    pub min_order_quantity: i64,
    /// Units per case (at least 1).
    pub case_pack: i64,
}

/// The quantity to order, 0 unless the position is at or below the reorder
/// point: enough to bring the position up to the target,
/// `ceil(velocity × (lead_time + review_days)) + safety_stock` (and above the
/// reorder point in any case), at least the supplier's minimum, rounded up to
/// whole cases.
pub fn order_quantity(o: &OrderInputs) -> i64 {
    if o.position > o.reorder_point {
        return 0;
    }
    let target = ceil(o.velocity * f64::from(o.lead_time_days.saturating_add(o.review_days))) + o.safety_stock;
    let need = (target - o.position).max(o.reorder_point - o.position + 1).max(1).max(o.min_order_quantity);
    let case = o.case_pack.max(1);
    need.div_euclid(case) * case + if need.rem_euclid(case) == 0 { 0 } else { case }
}

/// Days the available stock lasts at `velocity`; None without demand.
pub fn days_of_cover(available: i64, velocity: f64) -> Option<f64> {
    (velocity > 0.0).then(|| available.max(0) as f64 / velocity)
}

/// When the available stock runs out at this rate, if nothing arrives.
pub fn stockout_date(now: SystemTime, days_of_cover: Option<f64>) -> Option<SystemTime> {
    let days = days_of_cover?;
    // Beyond a century the date says nothing (and Duration would overflow).
    (days < 36_500.0).then(|| now + DAY.mul_f64(days))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    fn moves(list: &[(u32, i64, i64)]) -> Vec<DayMoves> {
        list.iter().map(|&(day, sold, moved)| DayMoves { day, sold, moved }).collect()
    }

    #[test]
    fn days_that_began_or_ended_with_nothing_on_hand_are_left_out() {
        // 5 on hand now. Walked back by hand:
        //   day 0: end 5, moved -3  -> start 8   in stock, sold 3
        //   day 1: end 8, moved +8 (received 10, sold 2) -> start 0: out (began empty)
        //   day 2: end 0, moved -4  -> start 4   out (ended empty), sold 4
        //   day 3: end 4, moved 0   -> start 4   in stock, sold 0
        let m = moves(&[(0, 3, -3), (1, 2, 8), (2, 4, -4)]);
        assert_eq!(in_stock_sales(5, &m, 4), vec![Some(3), None, None, Some(0)]);
    }

    #[test]
    fn a_day_given_in_parts_adds_up() {
        let parts = moves(&[(0, 2, -2), (1, 0, 10), (0, 1, -1), (1, 4, -4)]);
        let whole = moves(&[(0, 3, -3), (1, 4, 6)]);
        assert_eq!(in_stock_sales(5, &parts, 3), in_stock_sales(5, &whole, 3));
        assert_eq!(in_stock_sales(5, &whole, 3), vec![Some(3), Some(4), Some(0)]);
    }

    #[test]
    fn days_before_the_first_stock_count_as_out_of_stock() {
        // Received 20 two days ago (day 1), sold 2 then and 3 yesterday.
        let m = moves(&[(0, 3, -3), (1, 2, 18)]);
        assert_eq!(in_stock_sales(15, &m, 4), vec![Some(3), None, None, None]);
    }

    #[test]
    fn zero_sales_in_stock_are_zero_days_not_missing_ones() {
        assert_eq!(in_stock_sales(10, &[], 3), vec![Some(0), Some(0), Some(0)]);
        let d = demand(&[Some(0), Some(0), Some(0)], 3, false, None);
        assert_eq!((d.velocity, d.sigma, d.basis, d.days_used), (0.0, 0.0, VelocityBasis::History, 3));
    }

    #[test]
    fn one_spike_is_capped_at_three_sigma_of_the_other_days() {
        // The others are all 2 (σ 0, taken as 1): the cap is 2 + 3 × 1 = 5.
        // Each 2 is measured against the others, spike included:
        // mean 40/6 = 6.67, σ = √(920/6 − 6.67²) = 10.43, cap 38: untouched.
        let capped = cap_spikes(&[2.0, 2.0, 2.0, 30.0, 2.0, 2.0, 2.0]);
        assert_eq!(capped, vec![2.0, 2.0, 2.0, 5.0, 2.0, 2.0, 2.0]);
        // The 7 against 4, 6, 5, 5, 6, 4: mean 5, σ 0.82 (taken as 1), cap 8.
        let varied = [4.0, 6.0, 5.0, 7.0, 5.0, 6.0, 4.0];
        assert_eq!(cap_spikes(&varied), varied.to_vec(), "ordinary variation is not a spike");
        assert_eq!(cap_spikes(&[1.0, 50.0]), vec![1.0, 50.0], "too few days to tell a spike");
    }

    #[test]
    fn velocity_weighs_day_k_by_window_minus_k() {
        // Window 4: weights 4, 3, 2, 1 (sum 10) for days 0..3 with 4, 2, 0, 2 sold.
        // v = (16 + 6 + 0 + 2) / 10 = 2.4
        // σ² = (4·1.6² + 3·0.4² + 2·2.4² + 1·0.4²) / 10 = (10.24 + 0.48 + 11.52 + 0.16) / 10 = 2.24
        let (v, s) = weighted_velocity(&[(0, 4.0), (1, 2.0), (2, 0.0), (3, 2.0)], 4).expect("days");
        assert!(close(v, 2.4), "{v}");
        assert!(close(s, 2.24f64.sqrt()), "{s}");
        assert_eq!(weighted_velocity(&[], 4), None);
    }

    #[test]
    fn a_day_out_of_stock_drops_out_of_the_weights_too() {
        // Days 0 and 2 in stock (weights 3 and 1), day 1 out: v = (3·6 + 1·2) / 4 = 5.
        let d = demand(&[Some(6), None, Some(2)], 3, false, None);
        assert!(close(d.velocity, 5.0), "{d:?}");
        // σ² = (3·1 + 1·9) / 4 = 3
        assert!(close(d.sigma, 3f64.sqrt()), "{d:?}");
        assert_eq!(d.days_used, 2);
    }

    #[test]
    fn the_spike_is_capped_before_the_weights_apply() {
        // Seven days of 2 and a 30 on day 3, window 7 (weights 7..1, sum 28):
        // capped to 5, v = (2·(28 − 4) + 5·4) / 28 = 68 / 28.
        let sales = [Some(2), Some(2), Some(2), Some(30), Some(2), Some(2), Some(2)];
        let d = demand(&sales, 7, false, None);
        assert!(close(d.velocity, 68.0 / 28.0), "{d:?}");
        let var = (24.0 * (2.0 - 68.0 / 28.0f64).powi(2) + 4.0 * (5.0 - 68.0 / 28.0f64).powi(2)) / 28.0;
        assert!(close(d.sigma, var.sqrt()), "{d:?}");
    }

    #[test]
    fn a_new_sku_uses_the_days_it_has_or_its_fallback_and_says_which() {
        let three = [Some(4), Some(2), Some(3)];
        let own = demand(&three, 28, true, None);
        assert_eq!((own.basis, own.days_used), (VelocityBasis::NewSku, 3));
        // Weights 28, 27, 26: (112 + 54 + 78) / 81.
        assert!(close(own.velocity, 244.0 / 81.0), "{own:?}");
        let fallback = demand(&three, 28, true, Some(9.0));
        assert_eq!((fallback.velocity, fallback.sigma, fallback.basis), (9.0, 3.0, VelocityBasis::Fallback));
        let seven = [Some(1); 7];
        assert_eq!(demand(&seven, 28, true, Some(9.0)).basis, VelocityBasis::NewSku, "a week of its own wins");
        let none = demand(&[None, None], 28, true, None);
        assert_eq!((none.velocity, none.basis), (0.0, VelocityBasis::NoHistory));
        assert_eq!(demand(&[None; 28], 28, false, Some(2.0)).basis, VelocityBasis::Fallback, "never in stock");
    }

    #[test]
    fn z_scores_match_the_normal_table() {
        for (level, z) in
            [(0.5, 0.0), (0.9, 1.281_551_6), (0.95, 1.644_853_6), (0.99, 2.326_347_9), (0.999, 3.090_232_3)]
        {
            assert!((z_score(level) - z).abs() < 1e-6, "{level}: {}", z_score(level));
        }
        assert!((z_score(0.01) + 2.326_347_9).abs() < 1e-6, "the lower tail is symmetric");
    }

    #[test]
    fn safety_stock_and_reorder_point_by_hand() {
        // z 1.645, σ 2, lead 4 days: 1.645 × 2 × 2 = 6.58 -> 7.
        assert_eq!(safety_stock(1.645, 2.0, 4), 7);
        // v 2.5 × 4 = 10, + 7 = 17.
        assert_eq!(reorder_point(2.5, 4, 7, None), 17);
        // v 2.4 × 5 = 12 exactly (not 13 from 12.000000000000002).
        assert_eq!(reorder_point(2.4, 5, 0, None), 12);
        assert_eq!(reorder_point(2.5, 4, 7, Some(40)), 40, "a static point overrides");
        assert_eq!(safety_stock(1.645, 0.0, 10), 0, "no spread, no safety stock");
        assert_eq!(safety_stock(1.645, 3.0, 0), 0, "no lead time, no safety stock");
    }

    fn inputs(position: i64) -> OrderInputs {
        OrderInputs {
            velocity: 2.5,
            lead_time_days: 4,
            review_days: 30,
            safety_stock: 7,
            reorder_point: 17,
            position,
            min_order_quantity: 0,
            case_pack: 1,
        }
    }

    #[test]
    fn order_quantity_fills_up_to_lead_time_plus_review_cover() {
        // Target: 2.5 × 34 = 85, + 7 = 92. Position 12: order 80.
        assert_eq!(order_quantity(&inputs(12)), 80);
        assert_eq!(order_quantity(&inputs(17)), 75, "at the reorder point counts");
        assert_eq!(order_quantity(&inputs(18)), 0, "above it nothing is ordered");
        assert_eq!(order_quantity(&inputs(-5)), 97, "a negative position (shrinkage) orders more");
    }

    #[test]
    fn order_quantity_is_at_least_the_minimum_and_whole_cases() {
        assert_eq!(order_quantity(&OrderInputs { min_order_quantity: 100, ..inputs(12) }), 100);
        assert_eq!(order_quantity(&OrderInputs { case_pack: 12, ..inputs(12) }), 84, "80 -> 7 cases");
        assert_eq!(order_quantity(&OrderInputs { case_pack: 20, ..inputs(12) }), 80, "exactly 4 cases");
        let both = OrderInputs { min_order_quantity: 100, case_pack: 12, ..inputs(12) };
        assert_eq!(order_quantity(&both), 108, "the minimum, then rounded up to 9 cases");
        assert_eq!(order_quantity(&OrderInputs { case_pack: 0, ..inputs(12) }), 80, "a case pack of 0 counts as 1");
    }

    #[test]
    fn a_static_point_without_demand_orders_just_past_it() {
        let o = OrderInputs { velocity: 0.0, safety_stock: 0, reorder_point: 10, ..inputs(4) };
        assert_eq!(order_quantity(&o), 7, "position 4 -> 11, one above the point");
    }

    #[test]
    fn cover_and_stockout_date_follow_available_at_the_velocity() {
        assert_eq!(days_of_cover(25, 2.5), Some(10.0));
        assert_eq!(days_of_cover(-3, 2.5), Some(0.0));
        assert_eq!(days_of_cover(25, 0.0), None);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(stockout_date(now, Some(10.0)), Some(now + DAY * 10));
        assert_eq!(stockout_date(now, None), None);
        assert_eq!(stockout_date(now, Some(1e12)), None);
    }
}
