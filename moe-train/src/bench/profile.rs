//! `moe-train bench profile`: where a training step's time goes, by op family. Each family is
//! run on its own at the step's shapes (forward and backward, synced and read back), times
//! the number of such modules in the model; the whole step is timed alongside, and what the
//! families do not explain is reported as the remainder (autodiff bookkeeping, allocation,
//! gradient accumulation, clipping).

use std::io::Write;
use std::time::Instant;

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor};
use moe_core::model::{cross_entropy, FeedForward, SwitchTransformer};
use moe_core::{BalanceContext, Mode};
use serde::Serialize;

use super::step::time_steps;
use super::timing::median;
use super::BenchModelArgs;
use crate::backend::sync_and_check;
use crate::optim::AdamW;
use crate::run_config::RunConfig;

/// Arguments of `moe-train bench profile`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProfileArgs {
    /// Config, overrides and backend.
    #[command(flatten)]
    pub model: BenchModelArgs,
    /// Untimed repetitions first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed repetitions; the median is reported.
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
    /// One JSON object per family.
    #[arg(long)]
    pub json: bool,
}

/// One row of the profile.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyTime {
    /// Op family.
    pub family: String,
    /// How many such modules a step runs.
    pub count: usize,
    /// Median seconds of one module, forward + backward.
    pub each_s: f64,
    /// `count · each_s`.
    pub total_s: f64,
    /// Share of the measured step time.
    pub share: f64,
}

/// Times each family and the whole step; prints a table (or JSON lines).
pub fn run(args: &ProfileArgs, out: &mut impl Write) -> anyhow::Result<Vec<FamilyTime>> {
    anyhow::ensure!(args.iters >= 1, "--iters must be at least 1");
    let (config, device) = args.model.load()?;
    let ad = device.clone().autodiff();
    let t = &config.train;
    let model = config.model.init(t.seed, &ad);
    let [b, s, d] = [t.batch_size, t.seq_len, config.model.d_model];
    let x = Tensor::<3>::random([b, s, d], Distribution::Normal(0.0, 1.0), &ad);
    let time = |f: &mut dyn FnMut() -> Tensor<1>| -> anyhow::Result<f64> {
        let mut samples = Vec::new();
        for i in 0..args.warmup + args.iters {
            let start = Instant::now();
            let probe = f();
            sync_and_check(&ad, &probe)?;
            if i >= args.warmup {
                samples.push(start.elapsed().as_secs_f64());
            }
        }
        Ok(median(&samples))
    };
    let mut rows: Vec<(String, usize, f64)> = Vec::new();
    let block = &model.blocks[0];
    let norm = time(&mut || backward_probe(block.attn_norm.forward(x.clone()), &block.attn_norm))?;
    let norms = 2 * model.blocks.len() + 1;
    rows.push(("norms (RMSNorm/LayerNorm)".into(), norms, norm));
    let attn = time(&mut || backward_probe(block.attn.forward(x.clone()), &block.attn))?;
    rows.push((
        "attention (qkv, RoPE, scores, softmax, mix, out)".into(),
        model.blocks.len(),
        attn,
    ));
    families_of_ffns(&model, &x, &time, &mut rows)?;
    let tokens = Tensor::<2, Int>::zeros([b, s], &ad);
    let head = time(&mut || head_and_loss(&model, x.clone(), tokens.clone()))?;
    rows.push((
        "embedding + final norm + LM head + cross-entropy".into(),
        1,
        head,
    ));
    rows.push((
        "AdamW update (all parameters)".into(),
        1,
        time_optimizer(&model, &config, &ad, args)?,
    ));
    let step = median(&time_steps(&config, &device, args.warmup, args.iters)?.timed);
    report(args, out, &config, rows, step)
}

/// Sum of the output times fixed weights, backpropagated to `module`'s parameters.
fn backward_probe<const D: usize, M: Module>(y: Tensor<D>, module: &M) -> Tensor<1> {
    let w = y.clone().detach().mul_scalar(0.0).add_scalar(0.5);
    let loss = (y * w).sum();
    let grads = GradientsParams::from_grads(loss.clone().backward(), module);
    drop(grads);
    loss.detach()
}

