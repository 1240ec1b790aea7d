//! What `moe-train train` takes and what it reports.

use std::path::PathBuf;

use serde::Serialize;

use super::stop::StopSignal;
use crate::backend::Backend;
use crate::metrics::{EvalRecord, TrainRecord};

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
    /// Data-parallel training on N GPUs of this node (burn's gradient all-reduce over NCCL):
    /// needs a build with `--features ddp` and `--backend cuda`; the batch is split evenly
    /// over the devices (docs/distributed.md). Leave out for one device.
    #[arg(long, value_name = "N")]
    pub devices: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Set to stop the run after its current step, with a checkpoint (the CLI wires it to
    /// SIGINT and SIGTERM; tests and sweeps may set it themselves).
    #[arg(skip)]
    pub stop: StopSignal,
}

/// What a finished (or interrupted) run reports; also written to `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Steps done.
    pub steps: usize,
    /// Whether a signal (or `--stop-at`) ended the session before `train.steps`.
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
