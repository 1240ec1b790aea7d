//! A variant's run directory under the sweep's `--out`: whether it holds this variant (its
//! stored resolved `config.toml`) and how far it got.

use std::path::{Path, PathBuf};

use anyhow::bail;

use super::plan::Variant;
use super::results::finished;
use super::shard::fnv1a64;
use crate::run_config::RunConfig;

/// How far a variant's run directory got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// All steps done (`summary.json` says so).
    Finished,
    /// Training started; the checkpoint to continue from, if one was saved.
    Started(Option<PathBuf>),
    /// No run directory yet.
    NotStarted,
}

impl Progress {
    /// One line for the user.
    pub fn describe(&self) -> String {
        match self {
            Progress::Finished => "finished".into(),
            Progress::Started(Some(dir)) => format!(
                "started, last checkpoint {}",
                dir.file_name().unwrap_or_default().to_string_lossy()
            ),
            Progress::Started(None) => "started, no checkpoint yet".into(),
            Progress::NotStarted => "not started".into(),
        }
    }
}

/// How far `v`'s run in `run_dir` got.
pub fn progress(run_dir: &Path, v: &Variant) -> Progress {
    if finished(run_dir, v.config.train.steps) {
        Progress::Finished
    } else if run_dir.join("config.toml").is_file() {
        Progress::Started(crate::checkpoint::resolve(run_dir, false).ok())
    } else {
        Progress::NotStarted
    }
}

/// FNV-1a 64 of the variant's resolved config (`RunConfig::to_toml`): the key written into
/// `sweep-plan.toml` beside each variant.
pub fn config_hash(v: &Variant) -> u64 {
    fnv1a64(v.config.to_toml().as_bytes())
}

/// Refuses a run directory whose stored resolved config (`config.toml`, written before the
/// first step) is not `v`'s: its results belong to another experiment and must not be reused
/// or reported under this variant's name. A directory without `config.toml` passes.
pub fn check_config(run_dir: &Path, v: &Variant) -> anyhow::Result<()> {
    let path = run_dir.join("config.toml");
    let Ok(stored) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let wanted = v.config.to_toml();
    if stored == wanted {
        return Ok(());
    }
    // Written by another release (other key order, a new field at its default): compare the
    // parsed configs.
    if RunConfig::load(Some(&path), &[]).is_ok_and(|c| c == v.config) {
        return Ok(());
    }
    bail!(
        "sweep variant `{}`: {} holds a run of another config (config fnv1a64 {:016x}, this \
         sweep's is {:016x}); it differs in: {}. Choose a new --out, or delete {} to train the \
         variant again with this sweep's config",
        v.name,
        run_dir.display(),
        fnv1a64(stored.as_bytes()),
        fnv1a64(wanted.as_bytes()),
        differences(&wanted, &stored),
        run_dir.display()
    )
}

/// `key = value` lines of a TOML text with their table's name in front (`train.steps = 6`).
fn qualified_lines(text: &str) -> Vec<String> {
    let mut table = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = format!("{name}.");
        } else {
            out.push(format!("{table}{line}"));
        }
    }
    out
}

/// "`train.steps = 6` (stored: `train.steps = 4`), …": the sweep's lines the stored config
/// lacks, each with the stored line of the same key.
fn differences(wanted: &str, stored: &str) -> String {
    let (wanted, stored) = (qualified_lines(wanted), qualified_lines(stored));
    let key = |line: &str| line.split('=').next().unwrap_or("").trim().to_string();
    let mut out: Vec<String> = wanted
        .iter()
        .filter(|l| !stored.contains(l))
        .map(|l| match stored.iter().find(|s| key(s) == key(l)) {
            Some(s) => format!("sweep `{l}`, stored `{s}`"),
            None => format!("sweep `{l}`, not in the stored config"),
        })
        .collect();
    out.extend(
        stored
            .iter()
            .filter(|s| !wanted.iter().any(|l| key(l) == key(s)))
            .map(|s| format!("stored `{s}`, not in the sweep's config")),
    );
    if out.is_empty() {
        "the order or formatting of its lines".into()
    } else {
        out.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_the_changed_keys_with_their_tables() {
        let wanted = "d_model = 32\n\n[train]\nsteps = 6\nseed = 1\n";
        let stored = "d_model = 32\n\n[train]\nsteps = 4\nseed = 1\nold = true\n";
        assert_eq!(
            differences(wanted, stored),
            "sweep `train.steps = 6`, stored `train.steps = 4`; stored `train.old = true`, not \
             in the sweep's config"
        );
    }
}
