//! Gopher's repetition rules (Table A1): repeated lines and paragraphs, the most frequent
//! word n-grams and repeated word n-grams, as fractions of the document's characters.
//!
//! Counting follows the reference implementation in datatrove's `GopherRepetitionFilter`:
//! a line or paragraph counts as a duplicate from its second occurrence on; the top n-gram
//! covers `count × length` characters (length with the `n − 1` joining spaces); repeated
//! n-grams are counted left to right, and after a repeat the scan jumps past it so that
//! overlapping repeats are not counted twice.

use super::config::{QualityConfig, Rule};
use super::rules::{Failure, Scratch};
use crate::hash::{hash_bytes, words_finish, words_step, IdMap, IdSet, WORDS_START};
use crate::text::{char_len, lines, paragraphs};

pub(super) fn check(
    text: &str,
    config: &QualityConfig,
    scratch: &mut Scratch,
) -> Result<(), Failure> {
    let total = char_len(text).max(1) as f64;
    let paragraph_rules = [Rule::DuplicateParagraphs, Rule::DuplicateParagraphChars];
    if paragraph_rules.iter().any(|&r| config.is_on(r)) {
        let limits = [
            config.max_duplicate_paragraph_fraction,
            config.max_duplicate_paragraph_char_fraction,
        ];
        let units = paragraphs(text);
        duplicate_rules(
            &units,
            "paragraphs",
            paragraph_rules,
            limits,
            total,
            config,
            scratch,
        )?;
    }
    let line_rules = [Rule::DuplicateLines, Rule::DuplicateLineChars];
    if line_rules.iter().any(|&r| config.is_on(r)) {
        let limits = [
            config.max_duplicate_line_fraction,
            config.max_duplicate_line_char_fraction,
        ];
        let units: Vec<&str> = lines(text).collect();
        duplicate_rules(&units, "lines", line_rules, limits, total, config, scratch)?;
    }
    ngram_rules(text, total, config, scratch)
}

/// (repeated items, characters in repeated items), each item counted from its second
/// occurrence on.
/// The two duplicate rules of one kind of unit (`"lines"` or `"paragraphs"`): the fraction of
/// units that repeat an earlier one (`rules[0]`, limit `limits[0]`) and the fraction of the
/// document's `total` characters in such repeats (`rules[1]`, limit `limits[1]`).
fn duplicate_rules(
    units: &[&str],
    name: &str,
    rules: [Rule; 2],
    limits: [f64; 2],
    total: f64,
    config: &QualityConfig,
    scratch: &mut Scratch,
) -> Result<(), Failure> {
    let (dups, dup_chars) = duplicates(units.iter().copied(), &mut scratch.set);
    let fraction = dups as f64 / units.len().max(1) as f64;
    if config.is_on(rules[0]) && fraction > limits[0] {
        return Err(Failure {
            rule: rules[0],
            detail: format!("{fraction:.3} of {name} are repeats > {}", limits[0]),
        });
    }
    let chars = dup_chars as f64 / total;
    if config.is_on(rules[1]) && chars > limits[1] {
        return Err(Failure {
            rule: rules[1],
            detail: format!(
                "{chars:.3} of characters in repeated {name} > {}",
                limits[1]
            ),
        });
    }
    Ok(())
}

fn duplicates<'a>(items: impl Iterator<Item = &'a str>, seen: &mut IdSet<u64>) -> (usize, usize) {
    seen.clear();
    let (mut dups, mut chars) = (0, 0);
    for item in items {
        if !seen.insert(hash_bytes(item.as_bytes())) {
            dups += 1;
            chars += char_len(item);
        }
    }
    (dups, chars)
}

