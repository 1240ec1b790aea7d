//! One training session: set up data, model and optimizer (fresh or from a checkpoint), run
//! the loop with its evaluations and checkpoints, write the final files.

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use burn::tensor::{Device, Distribution, Tensor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::args::{TrainArgs, TrainSummary};
use super::report::print_summary;
use super::setup::{plan, Plan};
use super::trainer::{Trainer, TrainerParts};
use crate::backend::sync_and_check;
use crate::checkpoint::{self, TrainState};
use crate::data::{tokenizer, Dataset};
use crate::fsutil::write_atomic;
use crate::memory;
use crate::metrics::{MetricsWriter, Record};
use crate::optim::AdamW;
use crate::weights;

/// Trains as `args` say, printing progress and the summary to `out`.
pub fn run(args: &TrainArgs, out: &mut impl Write) -> anyhow::Result<TrainSummary> {
    let plan = plan(args)?;
    execute(plan, args, out)
}

/// Carries out a resolved plan; `args` gives the backend, `--quiet`, `--stop-at` and the stop
/// signal (its config-related fields were used by [`plan`]).
pub fn execute(plan: Plan, args: &TrainArgs, out: &mut impl Write) -> anyhow::Result<TrainSummary> {
    let Plan {
        config,
        run_dir,
        resume,
        notes,
        finalize_only,
    } = plan;
    for note in &notes {
        writeln!(out, "note: {note}")?;
    }
    let devices = super::data_parallel::check(args, &config)?;
    let t = config.train.clone();
    memory::check_training_fits(&config.model, t.batch_size, t.seq_len)?;
    let device = args.backend.device()?;
    let ad = device.clone().autodiff();

    let data = Dataset::load(
        &config.data,
        config.model.vocab_size,
        resume.as_ref().map(|r| r.tokenizer.clone()),
    )?;
    data.check_sizes(t.seq_len, t.batch_size)?;
    let (model, optim, state) = match &resume {
        Some(loaded) => {
            let model = checkpoint::load_model(loaded, &ad)?;
            let optim = checkpoint::load_optimizer(loaded, &t, &model, &device)?;
            checkpoint::remove_stale_temporaries(&run_dir)?;
            (model, optim, loaded.state.clone())
        }
        None => {
            std::fs::create_dir_all(&run_dir).with_context(|| {
                format!(
                    "cannot create run directory {} (is the path writable?)",
                    run_dir.display()
                )
            })?;
            write_atomic(&run_dir.join("config.toml"), config.to_toml().as_bytes())
                .with_context(|| format!("cannot write to run directory {}", run_dir.display()))?;
            tokenizer::save(&data.tokenizer, &run_dir.join("tokenizer.json"))?;
            (
                initial_model(&config, &ad),
                AdamW::new(&t),
                TrainState::fresh(),
            )
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
    let (model, world) = match devices {
        Some(n) => {
            writeln!(out, "data parallel over {n} CUDA devices (NCCL all-reduce)")?;
            let devices = super::data_parallel::devices(n)?;
            let (model, world) =
                super::world::World::start(devices, model, |m, dev| match &resume {
                    Some(loaded) => checkpoint::load_optimizer(loaded, &t, m, dev),
                    None => Ok(AdamW::new(&t)),
                })?;
            (model, Some(world))
        }
        None => (model, None),
    };
    let mut trainer = Trainer::new(TrainerParts {
        model,
        optim,
        state,
        config,
        data,
        run_dir: run_dir.clone(),
        device,
        metrics,
        peak_flops,
    });
    trainer.world = world;
    if trainer.state.step > 0 {
        trainer.restore_watch()?;
    }
    let summary = if finalize_only {
        finalize(&mut trainer)?
    } else {
        train_loop(&mut trainer, args, out)?
    };
    write_atomic(
        &run_dir.join("summary.json"),
        &serde_json::to_vec_pretty(&summary)?,
    )?;
    print_summary(&summary, out)?;
    Ok(summary)
}

/// The initial model: every parameter drawn on the host from the stream of (seed, its name)
/// (`moe_core::Init`), so a seed gives the same initial weights on every backend.
fn initial_model(
    config: &crate::run_config::RunConfig,
    ad: &Device,
) -> moe_core::SwitchTransformer {
    config.model.init(config.train.seed, ad)
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
    let mut announced = false;
    while trainer.state.step < end {
        if args.stop.is_stopped() {
            break;
        }
        let warnings = trainer.step()?;
        for w in warnings {
            bar.suspend(|| eprintln!("warning: step {}: {w}", trainer.state.step));
        }
        let step = trainer.state.step;
        bar.set_position(step as u64);
        if let Some(r) = trainer.last_train.as_ref().filter(|r| r.step == step) {
            let dropped = r.layers.iter().map(|l| l.dropped_fraction).sum::<f32>()
                / r.layers.len().max(1) as f32;
            bar.set_message(format!(
                "loss {:.3}  {:.0} tok/s  drop {:.1}%",
                r.ce,
                r.tokens_per_s,
                dropped * 100.0
            ));
        }
        if args.stop.is_stopped() && !announced {
            announced = true;
            bar.suspend(|| {
                eprintln!(
                    "\nsignal received: saving a checkpoint after step {step}, then exiting \
                     (signal again to quit at once)"
                )
            });
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

/// Writes the final weights of a run whose steps are all done, and its summary from the
/// records in `metrics.jsonl`.
fn finalize(trainer: &mut Trainer) -> anyhow::Result<TrainSummary> {
    weights::save_safetensors(
        trainer.model(),
        &trainer.config.model,
        &trainer.run_dir.join("model.safetensors"),
    )?;
    let records = crate::metrics::read_metrics(&trainer.run_dir.join("metrics.jsonl"))?;
    let (mut last_train, mut first_eval, mut last_eval) = (None, None, None);
    for r in records {
        match r {
            Record::Train(t) => last_train = Some(t),
            Record::Eval(e) => {
                first_eval.get_or_insert(e.clone());
                last_eval = Some(e);
            }
            _ => {}
        }
    }
    Ok(TrainSummary {
        run_dir: trainer.run_dir.clone(),
        steps: trainer.state.step,
        stopped_early: false,
        tokens: trainer.state.tokens,
        elapsed_s: trainer.state.elapsed_s,
        tokens_per_s: 0.0,
        last_train,
        first_eval,
        last_eval,
        data: trainer.data.info.clone(),
        peak_flops: trainer.peak_flops,
    })
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

/// Best FLOP/s of a square f32 matmul on `device`: the peak MFU is measured against when
/// `train.peak_flops` is 0.
///
/// Starts at 1024²; while one product takes under 5 ms (a GPU, where the time would be mostly
/// launch and read-back latency) the side doubles, up to 4096; if one 4096² product still takes
/// under 5 ms, products are timed in batches long enough to last about 20 ms, synchronised
/// once per batch. The best of 5 timed products (or batches) after one untimed counts. On the
/// 2-core CPU machines here a 1024² product takes about 10 ms, so nothing changes there.
pub fn measure_peak_flops(device: &Device) -> anyhow::Result<f64> {
    let product = |n: usize, reps: usize| -> anyhow::Result<f64> {
        let a = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
        let b = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
        sync_and_check(device, &a.clone().matmul(b.clone()))?; // compilation, autotuning
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let start = Instant::now();
            let mut c = a.clone().matmul(b.clone());
            for _ in 1..reps {
                c = a.clone().matmul(b.clone());
            }
            sync_and_check(device, &c)?;
            best = best.min(start.elapsed().as_secs_f64() / reps as f64);
        }
        Ok(best)
    };
    let mut n = 1024;
    let mut seconds = product(n, 1)?;
    while seconds < 5e-3 && n < 4096 {
        n *= 2;
        seconds = product(n, 1)?;
    }
    if seconds < 5e-3 {
        let reps = ((20e-3 / seconds).ceil() as usize).clamp(2, 64);
        seconds = product(n, reps)?;
    }
    Ok(2.0 * (n as f64).powi(3) / seconds)
}
