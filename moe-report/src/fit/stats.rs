//! Bootstrap helpers: a seeded generator that never changes between versions, and
//! percentiles.

use serde::{Deserialize, Serialize};

use crate::types::f64_or_nan;

/// SplitMix64 (Steele, Lea, Flood 2014; the seeding generator of `java.util.SplittableRandom`
/// and of xoshiro): a fixed algorithm, so a bootstrap with the same seed gives the same
/// resamples on every platform and crate version.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform index in `0..n` (Lemire's multiply-shift; bias below 2⁻⁵⁰ for small `n`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// The 5th, 50th and 95th percentiles of a bootstrap distribution (linear interpolation
/// between order statistics, Hyndman & Fan type 7 — numpy's default). NaN when there were no
/// finite values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// 5th percentile.
    #[serde(deserialize_with = "f64_or_nan")]
    pub p5: f64,
    /// Median.
    #[serde(deserialize_with = "f64_or_nan")]
    pub p50: f64,
    /// 95th percentile.
    #[serde(deserialize_with = "f64_or_nan")]
    pub p95: f64,
}

impl Spread {
    /// Percentiles of the finite `values`.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        Spread {
            p5: percentile(&v, 5.0),
            p50: percentile(&v, 50.0),
            p95: percentile(&v, 95.0),
        }
    }
}

/// Type-7 percentile `p` (0..=100) of sorted values; NaN when empty.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    let h = p / 100.0 * last as f64;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(last);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values_and_range() {
        // First outputs for seed 0 (the reference implementation's well-known sequence).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut rng = SplitMix64::new(7);
        assert!((0..1000).all(|_| rng.below(5) < 5));
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        // numpy.percentile([1, 2, 3, 4, 5], [5, 50, 95]) = [1.2, 3.0, 4.8].
        let s = Spread::of([5.0, 1.0, f64::NAN, 3.0, 2.0, 4.0]);
        assert!((s.p5 - 1.2).abs() < 1e-12 && s.p50 == 3.0 && (s.p95 - 4.8).abs() < 1e-12);
        assert!(Spread::of([]).p50.is_nan());
        assert_eq!(Spread::of([2.0]).p95, 2.0);
    }
}
