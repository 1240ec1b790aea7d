//! Throughput of the whole `data prepare` pipeline on a generated corpus.
//!
//! ```bash
//! cd moe-data && cargo run --release --example prepare_bench -- --mb 120
//! ```
//!
//! Generates a mixed corpus ([`moe_data::synth::write_mixed_corpus`]: JSONL, every third shard
//! gzipped; one-document .txt files; .html pages with scripts, styles and navigation lists) of
//! at least `--mb` MB of text with planted exact duplicates, near duplicates (1.5 % of words
//! replaced), low-quality documents and evaluation-set overlaps, then runs `prepare::run`
//! with every stage on (quality rules, exact + near dedup, decontamination) and prints the
//! report's MB/s: decompressed input bytes / wall time, from reading the config to the
//! renamed output directory.

use std::fs;
use std::time::Instant;

use clap::Parser;
use moe_data::prepare::{self, PrepareArgs};
use moe_data::synth::write_mixed_corpus;

#[derive(Debug, Parser)]
struct Args {
    /// Corpus size to generate, in MB (10^6 bytes of document text).
    #[arg(long, default_value_t = 120)]
    mb: u64,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Switch near-dedup off (for comparison).
    #[arg(long)]
    no_near: bool,
    /// Seed of the generated corpus.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = tempfile::tempdir()?;
    let t = Instant::now();
    let corpus = write_mixed_corpus(root.path(), args.mb, args.seed)?;
    let planted = &corpus.planted;
    println!(
        "generated {} documents, {:.1} MB of text in {:.1} s: {} exact copies, {} near copies, {} low-quality, {} with an eval overlap",
        planted.documents,
        planted.text_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64(),
        planted.exact,
        planted.near,
        planted.low_quality,
        planted.contaminated
    );
    let config_path = root.path().join("prepare.toml");
    let config = format!(
        "[dedup]\nnear = {}\n[run]\nthreads = {}\n",
        !args.no_near, args.threads
    );
    fs::write(&config_path, config)?;
    let input = vec![corpus.input.display().to_string()];
    let mut prepare_args = PrepareArgs::new(input, root.path().join("out"));
    prepare_args.eval = vec![corpus.eval.display().to_string()];
    prepare_args.config = Some(config_path);
    let report = prepare::run(&prepare_args)?;
    print!("{}", report.summary());
    let found_dups = report.removed_for("exact_duplicate") + report.removed_for("near_duplicate");
    let found_low: u64 = report
        .removed
        .iter()
        .filter(|(k, _)| k.starts_with("quality."))
        .map(|(_, r)| r.documents)
        .sum();
    println!(
        "planted vs removed: duplicates {} vs {found_dups} (exact or near; an exact copy in another format differs by the HTML boilerplate), low-quality {} vs {found_low}, eval overlaps {} vs {}",
        planted.exact + planted.near,
        planted.low_quality,
        planted.contaminated,
        report.removed_for("decontamination"),
    );
    println!(
        "THROUGHPUT: {:.1} MB/s ({:.1} MB in {:.2} s, {} threads, near-dedup {})",
        report.throughput.mb_per_s,
        report.bytes_in as f64 / 1e6,
        report.throughput.seconds,
        report.throughput.threads,
        if args.no_near { "off" } else { "on" }
    );
    Ok(())
}
