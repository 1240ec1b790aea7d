//! The quality rules' names, thresholds and defaults.

use serde::{Deserialize, Serialize};

/// A quality rule; its `name` is the key under `quality.` in the report and the value to put
/// in `quality.disable` to switch it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Words (whitespace tokens with an alphanumeric character) within `[min_words, max_words]`.
    WordCount,
    /// Mean length of those words within `[min_mean_word_length, max_mean_word_length]`.
    MeanWordLength,
    /// `#` per word and `...`/`…` per word each at most `max_symbol_word_ratio`.
    SymbolWordRatio,
    /// Fraction of non-blank lines starting with a bullet at most `max_bullet_line_fraction`.
    BulletLines,
    /// Fraction of non-blank lines ending with `...`/`…` at most `max_ellipsis_line_fraction`.
    EllipsisLines,
    /// Fraction of words with an alphabetic character at least `min_alpha_word_fraction`.
    AlphaWords,
    /// At least `min_stop_words` occurrences of `stop_words`.
    StopWords,
    /// Fraction of lines that repeat an earlier line at most `max_duplicate_line_fraction`.
    DuplicateLines,
    /// Fraction of paragraphs that repeat an earlier one at most `max_duplicate_paragraph_fraction`.
    DuplicateParagraphs,
    /// Characters in repeated lines over all characters at most `max_duplicate_line_char_fraction`.
    DuplicateLineChars,
    /// Characters in repeated paragraphs over all at most `max_duplicate_paragraph_char_fraction`.
    DuplicateParagraphChars,
    /// Characters covered by the most frequent word n-gram, for each `(n, max)` in `top_ngrams`.
    TopNgramChars,
    /// Characters in repeated word n-grams, for each `(n, max)` in `duplicate_ngrams`.
    DuplicateNgramChars,
}

impl Rule {
    /// Every rule, in the order they are checked (cheap statistics first).
    pub const ALL: [Rule; 13] = [
        Rule::WordCount,
        Rule::MeanWordLength,
        Rule::SymbolWordRatio,
        Rule::BulletLines,
        Rule::EllipsisLines,
        Rule::AlphaWords,
        Rule::StopWords,
        Rule::DuplicateParagraphs,
        Rule::DuplicateParagraphChars,
        Rule::DuplicateLines,
        Rule::DuplicateLineChars,
        Rule::TopNgramChars,
        Rule::DuplicateNgramChars,
    ];

    /// The snake_case name used in configs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Rule::WordCount => "word_count",
            Rule::MeanWordLength => "mean_word_length",
            Rule::SymbolWordRatio => "symbol_word_ratio",
            Rule::BulletLines => "bullet_lines",
            Rule::EllipsisLines => "ellipsis_lines",
            Rule::AlphaWords => "alpha_words",
            Rule::StopWords => "stop_words",
            Rule::DuplicateLines => "duplicate_lines",
            Rule::DuplicateParagraphs => "duplicate_paragraphs",
            Rule::DuplicateLineChars => "duplicate_line_chars",
            Rule::DuplicateParagraphChars => "duplicate_paragraph_chars",
            Rule::TopNgramChars => "top_ngram_chars",
            Rule::DuplicateNgramChars => "duplicate_ngram_chars",
        }
    }
}

