//! Exact and near-duplicate indexes. Both keep the first occurrence: a document is checked
//! against the documents kept before it and, if kept, added.

use crate::hash::IdMap;

/// Fraction of positions where `sig` agrees with a stored 16-bit signature.
fn agreement(sig: &[u32], stored: &[u16]) -> f64 {
    let agree = sig
        .iter()
        .zip(stored)
        .filter(|(&a, &b)| a as u16 == b)
        .count();
    agree as f64 / sig.len().max(1) as f64
}

/// Exact duplicates by the 128-bit hash of the normalised word sequence.
#[derive(Debug, Default)]
pub struct ExactIndex {
    seen: IdMap<u128, u64>,
}

impl ExactIndex {
    /// The id of the kept document with this key, or `None` after recording `id` as its owner.
    pub fn check_insert(&mut self, key: u128, id: u64) -> Option<u64> {
        match self.seen.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(id);
                None
            }
        }
    }

    /// Distinct documents recorded.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Nothing recorded.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Near duplicates: LSH buckets over MinHash signatures; candidates are confirmed when their
/// signatures agree on at least `threshold` of the positions.
///
/// Kept signatures are stored as the low 16 bits of each value (b-bit minwise hashing, Li &
/// König 2010): two different minima then agree by chance with probability 2^-16, which biases
/// the estimate by at most 1.5·10^-5. Memory per kept document: `2 · num_perm` bytes of
/// signature and one bucket entry per band (about 21 bytes each in the table): ≈ 1.2 KB at the
/// defaults (256 permutations, 32 bands).
#[derive(Debug)]
pub struct NearIndex {
    num_perm: usize,
    threshold: f64,
    max_bucket: usize,
    /// Low 16 bits of the signatures of kept documents, `num_perm` each, in insertion order.
    signatures: Vec<u16>,
    /// Band key → first member (insertion index).
    first: IdMap<u64, u32>,
    /// Band key → further members, up to `max_bucket − 1`.
    more: IdMap<u64, Vec<u32>>,
    candidates: Vec<u32>,
}

/// A near-duplicate match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearMatch {
    /// Insertion index of the kept document matched.
    pub index: u32,
    /// Estimated Jaccard similarity.
    pub similarity: f64,
}

impl NearIndex {
    /// An empty index. `max_bucket` bounds the members of one band bucket (so that boilerplate
    /// shared by thousands of documents does not make every lookup quadratic).
    pub fn new(num_perm: usize, threshold: f64, max_bucket: usize) -> Self {
        Self {
            num_perm,
            threshold,
            max_bucket: max_bucket.max(1),
            signatures: Vec::new(),
            first: IdMap::default(),
            more: IdMap::default(),
            candidates: Vec::new(),
        }
    }

    /// Documents inserted.
    pub fn len(&self) -> usize {
        self.signatures.len() / self.num_perm
    }

    /// Nothing inserted.
    pub fn is_empty(&self) -> bool {
        self.signatures.is_empty()
    }

    fn signature(&self, index: u32) -> &[u16] {
        let start = index as usize * self.num_perm;
        &self.signatures[start..start + self.num_perm]
    }

    /// The most similar kept document sharing a band with `sig` whose estimated similarity is
    /// at least the threshold (ties: the earliest).
    pub fn find(&mut self, sig: &[u32], band_keys: &[u64]) -> Option<NearMatch> {
        self.candidates.clear();
        for key in band_keys {
            if let Some(&first) = self.first.get(key) {
                self.candidates.push(first);
                if let Some(more) = self.more.get(key) {
                    self.candidates.extend_from_slice(more);
                }
            }
        }
        self.candidates.sort_unstable();
        self.candidates.dedup();
        let mut best: Option<NearMatch> = None;
        for &index in &self.candidates {
            let similarity = agreement(sig, self.signature(index));
            if similarity >= self.threshold && best.is_none_or(|b| similarity > b.similarity) {
                best = Some(NearMatch { index, similarity });
            }
        }
        best
    }

    /// Adds a kept document; returns its insertion index.
    pub fn insert(&mut self, sig: &[u32], band_keys: &[u64]) -> u32 {
        debug_assert_eq!(sig.len(), self.num_perm, "signature length");
        let index = u32::try_from(self.len()).expect("fewer than 2^32 kept documents");
        self.signatures.extend(sig.iter().map(|&v| v as u16));
        for &key in band_keys {
            match self.first.entry(key) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(index);
                }
                std::collections::hash_map::Entry::Occupied(_) => {
                    let more = self.more.entry(key).or_default();
                    if more.len() + 1 < self.max_bucket {
                        more.push(index);
                    }
                }
            }
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::minhash::{band_keys, MinHasher};

    #[test]
    fn exact_index_keeps_first_owner() {
        let mut index = ExactIndex::default();
        assert_eq!(index.check_insert(7, 0), None);
        assert_eq!(index.check_insert(8, 1), None);
        assert_eq!(index.check_insert(7, 2), Some(0));
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn near_index_finds_edited_copy_not_unrelated() {
        let hasher = MinHasher::new(128, 1, 1);
        let mut index = NearIndex::new(128, 0.8, 8);
        let (mut sig, mut keys) = (Vec::new(), Vec::new());
        let base: Vec<u64> = (0..100).collect();
        hasher.signature(&base, &mut sig);
        band_keys(&sig, 32, &mut keys);
        assert_eq!(index.find(&sig, &keys), None);
        assert_eq!(index.insert(&sig, &keys), 0);
        // 95 of 100 shared, 5 new: J = 95/105 ≈ 0.905.
        let edited: Vec<u64> = (5..105).collect();
        hasher.signature(&edited, &mut sig);
        band_keys(&sig, 32, &mut keys);
        let found = index
            .find(&sig, &keys)
            .expect("J ≈ 0.9 copy is a near duplicate");
        assert_eq!(found.index, 0);
        let unrelated: Vec<u64> = (1000..1100).collect();
        hasher.signature(&unrelated, &mut sig);
        band_keys(&sig, 32, &mut keys);
        assert_eq!(index.find(&sig, &keys), None);
    }
}
