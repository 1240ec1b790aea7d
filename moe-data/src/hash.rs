//! Fast non-cryptographic 64-bit hashing for words, n-grams and documents.
//!
//! Words are hashed once; n-grams, shingles and whole documents are hashed from the word
//! hashes. Every output passes through the MurmurHash3 64-bit finaliser (`fmix64`), so the
//! values are well mixed and tables keyed by them can use [`IdHashBuilder`].

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

const K1: u64 = 0x9E37_79B9_7F4A_7C15; // 2^64 / golden ratio (odd)
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F; // xxHash64 prime 2
const SEED: u64 = 0x243F_6A88_85A3_08D3; // pi

/// MurmurHash3's 64-bit finaliser: a bijection that spreads every input bit over the output.
#[inline]
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Hash of a byte string, 8 bytes per step.
#[inline]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = SEED ^ (bytes.len() as u64).wrapping_mul(K2);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let v = u64::from_le_bytes(chunk.try_into().expect("chunks_exact(8) yields 8 bytes"));
        h = (h ^ v).wrapping_mul(K1).rotate_left(31);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(buf))
            .wrapping_mul(K2)
            .rotate_left(31);
    }
    fmix64(h)
}

/// Hash of a sequence of (already mixed) word hashes: an n-gram, a shingle, a phrase.
/// Equal to `words_finish(fold of words_step from WORDS_START, words.len())`.
#[inline]
pub fn hash_words(words: &[u64]) -> u64 {
    let mut h = WORDS_START;
    for &w in words {
        h = words_step(h, w);
    }
    words_finish(h, words.len())
}

/// Initial state of an incremental [`hash_words`].
pub const WORDS_START: u64 = SEED;

/// Appends one word hash to an incremental [`hash_words`] state.
#[inline(always)]
pub fn words_step(state: u64, word: u64) -> u64 {
    (state ^ word).wrapping_mul(K1).rotate_left(27)
}

/// The [`hash_words`] value of a state that has taken `len` words.
#[inline(always)]
pub fn words_finish(state: u64, len: usize) -> u64 {
    fmix64(state ^ (len as u64).wrapping_mul(K2))
}

/// 128-bit hash of a whole word sequence (two independent 64-bit lanes), for exact
/// deduplication where a collision would silently drop a document.
pub fn hash_words_128(words: &[u64]) -> u128 {
    let (mut a, mut b) = (SEED, K2);
    for &w in words {
        a = (a ^ w).wrapping_mul(K1).rotate_left(27);
        b = (b ^ w.rotate_left(17)).wrapping_mul(K2).rotate_left(33);
    }
    let n = words.len() as u64;
    (u128::from(fmix64(a ^ n)) << 64) | u128::from(fmix64(b ^ n.wrapping_mul(K1)))
}

/// A [`Hasher`] that passes an already well-mixed `u64` key through unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached for non-u64 keys; fold them in properly rather than silently.
        self.0 = hash_bytes(bytes) ^ self.0.rotate_left(5);
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }

    fn write_u128(&mut self, v: u128) {
        self.0 = (v as u64) ^ ((v >> 64) as u64);
    }
}

/// Builds [`IdHasher`]s.
pub type IdHashBuilder = BuildHasherDefault<IdHasher>;
/// A map keyed by mixed hashes.
pub type IdMap<K, V> = HashMap<K, V, IdHashBuilder>;
/// A set of mixed hashes.
pub type IdSet<K> = HashSet<K, IdHashBuilder>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_bytes_separates_lengths_and_contents() {
        let cases: [&[u8]; 6] = [b"", b"a", b"a\0", b"abcdefgh", b"abcdefgh\0", b"abcdefgi"];
        let hashes: Vec<u64> = cases.iter().map(|c| hash_bytes(c)).collect();
        for i in 0..hashes.len() {
            for j in i + 1..hashes.len() {
                assert_ne!(hashes[i], hashes[j], "{:?} vs {:?}", cases[i], cases[j]);
            }
        }
    }

    #[test]
    fn incremental_words_hash_matches() {
        let words = [3, 1, 4, 1, 5];
        let state = words.iter().fold(WORDS_START, |h, &w| words_step(h, w));
        assert_eq!(words_finish(state, words.len()), hash_words(&words));
    }

    #[test]
    fn hash_words_depends_on_order() {
        assert_ne!(hash_words(&[1, 2]), hash_words(&[2, 1]));
        assert_ne!(hash_words(&[1]), hash_words(&[1, 0]));
        assert_ne!(hash_words_128(&[1, 2]), hash_words_128(&[2, 1]));
    }

    #[test]
    fn word_hash_bits_are_balanced() {
        // Each output bit should be set for about half of 4096 distinct words.
        let mut ones = [0u32; 64];
        for i in 0..4096u32 {
            let h = hash_bytes(format!("w{i}").as_bytes());
            for (bit, count) in ones.iter_mut().enumerate() {
                *count += ((h >> bit) & 1) as u32;
            }
        }
        for (bit, &count) in ones.iter().enumerate() {
            assert!(
                (1848..=2248).contains(&count),
                "bit {bit} set {count}/4096 times"
            );
        }
    }
}