/// Thresholds of the quality rules. Every default is Gopher's (Rae et al. 2021, appendix
/// A1.1 and Table A1); `[quality]` in `prepare.toml`, unknown keys rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityConfig {
    /// Run the rules at all. Default `true`.
    pub enabled: bool,
    /// Rules switched off, by name (e.g. `["stop_words"]`). Default none.
    pub disable: Vec<Rule>,
    /// Default 50 (Gopher).
    pub min_words: usize,
    /// Default 100,000 (Gopher).
    pub max_words: usize,
    /// Default 3 characters (Gopher).
    pub min_mean_word_length: f64,
    /// Default 10 characters (Gopher).
    pub max_mean_word_length: f64,
    /// Default 0.1, for `#` and for ellipses separately (Gopher).
    pub max_symbol_word_ratio: f64,
    /// Default 0.9 (Gopher: "more than 90 % of lines starting with a bullet point").
    pub max_bullet_line_fraction: f64,
    /// Default 0.3 (Gopher: "more than 30 % ending with an ellipsis").
    pub max_ellipsis_line_fraction: f64,
    /// Default 0.8 (Gopher: "80 % of words in a document contain at least one alphabetic character").
    pub min_alpha_word_fraction: f64,
    /// Default 2 (Gopher's stop-word filter).
    pub min_stop_words: usize,
    /// Default the, be, to, of, and, that, have, with (Gopher); compared case-insensitively
    /// after trimming punctuation.
    pub stop_words: Vec<String>,
    /// Default 0.30 (Gopher Table A1).
    pub max_duplicate_line_fraction: f64,
    /// Default 0.30 (Gopher Table A1).
    pub max_duplicate_paragraph_fraction: f64,
    /// Default 0.20 (Gopher Table A1).
    pub max_duplicate_line_char_fraction: f64,
    /// Default 0.20 (Gopher Table A1).
    pub max_duplicate_paragraph_char_fraction: f64,
    /// `(n, max fraction)`; default `[[2, 0.20], [3, 0.18], [4, 0.16]]` (Gopher Table A1).
    pub top_ngrams: Vec<(usize, f64)>,
    /// `(n, max fraction)`; default 5..10 with 0.15, 0.14, …, 0.10 (Gopher Table A1).
    pub duplicate_ngrams: Vec<(usize, f64)>,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            disable: Vec::new(),
            min_words: 50,
            max_words: 100_000,
            min_mean_word_length: 3.0,
            max_mean_word_length: 10.0,
            max_symbol_word_ratio: 0.1,
            max_bullet_line_fraction: 0.9,
            max_ellipsis_line_fraction: 0.3,
            min_alpha_word_fraction: 0.8,
            min_stop_words: 2,
            stop_words: ["the", "be", "to", "of", "and", "that", "have", "with"]
                .map(String::from)
                .to_vec(),
            max_duplicate_line_fraction: 0.30,
            max_duplicate_paragraph_fraction: 0.30,
            max_duplicate_line_char_fraction: 0.20,
            max_duplicate_paragraph_char_fraction: 0.20,
            top_ngrams: vec![(2, 0.20), (3, 0.18), (4, 0.16)],
            duplicate_ngrams: vec![
                (5, 0.15),
                (6, 0.14),
                (7, 0.13),
                (8, 0.12),
                (9, 0.11),
                (10, 0.10),
            ],
        }
    }
}

impl QualityConfig {
    /// Whether `rule` runs.
    pub fn is_on(&self, rule: Rule) -> bool {
        self.enabled && !self.disable.contains(&rule)
    }

    /// Every inconsistent value, each named (`quality.<key>: …`).
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let fractions = [
            ("max_bullet_line_fraction", self.max_bullet_line_fraction),
            (
                "max_ellipsis_line_fraction",
                self.max_ellipsis_line_fraction,
            ),
            ("min_alpha_word_fraction", self.min_alpha_word_fraction),
            (
                "max_duplicate_line_fraction",
                self.max_duplicate_line_fraction,
            ),
            (
                "max_duplicate_paragraph_fraction",
                self.max_duplicate_paragraph_fraction,
            ),
            (
                "max_duplicate_line_char_fraction",
                self.max_duplicate_line_char_fraction,
            ),
            (
                "max_duplicate_paragraph_char_fraction",
                self.max_duplicate_paragraph_char_fraction,
            ),
        ];
        for (key, value) in fractions {
            if !(0.0..=1.0).contains(&value) {
                errors.push(format!("quality.{key} = {value} must be within [0, 1]"));
            }
        }
        if self.min_words > self.max_words {
            errors.push(format!(
                "quality.min_words = {} exceeds max_words = {}",
                self.min_words, self.max_words
            ));
        }
        if self.min_mean_word_length.is_nan()
            || self.max_mean_word_length.is_nan()
            || self.min_mean_word_length > self.max_mean_word_length
        {
            errors.push(format!(
                "quality.min_mean_word_length = {} exceeds max_mean_word_length = {}",
                self.min_mean_word_length, self.max_mean_word_length
            ));
        }
        if self.max_symbol_word_ratio.is_nan() || self.max_symbol_word_ratio < 0.0 {
            errors.push(format!(
                "quality.max_symbol_word_ratio = {} must be >= 0",
                self.max_symbol_word_ratio
            ));
        }
        for (key, list) in [
            ("top_ngrams", &self.top_ngrams),
            ("duplicate_ngrams", &self.duplicate_ngrams),
        ] {
            for &(n, fraction) in list {
                if n == 0 || !(0.0..=1.0).contains(&fraction) {
                    errors.push(format!(
                        "quality.{key}: [{n}, {fraction}] needs n >= 1 and a fraction within [0, 1]"
                    ));
                }
            }
        }
        errors
    }
}
