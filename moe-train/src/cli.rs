//! Command-line interface of `moe-train`.

use std::io::Write;

use clap::{Parser, Subcommand};

use crate::bench::routing::{self, RoutingBenchArgs};

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
        Command::Bench(BenchCommand::Routing(args)) => routing::run(&args, out).map(|_| ()),
    }
}
