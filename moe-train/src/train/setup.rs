//! Before the first step: resolve the config (file, `--set`, `--data`, `--seed`, or a resumed
//! run's), choose and check the run directory.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::TrainArgs;
use crate::checkpoint::{self, Loaded};
use crate::run_config::RunConfig;

/// What `train` will do.
pub struct Plan {
    /// The resolved config.
    pub config: RunConfig,
    /// The run directory.
    pub run_dir: PathBuf,
    /// The checkpoint to continue from.
    pub resume: Option<Loaded>,
    /// Notes for the user (e.g. settings changed on resume).
    pub notes: Vec<String>,
    /// The run has done all its steps but its final `model.safetensors` / `summary.json` are
    /// missing (e.g. the disk was full): write them from the last checkpoint, train nothing.
    pub finalize_only: bool,
}

/// Resolves config and run directory from the command line.
pub fn plan(args: &TrainArgs) -> anyhow::Result<Plan> {
    let mut sets = args.sets.clone();
    if !args.data.is_empty() {
        sets.push(crate::run_config::data_paths_set(&args.data));
    }
    if let Some(seed) = args.seed {
        sets.push(format!("train.seed={seed}"));
    }
    match &args.resume {
        None => {
            let config = RunConfig::load(args.config.as_deref(), &sets)?;
            let run_dir = match &args.out {
                Some(out) => out.clone(),
                None => default_run_dir(args.config.as_deref()),
            };
            check_fresh_run_dir(&run_dir)?;
            Ok(Plan {
                config,
                run_dir,
                resume: None,
                notes: Vec::new(),
                finalize_only: false,
            })
        }
        Some(run_dir) => plan_resume(args, run_dir, &sets),
    }
    .map(|mut plan| {
        if plan.resume.is_none() && holds_run_without_checkpoint(&plan.run_dir) {
            plan.notes.push(format!(
                "{} holds a run that stopped before its first checkpoint: starting it again in \
                 place (metrics.jsonl is appended to)",
                plan.run_dir.display()
            ));
        }
        plan
    })
}

fn plan_resume(args: &TrainArgs, run_dir: &Path, sets: &[String]) -> anyhow::Result<Plan> {
    if let Some(out) = &args.out {
        if out != run_dir {
            bail!(
                "--resume {} continues that run in place; drop --out {}",
                run_dir.display(),
                out.display()
            );
        }
    }
    if run_dir.join("state.json").is_file() {
        let run = run_dir
            .parent()
            .filter(|p| p.file_name().is_some_and(|n| n == "checkpoints"))
            .and_then(Path::parent);
        bail!(
            "{} is a checkpoint folder, not a run directory; --resume continues a run in place \
             from its latest checkpoint: pass {}",
            run_dir.display(),
            run.map_or("the run directory".to_string(), |r| format!(
                "--resume {}",
                r.display()
            ))
        );
    }
    if holds_run_without_checkpoint(run_dir) {
        bail!(
            "{} holds a run that stopped before its first checkpoint, so there is nothing to \
             resume; start it again in place with `moe-train train --config {} --out {}`",
            run_dir.display(),
            run_dir.join("config.toml").display(),
            run_dir.display()
        );
    }
    let loaded = checkpoint::load(&checkpoint::resolve(run_dir, false)?)?;
    let config = match &args.config {
        Some(path) => RunConfig::load(Some(path), sets)?,
        None => {
            let mut table: toml::Table =
                toml::from_str(&loaded.config.to_toml()).expect("a resolved config reparses");
            for set in sets {
                crate::run_config::apply_set(&mut table, set)?;
            }
            RunConfig::from_table(table, &loaded.dir.join("config.toml"))?
        }
    };
    let stored = &loaded.config;
    let mut conflicts = Vec::new();
    if config.model != stored.model {
        conflicts.push(format!(
            "the model differs: {}",
            diff(&config.model_toml(), &stored.model_toml())
        ));
    }
    if config.data != stored.data {
        conflicts.push("the [data] settings differ".to_string());
    }
    let t = (&config.train, &stored.train);
    for (name, now, then) in [
        ("seed", t.0.seed, t.1.seed),
        ("batch_size", t.0.batch_size as u64, t.1.batch_size as u64),
        ("seq_len", t.0.seq_len as u64, t.1.seq_len as u64),
        ("grad_accum", t.0.grad_accum as u64, t.1.grad_accum as u64),
    ] {
        if now != then {
            conflicts.push(format!("train.{name} is {now}, the checkpoint has {then}"));
        }
    }
    if !conflicts.is_empty() {
        bail!(
            "cannot resume {} with an incompatible config:\n  - {}\nstart a new run (--out) instead",
            loaded.dir.display(),
            conflicts.join("\n  - ")
        );
    }
    let mut notes = Vec::new();
    if config.train != stored.train {
        notes.push(format!(
            "resuming with changed [train] settings: {}",
            diff(&toml_of(&config.train), &toml_of(&stored.train))
        ));
    }
    let finalized =
        run_dir.join("model.safetensors").is_file() && run_dir.join("summary.json").is_file();
    if loaded.state.step >= config.train.steps && !finalized {
        notes.push(format!(
            "the run has done its {} steps but its final model.safetensors / summary.json are \
             missing: writing them from checkpoint {}",
            loaded.state.step,
            loaded.dir.display()
        ));
        return Ok(Plan {
            config,
            run_dir: run_dir.to_path_buf(),
            resume: Some(loaded),
            notes,
            finalize_only: true,
        });
    }
    if loaded.state.step >= config.train.steps {
        bail!(
            "the run in {} has already done {} of train.steps = {}; raise it (e.g. --set train.steps={}) to continue",
            run_dir.display(),
            loaded.state.step,
            config.train.steps,
            config.train.steps * 2
        );
    }
    Ok(Plan {
        config,
        run_dir: run_dir.to_path_buf(),
        resume: Some(loaded),
        notes,
        finalize_only: false,
    })
}

