//! `moe-train sweep`: train a dense twin and switch variants on the same data, order, seeds and
//! budget at equal FLOPs per token, then report loss against steps, tokens, wall-clock and
//! FLOPs, and the speedup of each switch model to the dense model's final loss.

pub mod plan;
mod results;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

pub use plan::{check_flop_parity, variants, Grid, Kind, PolicyVariant, SweepFile, Variant};
pub use results::collect;

use crate::backend::Backend;
use crate::fsutil::write_atomic;
use crate::train::{self, Plan, TrainArgs};

/// `moe-train sweep` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct SweepArgs {
    /// Sweep file (`configs/sweep-quick.toml`, `configs/sweep-text.toml`; docs/sweep.md).
    #[arg(long, value_name = "FILE.toml")]
    pub config: PathBuf,
    /// Sweep directory (default: runs/<sweep name>); re-running skips finished variants.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Text data for every variant (overrides the sweep file's `data`).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub data: Vec<String>,
    /// Backend.
    #[arg(long, value_enum, default_value_t = Backend::DEFAULT)]
    pub backend: Backend,
    /// Only (re)write the report from the finished variants.
    #[arg(long)]
    pub report_only: bool,
    /// Show each variant's progress bar.
    #[arg(long)]
    pub progress: bool,
    /// Stops the sweep after the current variant's step, with a checkpoint.
    #[arg(skip)]
    pub stop: crate::train::StopSignal,
}

/// What happened to one variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It had finished in an earlier invocation.
    Skipped,
    /// Trained from scratch.
    Trained,
    /// Continued from its checkpoint.
    Resumed,
}

/// Runs the sweep; returns each variant's outcome (empty when interrupted).
pub fn run(args: &SweepArgs, out: &mut impl Write) -> anyhow::Result<Vec<(String, Outcome)>> {
    let sweep = plan::load(&args.config)?;
    let variants = plan::variants(&sweep, &args.config, &args.data)?;
    plan::check_flop_parity(&variants)?;
    let dir = args.out.clone().unwrap_or_else(|| {
        let stem = args
            .config
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned());
        PathBuf::from("runs").join(stem.unwrap_or_else(|| "sweep".into()))
    });
    claim_dir(&dir, &variants)?;
    let mut outcomes = Vec::new();
    for v in &variants {
        let run_dir = dir.join(&v.name);
        let outcome = if args.report_only {
            Outcome::Skipped
        } else {
            train_variant(v, &run_dir, args, out)?
        };
        if args.stop.is_stopped() {
            writeln!(
                out,
                "sweep interrupted during {}; run the same command again to continue",
                v.name
            )?;
            return Ok(Vec::new());
        }
        outcomes.push((v.name.clone(), outcome));
    }
    let results = collect(&dir, &variants)?;
    let meta = moe_report::ReportMeta {
        title: format!("Dense vs switch: {}", args.config.display()),
        command: command_line(args),
        machine: machine(args.backend),
        data: describe_data(&variants[0]),
        budget: describe_budget(&sweep, &variants),
        notes: notes(&variants),
    };
    let options = moe_report::ReportOptions {
        baseline: sweep.grid.as_ref().map(|_| grid_baseline(&variants)),
        flops_basis: moe_report::FlopsBasis::Executed,
        ..Default::default()
    };
    moe_report::write_report_with(&dir, &results, &meta, &options)?;
    writeln!(out, "report: {}", dir.join("report.md").display())?;
    Ok(outcomes)
}

