//! Command-line interface of `moe-train`.

use std::io::Write;

use clap::{Parser, Subcommand};

use crate::bench::routing::{self, RoutingBenchArgs};
use crate::bench::step::{self, StepBenchArgs};
use crate::eval_cmd::{self, EvalArgs};
use crate::generate::{self, GenerateArgs};
use crate::hf::{self, ExportArgs, ImportArgs};
use crate::info::{self, InfoArgs};
use crate::knn::bench::{self as knn_bench, KnnBenchArgs};
use crate::knn::build::{self as knn_build, KnnBuildArgs};
use crate::logits_cmd::{self, LogitsArgs};
use crate::sweep::{self, SweepArgs};
use crate::train::{self, TrainArgs};

/// switchyard: train and benchmark Switch Transformer (Mixture-of-Experts) models.
#[derive(Debug, Parser)]
#[command(name = "moe-train", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a switch (or dense) model: built-in corpus or --data text, checkpoints, metrics.
    Train(TrainArgs),
    /// Evaluate a checkpoint: CE, perplexity, accuracy, calibration, routing by domain.
    Eval(EvalArgs),
    /// Sample text from a checkpoint.
    Generate(GenerateArgs),
    /// Logits of given token ids and their greedy continuations, as JSON (for comparing
    /// implementations).
    Logits(LogitsArgs),
    /// Write a checkpoint as a Hugging Face transformers model folder (Qwen2-MoE).
    Export(ExportArgs),
    /// Read a Hugging Face transformers model folder (Qwen2-MoE) into a run directory.
    Import(ImportArgs),
    /// Data preparation.
    #[command(subcommand)]
    Data(DataCommand),
    /// kNN-LM datastores: build one from a checkpoint, benchmark exact vs approximate search
    /// (evaluate with `eval --knn`).
    #[command(subcommand)]
    Knn(KnnCommand),
    /// Train a dense twin and switch variants on the same data and budget; report the curves.
    /// `--shard I/N` runs one shard of it; `sweep merge` reports what has finished.
    Sweep(SweepCommand),
    /// Parameters, FLOPs per token and memory of a model config and its dense twin.
    Info(InfoArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `moe-train sweep …`: a sweep (or one shard of it), or `sweep merge`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepCommand {
    /// `merge`; none = run the sweep.
    #[command(subcommand)]
    pub action: Option<SweepAction>,
    /// The sweep to run.
    #[command(flatten)]
    pub run: Option<SweepArgs>,
}

/// `moe-train sweep merge`.
#[derive(Debug, Subcommand)]
pub enum SweepAction {
    /// Write results.csv/json, report.md and plots from the variants that have finished (by
    /// every shard of an array job, say), and list the missing ones.
    Merge(sweep::MergeArgs),
}

/// `moe-train data …`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Clean text for training: HTML to text, quality rules, block list, exact and
    /// near-duplicate removal, test-set decontamination (docs/data-prepare.md).
    Prepare(moe_data::prepare::PrepareArgs),
}

/// `moe-train knn …`.
#[derive(Debug, Subcommand)]
pub enum KnnCommand {
    /// Store the hidden state entering the last FFN (keys) and the next token (values) for
    /// every position of the train split or of --data (docs/knn-lm.md).
    Build(KnnBuildArgs),
    /// Exact against HNSW search on a datastore: build time, queries/s, recall@k.
    Bench(KnnBenchArgs),
}

/// `moe-train bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Router + dispatch + combine throughput (`--mode routing`) or switch-layer
    /// forward+backward against a dense FFN (`--mode layer --dense`).
    Routing(RoutingBenchArgs),
    /// Whole training steps of a model and its FLOP-matched dense twin, side by side.
    Step(StepBenchArgs),
    /// Where a training step's time goes, by op family (attention, FFN/experts, routing,
    /// norms, head + loss, optimizer).
    Profile(crate::bench::profile::ProfileArgs),
}

/// Runs a parsed command, writing results to `out`; returns the process exit status: 0, or
/// `128 + signal` (130 for Ctrl-C, 143 for SIGTERM) when a signal stopped training after its
/// checkpoint was saved.
pub fn run(cli: Cli, out: &mut impl Write) -> anyhow::Result<i32> {
    match cli.command {
        Command::Train(mut args) => {
            args.stop = train::install_signal_handlers();
            train::run(&args, out)?;
            Ok(args.stop.exit_code().unwrap_or(0))
        }
        Command::Eval(args) => eval_cmd::run(&args, out).map(|_| 0),
        Command::Generate(args) => generate::run(&args, out).map(|_| 0),
        Command::Logits(args) => logits_cmd::run(&args, out).map(|_| 0),
        Command::Export(args) => hf::export::run(&args, out).map(|_| 0),
        Command::Import(args) => hf::import::run(&args, out).map(|_| 0),
        Command::Data(DataCommand::Prepare(args)) => {
            let report = moe_data::prepare::run(&args)?;
            write!(out, "{}", report.summary())?;
            Ok(0)
        }
        Command::Knn(KnnCommand::Build(args)) => knn_build::run(&args, out).map(|_| 0),
        Command::Knn(KnnCommand::Bench(args)) => knn_bench::run(&args, out).map(|_| 0),
        Command::Sweep(SweepCommand {
            action: Some(SweepAction::Merge(args)),
            ..
        }) => sweep::merge(&args, out).map(|_| 0),
        Command::Sweep(SweepCommand {
            run: Some(mut args),
            ..
        }) => {
            args.stop = train::install_signal_handlers();
            sweep::run(&args, out)?;
            Ok(args.stop.exit_code().unwrap_or(0))
        }
        Command::Sweep(_) => anyhow::bail!("moe-train sweep needs --config FILE.toml, or `merge`"),
        Command::Info(args) => info::run(&args, out).map(|_| 0),
        Command::Bench(BenchCommand::Routing(args)) => routing::run(&args, out).map(|_| 0),
        Command::Bench(BenchCommand::Step(args)) => step::run(&args, out).map(|_| 0),
        Command::Bench(BenchCommand::Profile(args)) => {
            crate::bench::profile::run(&args, out).map(|_| 0)
        }
    }
}
