//! Checkpoints: everything a run needs to continue bit for bit.
//!
//! ```text
//! RUN/checkpoints/step-000400/   model.safetensors      weights (docs/weights.md names)
//!                                optimizer.safetensors  AdamW moments by module path
//!                                state.json             step, data position, best, timing
//!                                config.toml            the resolved run config
//!                                tokenizer.json
//! RUN/checkpoints/latest.json    {"checkpoint": "step-000400"}
//! RUN/checkpoints/best.json      {"checkpoint": "step-000200", "val_ce": …}
//! ```
//! A checkpoint is written into `.tmp-step-…`, every file flushed, then renamed into place;
//! `latest.json` is replaced atomically afterwards, so a crash leaves the previous checkpoint
//! as "latest". Randomness needs no saved state: every step reseeds the device from
//! `(seed, step)` and the data order is a pure function of `(seed, epoch)`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::tensor::Device;
use moe_core::model::SwitchTransformer;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::data::tokenizer;
use crate::fsutil::{sync_dir, write_atomic};
use crate::optim::AdamW;
use crate::run_config::RunConfig;
use crate::weights;

/// Progress counters saved with each checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps done.
    pub step: usize,
    /// Training windows consumed (the data position).
    pub position: u64,
    /// Training tokens consumed.
    pub tokens: u64,
    /// Wall-clock seconds of training so far.
    pub elapsed_s: f64,
    /// Best validation cross-entropy so far and its step.
    pub best: Option<(f64, usize)>,
}

impl TrainState {
    /// The state of a run before its first step.
    pub fn fresh() -> Self {
        Self {
            step: 0,
            position: 0,
            tokens: 0,
            elapsed_s: 0.0,
            best: None,
        }
    }
}

/// Pointer files `latest.json` / `best.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pointer {
    checkpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    val_ce: Option<f64>,
}

/// Folder of a run's checkpoints.
pub fn checkpoints_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

/// Name of the checkpoint after `step`.
pub fn step_name(step: usize) -> String {
    format!("step-{step:06}")
}