fn toml_of<T: serde::Serialize>(value: &T) -> String {
    toml::to_string(value).expect("settings serialise")
}

/// The lines of `now` not in `then`, joined.
fn diff(now: &str, then: &str) -> String {
    let old: Vec<&str> = then.lines().collect();
    let changed: Vec<&str> = now.lines().filter(|l| !old.contains(l)).collect();
    changed.join(", ")
}

/// `runs/<config name>-<UTC date-time>`.
fn default_run_dir(config: Option<&Path>) -> PathBuf {
    let stem = config
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tiny".into());
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from("runs").join(format!("{stem}-{}", utc_stamp(secs)))
}

/// `YYYYmmdd-HHMMSS` of a Unix time (days-to-civil conversion, proleptic Gregorian).
fn utc_stamp(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A new run needs an empty or absent directory whose nearest existing ancestor is a
/// directory. Nothing is created here: the run directory appears only once the data has
/// loaded, so a failed start leaves nothing behind.
pub fn check_fresh_run_dir(dir: &Path) -> anyhow::Result<()> {
    if holds_run_without_checkpoint(dir) {
        return Ok(());
    }
    if dir.exists() {
        anyhow::ensure!(
            dir.is_dir(),
            "cannot create run directory {}: it exists and is not a directory",
            dir.display()
        );
        let non_empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read run directory {}", dir.display()))?
            .next()
            .is_some();
        if non_empty {
            let what = if dir.join("config.toml").exists() {
                "already holds a run"
            } else {
                "is not empty"
            };
            bail!(
                "run directory {} {what}; continue it with --resume {} or choose another --out",
                dir.display(),
                dir.display()
            );
        }
        return Ok(());
    }
    let mut ancestor = dir.parent();
    while let Some(a) = ancestor.filter(|a| !a.as_os_str().is_empty() && !a.exists()) {
        ancestor = a.parent();
    }
    if let Some(a) = ancestor.filter(|a| !a.as_os_str().is_empty() && !a.is_dir()) {
        bail!(
            "cannot create run directory {}: {} is not a directory",
            dir.display(),
            a.display()
        );
    }
    Ok(())
}

/// Whether `dir` holds a run that stopped before its first checkpoint (killed or interrupted
/// early) and nothing else: such a run may be started again in place (its `config.toml` and
/// `tokenizer.json` are rewritten, `metrics.jsonl` is appended to).
pub fn holds_run_without_checkpoint(dir: &Path) -> bool {
    const RUN_FILES: [&str; 5] = [
        "config.toml",
        "tokenizer.json",
        "metrics.jsonl",
        "train.log",
        "summary.json",
    ];
    if !dir.join("config.toml").is_file() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().all(|entry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "checkpoints" {
            // Only unfinished `.tmp-step-*` folders or temporary pointer files.
            return std::fs::read_dir(entry.path()).is_ok_and(|inner| {
                inner
                    .flatten()
                    .all(|e| e.file_name().to_string_lossy().starts_with('.'))
            });
        }
        RUN_FILES.contains(&name.as_str()) || (name.starts_with('.') && name.contains(".tmp-"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamp_matches_known_dates() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(utc_stamp(1_795_651_200 + 3_723), "20261126-010203");
    }
}
