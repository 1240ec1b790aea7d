//! `moe-train generate`: sample text from a checkpoint.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::{Int, Tensor, TensorData};
use moe_core::Mode;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::backend::Backend;
use crate::checkpoint;
use crate::data::tokenizer;

/// `moe-train generate` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// Run directory (its latest checkpoint) or a checkpoint folder.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Use the run's best checkpoint instead of its latest.
    #[arg(long)]
    pub best: bool,
    /// Text to continue; empty starts a new document.
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 100)]
    pub max_tokens: usize,
    /// Softmax temperature; 0 picks the most likely token.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    /// Sample among the k most likely tokens (0 = all).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Keep going after `<eos>`.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = Backend::DEFAULT)]
    pub backend: Backend,
}

/// Samples a continuation of the prompt; prints and returns prompt + continuation.
pub fn run(args: &GenerateArgs, out: &mut impl Write) -> anyhow::Result<String> {
    anyhow::ensure!(
        args.temperature >= 0.0 && args.temperature.is_finite(),
        "--temperature {}: must be ≥ 0",
        args.temperature
    );
    let loaded = checkpoint::load(&checkpoint::resolve(&args.run, args.best)?)?;
    let device = args.backend.device()?;
    let model = checkpoint::load_model(&loaded, &device)?;
    let tok = &loaded.tokenizer;
    let eos = tokenizer::eos_id(tok);
    let mut ids: Vec<u32> = tok
        .encode(args.prompt.as_str(), false)
        .map_err(|e| anyhow::anyhow!("cannot encode the prompt: {e}"))?
        .get_ids()
        .to_vec();
    // An empty prompt starts a new document: condition on `<eos>` (not shown).
    let shown_from = usize::from(ids.is_empty());
    if ids.is_empty() {
        ids.push(eos);
    }
    let max_len = loaded.config.model.max_seq_len;
    let mut rng = StdRng::seed_from_u64(args.seed);
    for _ in 0..args.max_tokens {
        let context = &ids[ids.len().saturating_sub(max_len)..];
        let input: Tensor<2, Int> = Tensor::from_data(
            TensorData::new(
                context.iter().map(|&t| t as i64).collect(),
                [1, context.len()],
            ),
            &device,
        );
        let logits = model.forward(input, Mode::Eval).logits; // [1, len, vocab_size]
        let [_, len, vocab] = logits.dims();
        let last: Vec<f32> = logits
            .narrow(1, len - 1, 1)
            .reshape([vocab])
            .into_data()
            .try_into_vec_as::<f32>()
            .context("logits are f32")?;
        let next = sample(&last, args.temperature, args.top_k, &mut rng);
        ids.push(next);
        if next == eos && !args.ignore_eos {
            break;
        }
    }
    // Decode prompt and continuation together so word-level and byte-level tokenizers both
    // join them correctly.
    let text = tok
        .decode(&ids[shown_from..], false)
        .map_err(|e| anyhow::anyhow!("cannot decode: {e}"))?;
    writeln!(out, "{text}")?;
    Ok(text)
}

/// The most likely token: the largest logit, the lowest id among equal ones (as `argmax` in
/// PyTorch and transformers' greedy search).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in logits.iter().enumerate() {
        if v.total_cmp(&logits[best]).is_gt() {
            best = i;
        }
    }
    best as u32
}

/// Draws a token from `logits` at `temperature` among the `top_k` most likely (0 = all);
/// temperature 0 is the [`argmax`].
pub fn sample(logits: &[f32], temperature: f64, top_k: usize, rng: &mut StdRng) -> u32 {
    if temperature == 0.0 {
        return argmax(logits);
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    let k = if top_k == 0 {
        order.len()
    } else {
        top_k.min(order.len())
    };
    let top = &order[..k];
    let max = logits[top[0]] as f64;
    let weights: Vec<f64> = top
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (&i, w) in top.iter().zip(&weights) {
        if u < *w {
            return i as u32;
        }
        u -= w;
    }
    top[k - 1] as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_respects_top_k_temperature_and_argmax() {
        let logits = [0.0, 3.0, 1.0, 2.9];
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(sample(&logits, 0.0, 0, &mut rng), 1);
        assert_eq!(
            argmax(&[1.0, 5.0, 5.0, -2.0]),
            1,
            "lowest id among equal logits"
        );
        for _ in 0..200 {
            let t = sample(&logits, 1.0, 2, &mut rng);
            assert!(t == 1 || t == 3, "top-2 only: {t}");
        }
        // At a tiny temperature the argmax wins; at temperature 1 frequencies follow softmax.
        assert!((0..50).all(|_| sample(&logits, 1e-3, 0, &mut rng) == 1));
        let n = 20_000;
        let ones = (0..n)
            .filter(|_| sample(&logits, 1.0, 0, &mut rng) == 1)
            .count();
        let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        let p = 3f64.exp() / z;
        assert!(
            (ones as f64 / n as f64 - p).abs() < 0.015,
            "{ones} vs p {p}"
        );
    }
}
