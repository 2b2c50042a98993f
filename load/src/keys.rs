//! Key distributions: uniform, and Zipf by inverse transform over a precomputed CDF.

/// Draws key numbers from `0..n`.
#[derive(Debug, Clone)]
pub(crate) enum KeyDist {
    /// Every key equally likely.
    Uniform {
        /// How many keys.
        n: u64,
    },
    /// Zipf: key `k` (its rank, from 0) with probability proportional to `1 / (k + 1)^s`.
    Zipf {
        /// `cdf[k]` = P(key <= k); the last entry is exactly 1.
        cdf: Vec<f64>,
    },
}

impl KeyDist {
    /// Uniform over `0..n` (`n` at least 1).
    pub(crate) fn uniform(n: u64) -> Self {
        KeyDist::Uniform { n: n.max(1) }
    }

    /// Zipf with exponent `s` over `0..n` (`n` at least 1): the CDF is computed once, in
    /// `O(n)`; each draw is then a binary search.
    pub(crate) fn zipf(n: u64, s: f64) -> Self {
        let n = n.max(1) as usize;
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 0..n {
            sum += ((k + 1) as f64).powf(-s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        // Rounding may leave the last entry a hair under 1; a draw of u in [0, 1) must always
        // find an entry above it.
        cdf[n - 1] = 1.0;
        KeyDist::Zipf { cdf }
    }

    /// How many keys there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        match self {
            KeyDist::Uniform { n } => *n,
            KeyDist::Zipf { cdf } => cdf.len() as u64,
        }
    }

    /// One key number in `0..len()`.
    pub(crate) fn sample(&self, rng: &mut fastrand::Rng) -> u64 {
        match self {
            KeyDist::Uniform { n } => rng.u64(0..*n),
            KeyDist::Zipf { cdf } => {
                let u = rng.f64();
                let k = cdf.partition_point(|&c| c <= u);
                k.min(cdf.len() - 1) as u64
            }
        }
    }

    /// The probability of key `k`.
    #[cfg(test)]
    pub(crate) fn probability(&self, k: u64) -> f64 {
        match self {
            KeyDist::Uniform { n } => 1.0 / *n as f64,
            KeyDist::Zipf { cdf } => {
                let k = k as usize;
                cdf[k] - if k == 0 { 0.0 } else { cdf[k - 1] }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DRAWS: usize = 400_000;

    fn counts(dist: &KeyDist, seed: u64) -> Vec<u64> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut counts = vec![0u64; dist.len() as usize];
        for _ in 0..DRAWS {
            counts[dist.sample(&mut rng) as usize] += 1;
        }
        counts
    }

    #[test]
    fn zipf_cdf_is_increasing_and_ends_at_one() {
        let KeyDist::Zipf { cdf } = KeyDist::zipf(1000, 1.1) else {
            unreachable!()
        };
        assert!(cdf.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(cdf[999], 1.0);
    }

    #[test]
    fn zipf_probabilities_follow_the_power_law() {
        let dist = KeyDist::zipf(1000, 1.1);
        let ratio = dist.probability(0) / dist.probability(1);
        assert!((ratio - 2f64.powf(1.1)).abs() < 1e-9, "{ratio}");
        let ratio = dist.probability(9) / dist.probability(99);
        assert!((ratio - 10f64.powf(1.1)).abs() < 1e-6, "{ratio}");
        let total: f64 = (0..1000).map(|k| dist.probability(k)).sum();
        assert!((total - 1.0).abs() < 1e-9);
    }

    #[test]
    fn zipf_draws_match_their_probabilities() {
        let dist = KeyDist::zipf(1000, 1.1);
        let counts = counts(&dist, 42);
        for k in [0u64, 1, 2, 9, 99] {
            let expected = dist.probability(k) * DRAWS as f64;
            let got = counts[k as usize] as f64;
            // Within 5 standard deviations of a binomial count (and at least 3%).
            let tolerance = (5.0 * expected.sqrt()).max(0.03 * expected);
            assert!(
                (got - expected).abs() <= tolerance,
                "key {k}: {got} draws, expected {expected:.0}"
            );
        }
        // The shape: the 10 hottest keys of 1000 take about half the draws at s = 1.1.
        let top10: u64 = counts[..10].iter().sum();
        let expected: f64 = (0..10).map(|k| dist.probability(k)).sum();
        let share = top10 as f64 / DRAWS as f64;
        assert!((share - expected).abs() < 0.01, "{share} vs {expected}");
        assert!(share > 0.4 && share < 0.6, "{share}");
    }

    #[test]
    fn zipf_reaches_the_coldest_key_and_never_past_it() {
        let dist = KeyDist::zipf(10, 0.5);
        let counts = counts(&dist, 7);
        assert!(counts.iter().all(|&c| c > 0));
        assert!(counts[0] > counts[9]);
        assert_eq!(counts.len(), 10);
    }

    #[test]
    fn a_single_key_is_always_drawn() {
        let mut rng = fastrand::Rng::with_seed(1);
        for dist in [KeyDist::zipf(1, 1.1), KeyDist::uniform(1)] {
            assert!((0..100).all(|_| dist.sample(&mut rng) == 0));
        }
    }

    #[test]
    fn uniform_draws_are_flat() {
        let dist = KeyDist::uniform(100);
        let counts = counts(&dist, 3);
        let expected = DRAWS as f64 / 100.0;
        let tolerance = 5.0 * expected.sqrt();
        for (k, &c) in counts.iter().enumerate() {
            assert!((c as f64 - expected).abs() <= tolerance, "key {k}: {c}");
        }
    }
}
