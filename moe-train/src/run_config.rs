//! Run configs: a model config (top-level keys, as in `configs/*.toml`) plus optional `[train]`
//! and `[data]` tables, with `--set key=value` overrides. Every key is documented in
//! `docs/training.md`; the resolved config is written to `config.toml` in the run directory.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use moe_core::model::SwitchTransformerConfig;
use serde::{Deserialize, Serialize};

use crate::config_file::{model_config_from_table, ConfigFileError};

/// The default model (`configs/tiny.toml`), compiled in so `moe-train train` works from any
/// directory.
pub const DEFAULT_CONFIG: &str = include_str!("../../configs/tiny.toml");
/// Name shown for [`DEFAULT_CONFIG`] in messages.
pub const DEFAULT_CONFIG_NAME: &str = "configs/tiny.toml (built in)";

/// Optimisation, schedule, logging and checkpoint settings (`[train]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps. Default: 1500 (about 6 minutes of the default model on 2 cores).
    pub steps: usize,
    /// Sequences per micro-batch. Default: 16.
    pub batch_size: usize,
    /// Tokens per training sequence (≤ `max_seq_len`). Default: 128.
    pub seq_len: usize,
    /// Micro-batches per optimizer step. Default: 1.
    pub grad_accum: usize,
    /// Peak learning rate. Default: 2e-3.
    pub lr: f64,
    /// Learning rate at the end of the cosine decay. Default: 2e-4.
    pub min_lr: f64,
    /// Linear warm-up steps. Default: 100.
    pub warmup_steps: usize,
    /// AdamW decoupled weight decay, on matrices only (not norms). Default: 0.1.
    pub weight_decay: f64,
    /// AdamW β₁. Default: 0.9.
    pub beta1: f64,
    /// AdamW β₂. Default: 0.95.
    pub beta2: f64,
    /// AdamW ε. Default: 1e-8.
    pub eps: f64,
    /// Global gradient-norm clip; 0 turns clipping off. Default: 1.0.
    pub grad_clip: f64,
    /// Seed of the initialisation, data order and per-step randomness. Default: 42.
    pub seed: u64,
    /// Steps between metric lines. Default: 10.
    pub log_every: usize,
    /// Steps between evaluations (0: only at the end). Default: 250.
    pub eval_every: usize,
    /// Validation batches per evaluation. Default: 16.
    pub eval_batches: usize,
    /// Steps between checkpoints (0: only at the end). Default: 500.
    pub checkpoint_every: usize,
    /// Step checkpoints kept (the best one is kept besides). Default: 2.
    pub keep_last: usize,
    /// Peak FLOP/s for MFU; 0 measures the device's matmul peak at start. Default: 0.
    pub peak_flops: f64,
    /// Steps an expert may stay dead, or above `collapse_share`, before a warning. Default: 100.
    pub warn_after: usize,
    /// Share of a layer's tokens one expert may take before it counts as collapsing.
    /// Default: 0.5.
    pub collapse_share: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 1500,
            batch_size: 16,
            seq_len: 128,
            grad_accum: 1,
            lr: 2e-3,
            min_lr: 2e-4,
            warmup_steps: 100,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
            seed: 42,
            log_every: 10,
            eval_every: 250,
            eval_batches: 16,
            checkpoint_every: 500,
            keep_last: 2,
            peak_flops: 0.0,
            warn_after: 100,
            collapse_share: 0.5,
        }
    }
}

/// Where the tokens come from (`[data]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Files, directories or globs of `.txt` / `.jsonl`; empty = the built-in corpus.
    pub paths: Vec<String>,
    /// Tokens generated for the built-in corpus's train split. Default: 4,000,000.
    pub builtin_train_tokens: usize,
    /// Tokens generated for the built-in corpus's validation split. Default: 131,072.
    pub builtin_val_tokens: usize,
    /// Seed of the built-in corpus (validation uses `corpus_seed + 1`). Default: 1234.
    pub corpus_seed: u64,
    /// Share of real text (by bytes, from the end) held out for validation. Default: 0.05.
    pub val_fraction: f64,
    /// A `tokenizer.json` to use; empty = built-in vocabulary or a BPE trained on the train
    /// split with `vocab_size` entries. Default: "".
    pub tokenizer: String,
    /// Field holding the text in `.jsonl` files. Default: "text".
    pub text_field: String,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            builtin_train_tokens: 4_000_000,
            builtin_val_tokens: 131_072,
            corpus_seed: 1234,
            val_fraction: 0.05,
            tokenizer: String::new(),
            text_field: "text".into(),
        }
    }
}

