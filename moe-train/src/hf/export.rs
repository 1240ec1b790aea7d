//! `moe-train export --format hf`: a checkpoint as a transformers Qwen2-MoE model folder, and
//! how many tokens switchyard drops at its evaluation capacity (transformers drops none).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::Device;
use moe_core::model::SwitchTransformer;

use super::config::{to_hf, HfConfig, ARCHITECTURE};
use super::files::{self, Folder, RUN_CONFIG_KEY};
use super::tensors::{to_hf_tensors, HostTensor};
use crate::backend::Backend;
use crate::checkpoint::{self, Loaded};
use crate::data::{tokenizer, Dataset};
use crate::eval::evaluate;
use crate::weights::named_tensors;

/// Model interchange formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Hugging Face transformers, architecture Qwen2-MoE: config.json, model.safetensors,
    /// generation_config.json, tokenizer.json, tokenizer_config.json.
    Hf,
}

/// `moe-train export` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Run directory (its latest checkpoint) or a checkpoint folder.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Export the run's best checkpoint instead of its latest.
    #[arg(long)]
    pub best: bool,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Model folder to write (new or empty, or replaced with --force).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace an existing --out.
    #[arg(long)]
    pub force: bool,
    /// Validation batches on which to measure switchyard's dropped tokens (default: the run's
    /// train.eval_batches; 0 skips the measurement).
    #[arg(long)]
    pub batches: Option<usize>,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = Backend::DEFAULT)]
    pub backend: Backend,
}

/// Tokens switchyard drops at its evaluation capacity factor, where transformers drops none.
#[derive(Debug, Clone, PartialEq)]
pub enum Drops {
    /// The model evaluates dropless (`switch.dropless`), like transformers.
    Dropless,
    /// No sparse blocks: nothing to drop.
    Dense,
    /// Measured on the validation split.
    Measured {
        /// `switch.capacity_factor_eval`.
        capacity_factor: f64,
        /// Validation tokens evaluated.
        tokens: usize,
        /// `(block, fraction of its routing decisions dropped)` per sparse block.
        layers: Vec<(usize, f64)>,
    },
    /// Not measured, and why.
    NotMeasured(String),
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// The checkpoint folder exported.
    pub checkpoint: PathBuf,
    /// The model folder written.
    pub out: PathBuf,
    /// `(file name, bytes)` of every file written.
    pub files: Vec<(String, u64)>,
    /// Tensors in `model.safetensors`.
    pub tensors: usize,
    /// The `config.json` written.
    pub config: HfConfig,
    /// switchyard's drops at its evaluation capacity.
    pub drops: Drops,
}

/// Exports the checkpoint `args.run` names; prints and returns a summary. An unsupported
/// config is refused, naming each setting, before anything is written.
pub fn run(args: &ExportArgs, out: &mut impl Write) -> anyhow::Result<ExportSummary> {
    let dir = checkpoint::resolve(&args.run, args.best)?;
    let loaded = checkpoint::load(&dir)?;
    let eos = tokenizer::eos_id(&loaded.tokenizer);
    let config = to_hf(&loaded.config.model, eos)
        .with_context(|| format!("cannot export {}", dir.display()))?;
    refuse_overwriting_the_checkpoint(&args.out, &dir)?;
    let device = args.backend.device()?;
    let model = checkpoint::load_model(&loaded, &device)?;
    let tensors = to_hf_tensors(host_tensors(&model), &config).map_err(anyhow::Error::msg)?;
    let count = tensors.len();
    let folder = Folder {
        config: &config,
        tensors,
        metadata: HashMap::from([(RUN_CONFIG_KEY.to_string(), loaded.config.to_toml())]),
        tokenizer: &loaded.tokenizer,
    };
    let files = files::write(&args.out, folder, args.force)?;
    let drops = measure_drops(&model, &loaded, args.batches, &device);
    let summary = ExportSummary {
        checkpoint: dir,
        out: args.out.clone(),
        files,
        tensors: count,
        config,
        drops,
    };
    print(&summary, loaded.state.step, out)?;
    Ok(summary)
}

