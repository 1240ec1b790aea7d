//! `prepare.toml`: every key defaulted, unknown keys rejected.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::input::ReaderOptions;
use crate::minhash;
use crate::quality::QualityConfig;

/// The whole preparation config. Sections: `[input]`, `[quality]`, `[blocklist]`, `[dedup]`,
/// `[decontamination]`, `[output]`, `[run]`; see docs/data-prepare.md for every key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrepareConfig {
    /// Readers and bad input.
    pub input: InputConfig,
    /// Gopher quality rules.
    pub quality: QualityConfig,
    /// Harmful-content block list.
    pub blocklist: BlockListConfig,
    /// Exact and near deduplication.
    pub dedup: DedupConfig,
    /// Test-set decontamination (runs when `--eval` is given).
    pub decontamination: DecontaminationConfig,
    /// Output shards and the report.
    pub output: OutputConfig,
    /// Threads and batching.
    pub run: RunConfig,
}

/// What to do with bad input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Count it in the report and go on.
    Skip,
    /// Stop; no output directory is created.
    Fail,
}

/// `[input]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    /// JSONL field with the text. Default `"text"`.
    pub text_field: String,
    /// Largest document in bytes (a whole .txt/.html file or one JSONL line, decompressed).
    /// Default 64 MiB.
    pub max_document_bytes: u64,
    /// Invalid UTF-8, malformed JSON lines, missing text field, too-large documents.
    /// Default `skip`.
    pub on_bad_record: OnError,
    /// Files that cannot be opened or read to the end (I/O error, corrupt gzip). Default `fail`.
    pub on_unreadable_file: OnError,
}

impl Default for InputConfig {
    fn default() -> Self {
        let reader = ReaderOptions::default();
        Self {
            text_field: reader.text_field,
            max_document_bytes: reader.max_document_bytes,
            on_bad_record: OnError::Skip,
            on_unreadable_file: OnError::Fail,
        }
    }
}

impl InputConfig {
    /// The reader settings.
    pub fn reader_options(&self) -> ReaderOptions {
        ReaderOptions {
            text_field: self.text_field.clone(),
            max_document_bytes: self.max_document_bytes,
        }
    }
}

/// `[blocklist]`: off unless `path` (or `--blocklist`) is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlockListConfig {
    /// One word or phrase per line; relative to the config file. Default none (off).
    pub path: Option<PathBuf>,
    /// A document is dropped when it has at least this many matches… Default 1.
    pub min_matches: usize,
    /// …and matches make at least this fraction of its words. Default 0 (any match counts).
    pub min_match_fraction: f64,
}

impl Default for BlockListConfig {
    fn default() -> Self {
        Self {
            path: None,
            min_matches: 1,
            min_match_fraction: 0.0,
        }
    }
}

/// `[dedup]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Exact dedup on the normalised text. Default `true`.
    pub exact: bool,
    /// Near dedup (MinHash + LSH). Default `true`.
    pub near: bool,
    /// Words per shingle. Default 5 (as datatrove's `MinhashConfig.n_grams`).
    pub ngram: usize,
    /// MinHash permutations. Default 256 (σ of the estimate ≤ 0.025 at J ≥ 0.8).
    pub num_perm: usize,
    /// LSH bands; must divide `num_perm`. Default 32 (8 rows each).
    pub bands: usize,
    /// Estimated Jaccard similarity at or above which a candidate is a duplicate. Default 0.8.
    pub threshold: f64,
    /// Seed of the permutations. Default 0.
    pub seed: u64,
    /// Most documents kept per LSH bucket. Default 32.
    pub max_bucket_size: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            exact: true,
            near: true,
            ngram: 5,
            num_perm: 256,
            bands: 32,
            threshold: 0.8,
            seed: 0,
            max_bucket_size: 32,
        }
    }
}

impl DedupConfig {
    /// Rows per band.
    pub fn rows(&self) -> usize {
        self.num_perm / self.bands.max(1)
    }

    /// `1 − (1 − threshold^rows)^bands`.
    pub fn candidate_probability_at_threshold(&self) -> f64 {
        minhash::candidate_probability(self.threshold, self.bands, self.rows())
    }
}

/// `[decontamination]`: runs when `--eval` is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecontaminationConfig {
    /// Words per n-gram. Default 13 (GPT-3, Brown et al. 2020, appendix C).
    pub ngram: usize,
}

impl Default for DecontaminationConfig {
    fn default() -> Self {
        Self { ngram: 13 }
    }
}

