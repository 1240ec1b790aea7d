//! Synthetic corpora for tests and benchmarks: a seeded RNG, a Zipf-distributed vocabulary,
//! English-like documents that pass the Gopher rules, and edited copies at a chosen
//! similarity. Not used by the pipeline itself.

mod corpus;

use std::collections::HashSet;

pub use corpus::{html_page, write_mixed_corpus, MixedCorpus, Planted};

use crate::hash::hash_words;
use crate::text::normalized_word_hashes;

/// SplitMix64: small, fast, seeded.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_5EED)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        crate::hash::fmix64(self.0)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
}

/// Gopher's stop words, mixed into generated sentences so documents pass the stop-word rule.
const STOP_WORDS: [&str; 8] = ["the", "be", "to", "of", "and", "that", "have", "with"];
const SYLLABLES: [&str; 24] = [
    "ka", "to", "ri", "mon", "sel", "va", "qu", "en", "lo", "tra", "di", "pe", "ar", "nu", "bel",
    "cho", "im", "sa", "ver", "go", "li", "tem", "os", "pra",
];

/// A vocabulary sampled with Zipf's law (weight of rank r ∝ 1/(r + 1)).
#[derive(Debug, Clone)]
pub struct Vocab {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Vocab {
    /// `size` distinct pseudo-words of 2–4 syllables.
    pub fn new(size: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut seen = HashSet::new();
        let mut words = Vec::with_capacity(size);
        while words.len() < size {
            let n = rng.range(2, 4);
            let word: String = (0..n)
                .map(|_| SYLLABLES[rng.below(SYLLABLES.len())])
                .collect();
            if seen.insert(word.clone()) {
                words.push(word);
            }
        }
        let mut total = 0.0;
        let cumulative = (0..size)
            .map(|r| {
                total += 1.0 / (r as f64 + 1.0);
                total
            })
            .collect();
        Self { words, cumulative }
    }

    /// A word drawn by its Zipf weight.
    pub fn sample(&self, rng: &mut Rng) -> &str {
        let total = *self.cumulative.last().expect("vocabulary is not empty");
        let x = rng.unit() * total;
        let i = self.cumulative.partition_point(|&c| c < x);
        &self.words[i.min(self.words.len() - 1)]
    }

    /// A sentence of `n` words: capitalised, stop words mixed in, ending with a full stop.
    pub fn sentence(&self, rng: &mut Rng, n: usize) -> String {
        let mut s = String::with_capacity(n * 7);
        for i in 0..n {
            if i > 0 {
                s.push(if rng.chance(0.06) { ',' } else { ' ' });
                if s.ends_with(',') {
                    s.push(' ');
                }
            }
            let word = if rng.chance(0.25) {
                STOP_WORDS[rng.below(STOP_WORDS.len())]
            } else {
                self.sample(rng)
            };
            if i == 0 {
                let mut chars = word.chars();
                if let Some(c) = chars.next() {
                    s.extend(c.to_uppercase());
                    s.push_str(chars.as_str());
                }
            } else {
                s.push_str(word);
            }
        }
        s.push('.');
        s
    }

    /// A document of about `words` words in paragraphs of 3–6 sentences.
    pub fn document(&self, rng: &mut Rng, words: usize) -> String {
        let mut paragraphs = Vec::new();
        let mut left = words;
        while left > 0 {
            let mut sentences = Vec::new();
            for _ in 0..rng.range(3, 6) {
                if left == 0 {
                    break;
                }
                let n = rng.range(8, 24).min(left);
                left -= n;
                sentences.push(self.sentence(rng, n));
            }
            paragraphs.push(sentences.join(" "));
        }
        paragraphs.join("\n\n")
    }
}

/// `text` with `count` whitespace-separated words (chosen at random, at distinct positions)
/// replaced by fresh words from `vocab` that never occur in `text`.
pub fn replace_words(rng: &mut Rng, text: &str, count: usize, vocab: &Vocab) -> String {
    let mut words: Vec<String> = text.split(' ').map(String::from).collect();
    let n = words.len();
    let mut chosen = HashSet::new();
    while chosen.len() < count.min(n) {
        chosen.insert(rng.below(n));
    }
    // Sorted, so that the edit does not depend on the set's (per-process random) order.
    let mut chosen: Vec<usize> = chosen.into_iter().collect();
    chosen.sort_unstable();
    for i in chosen {
        let fresh = format!("{}x{}", vocab.sample(rng), rng.below(1_000_000));
        let tail: String = words[i].chars().filter(|c| !c.is_alphanumeric()).collect();
        words[i] = fresh + &tail;
    }
    words.join(" ")
}

/// The set of hashed word `n`-gram shingles of `text` (normalised words), as MinHash sees it.
pub fn shingles(text: &str, n: usize) -> HashSet<u64> {
    let mut words = Vec::new();
    normalized_word_hashes(text, &mut words);
    if words.len() < n {
        return std::iter::once(hash_words(&words)).collect();
    }
    words.windows(n).map(hash_words).collect()
}

/// Exact Jaccard similarity of two sets.
pub fn jaccard(a: &HashSet<u64>, b: &HashSet<u64>) -> f64 {
    let inter = a.intersection(b).count();
    let union = a.len() + b.len() - inter;
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}
