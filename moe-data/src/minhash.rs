//! MinHash signatures of word-shingle sets and their LSH banding (Broder 1997; Leskovec,
//! Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3).
//!
//! A document's shingles are its normalised word n-grams (default n = 5). Each shingle is
//! hashed once (`x`, 32 bits of a 64-bit hash); permutation `i` maps it to
//! `fmix32((x ⊕ s_i) · a_i)` (MurmurHash3's finaliser; `s_i` and odd `a_i` from a seeded
//! SplitMix64), a bijection of the 32-bit values, and the signature keeps each permutation's
//! minimum. For two sets with Jaccard similarity `J`, each signature position agrees with
//! probability `J`, so the fraction of agreeing positions estimates `J` with standard deviation
//! `sqrt(J(1 − J)/num_perm)`.
//!
//! LSH splits the `num_perm` positions into `bands` bands of `rows = num_perm / bands`; two
//! documents become candidates when some band agrees entirely, which happens with probability
//! `1 − (1 − J^rows)^bands` (the S-curve; its steepest point is near `(1/bands)^(1/rows)`).

use crate::hash::{fmix64, hash_words};

/// Computes MinHash signatures.
#[derive(Debug, Clone)]
pub struct MinHasher {
    ngram: usize,
    seeds: Vec<u32>,
    mults: Vec<u32>,
}

/// MurmurHash3's 32-bit finaliser.
#[inline(always)]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// SplitMix64 (Steele, Lea & Flood 2014): the seeded stream of permutation parameters.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    fmix64(*state)
}

impl MinHasher {
    /// `num_perm` permutations over word `ngram`-shingles, parameters drawn from `seed`.
    ///
    /// # Panics
    /// If `num_perm` or `ngram` is 0 (rejected earlier by config validation).
    pub fn new(num_perm: usize, ngram: usize, seed: u64) -> Self {
        assert!(
            num_perm > 0 && ngram > 0,
            "num_perm and ngram must be positive"
        );
        let mut state = seed;
        let mut draw = || splitmix64(&mut state);
        let (seeds, mults) = (0..num_perm)
            .map(|_| (draw() as u32, draw() as u32 | 1))
            .unzip();
        Self {
            ngram,
            seeds,
            mults,
        }
    }

    /// Permutations per signature.
    pub fn num_perm(&self) -> usize {
        self.seeds.len()
    }

    /// The signature of a document given its normalised word hashes ([`crate::text`]). A
    /// document shorter than `ngram` words is one shingle; an empty one has the all-`u32::MAX`
    /// signature.
    pub fn signature(&self, word_hashes: &[u64], sig: &mut Vec<u32>) {
        sig.clear();
        sig.resize(self.num_perm(), u32::MAX);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { self.fill_avx2(word_hashes, sig) };
            return;
        }
        self.fill(word_hashes, sig);
    }

    /// [`Self::fill`] compiled with AVX2, where the permutation loop runs 4–8 lanes wide.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn fill_avx2(&self, word_hashes: &[u64], sig: &mut [u32]) {
        self.fill(word_hashes, sig);
    }

    #[inline(always)]
    fn fill(&self, word_hashes: &[u64], sig: &mut [u32]) {
        if word_hashes.is_empty() {
            return;
        }
        if word_hashes.len() < self.ngram {
            self.update(sig, hash_words(word_hashes));
            return;
        }
        for window in word_hashes.windows(self.ngram) {
            self.update(sig, hash_words(window));
        }
    }

    /// Folds one shingle into the signature: permutation `i` maps the shingle's low 32 bits
    /// `x` to `fmix32((x ⊕ s_i) · a_i)`, a bijection of the 32-bit values for each `i`
    /// (`a_i` odd); all in 32-bit lanes so that it vectorises.
    #[inline(always)]
    fn update(&self, sig: &mut [u32], shingle: u64) {
        let x = shingle as u32;
        for ((m, &s), &a) in sig.iter_mut().zip(&self.seeds).zip(&self.mults) {
            let v = fmix32((x ^ s).wrapping_mul(a));
            *m = (*m).min(v);
        }
    }
}

/// Fraction of signature positions that agree: the MinHash estimate of Jaccard similarity.
pub fn jaccard_estimate(a: &[u32], b: &[u32]) -> f64 {
    debug_assert_eq!(a.len(), b.len(), "signatures of different lengths");
    let agree = a.iter().zip(b).filter(|(x, y)| x == y).count();
    agree as f64 / a.len().max(1) as f64
}

/// One key per band (the band index is mixed in, so all bands can share one table).
pub fn band_keys(sig: &[u32], bands: usize, out: &mut Vec<u64>) {
    out.clear();
    let rows = sig.len() / bands.max(1);
    for (band, values) in sig.chunks_exact(rows.max(1)).take(bands).enumerate() {
        let mut h = (band as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for &v in values {
            h = (h ^ u64::from(v))
                .wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
                .rotate_left(29);
        }
        out.push(fmix64(h));
    }
}

/// Probability that a pair with Jaccard similarity `s` shares at least one band:
/// `1 − (1 − s^rows)^bands`.
pub fn candidate_probability(s: f64, bands: usize, rows: usize) -> f64 {
    1.0 - (1.0 - s.powi(rows as i32)).powi(bands as i32)
}

/// `(1/bands)^(1/rows)`: roughly where the S-curve is steepest.
pub fn lsh_threshold(bands: usize, rows: usize) -> f64 {
    (1.0 / bands as f64).powf(1.0 / rows as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_sets_agree_everywhere_and_disjoint_nowhere() {
        let hasher = MinHasher::new(64, 1, 7);
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        hasher.signature(&[1, 2, 3, 2], &mut a);
        hasher.signature(&[3, 2, 1], &mut b);
        hasher.signature(&[10, 11, 12], &mut c);
        assert_eq!(
            jaccard_estimate(&a, &b),
            1.0,
            "same set, different order and counts"
        );
        assert!(jaccard_estimate(&a, &c) < 0.1, "disjoint sets");
    }

    #[test]
    fn s_curve_values() {
        // 32 bands of 4 rows: P(0.8) = 1 - (1 - 0.4096)^32.
        let p = candidate_probability(0.8, 32, 4);
        assert!((p - (1.0 - 0.5904f64.powi(32))).abs() < 1e-12);
        assert!((lsh_threshold(32, 4) - 0.4204).abs() < 1e-4);
        assert_eq!(candidate_probability(1.0, 32, 4), 1.0);
        assert_eq!(candidate_probability(0.0, 32, 4), 0.0);
    }

    #[test]
    fn band_keys_differ_by_band_index() {
        let sig = vec![5u32; 8];
        let mut keys = Vec::new();
        band_keys(&sig, 4, &mut keys);
        assert_eq!(keys.len(), 4);
        assert_ne!(
            keys[0], keys[1],
            "equal values in different bands must not collide"
        );
    }
}
