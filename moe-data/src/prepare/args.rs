//! The command-line arguments, mounted by the trainer as `moe-train data prepare`.

use std::path::PathBuf;

/// `moe-train data prepare --input PATH… --out DIR [--eval PATH…] [--config prepare.toml]`:
/// clean, filter, deduplicate and decontaminate a text corpus into `.jsonl` shards.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct PrepareArgs {
    /// Input files, directories (walked recursively) or quoted globs: .txt (one document per
    /// file), .jsonl (one per line), .html/.htm (one per file), each optionally .gz.
    #[arg(long, num_args = 1.., required = true, value_name = "PATH")]
    pub input: Vec<String>,
    /// Output directory: data-00000.jsonl …, report.json, summary.txt. Must not exist or be
    /// empty, unless --force.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Evaluation sets (same formats): training documents sharing a word 13-gram with them
    /// are dropped.
    #[arg(long, num_args = 1.., value_name = "PATH")]
    pub eval: Vec<String>,
    /// prepare.toml with any of the sections input, quality, blocklist, dedup,
    /// decontamination, output, run; missing keys take the documented defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Block list (one word or phrase per line); overrides blocklist.path.
    #[arg(long, value_name = "FILE")]
    pub blocklist: Option<PathBuf>,
    /// Replace --out if it exists and is not empty.
    #[arg(long)]
    pub force: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl PrepareArgs {
    /// Arguments for `inputs` → `out` with everything else at its default.
    pub fn new(inputs: Vec<String>, out: impl Into<PathBuf>) -> Self {
        Self {
            input: inputs,
            out: out.into(),
            eval: Vec::new(),
            config: None,
            blocklist: None,
            force: false,
            quiet: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// How the trainer mounts the arguments (`moe-train data prepare …`).
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: PrepareArgs,
    }

    #[test]
    fn parses_repeated_and_multi_value_inputs() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "prepare", "--input", "a/", "b.jsonl", "--input", "c/*.txt", "--out", "o", "--eval",
            "e1", "e2", "--force",
        ])
        .expect("valid arguments");
        assert_eq!(cli.args.input, ["a/", "b.jsonl", "c/*.txt"]);
        assert_eq!(cli.args.eval, ["e1", "e2"]);
        assert_eq!(cli.args.out, PathBuf::from("o"));
        assert!(cli.args.force && !cli.args.quiet && cli.args.config.is_none());
        for missing in [
            &["prepare", "--out", "o"][..],
            &["prepare", "--input", "a"][..],
        ] {
            assert!(
                Cli::try_parse_from(missing).is_err(),
                "{missing:?} must be rejected"
            );
        }
    }
}
