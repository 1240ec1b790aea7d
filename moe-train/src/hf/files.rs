//! The files of a transformers model folder: names, the small JSON files, and writing the
//! folder as a whole (staged in a temporary sibling, then renamed into place).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::TensorData;
use serde_json::json;
use tokenizers::Tokenizer;

use super::config::HfConfig;
use super::tensors::HostTensor;
use crate::data::corpus::{EOS, UNK};
use crate::data::tokenizer;
use crate::weights;

/// Model config (transformers `config.json`).
pub const CONFIG: &str = "config.json";
/// Weights, transformers names (`docs/weights.md`).
pub const WEIGHTS: &str = "model.safetensors";
/// Default generation settings.
pub const GENERATION_CONFIG: &str = "generation_config.json";
/// The run's `tokenizers` JSON, unchanged.
pub const TOKENIZER: &str = "tokenizer.json";
/// What `AutoTokenizer` needs besides `tokenizer.json`.
pub const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
/// Every file an export writes.
pub const ALL: [&str; 5] = [
    CONFIG,
    WEIGHTS,
    GENERATION_CONFIG,
    TOKENIZER,
    TOKENIZER_CONFIG,
];
/// Metadata key of `model.safetensors` holding the switchyard run config (TOML), so an
/// import recovers capacity, routing and training settings transformers has no keys for.
pub const RUN_CONFIG_KEY: &str = "switchyard.run_config";

/// `generation_config.json`: greedy by default; `<eos>` as BOS (an empty prompt starts a new
/// document, as in switchyard's `generate`), EOS and padding.
pub fn generation_config(eos: u32) -> serde_json::Value {
    json!({
        "bos_token_id": eos,
        "eos_token_id": eos,
        "pad_token_id": eos,
        "do_sample": false,
    })
}

/// `tokenizer_config.json`: the fast tokenizer over `tokenizer.json` with `<eos>` (and
/// `<unk>` where the vocabulary has it); no BOS is added, as in switchyard.
pub fn tokenizer_config(tok: &Tokenizer, max_seq_len: usize) -> serde_json::Value {
    let mut config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOS,
        "pad_token": EOS,
        "model_max_length": max_seq_len,
        "add_bos_token": false,
        "add_eos_token": false,
        "clean_up_tokenization_spaces": false,
    });
    if tok.token_to_id(UNK).is_some() {
        config["unk_token"] = json!(UNK);
    }
    config
}

/// What a model folder holds, ready to write.
pub struct Folder<'a> {
    /// `config.json`.
    pub config: &'a HfConfig,
    /// Transformers tensors (names of `docs/weights.md`).
    pub tensors: Vec<(String, HostTensor)>,
    /// Extra `model.safetensors` metadata (besides `format = pt`).
    pub metadata: HashMap<String, String>,
    /// The tokenizer.
    pub tokenizer: &'a Tokenizer,
}

/// Writes `folder` to `out`: staged in `.NAME.tmp-PID` beside it, then renamed into place; an
/// existing `out` is replaced only with `force`. Returns the bytes of each file.
pub fn write(out: &Path, folder: Folder, force: bool) -> anyhow::Result<Vec<(String, u64)>> {
    if out.exists() {
        let empty = out.is_dir() && std::fs::read_dir(out)?.next().is_none();
        anyhow::ensure!(
            empty || force,
            "--out {} exists and is not empty; pass --force to replace it",
            out.display()
        );
    }
    let stage = crate::fsutil::temp_path(out);
    if stage.exists() {
        std::fs::remove_dir_all(&stage)?;
    }
    std::fs::create_dir_all(&stage)
        .with_context(|| format!("cannot create {}", stage.display()))?;
    let written = write_files(&stage, folder).and_then(|sizes| {
        if out.exists() {
            remove(out)?;
        }
        std::fs::rename(&stage, out)
            .with_context(|| format!("cannot move {} to {}", stage.display(), out.display()))?;
        Ok(sizes)
    });
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&stage);
    }
    written
}

fn remove(path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
    .with_context(|| format!("cannot remove {}", path.display()))
}

fn write_files(dir: &Path, folder: Folder) -> anyhow::Result<Vec<(String, u64)>> {
    let max_len = folder.config.max_position_embeddings;
    let eos = tokenizer::eos_id(folder.tokenizer);
    let json = |name: &str, value: serde_json::Value| -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(&value)? + "\n";
        crate::fsutil::write_atomic(&dir.join(name), text.as_bytes())
            .with_context(|| format!("cannot write {}", dir.join(name).display()))
    };
    json(CONFIG, serde_json::to_value(folder.config)?)?;
    json(GENERATION_CONFIG, generation_config(eos))?;
    json(
        TOKENIZER_CONFIG,
        tokenizer_config(folder.tokenizer, max_len),
    )?;
    tokenizer::save(folder.tokenizer, &dir.join(TOKENIZER))?;
    let mut metadata = folder.metadata;
    metadata.insert("format".into(), "pt".into());
    let tensors = folder
        .tensors
        .into_iter()
        .map(|(name, (values, shape))| (name, TensorData::new(values, shape)))
        .collect();
    weights::write_f32_tensors(&dir.join(WEIGHTS), tensors, metadata)?;
    ALL.iter()
        .map(|name| {
            let path: PathBuf = dir.join(name);
            let bytes = std::fs::metadata(&path)
                .with_context(|| format!("{} was not written", path.display()))?
                .len();
            Ok((name.to_string(), bytes))
        })
        .collect()
}
