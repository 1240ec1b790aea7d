//! The sweep's report: `results.csv`/`results.json`, `report.md` and plots from the variants
//! that have finished: all of them at the end of a one-process sweep, whatever has finished
//! for `moe-train sweep merge` (the shards of an array job), with the missing ones listed.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::bail;

use super::plan::{self, Kind, SweepFile, Variant};
use super::store::{self, Progress};
use super::{results, sweep_dir};
use crate::metrics::{read_metrics, Record};

/// `moe-train sweep merge` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// The sweep file the shards ran.
    #[arg(long, value_name = "FILE.toml")]
    pub config: PathBuf,
    /// The sweep directory the shards shared (default: runs/<sweep name>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The `--data` the shards were given, if any (it is part of every variant's config).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub data: Vec<String>,
}

/// What `sweep merge` put in the report and what it could not.
#[derive(Debug, Clone)]
pub struct Merged {
    /// Variants in the report.
    pub reported: Vec<String>,
    /// Variants not finished yet, with how far each got.
    pub missing: Vec<(String, Progress)>,
}

/// Builds the report in the sweep directory from the variants that have finished, and says
/// which are missing. Fails when none has, when the speedup baseline has not, or when a
/// variant's directory holds another config.
pub fn merge(args: &MergeArgs, out: &mut impl Write) -> anyhow::Result<Merged> {
    let sweep = plan::load(&args.config)?;
    let variants = plan::variants(&sweep, &args.config, &args.data)?;
    let dir = sweep_dir(&args.config, args.out.as_deref());
    if !dir.join("sweep-plan.toml").is_file() {
        bail!(
            "{} holds no sweep (no sweep-plan.toml): run `moe-train sweep --config {} --out {}` \
             (or its shards) first",
            dir.display(),
            args.config.display(),
            dir.display()
        );
    }
    let (mut done, mut missing) = (Vec::new(), Vec::new());
    for v in &variants {
        let run_dir = dir.join(&v.name);
        store::check_config(&run_dir, v)?;
        match store::progress(&run_dir, v) {
            Progress::Finished => done.push(v),
            other => missing.push((v.name.clone(), other)),
        }
    }
    let describe = |missing: &[(String, Progress)]| -> String {
        let items: Vec<String> = missing
            .iter()
            .map(|(name, p)| format!("{name} ({})", p.describe()))
            .collect();
        items.join(", ")
    };
    if done.is_empty() {
        bail!(
            "no variant in {} has finished yet: {}",
            dir.display(),
            describe(&missing)
        );
    }
    let baseline = baseline(&sweep, &variants);
    if let Some((name, p)) = missing.iter().find(|(name, _)| *name == baseline) {
        bail!(
            "the baseline `{name}` has not finished ({}): every speedup in the report is \
             measured against it; merge again once its shard is done (missing: {})",
            p.describe(),
            describe(&missing)
        );
    }
    let mut command = format!(
        "moe-train sweep merge --config {} --out {}",
        args.config.display(),
        dir.display()
    );
    if !args.data.is_empty() {
        command.push_str(&format!(" --data {}", args.data.join(" ")));
    }
    let machine = merged_machine(&dir, &done);
    let page = Page {
        config: &args.config,
        command,
        machine,
    };
    write(&dir, &page, &sweep, &variants, &done, &missing)?;
    writeln!(
        out,
        "merged {} of {} variants: {}",
        done.len(),
        variants.len(),
        dir.join("report.md").display()
    )?;
    if !missing.is_empty() {
        writeln!(out, "missing: {}", describe(&missing))?;
    }
    Ok(Merged {
        reported: done.iter().map(|v| v.name.clone()).collect(),
        missing,
    })
}

/// The lines of the report's header that depend on how it was made.
pub(super) struct Page<'a> {
    /// The sweep file.
    pub config: &'a Path,
    /// The command that made the report.
    pub command: String,
    /// The machine line.
    pub machine: String,
}

/// Writes the report of the `done` variants (of all `variants` of the sweep) into `dir`.
pub(super) fn write(
    dir: &Path,
    page: &Page,
    sweep: &SweepFile,
    variants: &[Variant],
    done: &[&Variant],
    missing: &[(String, Progress)],
) -> anyhow::Result<()> {
    let results = results::collect(dir, done)?;
    let mut notes = notes(variants);
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|(n, _)| n.as_str()).collect();
        notes.push(format!(
            "Not in this report (not finished when it was merged): {}.",
            names.join(", ")
        ));
    }
    let meta = moe_report::ReportMeta {
        title: format!("Dense vs switch: {}", page.config.display()),
        command: page.command.clone(),
        machine: page.machine.clone(),
        data: describe_data(&variants[0]),
        budget: describe_budget(sweep, variants),
        notes,
    };
    let options = moe_report::ReportOptions {
        baseline: sweep.grid.as_ref().map(|_| grid_baseline(variants)),
        flops_basis: moe_report::FlopsBasis::Executed,
        ..Default::default()
    };
    moe_report::write_report_with(dir, &results, &meta, &options)
}

/// The variant every speedup is measured against.
fn baseline(sweep: &SweepFile, variants: &[Variant]) -> String {
    match &sweep.grid {
        Some(_) => grid_baseline(variants),
        None => variants
            .iter()
            .find(|v| v.kind == Kind::Dense)
            .map(|v| v.name.clone())
            .unwrap_or_default(),
    }
}

/// The machine line of a merged report: the backends the variants' runs logged; the machines
/// themselves are not recorded per run.
fn merged_machine(dir: &Path, done: &[&Variant]) -> String {
    let mut backends: Vec<String> = Vec::new();
    for v in done {
        let records = read_metrics(&dir.join(&v.name).join("metrics.jsonl")).unwrap_or_default();
        for r in records {
            if let Record::Run { backend, .. } = r {
                if !backends.contains(&backend) {
                    backends.push(backend);
                }
            }
        }
    }
    format!(
        "merged from separately run variants (backend {}; the machines are not recorded per \
         variant)",
        backends.join(", ")
    )
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