fn families_of_ffns(
    model: &SwitchTransformer,
    x: &Tensor<3>,
    time: &dyn Fn(&mut dyn FnMut() -> Tensor<1>) -> anyhow::Result<f64>,
    rows: &mut Vec<(String, usize, f64)>,
) -> anyhow::Result<()> {
    let dense: Vec<_> = model
        .blocks
        .iter()
        .filter_map(|b| match &b.ffn {
            FeedForward::Dense(f) => Some(f),
            FeedForward::Switch(_) => None,
        })
        .collect();
    if let Some(ffn) = dense.first() {
        let each = time(&mut || backward_probe(ffn.forward(x.clone(), Mode::Train), *ffn))?;
        rows.push(("dense FFN".into(), dense.len(), each));
    }
    let sparse: Vec<_> = model.switch_layers().collect();
    if let Some(layer) = sparse.first() {
        let [b, s, d] = x.dims();
        let tokens = x.clone().reshape([b * s, d]);
        let whole =
            time(&mut || backward_probe(layer.forward(x.clone(), Mode::Train).hidden, *layer))?;
        // Router, plan, dispatch and combine with identity experts: the routing overhead.
        let routing = time(&mut || {
            let route = layer.router.forward(tokens.clone(), Mode::Train);
            let out = layer.forward_routed(
                tokens.clone(),
                route,
                Mode::Train,
                &BalanceContext::default(),
                |h| h,
            );
            backward_probe(
                out.hidden + out.balance_loss.unsqueeze_dim(0),
                &layer.router,
            )
        })?;
        rows.push((
            "switch: router + plan + dispatch + combine + losses".into(),
            sparse.len(),
            routing,
        ));
        rows.push((
            // On flex the layer's experts are one fused op that dispatches and combines itself,
            // so this row is that op minus the generic dispatch + combine counted above.
            "switch: experts (the whole layer minus the row above)".into(),
            sparse.len(),
            (whole - routing).max(0.0),
        ));
    }
    Ok(())
}

fn head_and_loss(model: &SwitchTransformer, x: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    let [b, s, d] = x.dims();
    let embedded = model
        .embedding
        .val()
        .select(0, targets.clone().reshape([b * s]))
        .reshape([b, s, d]);
    let h = model.final_norm.forward(x + embedded);
    let ce = cross_entropy(model.lm_logits(h), targets);
    let grads = GradientsParams::from_grads(ce.clone().backward(), model);
    drop(grads);
    ce.detach()
}

fn time_optimizer(
    model: &SwitchTransformer,
    config: &RunConfig,
    ad: &Device,
    args: &ProfileArgs,
) -> anyhow::Result<f64> {
    let mut optim = AdamW::new(&config.train);
    let mut model = model.clone();
    let mut samples = Vec::new();
    for i in 0..args.warmup + args.iters {
        // Gradients of a cheap loss touching every parameter (not timed).
        let loss = param_sum(&model);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        ad.sync().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let start = Instant::now();
        model = optim.step(model, grads, 1e-3, None);
        sync_and_check(ad, &model.embedding.val())?;
        if i >= args.warmup {
            samples.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(median(&samples))
}

/// Σ over all parameters of Σ p² (a loss whose gradient reaches every parameter).
fn param_sum(model: &SwitchTransformer) -> Tensor<1> {
    struct Sum(Option<Tensor<1>>);
    impl burn::module::ModuleVisitor for Sum {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if !p.is_require_grad() {
                return;
            }
            let s = (p.val() * p.val()).sum();
            self.0 = Some(match self.0.take() {
                Some(a) => a + s,
                None => s,
            });
        }
    }
    let mut sum = Sum(None);
    model.visit(&mut sum);
    sum.0.expect("a model has parameters")
}

fn report(
    args: &ProfileArgs,
    out: &mut impl Write,
    config: &RunConfig,
    rows: Vec<(String, usize, f64)>,
    step: f64,
) -> anyhow::Result<Vec<FamilyTime>> {
    let mut families: Vec<FamilyTime> = rows
        .into_iter()
        .map(|(family, count, each_s)| FamilyTime {
            total_s: count as f64 * each_s,
            share: count as f64 * each_s / step,
            family,
            count,
            each_s,
        })
        .collect();
    let explained: f64 = families.iter().map(|f| f.total_s).sum();
    families.push(FamilyTime {
        family: "whole step (forward, backward, clipping, AdamW)".into(),
        count: 1,
        each_s: step,
        total_s: step,
        share: 1.0,
    });
    families.push(FamilyTime {
        family: "remainder (step − families)".into(),
        count: 1,
        each_s: step - explained,
        total_s: step - explained,
        share: (step - explained) / step,
    });
    if args.json {
        for f in &families {
            writeln!(out, "{}", serde_json::to_string(f)?)?;
        }
        return Ok(families);
    }
    let t = &config.train;
    writeln!(
        out,
        "profile of one training step: batch {} × {} tokens, {} (median of {} after {} warm-up)",
        t.batch_size, t.seq_len, args.model.backend, args.iters, args.warmup
    )?;
    writeln!(
        out,
        "| op family (forward + backward) | count | each ms | total ms | share |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|")?;
    for f in &families {
        writeln!(
            out,
            "| {} | {} | {:.2} | {:.2} | {:.1} % |",
            f.family,
            f.count,
            f.each_s * 1e3,
            f.total_s * 1e3,
            f.share * 100.0
        )?;
    }
    Ok(families)
}