/// Creates the sweep directory, or checks that it holds this same sweep (`sweep-plan.toml`).
fn claim_dir(dir: &Path, variants: &[Variant]) -> anyhow::Result<()> {
    let mut plan = String::new();
    for v in variants {
        plan.push_str(&format!("# variant {}\n{}\n", v.name, v.config.to_toml()));
    }
    let path = dir.join("sweep-plan.toml");
    if dir.exists() {
        match std::fs::read_to_string(&path) {
            Ok(existing) if existing == plan => return Ok(()),
            Ok(_) => anyhow::bail!(
                "{} holds a different sweep (its sweep-plan.toml differs); choose another --out",
                dir.display()
            ),
            Err(_) if std::fs::read_dir(dir)?.next().is_some() => anyhow::bail!(
                "{} is not empty and holds no sweep; choose another --out",
                dir.display()
            ),
            Err(_) => {}
        }
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create sweep directory {}", dir.display()))?;
    write_atomic(&path, plan.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

/// Trains one variant unless it finished before; continues it from its checkpoint if a
/// previous invocation was interrupted.
fn train_variant(
    v: &Variant,
    run_dir: &Path,
    args: &SweepArgs,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    if results::finished(run_dir, v.config.train.steps) {
        writeln!(out, "{}: finished earlier, skipped", v.name)?;
        return Ok(Outcome::Skipped);
    }
    let resume = crate::checkpoint::resolve(run_dir, false).ok();
    let (plan, outcome) = match resume {
        Some(dir) => {
            let loaded = crate::checkpoint::load(&dir)?;
            writeln!(out, "{}: resuming from step {}", v.name, loaded.state.step)?;
            (
                Plan {
                    config: v.config.clone(),
                    run_dir: run_dir.into(),
                    resume: Some(loaded),
                    notes: Vec::new(),
                    finalize_only: false,
                },
                Outcome::Resumed,
            )
        }
        None => {
            // New, or started but never checkpointed (then it restarts in place; nothing is
            // deleted).
            train::check_fresh_run_dir(run_dir)?;
            writeln!(out, "{}: training {} steps", v.name, v.config.train.steps)?;
            (
                Plan {
                    config: v.config.clone(),
                    run_dir: run_dir.into(),
                    resume: None,
                    notes: Vec::new(),
                    finalize_only: false,
                },
                Outcome::Trained,
            )
        }
    };
    let train_args = TrainArgs {
        backend: args.backend,
        quiet: !args.progress,
        stop: args.stop.clone(),
        ..TrainArgs::default()
    };
    let mut log = Vec::new();
    train::execute(plan, &train_args, &mut log)?;
    std::fs::write(run_dir.join("train.log"), &log)?;
    Ok(outcome)
}

fn command_line(args: &SweepArgs) -> String {
    let mut cmd = format!(
        "moe-train sweep --config {} --backend {}",
        args.config.display(),
        args.backend
    );
    if !args.data.is_empty() {
        cmd.push_str(&format!(" --data {}", args.data.join(" ")));
    }
    cmd
}

fn machine(backend: Backend) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{cores} × {cpu}, backend {backend}")
}

fn describe_data(v: &Variant) -> String {
    let d = &v.config.data;
    if d.paths.is_empty() {
        format!(
            "built-in corpus ({} train tokens, seed {})",
            d.builtin_train_tokens, d.corpus_seed
        )
    } else {
        format!(
            "{} (byte-level BPE, vocab {})",
            d.paths.join(" "),
            v.config.model.vocab_size
        )
    }
}

/// The speedup baseline of a grid: the widest dense model with the largest budget.
fn grid_baseline(variants: &[Variant]) -> String {
    variants
        .iter()
        .filter(|v| v.kind == Kind::Dense)
        .max_by_key(|v| (v.config.model.d_model, v.config.train.steps))
        .map(|v| v.name.clone())
        .unwrap_or_default()
}

fn describe_budget(sweep: &SweepFile, variants: &[Variant]) -> String {
    if let Some(grid) = &sweep.grid {
        let t = &variants[0].config.train;
        return format!(
            "a grid of {} widths × {} expert counts × {} token budgets ({:?} tokens), batches of \
             {} × {}, evaluated every {} steps on {} validation batches",
            grid.d_model.len(),
            grid.experts.len(),
            grid.tokens.len(),
            grid.tokens,
            t.batch_size,
            t.seq_len,
            t.eval_every,
            t.eval_batches
        );
    }
    let budget = &sweep.budget;
    let t = &variants[0].config.train;
    let given = match (budget.steps, budget.tokens, budget.flops) {
        (Some(s), _, _) => format!("{s} steps"),
        (_, Some(n), _) => format!("{n} tokens"),
        (_, _, Some(f)) => format!("{f:.3e} executed training FLOPs"),
        _ => String::new(),
    };
    format!(
        "{given} per variant = {} steps of {} × {} tokens, evaluated every {} steps on {} validation batches",
        t.steps, t.batch_size, t.seq_len, t.eval_every, t.eval_batches
    )
}

fn notes(variants: &[Variant]) -> Vec<String> {
    let mut notes = vec![
        "All variants start from the same seed (every parameter two variants share by name and \
         shape starts with the same values), see the same batches in the same order and have \
         equal useful training FLOPs per token apart from the router (checked before training)."
            .to_string(),
        "The FLOP axis and FLOP speedups count executed FLOPs: useful FLOPs plus the expert \
         compute spent on empty capacity slots (capacity factor 1.25 pays for 25 % more expert \
         rows than it fills; `executed_train_flops_per_token` in results.csv), so a variant with a \
         lower capacity factor is credited with its lower cost."
            .to_string(),
    ];
    notes.push("Plots leave out the step-0 evaluation (the untrained model) so the tails are readable; the tables use every evaluation.".into());
    if variants.iter().any(|v| v.kind == Kind::ParamMatchedDense) {
        notes.push("dense-param-matched has about the switch model's parameter count and therefore more FLOPs per token; it is not FLOP-matched.".into());
    }
    notes
}
