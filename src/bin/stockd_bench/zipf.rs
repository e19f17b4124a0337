//! A Zipf sampler: rank k (0-based) of n is drawn with probability
//! proportional to 1 / (k + 1)^s. The cumulative distribution is computed
//! once; a draw is one uniform number and a binary search.

use rand::Rng;

/// Zipf(n, s) over ranks 0..n; rank 0 is the most popular.
#[derive(Debug, Clone)]
pub struct Zipf {
    /// cdf[k] = P(rank <= k); the last entry is 1.
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` ranks with exponent `s` (1.0 is the classic
    /// "the second is half as popular as the first"). `n` must be positive.
    pub fn new(n: usize, s: f64) -> anyhow::Result<Self> {
        anyhow::ensure!(n > 0, "a Zipf distribution needs at least one rank");
        anyhow::ensure!(s.is_finite() && s >= 0.0, "Zipf exponent must be a non-negative number, got {s}");
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += (k as f64).powf(-s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        Ok(Self { cdf })
    }

    /// The number of ranks.
    pub fn len(&self) -> usize {
        self.cdf.len()
    }

    /// The probability of rank `k`.
    #[cfg(test)]
    pub fn probability(&self, k: usize) -> f64 {
        match k {
            0 => self.cdf[0],
            k if k < self.cdf.len() => self.cdf[k] - self.cdf[k - 1],
            _ => 0.0,
        }
    }

    /// Draws one rank.
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c <= u).min(self.cdf.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn probabilities_follow_one_over_rank_and_sum_to_one() {
        let z = Zipf::new(1000, 1.0).expect("valid");
        let h: f64 = (1..=1000).map(|k| 1.0 / k as f64).sum();
        assert!((z.probability(0) - 1.0 / h).abs() < 1e-12);
        assert!((z.probability(1) * 2.0 - z.probability(0)).abs() < 1e-12);
        let total: f64 = (0..1000).map(|k| z.probability(k)).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert_eq!(z.probability(1000), 0.0);
    }

    #[test]
    fn samples_stay_in_range_and_favour_the_first_ranks() {
        let z = Zipf::new(100, 1.0).expect("valid");
        let mut rng = StdRng::seed_from_u64(7);
        let mut hits = [0u32; 100];
        for _ in 0..100_000 {
            hits[z.sample(&mut rng)] += 1;
        }
        // P(rank 0) = 1 / H(100) = 0.1928; P(rank 1) is half of that.
        let p0 = f64::from(hits[0]) / 100_000.0;
        assert!((p0 - 0.1928).abs() < 0.01, "{p0}");
        assert!(hits[0] > hits[1] && hits[1] > hits[9] && hits[9] > hits[99]);
    }

    #[test]
    fn exponent_zero_is_uniform_and_one_rank_always_draws_it() {
        let z = Zipf::new(4, 0.0).expect("valid");
        assert!((0..4).all(|k| (z.probability(k) - 0.25).abs() < 1e-12));
        let one = Zipf::new(1, 1.0).expect("valid");
        let mut rng = StdRng::seed_from_u64(1);
        assert!((0..100).all(|_| one.sample(&mut rng) == 0));
        assert!(Zipf::new(0, 1.0).is_err());
        assert!(Zipf::new(3, f64::NAN).is_err());
    }
}
