//! Exponential backoff with full jitter (the "Full Jitter" of the AWS Architecture Blog's
//! "Exponential Backoff and Jitter"): each delay is uniform in `[0, min(cap, base * 2^n)]`, which
//! spreads competing clients out better than fixed or equal-jitter backoff.

use std::time::Duration;

/// The upper bound of retry `retry`'s delay (1 = first retry).
pub(crate) fn ceiling(base: Duration, cap: Duration, retry: u32) -> Duration {
    let exp = retry.saturating_sub(1).min(31);
    base.checked_mul(1u32 << exp).unwrap_or(cap).min(cap)
}

/// A random delay in `[0, ceiling]`.
pub(crate) fn full_jitter(base: Duration, cap: Duration, retry: u32) -> Duration {
    let ceiling = ceiling(base, cap, retry);
    let nanos = ceiling.as_nanos().min(u64::MAX as u128) as u64;
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let base = Duration::from_millis(10);
        let cap = Duration::from_millis(100);
        let c: Vec<u128> = (1..=6).map(|n| ceiling(base, cap, n).as_millis()).collect();
        assert_eq!(c, vec![10, 20, 40, 80, 100, 100]);
        assert_eq!(ceiling(base, cap, 1000), cap);
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let base = Duration::from_millis(10);
        let cap = Duration::from_millis(100);
        let samples: Vec<Duration> = (0..500).map(|_| full_jitter(base, cap, 4)).collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_millis(80)));
        let distinct: std::collections::HashSet<_> = samples.iter().collect();
        assert!(distinct.len() > 100, "full jitter spreads delays");
        // Full jitter: some delays fall in the lower half of the range.
        assert!(samples.iter().any(|d| *d < Duration::from_millis(40)));
    }
}
