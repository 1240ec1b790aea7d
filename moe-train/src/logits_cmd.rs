//! `moe-train logits`: a checkpoint's logits for given token sequences and their greedy
//! continuations, as JSON, to compare with other implementations of the same model (the
//! transformers export check, `tests/hf_check.py`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::{Device, Int, Tensor, TensorData};
use moe_core::model::SwitchTransformer;
use moe_core::Mode;
use serde::Serialize;

use crate::backend::Backend;
use crate::checkpoint;
use crate::generate::argmax;

/// `moe-train logits` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct LogitsArgs {
    /// Run directory (its latest checkpoint) or a checkpoint folder.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Use the run's best checkpoint instead of its latest.
    #[arg(long)]
    pub best: bool,
    /// One sequence of token ids, comma-separated (`--ids 0,17,4`); repeat for more.
    #[arg(long, value_name = "ID,ID,…")]
    pub ids: Vec<String>,
    /// A text to encode with the run's tokenizer as one more sequence; repeatable.
    #[arg(long, value_name = "TEXT")]
    pub prompt: Vec<String>,
    /// Route without capacity limits (every token reaches its experts), as dropless MoE
    /// implementations such as transformers do.
    #[arg(long)]
    pub dropless: bool,
    /// Greedy tokens to append to each sequence (argmax, lowest id on ties; no stop at
    /// `<eos>`); sequence plus continuation must fit in max_seq_len.
    #[arg(long, default_value_t = 0)]
    pub greedy: usize,
    /// Write the JSON here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = Backend::DEFAULT)]
    pub backend: Backend,
}

/// The JSON `moe-train logits` writes.
#[derive(Debug, Clone, Serialize)]
pub struct LogitsReport {
    /// The checkpoint folder.
    pub checkpoint: PathBuf,
    /// Optimizer steps of the checkpoint.
    pub step: usize,
    /// Whether routing ignored capacity.
    pub dropless: bool,
    /// `switch.capacity_factor_eval` (unused when dropless).
    pub capacity_factor_eval: f64,
    /// One entry per sequence, `--ids` first, then `--prompt`.
    pub sequences: Vec<SequenceLogits>,
}

/// Logits and continuation of one sequence, run alone (its tokens are the routing group).
#[derive(Debug, Clone, Serialize)]
pub struct SequenceLogits {
    /// Input token ids, `[seq_len]`.
    pub ids: Vec<u32>,
    /// Next-token logits at every position, `[seq_len][vocab_size]`.
    pub logits: Vec<Vec<f32>>,
    /// Fraction of routing decisions dropped, per sparse block (0 when dropless).
    pub dropped_fraction: Vec<f32>,
    /// The `--greedy` tokens after the input.
    pub greedy: Vec<u32>,
}

/// Computes the logits (and greedy continuations) and writes the JSON.
pub fn run(args: &LogitsArgs, out: &mut impl Write) -> anyhow::Result<LogitsReport> {
    let mut loaded = checkpoint::load(&checkpoint::resolve(&args.run, args.best)?)?;
    if args.dropless {
        loaded.config.model.switch.dropless = true;
    }
    let model_config = &loaded.config.model;
    let mut sequences: Vec<Vec<u32>> = args
        .ids
        .iter()
        .map(|s| parse_ids(s))
        .collect::<anyhow::Result<_>>()?;
    for prompt in &args.prompt {
        let encoding = loaded
            .tokenizer
            .encode(prompt.as_str(), false)
            .map_err(|e| anyhow::anyhow!("cannot encode --prompt {prompt:?}: {e}"))?;
        sequences.push(encoding.get_ids().to_vec());
    }
    anyhow::ensure!(!sequences.is_empty(), "give at least one --ids or --prompt");
    for (i, ids) in sequences.iter().enumerate() {
        let (len, max) = (ids.len(), model_config.max_seq_len);
        anyhow::ensure!(len > 0, "sequence {i} is empty");
        anyhow::ensure!(
            len + args.greedy <= max,
            "sequence {i}: {len} tokens + --greedy {} exceed max_seq_len {max}",
            args.greedy
        );
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= model_config.vocab_size) {
            anyhow::bail!(
                "sequence {i}: token id {bad} is not below vocab_size {}",
                model_config.vocab_size
            );
        }
    }
    let device = args.backend.device()?;
    let model = checkpoint::load_model(&loaded, &device)?;
    let sequences = sequences
        .into_iter()
        .map(|ids| sequence_logits(&model, ids, args.greedy, &device))
        .collect();
    let report = LogitsReport {
        checkpoint: loaded.dir.clone(),
        step: loaded.state.step,
        dropless: args.dropless,
        capacity_factor_eval: model_config.switch.capacity_factor_eval,
        sequences,
    };
    let json = serde_json::to_string(&report)?;
    match &args.out {
        Some(path) => crate::fsutil::write_atomic(path, json.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => writeln!(out, "{json}")?,
    }
    Ok(report)
}

fn parse_ids(text: &str) -> anyhow::Result<Vec<u32>> {
    text.split(',')
        .map(|t| {
            t.trim()
                .parse::<u32>()
                .with_context(|| format!("--ids {text:?}: {t:?} is not a token id"))
        })
        .collect()
}

/// Forward of `ids` as one sequence (`[1, seq_len]`, evaluation mode), then `greedy` argmax
/// steps, each re-running the whole context (as `generate` does).
pub fn sequence_logits(
    model: &SwitchTransformer,
    ids: Vec<u32>,
    greedy: usize,
    device: &Device,
) -> SequenceLogits {
    let forward = |context: &[u32]| {
        let input: Tensor<2, Int> = Tensor::from_data(
            TensorData::new(
                context.iter().map(|&t| t as i64).collect(),
                [1, context.len()],
            ),
            device,
        );
        model.forward(input, Mode::Eval)
    };
    let first = forward(&ids);
    let [_, seq_len, vocab_size] = first.logits.dims();
    let values = first
        .logits
        .reshape([seq_len * vocab_size])
        .into_data()
        .try_into_vec_as::<f32>()
        .expect("logits are f32");
    let logits: Vec<Vec<f32>> = values.chunks(vocab_size).map(<[f32]>::to_vec).collect();
    let dropped_fraction = first
        .routing
        .iter()
        .map(|r| r.stats.summary().dropped_fraction)
        .collect();
    let mut context = ids.clone();
    let mut next = argmax(logits.last().expect("a sequence has a token"));
    let mut continuation = Vec::with_capacity(greedy);
    for step in 0..greedy {
        continuation.push(next);
        context.push(next);
        if step + 1 < greedy {
            let out = forward(&context).logits; // [1, len, vocab_size]
            let len = context.len();
            let last = out
                .narrow(1, len - 1, 1)
                .reshape([vocab_size])
                .into_data()
                .try_into_vec_as::<f32>()
                .expect("logits are f32");
            next = argmax(&last);
        }
    }
    SequenceLogits {
        ids,
        logits,
        dropped_fraction,
        greedy: continuation,
    }
}
