//! `moe-train`: the switchyard command line. Parsing only; the work is in the library.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    moe_train::alloc::tune_allocator();
    let cli = moe_train::cli::Cli::parse();
    moe_train::cli::run(cli, &mut std::io::stdout().lock())
}
