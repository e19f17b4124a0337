//! The settings of cycle counting, read with the rest of `Config` (each
//! says its variable and default; README: Cycle counts).

use std::time::Duration;

use super::policy::{AbcMethod, AbcSplit, BASIS_POINTS, CountGates, Schedule};
use crate::config::{ConfigError, parse_duration};

/// Cycle counting's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleCountSettings {
    /// `STOCKD_COUNT_ADJUST_THRESHOLD` (0.05), `STOCKD_COUNT_STOP_THRESHOLD`
    /// (0.10), fractions with at most four decimals, and
    /// `STOCKD_COUNT_MIN_UNITS` (2).
    pub gates: CountGates,
    /// `STOCKD_COUNT_DAYS_A` (7), `_B` (30), `_C` (90): days between counts.
    pub schedule: Schedule,
    /// `STOCKD_ABC_METHOD`, `rank` (default) or `revenue`;
    /// `STOCKD_ABC_A_PERCENT` (20) and `STOCKD_ABC_B_PERCENT` (30) for rank.
    pub split: AbcSplit,
    /// `STOCKD_ABC_WINDOW_DAYS` (90): the trailing revenue window, in days.
    pub window_days: u32,
    /// `STOCKD_ABC_INTERVAL` (`24h`): how old the classes may get before the
    /// leader computes them again.
    pub abc_interval: Duration,
}

impl Default for CycleCountSettings {
    fn default() -> Self {
        Self {
            gates: CountGates::default(),
            schedule: Schedule::default(),
            split: AbcSplit::default(),
            window_days: 90,
            abc_interval: Duration::from_secs(24 * 3600),
        }
    }
}

/// Longest period or window, in days (ten years).
const MAX_DAYS: u32 = 3650;

impl CycleCountSettings {
    /// Reads the variables through `get`, starting from the defaults.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let gates = CountGates {
            adjust_bp: read(get, "STOCKD_COUNT_ADJUST_THRESHOLD", fraction_bp)?.unwrap_or(d.gates.adjust_bp),
            stop_bp: read(get, "STOCKD_COUNT_STOP_THRESHOLD", fraction_bp)?.unwrap_or(d.gates.stop_bp),
            min_units: read(get, "STOCKD_COUNT_MIN_UNITS", |v| match v.parse::<u32>() {
                Ok(n) if n <= 1_000_000 => Ok(n),
                _ => Err("must be a whole number of units from 0 to 1000000".into()),
            })?
            .unwrap_or(d.gates.min_units),
        };
        if gates.stop_bp < gates.adjust_bp {
            return Err(ConfigError {
                var: "STOCKD_COUNT_STOP_THRESHOLD",
                value: format!("{}", f64::from(gates.stop_bp) / BASIS_POINTS as f64),
                why: "must not be below STOCKD_COUNT_ADJUST_THRESHOLD".into(),
            });
        }
        let schedule = Schedule {
            a_days: read(get, "STOCKD_COUNT_DAYS_A", days)?.unwrap_or(d.schedule.a_days),
            b_days: read(get, "STOCKD_COUNT_DAYS_B", days)?.unwrap_or(d.schedule.b_days),
            c_days: read(get, "STOCKD_COUNT_DAYS_C", days)?.unwrap_or(d.schedule.c_days),
        };
        let split = AbcSplit {
            method: read(get, "STOCKD_ABC_METHOD", |v| match v {
                "rank" => Ok(AbcMethod::Rank),
                "revenue" => Ok(AbcMethod::RevenueShare),
                _ => Err("must be rank or revenue".into()),
            })?
            .unwrap_or(d.split.method),
            a_percent: read(get, "STOCKD_ABC_A_PERCENT", percent)?.unwrap_or(d.split.a_percent),
            b_percent: read(get, "STOCKD_ABC_B_PERCENT", percent)?.unwrap_or(d.split.b_percent),
        };
        if split.a_percent + split.b_percent > 100 {
            return Err(ConfigError {
                var: "STOCKD_ABC_B_PERCENT",
                value: split.b_percent.to_string(),
                why: "STOCKD_ABC_A_PERCENT and STOCKD_ABC_B_PERCENT must add up to at most 100".into(),
            });
        }
        Ok(Self {
            gates,
            schedule,
            split,
            window_days: read(get, "STOCKD_ABC_WINDOW_DAYS", days)?.unwrap_or(d.window_days),
            abc_interval: read(get, "STOCKD_ABC_INTERVAL", |v| match parse_duration(v)? {
                d if d.is_zero() => Err("must be more than zero".into()),
                d => Ok(d),
            })?
            .unwrap_or(d.abc_interval),
        })
    }
}

/// The value of `var` parsed by `f`, or None when unset; a bad value is an
/// error naming the variable.
fn read<T>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    f: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    match get(var) {
        Some(v) => f(v.trim()).map(Some).map_err(|why| ConfigError { var, value: v.clone(), why }),
        None => Ok(None),
    }
}

