//! Test-set decontamination: a training document that shares any word n-gram with the
//! evaluation set is dropped.
//!
//! The default n = 13 is GPT-3's (Brown et al. 2020, appendix C). Words are normalised words
//! ([`crate::text`]: lowercase, punctuation and whitespace ignored). Evaluation documents shorter
//! than n words cannot be matched and are counted as `too_short`.

use crate::hash::{hash_words, IdMap};
use crate::text::normalized_word_hashes;

/// The word n-grams of an evaluation set.
#[derive(Debug, Clone)]
pub struct EvalIndex {
    n: usize,
    /// n-gram hash → index (into `sources`) of the first evaluation document that has it.
    ngrams: IdMap<u64, u32>,
    sources: Vec<String>,
    too_short: usize,
    words: Vec<u64>,
}

/// A training document's overlap with the evaluation set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contamination {
    /// Index of the first shared n-gram's first normalised word in the training document.
    pub first_word: usize,
    /// The evaluation document holding that n-gram ([`EvalIndex::source`]).
    pub eval_doc: u32,
    /// Positions in the training document that start a shared n-gram.
    pub ngrams: usize,
}

impl EvalIndex {
    /// An empty index of word `n`-grams.
    ///
    /// # Panics
    /// If `n == 0` (rejected earlier by config validation).
    pub fn new(n: usize) -> Self {
        assert!(n > 0, "decontamination n-gram length must be positive");
        Self {
            n,
            ngrams: IdMap::default(),
            sources: Vec::new(),
            too_short: 0,
            words: Vec::new(),
        }
    }

    /// Adds one evaluation document.
    pub fn add(&mut self, source: String, text: &str) {
        let doc = u32::try_from(self.sources.len()).unwrap_or(u32::MAX);
        self.sources.push(source);
        normalized_word_hashes(text, &mut self.words);
        if self.words.len() < self.n {
            self.too_short += 1;
            return;
        }
        for window in self.words.windows(self.n) {
            self.ngrams.entry(hash_words(window)).or_insert(doc);
        }
    }

    /// The n-gram length.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Evaluation documents added.
    pub fn documents(&self) -> usize {
        self.sources.len()
    }

    /// Evaluation documents shorter than n words (they cannot be matched).
    pub fn too_short(&self) -> usize {
        self.too_short
    }

    /// Distinct n-grams.
    pub fn distinct_ngrams(&self) -> usize {
        self.ngrams.len()
    }

    /// `file` or `file:line` of evaluation document `doc`.
    pub fn source(&self, doc: u32) -> &str {
        self.sources.get(doc as usize).map_or("?", String::as_str)
    }

    /// The overlap of a training document (its normalised word hashes), if any.
    pub fn check(&self, word_hashes: &[u64]) -> Option<Contamination> {
        if self.ngrams.is_empty() {
            return None;
        }
        let mut hit: Option<Contamination> = None;
        for (i, window) in word_hashes.windows(self.n).enumerate() {
            if let Some(&eval_doc) = self.ngrams.get(&hash_words(window)) {
                hit.get_or_insert(Contamination {
                    first_word: i,
                    eval_doc,
                    ngrams: 0,
                })
                .ngrams += 1;
            }
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<u64> {
        let mut out = Vec::new();
        normalized_word_hashes(text, &mut out);
        out
    }

    #[test]
    fn shared_ngram_is_found_ignoring_case_and_punctuation() {
        let mut index = EvalIndex::new(3);
        index.add("eval.jsonl:1".into(), "The quick brown fox jumps");
        index.add("eval.jsonl:2".into(), "too short");
        assert_eq!(
            (
                index.documents(),
                index.too_short(),
                index.distinct_ngrams()
            ),
            (2, 1, 3)
        );
        let hit = index
            .check(&words("Well: QUICK, brown fox!"))
            .expect("shares 'quick brown fox'");
        assert_eq!((hit.first_word, hit.eval_doc, hit.ngrams), (1, 0, 1));
        assert_eq!(index.source(hit.eval_doc), "eval.jsonl:1");
        assert_eq!(index.check(&words("quick brown dog fox jumps")), None);
        assert_eq!(index.check(&words("too short")), None);
    }
}
