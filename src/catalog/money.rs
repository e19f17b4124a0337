//! Prices and costs as exact decimals.

/// Largest amount accepted (numeric(14,4) holds ten integer digits).
const MAX_INTEGER_DIGITS: usize = 10;
/// Most decimal places kept.
const MAX_DECIMALS: usize = 4;

/// A non-negative decimal amount, kept as its canonical text ("19.99").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money(String);

impl Money {
    /// Parses `123`, `19.99` or `0.0001`; empty means 0. No sign, no exponent,
    /// at most 10 integer digits and 4 decimals.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Self("0".into()));
        }
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
        if int.is_empty() || !digits(int) || !digits(frac) || (s.contains('.') && frac.is_empty()) {
            return Err("must be a non-negative decimal such as 19.99".into());
        }
        if int.len() > MAX_INTEGER_DIGITS {
            return Err(format!("must be less than 10^{MAX_INTEGER_DIGITS}"));
        }
        if frac.len() > MAX_DECIMALS {
            return Err(format!("must have at most {MAX_DECIMALS} decimal places"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The amount as decimal text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Money;

    #[test]
    fn accepts_plain_decimals() {
        for ok in ["0", "19.99", "0.0001", "1234567890.1234"] {
            assert_eq!(Money::parse(ok).map(|m| m.as_str().to_owned()), Ok(ok.to_owned()));
        }
        assert_eq!(Money::parse("").map(|m| m.as_str().to_owned()), Ok("0".to_owned()));
    }

    #[test]
    fn rejects_signs_exponents_and_excess_precision() {
        for bad in ["-1", "+1", "1e3", "1.", ".5", "1.23456", "12345678901", "abc", "1,5", "NaN"] {
            assert!(Money::parse(bad).is_err(), "{bad}");
        }
    }
}
