//! Command-line interface of `moe-train`.

use std::io::Write;

use clap::{Parser, Subcommand};

use crate::bench::routing::{self, RoutingBenchArgs};
use crate::info::{self, InfoArgs};

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
    /// Parameters, FLOPs per token and memory of a model config and its dense twin.
    Info(InfoArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `moe-train bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Router + dispatch + combine throughput (`--mode routing`) or switch-layer
    /// forward+backward against a dense FFN (`--mode layer --dense`).
    Routing(RoutingBenchArgs),
}

/// Runs a parsed command, writing results to `out`.
pub fn run(cli: Cli, out: &mut impl Write) -> anyhow::Result<()> {
    match cli.command {
        Command::Info(args) => info::run(&args, out),
        Command::Bench(BenchCommand::Routing(args)) => routing::run(&args, out).map(|_| ()),
    }
}