/// Creates `root/name` atomically: `fill` writes into `root/.tmp-name`, which is then renamed
/// into place and `root` synced. If `fill` or the rename fails, the temporary folder is removed
/// (a partial checkpoint, e.g. on a full disk, must not keep occupying the disk) and
/// `root/name` does not exist.
fn write_folder(
    root: &Path,
    name: &str,
    fill: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (tmp, dir) = (root.join(format!(".tmp-{name}")), root.join(name));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let written = fill(&tmp).and_then(|()| {
        std::fs::rename(&tmp, &dir)
            .with_context(|| format!("cannot move {} to {}", tmp.display(), dir.display()))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(sync_dir(root)?)
}

/// Writes a checkpoint of the current state; returns its folder. Re-saving an existing step
/// is a no-op.
pub fn save(
    run_dir: &Path,
    model: &SwitchTransformer,
    optim: &AdamW,
    state: &TrainState,
    config: &RunConfig,
    tok: &Tokenizer,
) -> anyhow::Result<PathBuf> {
    let root = checkpoints_dir(run_dir);
    if !root.is_dir() {
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        sync_dir(run_dir)?;
    }
    let name = step_name(state.step);
    let dir = root.join(&name);
    if !dir.exists() {
        write_folder(&root, &name, |tmp| {
            weights::save_safetensors(model, &config.model, &tmp.join("model.safetensors"))?;
            let meta = HashMap::from([("updates".to_string(), optim.updates.to_string())]);
            weights::write_f32_tensors(
                &tmp.join("optimizer.safetensors"),
                optim.state_tensors(),
                meta,
            )?;
            write_atomic(&tmp.join("state.json"), &serde_json::to_vec_pretty(state)?)?;
            write_atomic(&tmp.join("config.toml"), config.to_toml().as_bytes())?;
            tokenizer::save(tok, &tmp.join("tokenizer.json"))?;
            Ok(())
        })
        .map_err(|e| {
            e.context(format!(
                "cannot write checkpoint {} (the previous checkpoint is kept)",
                dir.display()
            ))
        })?;
    }
    write_pointer(&root.join("latest.json"), &name, None)?;
    Ok(dir)
}

fn write_pointer(path: &Path, name: &str, val_ce: Option<f64>) -> anyhow::Result<()> {
    let pointer = Pointer {
        checkpoint: name.to_string(),
        val_ce,
    };
    write_atomic(path, &serde_json::to_vec_pretty(&pointer)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn read_pointer(path: &Path) -> anyhow::Result<Pointer> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a checkpoint pointer", path.display()))
}

/// Marks the checkpoint after `step` as the best (lowest validation CE).
pub fn mark_best(run_dir: &Path, step: usize, val_ce: f64) -> anyhow::Result<()> {
    write_pointer(
        &checkpoints_dir(run_dir).join("best.json"),
        &step_name(step),
        Some(val_ce),
    )
}

/// Deletes step checkpoints beyond the newest `keep_last`, never the best or the latest.
pub fn prune(run_dir: &Path, keep_last: usize) -> anyhow::Result<()> {
    let root = checkpoints_dir(run_dir);
    let protected: Vec<String> = ["best.json", "latest.json"]
        .iter()
        .filter_map(|p| read_pointer(&root.join(p)).ok())
        .map(|p| p.checkpoint)
        .collect();
    let mut steps: Vec<(usize, String)> = std::fs::read_dir(&root)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| Some((parse_step_name(&n)?, n)))
        .collect();
    // By step number: names sort lexically only up to step 999 999.
    steps.sort();
    let cut = steps.len().saturating_sub(keep_last);
    for (_, name) in &steps[..cut] {
        if !protected.contains(name) {
            std::fs::remove_dir_all(root.join(name))?;
        }
    }
    Ok(())
}

/// The step of a checkpoint folder name `step-NNNNNN` (any number of digits).
pub fn parse_step_name(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("step-")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Removes what crashed writers of this run directory left behind: `checkpoints/.tmp-step-*`
/// folders and `.NAME.tmp-PID` files (in the run directory and `checkpoints/`) whose writer
/// process is gone. Called on resume, before this process writes anything.
pub fn remove_stale_temporaries(run_dir: &Path) -> anyhow::Result<()> {
    let own = format!(".tmp-{}", std::process::id());
    for dir in [run_dir.to_path_buf(), checkpoints_dir(run_dir)] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let stale_checkpoint = name.starts_with(".tmp-step-") && path.is_dir();
            let stale_file = name.starts_with('.')
                && name.contains(".tmp-")
                && !name.ends_with(&own)
                && path.is_file();
            if stale_checkpoint {
                std::fs::remove_dir_all(&path)
                    .with_context(|| format!("cannot remove stale {}", path.display()))?;
            } else if stale_file {
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove stale {}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// Finds the checkpoint folder `path` names: a checkpoint folder itself, or a run directory
/// (its latest checkpoint; `best = true`: its best).
pub fn resolve(path: &Path, best: bool) -> anyhow::Result<PathBuf> {
    if path.join("state.json").is_file() {
        return Ok(path.to_path_buf());
    }
    let root = checkpoints_dir(path);
    let pointer = root.join(if best { "best.json" } else { "latest.json" });
    if !pointer.is_file() {
        bail!(
            "{} holds no checkpoint (no {}); pass a run directory written by `moe-train train` \
             or one of its checkpoints/step-* folders",
            path.display(),
            pointer.display()
        );
    }
    let dir = root.join(read_pointer(&pointer)?.checkpoint);
    if !dir.join("state.json").is_file() {
        bail!(
            "{} points to {}, which is missing or incomplete",
            pointer.display(),
            dir.display()
        );
    }
    Ok(dir)
}

/// A loaded checkpoint.
pub struct Loaded {
    /// The run config stored with it.
    pub config: RunConfig,
    /// Progress counters.
    pub state: TrainState,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Its folder.
    pub dir: PathBuf,
}

/// Reads a checkpoint folder's config, state and tokenizer (weights separately).
pub fn load(dir: &Path) -> anyhow::Result<Loaded> {
    let config_path = dir.join("config.toml");
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let table = toml::from_str(&text)
        .with_context(|| format!("{} is not valid TOML", config_path.display()))?;
    let config = RunConfig::from_table(table, &config_path)?;
    let state_path = dir.join("state.json");
    let state = serde_json::from_slice(
        &std::fs::read(&state_path)
            .with_context(|| format!("cannot read {}", state_path.display()))?,
    )
    .with_context(|| format!("{} is not a valid state file", state_path.display()))?;
    let tokenizer = tokenizer::load(&dir.join("tokenizer.json"))?;
    Ok(Loaded {
        config,
        state,
        tokenizer,
        dir: dir.to_path_buf(),
    })
}

/// The model of a loaded checkpoint on `device`.
/// The weights must be finite: a checkpoint of a diverged model is refused by name.
pub fn load_model(loaded: &Loaded, device: &Device) -> anyhow::Result<SwitchTransformer> {
    let path = loaded.dir.join("model.safetensors");
    let model = weights::load_safetensors(&loaded.config.model, &path, device)?;
    anyhow::ensure!(
        weights::is_finite(&model),
        "{} holds non-finite weights (NaN or ±∞): the run had diverged when this checkpoint \
         was written; use an earlier checkpoint (checkpoints/step-*)",
        path.display()
    );
    Ok(model)
}

/// The optimizer of a loaded checkpoint with the settings of `train`, moments on `device`.
/// Every moment is checked against `model`'s parameters (name and size) before it is used.
pub fn load_optimizer(
    loaded: &Loaded,
    train: &crate::run_config::TrainConfig,
    model: &SwitchTransformer,
    device: &Device,
) -> anyhow::Result<AdamW> {
    let path = loaded.dir.join("optimizer.safetensors");
    let file = weights::read_f32_tensors(&path)?;
    crate::optim::check_state(model, &file.tensors)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let updates = file
        .metadata
        .get("updates")
        .and_then(|u| u.parse().ok())
        .with_context(|| format!("{}: no `updates` metadata", path.display()))?;
    let mut optim = AdamW::new(train);
    optim
        .load_state(updates, file.tensors, device)
        .with_context(|| format!("{}", path.display()))?;
    Ok(optim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("switchyard-ckpt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A save that fails half-way (here: after one file, as on a full disk) leaves neither
    /// the checkpoint nor its temporary folder behind; a later save of the same step works.
    #[test]
    fn a_failed_save_leaves_no_temporary_folder() {
        let root = scratch("failed-save");
        let err = write_folder(&root, "step-000002", |tmp| {
            std::fs::write(tmp.join("model.safetensors"), vec![0u8; 4096])?;
            anyhow::bail!("No space left on device (os error 28)")
        })
        .unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        let left: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
        write_folder(&root, "step-000002", |tmp| {
            std::fs::write(tmp.join("state.json"), b"{}")?;
            Ok(())
        })
        .unwrap();
        assert!(root.join("step-000002/state.json").is_file());
        assert!(!root.join(".tmp-step-000002").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