/// The top-n-gram and repeated-n-gram rules, smallest n first. The n-gram hashes are built
/// incrementally (n → n + 1 is one step per position), and two exact shortcuts skip most of the
/// work on ordinary text:
/// - every occurrence of an n-gram contains an occurrence of its (n − 1)-word prefix, so the
///   top n-gram's count is at most the top (n − 1)-gram's; when that count times the longest
///   n-gram cannot exceed the threshold, the rule cannot fail and is not counted;
/// - with no repeated m-gram there is no repeated n-gram for n ≥ m, so the repeated-n-gram
///   fractions are 0.
fn ngram_rules(
    text: &str,
    total: f64,
    config: &QualityConfig,
    scratch: &mut Scratch,
) -> Result<(), Failure> {
    let top_on = config.is_on(Rule::TopNgramChars);
    let dup_on = config.is_on(Rule::DuplicateNgramChars);
    let mut checks: Vec<(usize, f64, Rule)> = Vec::new();
    if top_on {
        checks.extend(
            config
                .top_ngrams
                .iter()
                .map(|&(n, max)| (n, max, Rule::TopNgramChars)),
        );
    }
    if dup_on {
        checks.extend(
            config
                .duplicate_ngrams
                .iter()
                .map(|&(n, max)| (n, max, Rule::DuplicateNgramChars)),
        );
    }
    if checks.is_empty() {
        return Ok(());
    }
    checks.sort_by_key(|&(n, _, rule)| (n, rule != Rule::TopNgramChars));
    let Scratch {
        word_hashes,
        word_lens,
        ngrams,
        set,
        counts,
    } = scratch;
    word_hashes.clear();
    word_lens.clear();
    word_lens.push(0); // prefix sums of word lengths
    let mut chars = 0u32;
    for word in text.split_whitespace() {
        word_hashes.push(hash_bytes(word.as_bytes()));
        chars += char_len(word) as u32;
        word_lens.push(chars);
    }
    let mut states: Vec<u64> = word_hashes
        .iter()
        .map(|&w| words_step(WORDS_START, w))
        .collect();
    let mut states_n = 1;
    let mut max_count = usize::MAX; // bound on the top count of the current n
    let mut repeats_from: Option<usize> = None; // an m with no repeated m-gram
    for (n, max, rule) in checks {
        if n == 0 || word_hashes.len() < n {
            continue;
        }
        while states_n < n {
            for i in 0..word_hashes.len() - states_n {
                states[i] = words_step(states[i], word_hashes[i + states_n]);
            }
            states_n += 1;
            states.truncate(word_hashes.len() + 1 - states_n);
        }
        let span = |i: usize| (word_lens[i + n] - word_lens[i]) as usize;
        let fraction = if rule == Rule::TopNgramChars {
            let longest = (0..states.len())
                .map(|i| span(i) + n - 1)
                .max()
                .unwrap_or(0);
            if max_count.saturating_mul(longest) as f64 / total <= max {
                continue;
            }
            ngrams.clear();
            ngrams.extend(states.iter().map(|&h| words_finish(h, n)));
            let (count, first) = top_ngram(ngrams, counts, |i| span(i) + n - 1);
            max_count = count;
            if count <= 1 {
                repeats_from.get_or_insert(n);
            }
            (count * (span(first) + n - 1)) as f64 / total
        } else {
            if repeats_from.is_some_and(|m| m <= n) {
                continue;
            }
            ngrams.clear();
            ngrams.extend(states.iter().map(|&h| words_finish(h, n)));
            let repeated = repeated_ngram_chars(n, ngrams, set, span);
            if repeated == 0 {
                repeats_from.get_or_insert(n);
            }
            repeated as f64 / total
        };
        if fraction > max {
            let detail = if rule == Rule::TopNgramChars {
                format!("most frequent {n}-gram covers {fraction:.3} of characters > {max}")
            } else {
                format!("repeated {n}-grams cover {fraction:.3} of characters > {max}")
            };
            return Err(Failure { rule, detail });
        }
    }
    Ok(())
}

/// `(count, first position)` of the most frequent n-gram; ties go to the longest (`len(i)`),
/// then the earliest.
fn top_ngram(
    ngrams: &[u64],
    counts: &mut IdMap<u64, (u32, u32)>,
    len: impl Fn(usize) -> usize,
) -> (usize, usize) {
    counts.clear();
    for (i, &h) in ngrams.iter().enumerate() {
        counts.entry(h).or_insert((0, i as u32)).0 += 1;
    }
    counts
        .values()
        .map(|&(count, first)| {
            (
                count as usize,
                len(first as usize),
                std::cmp::Reverse(first),
            )
        })
        .max()
        .map_or((0, 0), |(count, _, first)| (count, first.0 as usize))
}

/// Characters (without spaces, `len(i)`) in n-grams that repeat an earlier one, scanning left
/// to right and jumping past each repeat (datatrove's `find_all_duplicate`).
fn repeated_ngram_chars(
    n: usize,
    ngrams: &[u64],
    seen: &mut IdSet<u64>,
    len: impl Fn(usize) -> usize,
) -> usize {
    seen.clear();
    let mut repeated = 0;
    let mut i = 0;
    while i < ngrams.len() {
        if seen.insert(ngrams[i]) {
            i += 1;
        } else {
            repeated += len(i);
            i += n;
        }
    }
    repeated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ngrams(text: &str, n: usize) -> (Vec<u64>, Vec<usize>) {
        let words: Vec<&str> = text.split_whitespace().collect();
        let hashes: Vec<u64> = words.iter().map(|w| hash_bytes(w.as_bytes())).collect();
        let lens = words
            .windows(n)
            .map(|w| w.iter().map(|x| x.len()).sum())
            .collect();
        (
            hashes.windows(n).map(crate::hash::hash_words).collect(),
            lens,
        )
    }

    #[test]
    fn top_ngram_counts_and_first_position() {
        // "a b" occurs 3 times; "b a" twice.
        let (hashes, _) = ngrams("a b a b a b c", 2);
        let mut counts = IdMap::default();
        assert_eq!(top_ngram(&hashes, &mut counts, |_| 3), (3, 0));
    }

    #[test]
    fn repeated_ngrams_jump_past_repeats() {
        // 2-grams ab bc ca ab* (jump 2) ca* (jump 2): repeats "ab" and "ca", 2 chars each.
        let (hashes, lens) = ngrams("a b c a b c a b", 2);
        let mut seen = IdSet::default();
        assert_eq!(repeated_ngram_chars(2, &hashes, &mut seen, |i| lens[i]), 4);
        let (hashes, lens) = ngrams("x y z", 2);
        assert_eq!(repeated_ngram_chars(2, &hashes, &mut seen, |i| lens[i]), 0);
    }
}