/// Model + training + data settings of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// The model.
    pub model: SwitchTransformerConfig,
    /// Optimisation and bookkeeping.
    pub train: TrainConfig,
    /// Data.
    pub data: DataConfig,
}

impl RunConfig {
    /// Loads `path` (or the built-in default), applies `--set` overrides and validates.
    pub fn load(path: Option<&Path>, sets: &[String]) -> anyhow::Result<Self> {
        let (text, origin) = match path {
            Some(path) => (
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config {}", path.display()))?,
                path.to_path_buf(),
            ),
            None => (
                DEFAULT_CONFIG.to_string(),
                PathBuf::from(DEFAULT_CONFIG_NAME),
            ),
        };
        let mut table: toml::Table =
            toml::from_str(&text).map_err(|source| ConfigFileError::Parse {
                path: origin.clone(),
                source,
            })?;
        for set in sets {
            apply_set(&mut table, set)?;
        }
        Self::from_table(table, &origin)
    }

    /// Splits `[train]` and `[data]` off `table` and builds every part.
    pub fn from_table(mut table: toml::Table, origin: &Path) -> anyhow::Result<Self> {
        let train: TrainConfig = section(&mut table, "train", origin)?;
        let data: DataConfig = section(&mut table, "data", origin)?;
        let model = model_config_from_table(table, origin)?;
        let config = Self { model, train, data };
        config
            .validate()
            .with_context(|| format!("config {}", origin.display()))?;
        Ok(config)
    }

    /// Checks the training and data settings (the model validated itself on load).
    pub fn validate(&self) -> anyhow::Result<()> {
        let t = &self.train;
        let mut problems = Vec::new();
        let mut check = |ok: bool, msg: String| {
            if !ok {
                problems.push(msg)
            }
        };
        for (name, value) in [
            ("steps", t.steps),
            ("batch_size", t.batch_size),
            ("grad_accum", t.grad_accum),
            ("log_every", t.log_every),
            ("eval_batches", t.eval_batches),
            ("keep_last", t.keep_last),
        ] {
            check(
                value >= 1,
                format!("train.{name} = {value}: must be at least 1"),
            );
        }
        check(
            (2..=self.model.max_seq_len).contains(&t.seq_len),
            format!(
                "train.seq_len = {}: must be between 2 and the model's max_seq_len ({})",
                t.seq_len, self.model.max_seq_len
            ),
        );
        check(
            t.lr > 0.0 && t.lr.is_finite(),
            format!("train.lr = {}: must be positive", t.lr),
        );
        check(
            (0.0..=t.lr).contains(&t.min_lr),
            format!(
                "train.min_lr = {}: must be between 0 and train.lr ({})",
                t.min_lr, t.lr
            ),
        );
        check(
            t.warmup_steps <= t.steps,
            format!(
                "train.warmup_steps = {}: must not exceed train.steps ({})",
                t.warmup_steps, t.steps
            ),
        );
        for (name, value) in [("beta1", t.beta1), ("beta2", t.beta2)] {
            check(
                (0.0..1.0).contains(&value),
                format!("train.{name} = {value}: must be in [0, 1)"),
            );
        }
        for (name, value) in [
            ("eps", t.eps),
            ("weight_decay", t.weight_decay),
            ("grad_clip", t.grad_clip),
            ("peak_flops", t.peak_flops),
        ] {
            check(
                value >= 0.0 && value.is_finite() && (name != "eps" || value > 0.0),
                format!("train.{name} = {value}: must be a finite number ≥ 0 (eps > 0)"),
            );
        }
        check(
            t.collapse_share > 0.0 && t.collapse_share <= 1.0,
            format!(
                "train.collapse_share = {}: must be in (0, 1]",
                t.collapse_share
            ),
        );
        let d = &self.data;
        check(
            d.val_fraction > 0.0 && d.val_fraction <= 0.5,
            format!(
                "data.val_fraction = {}: must be in (0, 0.5]",
                d.val_fraction
            ),
        );
        let window = t.seq_len + 1;
        check(
            d.builtin_train_tokens >= window * t.batch_size && d.builtin_val_tokens >= window,
            format!(
                "data.builtin_train_tokens = {} / builtin_val_tokens = {}: need at least one \
                 batch ({} tokens) and one sequence ({window})",
                d.builtin_train_tokens,
                d.builtin_val_tokens,
                window * t.batch_size
            ),
        );
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("invalid settings:\n  - {}", problems.join("\n  - "))
        }
    }

    /// The model part alone as TOML.
    pub fn model_toml(&self) -> String {
        toml::to_string(&self.model).expect("a model config is TOML")
    }

    /// The resolved config as TOML (model keys, then `[train]` and `[data]`).
    pub fn to_toml(&self) -> String {
        let mut table = toml::Table::try_from(&self.model).expect("a model config is TOML");
        table.insert(
            "train".into(),
            toml::Value::try_from(&self.train).expect("train settings are TOML"),
        );
        table.insert(
            "data".into(),
            toml::Value::try_from(&self.data).expect("data settings are TOML"),
        );
        toml::to_string(&table).expect("a TOML table serialises")
    }
}

