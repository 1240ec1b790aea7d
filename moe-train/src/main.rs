//! `moe-train`: the switchyard command line. Parsing only; the work is in the library.

use clap::Parser;

fn main() {
    moe_train::alloc::tune_allocator();
    let cli = moe_train::cli::Cli::parse();
    match moe_train::cli::run(cli, &mut std::io::stdout().lock()) {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(1);
        }
    }
}
