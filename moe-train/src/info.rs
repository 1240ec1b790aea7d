//! `moe-train info`: parameters, FLOPs per token and memory of a model config and its
//! dense twin (formulas: `docs/accounting.md`).

use std::io::Write;
use std::path::PathBuf;

use moe_core::model::Accounting;
use serde::Serialize;

use crate::config_file::load_model_config;

/// Arguments of `moe-train info`.
#[derive(Debug, Clone, clap::Args)]
pub struct InfoArgs {
    /// Model config (TOML), e.g. `configs/tiny.toml`.
    #[arg(long)]
    pub config: PathBuf,
    /// Batch size for the activation-memory estimate.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Sequence length for FLOPs and memory (default: the config's `max_seq_len`).
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct InfoReport {
    config: PathBuf,
    batch_size: usize,
    seq_len: usize,
    sparse_layers: usize,
    num_experts: usize,
    model: Accounting,
    dense_twin: Accounting,
    param_matched_dense_d_ff: usize,
    param_matched_dense: Accounting,
}

/// Prints the accounting of `args.config`.
pub fn run(args: &InfoArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let config = load_model_config(&args.config)?;
    let seq_len = args.seq_len.unwrap_or(config.max_seq_len);
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    anyhow::ensure!(
        (1..=config.max_seq_len).contains(&seq_len),
        "--seq-len {seq_len} must be in 1..={} (max_seq_len of {})",
        config.max_seq_len,
        args.config.display()
    );
    let matched = config.param_matched_dense();
    let report = InfoReport {
        config: args.config.clone(),
        batch_size: args.batch_size,
        seq_len,
        sparse_layers: config.num_sparse_layers(),
        num_experts: config.switch.num_experts,
        model: config.accounting(args.batch_size, seq_len),
        dense_twin: config.dense_twin().accounting(args.batch_size, seq_len),
        param_matched_dense_d_ff: matched.d_ff,
        param_matched_dense: matched.accounting(args.batch_size, seq_len),
    };
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{}: {} layers ({} sparse, {} experts), batch {} × seq_len {}",
        report.config.display(),
        config.n_layers,
        report.sparse_layers,
        report.num_experts,
        report.batch_size,
        report.seq_len
    )?;
    writeln!(
        out,
        "{:<34} {:>14} {:>14} {:>16} {:>17} {:>12}",
        "", "total params", "active params", "train FLOPs/tok", "padding FLOPs/tok", "act. memory"
    )?;
    let rows = [
        ("model", &report.model),
        ("dense twin", &report.dense_twin),
        (
            &*format!(
                "param-matched dense (d_ff {})",
                report.param_matched_dense_d_ff
            ),
            &report.param_matched_dense,
        ),
    ];
    for (name, a) in rows {
        writeln!(
            out,
            "{:<34} {:>14} {:>14} {:>16} {:>17} {:>8.1} MiB",
            name,
            a.total_params,
            a.active_params,
            a.train_flops_per_token,
            a.capacity_padding_train_flops_per_token,
            a.activation_bytes as f64 / (1u64 << 20) as f64
        )?;
    }
    let ratio =
        report.model.train_flops_per_token as f64 / report.dense_twin.train_flops_per_token as f64;
    writeln!(out, "model / dense twin training FLOPs per token: {ratio:.4} (router only; padding listed apart)")?;
    Ok(())
}