/// A fraction such as `0.05` (0 < f <= 1, at most four decimals) in basis points.
fn fraction_bp(v: &str) -> Result<u32, String> {
    let bad = || "must be a fraction above 0 and at most 1, with at most four decimals (0.05 = 5%)".to_string();
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if int.is_empty()
        || v.ends_with('.')
        || frac.len() > 4
        || !(int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()))
    {
        return Err(bad());
    }
    let int: u32 = int.parse().map_err(|_| bad())?;
    let frac: u32 = if frac.is_empty() { 0 } else { format!("{frac:0<4}").parse().map_err(|_| bad())? };
    let bp = int.checked_mul(10_000).and_then(|i| i.checked_add(frac)).ok_or_else(bad)?;
    if bp == 0 || i64::from(bp) > BASIS_POINTS {
        return Err(bad());
    }
    Ok(bp)
}

fn days(v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if (1..=MAX_DAYS).contains(&n) => Ok(n),
        _ => Err(format!("must be a whole number of days from 1 to {MAX_DAYS}")),
    }
}

fn percent(v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if n <= 100 => Ok(n),
        _ => Err("must be a whole percentage from 0 to 100".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<CycleCountSettings, ConfigError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        CycleCountSettings::from_lookup(&|k: &str| m.get(k).cloned())
    }

    #[test]
    fn the_defaults_are_the_designs() {
        let s = with(&[]).expect("defaults");
        assert_eq!(s.gates, CountGates { adjust_bp: 500, stop_bp: 1000, min_units: 2 });
        assert_eq!(s.schedule, Schedule { a_days: 7, b_days: 30, c_days: 90 });
        assert_eq!(s.split, AbcSplit { method: AbcMethod::Rank, a_percent: 20, b_percent: 30 });
        assert_eq!((s.window_days, s.abc_interval), (90, Duration::from_secs(86_400)));
        assert_eq!(s, CycleCountSettings::default());
    }

    #[test]
    fn every_setting_is_read() {
        let s = with(&[
            ("STOCKD_COUNT_ADJUST_THRESHOLD", "0.03"),
            ("STOCKD_COUNT_STOP_THRESHOLD", "0.125"),
            ("STOCKD_COUNT_MIN_UNITS", "0"),
            ("STOCKD_COUNT_DAYS_A", "5"),
            ("STOCKD_COUNT_DAYS_B", "20"),
            ("STOCKD_COUNT_DAYS_C", "60"),
            ("STOCKD_ABC_METHOD", "revenue"),
            ("STOCKD_ABC_A_PERCENT", "10"),
            ("STOCKD_ABC_B_PERCENT", "40"),
            ("STOCKD_ABC_WINDOW_DAYS", "30"),
            ("STOCKD_ABC_INTERVAL", "6h"),
        ])
        .expect("valid");
        assert_eq!(s.gates, CountGates { adjust_bp: 300, stop_bp: 1250, min_units: 0 });
        assert_eq!(s.schedule, Schedule { a_days: 5, b_days: 20, c_days: 60 });
        assert_eq!(s.split, AbcSplit { method: AbcMethod::RevenueShare, a_percent: 10, b_percent: 40 });
        assert_eq!((s.window_days, s.abc_interval), (30, Duration::from_secs(6 * 3600)));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("STOCKD_COUNT_ADJUST_THRESHOLD", "5%"),
            ("STOCKD_COUNT_ADJUST_THRESHOLD", "0"),
            ("STOCKD_COUNT_ADJUST_THRESHOLD", "1.5"),
            ("STOCKD_COUNT_ADJUST_THRESHOLD", "0.00001"),
            ("STOCKD_COUNT_STOP_THRESHOLD", "0.01"),
            ("STOCKD_COUNT_MIN_UNITS", "-1"),
            ("STOCKD_COUNT_DAYS_A", "0"),
            ("STOCKD_ABC_METHOD", "abc"),
            ("STOCKD_ABC_B_PERCENT", "90"),
            ("STOCKD_ABC_WINDOW_DAYS", "x"),
            ("STOCKD_ABC_INTERVAL", "0s"),
        ] {
            let e = with(&[(var, value)]).expect_err(value);
            assert_eq!(e.var, var, "{value}");
        }
    }

    #[test]
    fn fractions_become_basis_points_exactly() {
        assert_eq!(fraction_bp("0.05"), Ok(500));
        assert_eq!(fraction_bp("0.1"), Ok(1000));
        assert_eq!(fraction_bp("1"), Ok(10_000));
        assert_eq!(fraction_bp("0.0001"), Ok(1));
        for bad in ["", ".5", "0.", "-0.1", "1.0001", "abc", "0.5e1"] {
            assert!(fraction_bp(bad).is_err(), "{bad}");
        }
    }
}