/// Deserialises the table `name` (absent = defaults); its errors name the file and table.
fn section<T: serde::de::DeserializeOwned + Default>(
    table: &mut toml::Table,
    name: &str,
    origin: &Path,
) -> anyhow::Result<T> {
    match table.remove(name) {
        None => Ok(T::default()),
        Some(toml::Value::Table(inner)) => {
            crate::config_file::deserialize_table(inner, &format!("{name}.")).map_err(
                |(key, message)| anyhow::anyhow!("config {}: `{key}`: {message}", origin.display()),
            )
        }
        Some(other) => bail!(
            "config {}: `{name}` must be a table, found {}",
            origin.display(),
            other.type_str()
        ),
    }
}

/// The `--set` override that makes `paths` (from `--data`) the run's `data.paths`.
pub fn data_paths_set(paths: &[String]) -> String {
    let quoted: Vec<String> = paths
        .iter()
        .map(|p| toml::Value::from(p.as_str()).to_string())
        .collect();
    format!("data.paths=[{}]", quoted.join(", "))
}

/// Applies one `--set key=value`: `value` is a TOML literal (`3`, `1e-3`, `true`,
/// `"text"`, `["a", "b"]`); anything that does not parse as one is taken as a string.
/// Types and key names are checked when the config is built.
pub fn apply_set(table: &mut toml::Table, set: &str) -> anyhow::Result<()> {
    let (key, raw) = set
        .split_once('=')
        .with_context(|| format!("--set {set}: expected key=value, e.g. --set train.lr=1e-3"))?;
    let key = key.trim();
    let raw = raw.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        bail!("--set {set}: `{key}` is not a dotted key like train.lr or switch.num_experts");
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut parts: Vec<&str> = key.split('.').collect();
    let leaf = parts.pop().expect("split yields at least one part");
    let mut node = table;
    for part in parts {
        let entry = node
            .entry(part)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(inner) => inner,
            _ => bail!("--set {set}: `{part}` is a value, not a table"),
        };
    }
    node.insert(leaf.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_loads_and_round_trips_through_toml() {
        let config = RunConfig::load(None, &[]).expect("the built-in default is valid");
        assert_eq!(config.train, TrainConfig::default());
        let again =
            RunConfig::from_table(toml::from_str(&config.to_toml()).unwrap(), Path::new("x"))
                .expect("resolved config reloads");
        assert_eq!(again, config);
    }

    #[test]
    fn set_overrides_are_typed_and_checked() {
        let config = RunConfig::load(
            None,
            &[
                "train.lr=1e-3".into(),
                "switch.num_experts=4".into(),
                "d_model = 64".into(),
                "data.paths=[\"a.txt\"]".into(),
                "data.tokenizer=my.json".into(),
            ],
        )
        .expect("valid overrides");
        assert_eq!(config.train.lr, 1e-3);
        assert_eq!(config.model.switch.num_experts, 4);
        assert_eq!(config.model.d_model, 64);
        assert_eq!(config.data.paths, ["a.txt"]);
        assert_eq!(config.data.tokenizer, "my.json");

        for (set, needle) in [
            ("train.lrr=1", "lrr"),
            ("train.lr=fast", "lr"),
            ("swich.num_experts=4", "swich"),
            ("train.steps=-3", "steps"),
            ("train.seq_len=4096", "train.seq_len"),
            ("n_heads=3", "n_heads"),
            ("nonsense", "key=value"),
        ] {
            let err = format!("{:#}", RunConfig::load(None, &[set.into()]).unwrap_err());
            assert!(err.contains(needle), "--set {set}: {err}");
        }
    }
}
