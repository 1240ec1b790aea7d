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
            })
        }
        Some(run_dir) => plan_resume(args, run_dir, &sets),
    }
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

/// A new run needs an empty or absent directory that can be created.
pub fn check_fresh_run_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
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
    }
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create run directory {} (is the path writable?)",
            dir.display()
        )
    })?;
    Ok(())
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