/// Every weight of `model` on the host under its switchyard name.
pub fn host_tensors(model: &SwitchTransformer) -> Vec<(String, HostTensor)> {
    named_tensors(model)
        .into_iter()
        .map(|(name, data)| {
            let shape = data.shape().to_vec();
            let values = data.try_into_vec_as::<f32>().expect("weights are float");
            (name, (values, shape))
        })
        .collect()
}

/// `--force` must not delete the checkpoint being exported.
fn refuse_overwriting_the_checkpoint(out: &Path, checkpoint: &Path) -> anyhow::Result<()> {
    let (Ok(out), Ok(checkpoint)) = (out.canonicalize(), checkpoint.canonicalize()) else {
        return Ok(()); // --out does not exist yet
    };
    anyhow::ensure!(
        !checkpoint.starts_with(&out),
        "--out {} holds the checkpoint being exported ({}); choose another folder",
        out.display(),
        checkpoint.display()
    );
    Ok(())
}

/// Evaluates the model as trained (not dropless) on its validation split and reads the
/// fraction of routing decisions each sparse block dropped.
fn measure_drops(
    model: &SwitchTransformer,
    loaded: &Loaded,
    batches: Option<usize>,
    device: &Device,
) -> Drops {
    let c = &loaded.config;
    if c.model.num_sparse_layers() == 0 {
        return Drops::Dense;
    }
    if c.model.switch.dropless {
        return Drops::Dropless;
    }
    let batches = batches.unwrap_or(c.train.eval_batches);
    if batches == 0 {
        return Drops::NotMeasured("--batches 0".into());
    }
    let split = match Dataset::load(&c.data, c.model.vocab_size, Some(loaded.tokenizer.clone())) {
        Ok(data) => data.val,
        Err(e) => return Drops::NotMeasured(format!("the run's data did not load: {e:#}")),
    };
    let t = &c.train;
    if split.num_windows(t.seq_len) == 0 {
        return Drops::NotMeasured("the validation split is shorter than one sequence".into());
    }
    let record = evaluate(model, &split, t.seq_len, t.batch_size, batches, device, 0);
    Drops::Measured {
        capacity_factor: c.model.switch.capacity_factor_eval,
        tokens: record.tokens,
        layers: record
            .routing
            .iter()
            .map(|r| (r.layer, r.dropped_fraction))
            .collect(),
    }
}

fn print(s: &ExportSummary, step: usize, out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "exported {} (step {step}) as transformers {ARCHITECTURE} (qwen2_moe) → {}",
        s.checkpoint.display(),
        s.out.display()
    )?;
    for (name, bytes) in &s.files {
        let extra = if name == files::WEIGHTS {
            format!(" ({} tensors, float32)", s.tensors)
        } else {
            String::new()
        };
        writeln!(out, "  {name:<24} {bytes:>12} bytes{extra}")?;
    }
    writeln!(
        out,
        "load offline: AutoModelForCausalLM.from_pretrained({0:?}), \
         AutoTokenizer.from_pretrained({0:?})",
        s.out.display().to_string()
    )?;
    writeln!(
        out,
        "capacity: transformers' Qwen2-MoE layers are dropless (every token reaches its \
         experts), so its logits equal switchyard's only where switchyard drops nothing \
         (compare with `moe-train logits --dropless`)."
    )?;
    let line = match &s.drops {
        Drops::Dropless => "switchyard evaluates this model dropless too (switch.dropless)".into(),
        Drops::Dense => "the model has no sparse blocks: nothing is dropped".into(),
        Drops::NotMeasured(why) => format!("switchyard's drop fraction was not measured: {why}"),
        Drops::Measured {
            capacity_factor,
            tokens,
            layers,
        } => {
            let mean = layers.iter().map(|l| l.1).sum::<f64>() / layers.len().max(1) as f64;
            let per: Vec<String> = layers
                .iter()
                .map(|(l, f)| format!("block {l}: {:.3}%", f * 100.0))
                .collect();
            format!(
                "switchyard at capacity_factor_eval {capacity_factor:?} drops {:.3}% of routing \
                 decisions on {tokens} validation tokens ({})",
                mean * 100.0,
                per.join(", ")
            )
        }
    };
    writeln!(out, "  {line}")?;
    Ok(())
}
