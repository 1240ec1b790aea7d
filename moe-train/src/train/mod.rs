//! `moe-train train`: data, model, loop, metrics, checkpoints, summary.

mod setup;
mod trainer;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use burn::tensor::{Device, Distribution, Tensor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

pub use setup::{check_fresh_run_dir, plan, Plan};
pub use trainer::{step_seed, train_step, StepOutput, Trainer};

use crate::backend::{sync_and_check, Backend};
use crate::checkpoint::{self, TrainState};
use crate::data::{tokenizer, Dataset};
use crate::fsutil::write_atomic;
use crate::metrics::{EvalRecord, MetricsWriter, Record, TrainRecord};
use crate::optim::AdamW;
use crate::weights;

/// `moe-train train` arguments.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrainArgs {
    /// Run config: model keys plus optional [train] and [data] tables (docs/training.md).
    /// Default: configs/tiny.toml, built in.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Override a config key, e.g. `--set train.lr=1e-3 --set switch.num_experts=16`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = Backend::DEFAULT)]
    pub backend: Backend,
    /// Run directory (default: runs/<config>-<UTC time>); must be new or empty.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Text to train on: .txt / .jsonl files, directories, globs. Default: the built-in corpus.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub data: Vec<String>,
    /// Continue the run in DIR from its latest checkpoint (bit-identical on CPU).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Seed (same as --set train.seed=N).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop after this step with a checkpoint, without changing the schedule; continue later
    /// with --resume.
    #[arg(long, value_name = "STEP")]
    pub stop_at: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// What a finished (or interrupted) run reports; also written to `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Steps done.
    pub steps: usize,
    /// Whether Ctrl-C (or `--stop-at`) ended the session before `train.steps`.
    pub stopped_early: bool,
    /// Training tokens consumed.
    pub tokens: u64,
    /// Seconds of training (all sessions).
    pub elapsed_s: f64,
    /// Mean training tokens/s over this session's steps.
    pub tokens_per_s: f64,
    /// Last logged training step.
    pub last_train: Option<TrainRecord>,
    /// First and last evaluation of this session.
    pub first_eval: Option<EvalRecord>,
    /// Final evaluation.
    pub last_eval: Option<EvalRecord>,
    /// Data summary.
    pub data: crate::data::DatasetInfo,
    /// Peak FLOP/s used for MFU.
    pub peak_flops: f64,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler once: the first Ctrl-C asks the loop to checkpoint and stop;
/// a second one exits at once.
fn install_interrupt_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond interrupt: exiting without a checkpoint");
                std::process::exit(130);
            }
            eprintln!("\ninterrupt: finishing the current step, then saving a checkpoint (Ctrl-C again to quit now)");
        });
    });
}

/// Trains as `args` say, printing progress and the summary to `out`.
pub fn run(args: &TrainArgs, out: &mut impl Write) -> anyhow::Result<TrainSummary> {
    let plan = plan(args)?;
    execute(plan, args, out)
}

/// Carries out a resolved plan; `args` gives the backend, `--quiet` and `--stop-at` (its
/// config-related fields were used by [`plan`]).
pub fn execute(plan: Plan, args: &TrainArgs, out: &mut impl Write) -> anyhow::Result<TrainSummary> {
    install_interrupt_handler();
    INTERRUPTED.store(false, Ordering::SeqCst);
    let Plan {
        config,
        run_dir,
        resume,
        notes,
    } = plan;
    for note in &notes {
        writeln!(out, "note: {note}")?;
    }
    let device = args.backend.device()?;
    let ad = device.clone().autodiff();
    let t = config.train.clone();

    let data = Dataset::load(
        &config.data,
        config.model.vocab_size,
        resume.as_ref().map(|r| r.tokenizer.clone()),
    )?;
    data.check_sizes(t.seq_len, t.batch_size)?;
    let (model, optim, state) = match &resume {
        Some(loaded) => (
            checkpoint::load_model(loaded, &ad)?,
            checkpoint::load_optimizer(loaded, &t, &device)?,
            loaded.state.clone(),
        ),
        None => {
            write_atomic(&run_dir.join("config.toml"), config.to_toml().as_bytes())
                .with_context(|| format!("cannot write to run directory {}", run_dir.display()))?;
            tokenizer::save(&data.tokenizer, &run_dir.join("tokenizer.json"))?;
            (initial_model(&config, &ad), AdamW::new(&t), fresh_state())
        }
    };
    let (peak_flops, peak_measured) = match t.peak_flops {
        p if p > 0.0 => (p, false),
        _ => (measure_peak_flops(&device)?, true),
    };
    let mut metrics = MetricsWriter::open(&run_dir.join("metrics.jsonl"))?;
    let accounting = config.model.accounting(t.batch_size, t.seq_len);
    metrics.write(&Record::Run {
        start_step: state.step,
        backend: args.backend.name().into(),
        peak_flops,
        peak_measured,
        train_flops_per_token: accounting.train_flops_per_token,
        total_params: accounting.total_params,
        active_params: accounting.active_params,
    })?;
    writeln!(
        out,
        "training {} ({:.2} M params, {:.2} M active) on {} for {} steps from step {} → {}",
        if config.model.num_sparse_layers() > 0 {
            "switch model"
        } else {
            "dense model"
        },
        accounting.total_params as f64 / 1e6,
        accounting.active_params as f64 / 1e6,
        args.backend,
        t.steps,
        state.step,
        run_dir.display()
    )?;
    let mut trainer = Trainer::new(
        model,
        optim,
        state,
        config,
        data,
        run_dir.clone(),
        device,
        metrics,
        peak_flops,
    );
    let summary = train_loop(&mut trainer, args, out)?;
    write_atomic(
        &run_dir.join("summary.json"),
        &serde_json::to_vec_pretty(&summary)?,
    )?;
    print_summary(&summary, out)?;
    Ok(summary)
}

