//! Writes a report for a made-up sweep, to look at the output without training anything:
//! `cargo run --release --example demo -- /tmp/moe-report-demo`
//!
//! The curves are synthetic (`loss = 1.6 + 2.4·exp(−k·step/500)`, with `k` growing with the
//! expert count), and so are the calibration bins (accuracy below confidence by an amount
//! that shrinks with the loss) and the per-domain accuracies; only the file formats and plots
//! are real.

use std::collections::BTreeMap;
use std::path::PathBuf;

use moe_report::{write_report, Point, ReliabilityBin, ReportMeta, VariantKind, VariantResult};

fn variant(
    name: &str,
    kind: VariantKind,
    experts: usize,
    cf: Option<f64>,
    k: f64,
) -> VariantResult {
    // README's tiny config: the param-matched dense model costs ~2.9× the FLOPs per token.
    let (flops_per_token, dense_cost, dense_params) = match kind {
        VariantKind::ParamMatchedDense => (16_908_288, 2.9, 2_688_128),
        _ => (5_898_240, 1.0, 853_120),
    };
    let s_per_step = 0.05 * dense_cost * (1.0 + 0.04 * (experts as f64).log2());
    let curve: Vec<Point> = (0..=20)
        .map(|i| {
            let step = 50 * i;
            let tokens = 1024 * step as u64;
            let loss = 1.6 + 2.4 * (-k * step as f64 / 500.0).exp();
            Point {
                step,
                tokens,
                wall_s: s_per_step * step as f64,
                flops: flops_per_token as f64 * tokens as f64,
                val_loss: loss,
                reliability: reliability_bins(0.03 * (loss - 1.5)),
                domain_accuracy: BTreeMap::from([
                    (
                        "arithmetic".to_string(),
                        1.0 / (1.0 + (8.0 * (loss - 2.0)).exp()),
                    ),
                    ("records".to_string(), (2.8 - loss).clamp(0.0, 1.0)),
                ]),
                ..Point::default()
            }
        })
        .collect();
    let sparse = kind == VariantKind::Switch;
    VariantResult {
        name: name.to_string(),
        kind,
        num_experts: experts,
        capacity_factor: cf,
        balance_coef: if name.ends_with("nobal") || !sparse {
            0.0
        } else {
            0.01
        },
        total_params: dense_params + 229_632 * (experts as u64 - 1),
        active_params: if sparse { 855_168 } else { dense_params },
        train_flops_per_token: flops_per_token,
        tokens_per_s: 1024.0 / s_per_step,
        final_val_loss: curve.last().expect("21 points").val_loss,
        drop_rate: if sparse { 0.02 } else { 0.0 },
        load_cv: if sparse { 0.3 } else { 0.0 },
        curve,
        ..VariantResult::default()
    }
}

/// 15 equal-width bins of 200 predictions each, accuracy `gap` below the confidence.
fn reliability_bins(gap: f64) -> Vec<ReliabilityBin> {
    (0..15)
        .map(|i| {
            let mean_confidence = (i as f64 + 0.5) / 15.0;
            ReliabilityBin {
                count: 200,
                mean_confidence,
                accuracy: (mean_confidence - gap).max(0.0),
            }
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map_or_else(|| "moe-report-demo".into(), PathBuf::from);
    let mut results = vec![variant("dense", VariantKind::Dense, 1, None, 1.0)];
    for experts in [2, 4, 8, 16, 32] {
        let k = 1.0 + 0.25 * (experts as f64).log2();
        results.push(variant(
            &format!("switch-e{experts}"),
            VariantKind::Switch,
            experts,
            Some(1.25),
            k,
        ));
    }
    results.push(variant(
        "switch-e8-cf1.0",
        VariantKind::Switch,
        8,
        Some(1.0),
        1.6,
    ));
    results.push(variant(
        "switch-e8-nobal",
        VariantKind::Switch,
        8,
        Some(1.25),
        1.3,
    ));
    results.push(variant(
        "dense-param-matched",
        VariantKind::ParamMatchedDense,
        1,
        None,
        1.9,
    ));
    let meta = ReportMeta {
        title: "Demo sweep (synthetic curves)".into(),
        command: "cargo run --release --example demo".into(),
        machine: "none: made-up numbers".into(),
        data: "none".into(),
        budget: "1000 steps × 1024 tokens per variant".into(),
        notes: vec!["Curves are synthetic; only the report format is real.".into()],
    };
    write_report(&dir, &results, &meta)?;
    println!("wrote {}", dir.display());
    Ok(())
}
