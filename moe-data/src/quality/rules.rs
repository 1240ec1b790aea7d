//! The per-document statistics rules and the entry point [`check`].

use super::config::{QualityConfig, Rule};
use super::repetition;
use crate::hash::{IdMap, IdSet};
use crate::text::{char_len, lines};

/// Why a document failed: the first rule it broke and by how much.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The rule.
    pub rule: Rule,
    /// The measured value against the threshold, e.g. `12 words < min_words 50`.
    pub detail: String,
}

/// Reusable buffers for [`check`] (one per worker thread).
#[derive(Debug, Default)]
pub struct Scratch {
    pub(super) word_hashes: Vec<u64>,
    pub(super) word_lens: Vec<u32>,
    pub(super) ngrams: Vec<u64>,
    pub(super) set: IdSet<u64>,
    pub(super) counts: IdMap<u64, (u32, u32)>,
}

/// Bullet characters a line may start with (after leading whitespace).
const BULLETS: [char; 11] = ['•', '‣', '◦', '▪', '●', '○', '■', '-', '*', '–', '·'];

/// Runs the enabled rules in [`Rule::ALL`] order; the first one broken is the failure.
pub fn check(text: &str, config: &QualityConfig, scratch: &mut Scratch) -> Result<(), Failure> {
    if !config.enabled {
        return Ok(());
    }
    statistics_rules(text, config)?;
    repetition::check(text, config, scratch)
}

fn fail(rule: Rule, detail: String) -> Result<(), Failure> {
    Err(Failure { rule, detail })
}

/// Word, symbol, line and stop-word statistics of one document.
#[derive(Debug, Default)]
struct Stats {
    /// Whitespace tokens.
    tokens: usize,
    /// Tokens with an alphanumeric character: the "words" of the word-count rules.
    words: usize,
    /// Characters in those words.
    word_chars: usize,
    /// Tokens with an alphabetic character.
    alpha_tokens: usize,
    stop_words: usize,
}

fn stats(text: &str, config: &QualityConfig) -> Stats {
    let count_stop_words = config.is_on(Rule::StopWords);
    let mut s = Stats::default();
    for token in text.split_whitespace() {
        s.tokens += 1;
        let mut alnum = false;
        let mut alpha = false;
        for c in token.chars() {
            if c.is_alphanumeric() {
                alnum = true;
                if c.is_alphabetic() {
                    alpha = true;
                    break;
                }
            }
        }
        if alnum {
            s.words += 1;
            s.word_chars += char_len(token);
        }
        s.alpha_tokens += usize::from(alpha);
        if count_stop_words && alpha {
            let bare = token.trim_matches(|c: char| !c.is_alphanumeric());
            s.stop_words += usize::from(
                config
                    .stop_words
                    .iter()
                    .any(|w| w.len() == bare.len() && w.eq_ignore_ascii_case(bare)),
            );
        }
    }
    s
}

fn statistics_rules(text: &str, config: &QualityConfig) -> Result<(), Failure> {
    let s = stats(text, config);
    if config.is_on(Rule::WordCount) && !(config.min_words..=config.max_words).contains(&s.words) {
        return fail(
            Rule::WordCount,
            format!(
                "{} words outside [min_words {}, max_words {}]",
                s.words, config.min_words, config.max_words
            ),
        );
    }
    if config.is_on(Rule::MeanWordLength) {
        let mean = s.word_chars as f64 / s.words.max(1) as f64;
        if !(config.min_mean_word_length..=config.max_mean_word_length).contains(&mean) {
            return fail(
                Rule::MeanWordLength,
                format!(
                    "mean word length {mean:.2} outside [{}, {}]",
                    config.min_mean_word_length, config.max_mean_word_length
                ),
            );
        }
    }
    let tokens = s.tokens.max(1) as f64;
    if config.is_on(Rule::SymbolWordRatio) {
        let hashes = text.bytes().filter(|&b| b == b'#').count() as f64 / tokens;
        let ellipses = (text.matches("...").count() + text.matches('…').count()) as f64 / tokens;
        let max = config.max_symbol_word_ratio;
        if hashes > max || ellipses > max {
            return fail(
                Rule::SymbolWordRatio,
                format!("'#' per word {hashes:.3}, ellipses per word {ellipses:.3}; max {max}"),
            );
        }
    }
    line_rules(text, config)?;
    if config.is_on(Rule::AlphaWords) {
        let fraction = s.alpha_tokens as f64 / tokens;
        if fraction < config.min_alpha_word_fraction {
            return fail(
                Rule::AlphaWords,
                format!(
                    "{fraction:.3} of words have a letter < {}",
                    config.min_alpha_word_fraction
                ),
            );
        }
    }
    if config.is_on(Rule::StopWords) && s.stop_words < config.min_stop_words {
        return fail(
            Rule::StopWords,
            format!("{} stop words < {}", s.stop_words, config.min_stop_words),
        );
    }
    Ok(())
}

fn line_rules(text: &str, config: &QualityConfig) -> Result<(), Failure> {
    let bullets_on = config.is_on(Rule::BulletLines);
    let ellipsis_on = config.is_on(Rule::EllipsisLines);
    if !bullets_on && !ellipsis_on {
        return Ok(());
    }
    let (mut n, mut bullets, mut ellipses) = (0usize, 0usize, 0usize);
    for line in lines(text) {
        n += 1;
        bullets += usize::from(line.starts_with(BULLETS));
        ellipses += usize::from(line.ends_with("...") || line.ends_with('…'));
    }
    let n = n.max(1) as f64;
    let (bullets, ellipses) = (bullets as f64 / n, ellipses as f64 / n);
    if bullets_on && bullets > config.max_bullet_line_fraction {
        return fail(
            Rule::BulletLines,
            format!(
                "{bullets:.3} of lines start with a bullet > {}",
                config.max_bullet_line_fraction
            ),
        );
    }
    if ellipsis_on && ellipses > config.max_ellipsis_line_fraction {
        return fail(
            Rule::EllipsisLines,
            format!(
                "{ellipses:.3} of lines end with an ellipsis > {}",
                config.max_ellipsis_line_fraction
            ),
        );
    }
    Ok(())
}