fn fresh_state() -> TrainState {
    TrainState {
        step: 0,
        position: 0,
        tokens: 0,
        elapsed_s: 0.0,
        best: None,
    }
}

/// The initial model: built on the CPU from the seed and copied to the training device, so a
/// seed gives the same initial weights on every backend.
fn initial_model(
    config: &crate::run_config::RunConfig,
    ad: &Device,
) -> moe_core::SwitchTransformer {
    let cpu = Backend::ALL
        .into_iter()
        .filter(|b| *b != Backend::Wgpu)
        .find_map(|b| b.device().ok())
        .unwrap_or_else(|| ad.clone());
    cpu.seed(config.train.seed);
    let model = config.model.init(&cpu);
    weights::copy_to_device(&model, &config.model, ad)
}

fn train_loop(
    trainer: &mut Trainer,
    args: &TrainArgs,
    out: &mut impl Write,
) -> anyhow::Result<TrainSummary> {
    let t = trainer.config.train.clone();
    let start_step = trainer.state.step;
    let end = args
        .stop_at
        .map_or(t.steps, |s| s.clamp(start_step + 1, t.steps));
    let bar = progress_bar(args.quiet, t.steps as u64, start_step as u64);
    let started = (Instant::now(), trainer.state.tokens);
    let mut first_eval = None;
    if start_step == 0 {
        first_eval = Some(trainer.evaluate()?);
    }
    while trainer.state.step < end {
        if INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
        let warnings = trainer.step()?;
        for w in warnings {
            bar.suspend(|| eprintln!("warning: step {}: {w}", trainer.state.step));
        }
        let step = trainer.state.step;
        bar.set_position(step as u64);
        if let Some(r) = &trainer.last_train {
            if r.step == step {
                let dropped = r.layers.iter().map(|l| l.dropped_fraction).sum::<f32>()
                    / r.layers.len().max(1) as f32;
                bar.set_message(format!(
                    "loss {:.3}  {:.0} tok/s  drop {:.1}%",
                    r.ce,
                    r.tokens_per_s,
                    dropped * 100.0
                ));
            }
        }
        let eval_due = t.eval_every > 0 && step.is_multiple_of(t.eval_every);
        if eval_due || step == t.steps {
            let record = trainer.evaluate()?;
            bar.suspend(|| {
                eprintln!(
                    "step {step}: val ce {:.4} (ppl {:.2}, acc {:.3})",
                    record.ce, record.perplexity, record.accuracy
                )
            });
            first_eval.get_or_insert(record);
        }
        if (t.checkpoint_every > 0 && step.is_multiple_of(t.checkpoint_every)) || step == t.steps {
            trainer.checkpoint()?;
        }
    }
    bar.finish_and_clear();
    let stopped_early = trainer.state.step < t.steps;
    if stopped_early && trainer.state.step > start_step {
        let dir = trainer.checkpoint()?;
        writeln!(
            out,
            "stopped after step {}; checkpoint {} — continue with: moe-train train --resume {}",
            trainer.state.step,
            dir.display(),
            trainer.run_dir.display()
        )?;
    }
    if !stopped_early {
        weights::save_safetensors(
            trainer.model(),
            &trainer.config.model,
            &trainer.run_dir.join("model.safetensors"),
        )?;
    }
    let secs = started.0.elapsed().as_secs_f64().max(1e-9);
    Ok(TrainSummary {
        run_dir: trainer.run_dir.clone(),
        steps: trainer.state.step,
        stopped_early,
        tokens: trainer.state.tokens,
        elapsed_s: trainer.elapsed(),
        tokens_per_s: (trainer.state.tokens - started.1) as f64 / secs,
        last_train: trainer.last_train.clone(),
        first_eval,
        last_eval: trainer.last_eval.clone(),
        data: trainer.data.info.clone(),
        peak_flops: trainer.peak_flops,
    })
}

