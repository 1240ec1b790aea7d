//! `moe-train sweep`: train a dense twin and switch variants on the same data, order, seeds and
//! budget at equal FLOPs per token, then report loss against steps, tokens, wall-clock and
//! FLOPs, and the speedup of each switch model to the dense model's final loss. A sweep can be
//! split into shards run by separate processes (`--shard`, array jobs) and merged afterwards
//! (`sweep merge`).

pub mod plan;
mod report;
mod results;
pub mod shard;
mod store;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

pub use plan::{check_flop_parity, variants, Grid, Kind, PolicyVariant, SweepFile, Variant};
pub use report::{merge, MergeArgs, Merged};
pub use results::collect;
pub use shard::Shard;
pub use store::{check_config, config_hash, Progress};

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
    /// Only (re)write the report, from the variants that have finished (as `sweep merge`).
    #[arg(long)]
    pub report_only: bool,
    /// Run only shard I of N, numbered from 0: the variants whose name hashes to I (FNV-1a
    /// mod N), whatever the other variants. Default: from a Slurm or Grid Engine array job's
    /// environment when set (docs/sweep.md), else the whole sweep. Shards of N > 1 write no
    /// report: run `moe-train sweep merge` once they are done.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
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

/// Runs the sweep (or the shard of it that `--shard` or the array job's environment names);
/// returns each variant's outcome (empty when interrupted).
pub fn run(args: &SweepArgs, out: &mut impl Write) -> anyhow::Result<Vec<(String, Outcome)>> {
    let sweep = plan::load(&args.config)?;
    let variants = plan::variants(&sweep, &args.config, &args.data)?;
    plan::check_flop_parity(&variants)?;
    let dir = sweep_dir(&args.config, args.out.as_deref());
    if args.report_only {
        let merge_args = MergeArgs {
            config: args.config.clone(),
            out: Some(dir),
            data: args.data.clone(),
        };
        let merged = merge(&merge_args, out)?;
        return Ok(merged
            .reported
            .into_iter()
            .map(|name| (name, Outcome::Skipped))
            .collect());
    }
    let shard = shard::resolve(args.shard, |name| std::env::var(name).ok())?;
    let mine = select(&variants, shard.as_ref(), out)?;
    claim_dir(&dir, &variants)?;
    let mut outcomes = Vec::new();
    for v in mine {
        let outcome = train_variant(v, &dir.join(&v.name), args, out)?;
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
    if let Some((s, _)) = shard.filter(|(s, _)| s.count > 1) {
        writeln!(
            out,
            "shard {s} done; when all shards are, merge them: moe-train sweep merge --config {} \
             --out {}",
            args.config.display(),
            dir.display()
        )?;
        return Ok(outcomes);
    }
    let all: Vec<&Variant> = variants.iter().collect();
    let page = report::Page {
        config: &args.config,
        command: command_line(args),
        machine: machine(args.backend),
    };
    report::write(&dir, &page, &sweep, &variants, &all, &[])?;
    writeln!(out, "report: {}", dir.join("report.md").display())?;
    Ok(outcomes)
}

/// The variants this process trains: those of its shard (announced), or all.
fn select<'v>(
    variants: &'v [Variant],
    shard: Option<&(Shard, String)>,
    out: &mut impl Write,
) -> anyhow::Result<Vec<&'v Variant>> {
    let Some((shard, from)) = shard else {
        return Ok(variants.iter().collect());
    };
    let mine: Vec<&Variant> = variants.iter().filter(|v| shard.owns(&v.name)).collect();
    let names: Vec<&str> = mine.iter().map(|v| v.name.as_str()).collect();
    writeln!(
        out,
        "shard {shard} (from {from}): {} of {} variants: {}",
        mine.len(),
        variants.len(),
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    )?;
    Ok(mine)
}

/// The sweep directory: `--out`, or `runs/<sweep file name>`.
fn sweep_dir(config: &Path, out: Option<&Path>) -> PathBuf {
    out.map(Path::to_path_buf).unwrap_or_else(|| {
        let stem = config.file_stem().map(|s| s.to_string_lossy().into_owned());
        PathBuf::from("runs").join(stem.unwrap_or_else(|| "sweep".into()))
    })
}

/// Creates the sweep directory, or checks that it holds no foreign files and that every
/// variant directory in it holds that variant's config; then records the plan
/// (`sweep-plan.toml`: each variant's resolved config and its FNV-1a 64 hash). Shards of one
/// sweep write the same plan, so concurrent writes agree; a grown sweep rewrites it.
fn claim_dir(dir: &Path, variants: &[Variant]) -> anyhow::Result<()> {
    let mut plan = String::new();
    for v in variants {
        plan.push_str(&format!(
            "# variant {} (config fnv1a64 {:016x})\n{}\n",
            v.name,
            store::config_hash(v),
            v.config.to_toml()
        ));
    }
    let path = dir.join("sweep-plan.toml");
    if dir.exists() && !path.is_file() {
        // Another shard may have created the directory a moment ago: its variant
        // directories and temporary files are fine.
        let foreign = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read sweep directory {}", dir.display()))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|name| !name.starts_with('.') && !variants.iter().any(|v| v.name == *name));
        if let Some(name) = foreign {
            anyhow::bail!(
                "{} is not empty and holds no sweep (it has {name}); choose another --out",
                dir.display()
            );
        }
    }
    for v in variants {
        store::check_config(&dir.join(&v.name), v)?;
    }
    if std::fs::read_to_string(&path).is_ok_and(|existing| existing == plan) {
        return Ok(());
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
    write_atomic(&run_dir.join("train.log"), &log)?;
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
