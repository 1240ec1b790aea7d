//! `moe-train bench step`: whole training steps (forward, backward, clipping, AdamW) of a model
//! and its FLOP-matched dense twin, measured side by side in one run.

use std::io::Write;
use std::time::Instant;

use serde::Serialize;

use super::timing::median;
use super::BenchModelArgs;
use crate::backend::sync_and_check;
use crate::data::batches::make_batch;
use crate::data::{corpus, TokenSplit};
use crate::optim::AdamW;
use crate::run_config::RunConfig;
use crate::train::{measure_peak_flops, train_step};

/// Arguments of `moe-train bench step`.
#[derive(Debug, Clone, clap::Args)]
pub struct StepBenchArgs {
    /// Config, overrides and backend.
    #[command(flatten)]
    pub model: BenchModelArgs,
    /// Untimed steps first (kernel compilation, allocator warm-up).
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Timed steps; the median is reported.
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
    /// Peak FLOP/s for MFU (default: measured, as in `train`).
    #[arg(long)]
    pub peak_flops: Option<f64>,
    /// One JSON object per model.
    #[arg(long)]
    pub json: bool,
}

/// One measured model.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// `switch` or `dense-twin`.
    pub model: String,
    /// Experts per sparse layer (0 for dense).
    pub num_experts: usize,
    /// Tokens per step (`batch_size · seq_len · grad_accum`).
    pub tokens_per_step: usize,
    /// Median step time, seconds.
    pub median_s: f64,
    /// Fastest step, seconds.
    pub min_s: f64,
    /// The first (untimed) step, seconds: on wgpu mostly kernel compilation and autotuning
    /// (cubecl's `CUBECL_AUTOTUNE_LEVEL` sets how much tuning; README "GPU").
    pub first_step_s: f64,
    /// `tokens_per_step / median_s`.
    pub tokens_per_s: f64,
    /// Training FLOPs per token (docs/accounting.md).
    pub train_flops_per_token: u64,
    /// `train_flops_per_token · tokens_per_s / peak_flops`.
    pub mfu: f64,
    /// This model's median over the dense twin's.
    pub vs_dense: f64,
    /// Backend.
    pub backend: String,
}

/// Measures the model and its dense twin; prints a table (or JSON lines).
pub fn run(args: &StepBenchArgs, out: &mut impl Write) -> anyhow::Result<Vec<StepResult>> {
    anyhow::ensure!(args.iters >= 1, "--iters must be at least 1");
    if let Some(p) = args.peak_flops {
        anyhow::ensure!(
            p.is_finite() && p > 0.0,
            "--peak-flops {p}: must be a positive FLOP/s figure (e.g. 2e11), or left out to measure it"
        );
    }
    let (config, device) = args.model.load()?;
    let peak = match args.peak_flops {
        Some(p) => p,
        None => measure_peak_flops(&device)?,
    };
    let models = [
        ("switch", config.clone()),
        (
            "dense-twin",
            RunConfig {
                model: config.model.dense_twin(),
                ..config.clone()
            },
        ),
    ];
    let mut results = Vec::new();
    for (name, config) in models {
        let StepTimes {
            first_s,
            timed: samples,
        } = time_steps(&config, &device, args.warmup, args.iters)?;
        let t = &config.train;
        let tokens_per_step = t.batch_size * t.seq_len * t.grad_accum;
        let median_s = median(&samples);
        let flops = config
            .model
            .accounting(t.batch_size, t.seq_len)
            .train_flops_per_token;
        let tokens_per_s = tokens_per_step as f64 / median_s;
        results.push(StepResult {
            model: name.into(),
            num_experts: if config.model.num_sparse_layers() > 0 {
                config.model.switch.num_experts
            } else {
                0
            },
            tokens_per_step,
            median_s,
            min_s: samples.iter().cloned().fold(f64::INFINITY, f64::min),
            first_step_s: first_s,
            tokens_per_s,
            train_flops_per_token: flops,
            mfu: flops as f64 * tokens_per_s / peak,
            vs_dense: 0.0,
            backend: args.model.backend.name().into(),
        });
    }
    let dense = results[1].median_s;
    for r in &mut results {
        r.vs_dense = r.median_s / dense;
    }
    if args.json {
        for r in &results {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
    } else {
        writeln!(
            out,
            "{} steps of {} tokens after {} warm-up, {} (peak {:.1} GFLOP/s)",
            args.iters,
            results[0].tokens_per_step,
            args.warmup,
            args.model.backend,
            peak / 1e9
        )?;
        writeln!(
            out,
            "| model | experts | median ms | min ms | tokens/s | MFU | vs dense | first step s |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
        for r in &results {
            writeln!(
                out,
                "| {} | {} | {:.2} | {:.2} | {:.0} | {:.1} % | {:.3}× | {:.2} |",
                r.model,
                r.num_experts,
                r.median_s * 1e3,
                r.min_s * 1e3,
                r.tokens_per_s,
                r.mfu * 100.0,
                r.vs_dense,
                r.first_step_s
            )?;
        }
    }
    Ok(results)
}

/// What [`time_steps`] measured.
pub struct StepTimes {
    /// Seconds of the very first step (timed or not): compilation, autotuning, first allocations.
    pub first_s: f64,
    /// Seconds of each timed step after the warm-up.
    pub timed: Vec<f64>,
}

/// Seconds of each of `iters` training steps after `warmup` untimed ones, on fixed batches
/// of the built-in corpus; each step ends with a device sync and read-back of its loss.
pub fn time_steps(
    config: &RunConfig,
    device: &burn::tensor::Device,
    warmup: usize,
    iters: usize,
) -> anyhow::Result<StepTimes> {
    let t = &config.train;
    let ad = device.clone().autodiff();
    ad.seed(t.seed);
    let window = t.seq_len + 1;
    let stream = corpus::generate(t.seed, window * t.batch_size * t.grad_accum + 1);
    let split = TokenSplit {
        tokens: stream.tokens,
        ..Default::default()
    };
    let mut model = config.model.init(t.seed, &ad);
    let mut optim = AdamW::new(t);
    let mut samples = Vec::with_capacity(iters);
    let mut first_s = 0.0;
    for i in 0..warmup + iters {
        let batches = (0..t.grad_accum)
            .map(|m| {
                let starts = (0..t.batch_size)
                    .map(|b| (m * t.batch_size + b) * t.seq_len)
                    .collect();
                make_batch(&split, starts, t.seq_len, &ad)
            })
            .collect();
        let start = Instant::now();
        let (next, out) = train_step(model, &mut optim, batches, t, t.lr, || ());
        model = next;
        let [loss, ..] = out.parts;
        sync_and_check(&ad, &loss)?;
        let seconds = start.elapsed().as_secs_f64();
        if i == 0 {
            first_s = seconds;
        }
        if i >= warmup {
            samples.push(seconds);
        }
    }
    Ok(StepTimes {
        first_s,
        timed: samples,
    })
}