/// Whether the last session was ended by Ctrl-C.
pub fn was_interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn progress_bar(quiet: bool, len: u64, pos: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(len),
        if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{bar:30} step {pos}/{len}  {msg}  ETA {eta}")
            .expect("the template is valid"),
    );
    bar.set_position(pos);
    bar
}

/// Best FLOP/s of a 1024² f32 matmul on `device` (5 timed runs after 2 warm-ups): the peak
/// MFU is measured against when `train.peak_flops` is 0.
pub fn measure_peak_flops(device: &Device) -> anyhow::Result<f64> {
    let n = 1024;
    let a = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
    let b = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
    let mut best = f64::INFINITY;
    for i in 0..7 {
        let start = Instant::now();
        let c = a.clone().matmul(b.clone());
        sync_and_check(device, &c)?;
        if i >= 2 {
            best = best.min(start.elapsed().as_secs_f64());
        }
    }
    Ok(2.0 * (n as f64).powi(3) / best)
}

fn print_summary(s: &TrainSummary, out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(out, "\n== summary ==")?;
    writeln!(
        out,
        "steps {}{}, {:.2} M tokens in {:.0} s ({:.0} tokens/s this session)",
        s.steps,
        if s.stopped_early {
            " (stopped early)"
        } else {
            ""
        },
        s.tokens as f64 / 1e6,
        s.elapsed_s,
        s.tokens_per_s
    )?;
    if let Some(r) = &s.last_train {
        writeln!(
            out,
            "train: ce {:.4}, balance {:.4}, z {:.3}, grad norm {:.3}, MFU {:.1}% of {:.1} GFLOP/s",
            r.ce,
            r.balance_loss,
            r.z_loss,
            r.grad_norm,
            r.mfu * 100.0,
            s.peak_flops / 1e9
        )?;
        for l in &r.layers {
            let load: Vec<String> = l.load.iter().map(|x| format!("{:.2}", x)).collect();
            writeln!(
                out,
                "  layer {}: dropped {:.1}%, load [{}], dead {}",
                l.layer,
                l.dropped_fraction * 100.0,
                load.join(" "),
                l.dead_experts
            )?;
        }
    }
    if let Some(e) = &s.last_eval {
        let first = s.first_eval.as_ref().filter(|f| f.step != e.step);
        writeln!(
            out,
            "val: ce {:.4} (ppl {:.2}){}, accuracy {:.3}, ECE {:.3}{}",
            e.ce,
            e.perplexity,
            first
                .map(|f| format!(" from {:.4} at step {}", f.ce, f.step))
                .unwrap_or_default(),
            e.accuracy,
            e.ece,
            e.floor
                .map(|f| format!(", entropy floor {f:.4} (gap {:.4})", e.ce - f))
                .unwrap_or_default()
        )?;
        for d in &e.domains {
            writeln!(
                out,
                "  {:<10} ce {:.4}  floor {:.4}  accuracy {:.3}  ({} tokens)",
                d.domain, d.ce, d.floor, d.accuracy, d.tokens
            )?;
        }
        for r in &e.routing {
            if r.counts.is_empty() {
                continue;
            }
            writeln!(
                out,
                "  layer {} top expert per domain (share of the domain's tokens):",
                r.layer
            )?;
            for (d, counts) in e.domains.iter().zip(&r.counts) {
                let total: u64 = counts.iter().sum();
                let (best, n) = counts
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, c)| **c)
                    .unwrap_or((0, &0));
                writeln!(
                    out,
                    "    {:<10} expert {best} ({:.0}%)",
                    d.domain,
                    *n as f64 * 100.0 / total.max(1) as f64
                )?;
            }
        }
    }
    writeln!(out, "run directory: {}", s.run_dir.display())?;
    if !s.stopped_early {
        writeln!(
            out,
            "next: moe-train eval --run {0}   |   moe-train generate --run {0} --prompt \"…\"",
            s.run_dir.display()
        )?;
    }
    Ok(())
}
