//! `moe-train import --format hf DIR`: a transformers Qwen2-MoE model folder (switchyard's own
//! export, or any Qwen2-MoE switchyard can compute exactly) as a switchyard run directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use moe_core::model::SwitchTransformerConfig;
use moe_core::Init;

use super::config::{to_hf, HfConfig, HfError};
use super::derive::from_hf;
use super::export::Format;
use super::files::{self, RUN_CONFIG_KEY};
use super::tensors::from_hf_tensors;
use crate::backend::Backend;
use crate::checkpoint::{self, TrainState};
use crate::data::tokenizer;
use crate::fsutil::write_atomic;
use crate::optim::AdamW;
use crate::run_config::RunConfig;
use crate::weights::{self, named_tensors, WeightsError};

/// `moe-train import` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// Model folder: config.json, model.safetensors (float32), tokenizer.json (with `<eos>`).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Input format.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Run directory to write (new or empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = Backend::DEFAULT)]
    pub backend: Backend,
}

/// What an import wrote.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    /// The checkpoint folder written (`OUT/checkpoints/step-000000`).
    pub checkpoint: PathBuf,
    /// The run config: from the export's metadata when present, else derived from
    /// `config.json` with switchyard's defaults.
    pub config: RunConfig,
    /// Whether the run config came from `model.safetensors` metadata.
    pub from_metadata: bool,
}

/// Imports `args.dir` into the run directory `args.out`: `config.toml`, `tokenizer.json` and
/// a step-0 checkpoint (weights, an empty optimizer state) that `eval`, `generate`, `logits`
/// and `export` read.
pub fn run(args: &ImportArgs, out: &mut impl Write) -> anyhow::Result<ImportSummary> {
    let Format::Hf = args.format; // the only format so far
    ensure_new_or_empty(&args.out)?;
    let config_path = args.dir.join(files::CONFIG);
    let hf: HfConfig = serde_json::from_slice(
        &std::fs::read(&config_path)
            .with_context(|| format!("cannot read {}", config_path.display()))?,
    )
    .with_context(|| format!("{} is not a Qwen2-MoE config", config_path.display()))?;
    let derived = from_hf(&hf).map_err(|problems| HfError::Incompatible {
        path: config_path.clone(),
        problems,
    })?;
    let tok = tokenizer::load(&args.dir.join(files::TOKENIZER))?;
    let weights_path = args.dir.join(files::WEIGHTS);
    let file = weights::read_f32_tensors(&weights_path)?;
    let (config, from_metadata) = match file.metadata.get(RUN_CONFIG_KEY) {
        Some(text) => (
            metadata_config(text, &weights_path, &hf, &config_path)?,
            true,
        ),
        None => (default_run(derived)?, false),
    };
    let device = args.backend.device()?;
    let skeleton = config.model.init_with(&Init::skeleton(), &device);
    let expected: Vec<(String, Vec<usize>)> = named_tensors(&skeleton)
        .into_iter()
        .map(|(name, data)| (name, data.shape().to_vec()))
        .collect();
    drop(skeleton);
    let tensor_error = |(name, message): (String, String)| WeightsError::Tensor {
        path: weights_path.clone(),
        name,
        message,
    };
    let tensors = from_hf_tensors(file.tensors, &expected, &hf).map_err(tensor_error)?;
    let model =
        weights::model_from_tensors(&config.model, tensors, &device).map_err(tensor_error)?;
    anyhow::ensure!(
        weights::is_finite(&model),
        "{} holds non-finite weights (NaN or ±∞)",
        weights_path.display()
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    write_atomic(&args.out.join("config.toml"), config.to_toml().as_bytes())?;
    tokenizer::save(&tok, &args.out.join("tokenizer.json"))?;
    let optim = AdamW::new(&config.train);
    let checkpoint = checkpoint::save(
        &args.out,
        &model,
        &optim,
        &TrainState::fresh(),
        &config,
        &tok,
    )?;
    writeln!(
        out,
        "imported {} (transformers qwen2_moe, {} blocks, {} sparse) → run directory {}\n  \
         checkpoint {} (weights only: step 0, empty optimizer state); config {}\n  \
         next: moe-train eval --run {2} | moe-train generate --run {2} | moe-train export --run {2}",
        args.dir.display(),
        config.model.n_layers,
        config.model.num_sparse_layers(),
        args.out.display(),
        checkpoint.display(),
        if from_metadata {
            "from the switchyard run config in model.safetensors"
        } else {
            "derived from config.json, other settings at switchyard's defaults"
        },
    )?;
    Ok(ImportSummary {
        checkpoint,
        config,
        from_metadata,
    })
}

fn ensure_new_or_empty(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let empty = dir.is_dir() && std::fs::read_dir(dir)?.next().is_none();
        anyhow::ensure!(
            empty,
            "--out {} exists and is not empty; import into a new run directory",
            dir.display()
        );
    }
    Ok(())
}

/// The run config switchyard stored in the export, checked against `config.json` (which a
/// user may have edited): both must describe the same model.
fn metadata_config(
    text: &str,
    weights_path: &Path,
    hf: &HfConfig,
    config_path: &Path,
) -> anyhow::Result<RunConfig> {
    let origin = weights_path.join(RUN_CONFIG_KEY);
    let table: toml::Table = toml::from_str(text).with_context(|| {
        format!(
            "{}: metadata `{RUN_CONFIG_KEY}` is not TOML",
            weights_path.display()
        )
    })?;
    let config = RunConfig::from_table(table, &origin)?;
    let ours = to_hf(&config.model, hf.eos_token_id.unwrap_or(0))?;
    let problems: Vec<String> = hf
        .mismatches(&ours)
        .into_iter()
        .map(|m| {
            format!(
                "{m} (the switchyard run config in {})",
                weights_path.display()
            )
        })
        .collect();
    if !problems.is_empty() {
        return Err(HfError::Incompatible {
            path: config_path.into(),
            problems,
        }
        .into());
    }
    Ok(config)
}

/// A run config around an imported model: switchyard's default training and data settings,
/// sequences no longer than the model's positions.
fn default_run(model: SwitchTransformerConfig) -> anyhow::Result<RunConfig> {
    let mut config = RunConfig {
        model,
        train: Default::default(),
        data: Default::default(),
    };
    config.train.seq_len = config.train.seq_len.min(config.model.max_seq_len);
    config.validate()?;
    Ok(config)
}