/// `[output]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// A new shard starts once the current one reaches this size. Default 64 MiB.
    pub shard_bytes: u64,
    /// Examples kept per removal reason in the report. Default 3.
    pub examples_per_rule: usize,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            shard_bytes: 64 << 20,
            examples_per_rule: 3,
        }
    }
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Worker threads; 0 = one per core. Default 0.
    pub threads: usize,
    /// Input bytes read ahead and processed in parallel per batch. Default 8 MiB.
    pub batch_bytes: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            threads: 0,
            batch_bytes: 8 << 20,
        }
    }
}

impl PrepareConfig {
    /// Reads a TOML config; a relative `blocklist.path` is taken relative to the file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read prepare config {}", path.display()))?;
        let mut config: Self = toml::from_str(&text).with_context(|| {
            format!(
                "prepare config {} is invalid (unknown keys are errors; see docs/data-prepare.md)",
                path.display()
            )
        })?;
        if let (Some(list), Some(dir)) = (&config.blocklist.path, path.parent()) {
            if list.is_relative() {
                config.blocklist.path = Some(dir.join(list));
            }
        }
        Ok(config)
    }

    /// Every inconsistent value, each named; empty when the config is usable.
    pub fn validate(&self) -> Vec<String> {
        let mut errors = self.quality.validate();
        let d = &self.dedup;
        if d.ngram == 0 {
            errors.push("dedup.ngram must be at least 1".into());
        }
        if d.num_perm == 0 || d.bands == 0 || !d.num_perm.is_multiple_of(d.bands) {
            errors.push(format!(
                "dedup.bands = {} must divide dedup.num_perm = {} (both at least 1)",
                d.bands, d.num_perm
            ));
        }
        if !(d.threshold > 0.0 && d.threshold <= 1.0) {
            errors.push(format!(
                "dedup.threshold = {} must be within (0, 1]",
                d.threshold
            ));
        }
        if d.max_bucket_size == 0 {
            errors.push("dedup.max_bucket_size must be at least 1".into());
        }
        if self.decontamination.ngram == 0 {
            errors.push("decontamination.ngram must be at least 1".into());
        }
        if self.input.text_field.is_empty() {
            errors.push("input.text_field must not be empty".into());
        }
        if !(1..=u64::from(u32::MAX)).contains(&self.input.max_document_bytes) {
            errors.push(format!(
                "input.max_document_bytes = {} must be within [1, 2^32 − 1]",
                self.input.max_document_bytes
            ));
        }
        if self.output.shard_bytes == 0 {
            errors.push("output.shard_bytes must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.blocklist.min_match_fraction) {
            errors.push(format!(
                "blocklist.min_match_fraction = {} must be within [0, 1]",
                self.blocklist.min_match_fraction
            ));
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_toml_gives_defaults() {
        let config: PrepareConfig = toml::from_str("").expect("empty config parses");
        assert_eq!(config, PrepareConfig::default());
        assert!(config.validate().is_empty(), "{:?}", config.validate());
    }

    #[test]
    fn every_section_parses_and_unknown_keys_fail() {
        let text = r#"
            [input]
            text_field = "content"
            on_bad_record = "fail"
            [quality]
            disable = ["stop_words", "top_ngram_chars"]
            min_words = 10
            top_ngrams = [[2, 0.25]]
            [blocklist]
            path = "words.txt"
            [dedup]
            num_perm = 64
            bands = 16
            [decontamination]
            ngram = 8
            [output]
            shard_bytes = 1000
            [run]
            threads = 2
        "#;
        let config: PrepareConfig = toml::from_str(text).expect("valid config");
        assert_eq!(config.input.text_field, "content");
        assert_eq!(config.input.on_bad_record, OnError::Fail);
        assert_eq!(config.quality.top_ngrams, vec![(2, 0.25)]);
        assert_eq!(config.dedup.rows(), 4);
        assert!(config.validate().is_empty());
        for bad in [
            "[dedup]\nnum_perms = 3",
            "[quality]\ndisable = [\"nope\"]",
            "x = 1",
        ] {
            assert!(
                toml::from_str::<PrepareConfig>(bad).is_err(),
                "{bad} should fail"
            );
        }
    }

    #[test]
    fn validate_names_each_bad_value() {
        let mut config = PrepareConfig::default();
        config.dedup.bands = 3;
        config.dedup.threshold = 1.5;
        config.quality.min_alpha_word_fraction = 2.0;
        let errors = config.validate().join("\n");
        for key in [
            "dedup.bands",
            "dedup.threshold",
            "quality.min_alpha_word_fraction",
        ] {
            assert!(errors.contains(key), "missing {key} in {errors}");
        }
    }
}
