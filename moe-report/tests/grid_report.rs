//! `write_report_with` on a synthetic grid sweep (4 dense sizes × 3 token counts, switch
//! variants with 2–16 experts at the largest token count) with calibration bins and
//! per-domain accuracy: every new section and plot appears, the fits see the right runs, the
//! FLOP basis is applied, and the options are checked.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use moe_report::fit::{ChinchillaConfig, ChinchillaLaw};
use moe_report::{
    summarize_with, write_report_with, FlopsBasis, Point, ReliabilityBin, Report, ReportMeta,
    ReportOptions, VariantKind, VariantResult,
};

/// The dense law the grid is drawn from.
const LAW: ChinchillaLaw = ChinchillaLaw {
    e: 1.8,
    a: 60.0,
    b: 120.0,
    alpha: 0.3,
    beta: 0.28,
};
const SIZES: [u64; 4] = [100_000, 300_000, 1_000_000, 3_000_000];
const TOKENS: [u64; 3] = [2_000_000, 8_000_000, 32_000_000];
const EMBEDDING: u64 = 50_000;

/// Reliability bins whose accuracy is `miscalibration` below the confidence.
fn bins(miscalibration: f64) -> Vec<ReliabilityBin> {
    (0..15)
        .map(|i| {
            let conf = (i as f64 + 0.5) / 15.0;
            ReliabilityBin {
                count: 100,
                mean_confidence: conf,
                accuracy: (conf - miscalibration).max(0.0),
            }
        })
        .collect()
}

/// A run of a model with `n` non-embedding parameters per token and `experts` experts
/// (loss lowered by Ê^(−0.05 + 0.002·ln N), Clark-like) trained on `tokens`.
fn run(n: u64, experts: usize, tokens: u64) -> VariantResult {
    let e = experts as f64;
    let loss_at = |t: f64| LAW.predict(n as f64, t) * e.powf(-0.05 + 0.002 * (n as f64).ln());
    let flops_per_token = 6 * n;
    let executed = if experts > 1 {
        flops_per_token * 11 / 10
    } else {
        flops_per_token
    };
    let curve: Vec<Point> = (0..=4)
        .map(|i| {
            let t = tokens * i / 4;
            let loss = if i == 0 { 8.0 } else { loss_at(t as f64) };
            let flops = (flops_per_token * t) as f64;
            Point {
                step: 100 * i as usize,
                tokens: t,
                flops,
                val_loss: loss,
                reliability: bins(0.02 * (loss - 1.8)),
                domain_accuracy: BTreeMap::from([
                    (
                        "arithmetic".to_string(),
                        1.0 / (1.0 + (13.0 - flops.log10()).exp()),
                    ),
                    ("facts".to_string(), 1.0 / (1.0 + (loss - 3.0).exp())),
                ]),
                ..Point::default()
            }
        })
        .collect();
    let expert_params = n / 2;
    // A router of 64 × experts parameters: a switch model's N is a little above its dense
    // base's, differently for every expert count; the report must still group them.
    let router = if experts > 1 { 64 * experts as u64 } else { 0 };
    let non_embedding = n + (experts as u64 - 1) * expert_params + router;
    VariantResult {
        name: format!("n{}k-e{experts}-t{}M", n / 1000, tokens / 1_000_000),
        kind: if experts > 1 {
            VariantKind::Switch
        } else {
            VariantKind::Dense
        },
        num_experts: experts,
        capacity_factor: (experts > 1).then_some(1.25),
        balance_coef: if experts > 1 { 0.01 } else { 0.0 },
        total_params: EMBEDDING + non_embedding,
        active_params: EMBEDDING + n + router,
        non_embedding_params: Some(non_embedding),
        train_flops_per_token: flops_per_token,
        executed_train_flops_per_token: Some(executed),
        final_val_loss: curve.last().unwrap().val_loss,
        curve,
        ..VariantResult::default()
    }
}

fn grid() -> Vec<VariantResult> {
    let mut runs = Vec::new();
    for n in SIZES {
        for t in TOKENS {
            runs.push(run(n, 1, t));
        }
        for e in [2, 4, 8, 16] {
            runs.push(run(n, e, TOKENS[2]));
        }
    }
    runs
}

fn options() -> ReportOptions {
    ReportOptions {
        baseline: Some("n1000k-e1-t32M".into()),
        flops_basis: FlopsBasis::Executed,
        chinchilla: ChinchillaConfig {
            bootstrap_resamples: 40,
            ..ChinchillaConfig::default()
        },
        ..ReportOptions::default()
    }
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("moe-report-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

const EXTRA_PLOTS: [&str; 6] = [
    "kaplan_fit",
    "chinchilla_fit",
    "loss_vs_experts",
    "reliability_diagram",
    "ece_vs_size_and_experts",
    "domain_accuracy_vs_flops",
];

#[test]
fn grid_sweep_report_has_every_section_and_plot() {
    let dir = fresh_dir("grid");
    let meta = ReportMeta {
        title: "Grid".into(),
        ..ReportMeta::default()
    };
    write_report_with(&dir, &grid(), &meta, &options()).unwrap();

    for plot in EXTRA_PLOTS {
        let svg = fs::read_to_string(dir.join(format!("{plot}.svg"))).unwrap();
        assert!(svg.trim_end().ends_with("</svg>"), "{plot}: truncated SVG");
        let png = fs::read(dir.join(format!("{plot}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{plot}");
        assert!(
            png.len() > 15_000,
            "{plot}: {} bytes, nearly blank",
            png.len()
        );
    }
    let svg = fs::read_to_string(dir.join("domain_accuracy_vs_flops.svg")).unwrap();
    for text in [
        "arithmetic: accuracy vs training FLOPs",
        "facts: accuracy vs training FLOPs",
    ] {
        assert!(svg.contains(text), "emergence panel {text:?} missing");
    }

    let md = fs::read_to_string(dir.join("report.md")).unwrap();
    for needle in [
        "FLOP figures count executed FLOPs",
        "| L(N) | N = non-embedding parameters (Kaplan et al.'s N) | 4 |",
        "| L(C) | C = training FLOPs",
        "`L(N, D) = E + A/N^α + B/D^β` over 12 dense runs",
        "of 40 resamples of the runs refitted (seed 2022)",
        "| constant | fit | bootstrap 5 % | 50 % | 95 % |",
        "| C (FLOPs) | N_opt | D_opt | tokens per parameter |",
        "N = active non-embedding parameters (the dense base model)",
        "| 32M | 20 |",
        "| variant | experts | active params | step | ECE | bins |",
        "| variant | arithmetic | facts |",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}:\n{md}");
    }
    for plot in EXTRA_PLOTS {
        assert!(
            md.contains(&format!("![]({plot}.png)")),
            "no link to {plot}"
        );
    }

    let report: Report =
        serde_json::from_str(&fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(report.baseline, "n1000k-e1-t32M");
    assert_eq!(report.flops_basis, FlopsBasis::Executed);
    let switch = &report.variants[3].result;
    assert_eq!(switch.num_experts, 2);
    let last = switch.curve.last().unwrap();
    assert_eq!(
        last.flops,
        (6 * 100_000 * 11 / 10 * last.tokens) as f64,
        "executed FLOPs"
    );
    // Noise-free dense grid: the Chinchilla fit recovers the law.
    let law = report.scaling.chinchilla.fitted().unwrap().fit.law;
    assert!((law.alpha - LAW.alpha).abs() < 0.01, "{law:?}");
    assert!((law.beta - LAW.beta).abs() < 0.01, "{law:?}");
    assert!((law.e - LAW.e).abs() < 0.02, "{law:?}");
    let clark = report.scaling.clark.fitted().unwrap();
    assert_eq!(
        (clark.len(), clark[0].tokens, clark[0].law.runs),
        (1, 32_000_000, 20)
    );
    let sizes: Vec<f64> = clark[0].runs.iter().map(|r| r.params).collect();
    assert!(
        sizes.iter().all(|n| SIZES.contains(&(*n as u64))),
        "N is the dense base size, router excluded: {sizes:?}"
    );
    // Exponent of E at N: −0.05 + 0.002·ln N, so b ≈ −0.05 and c ≈ 0.002.
    assert!((clark[0].law.b + 0.05).abs() < 0.01, "{:?}", clark[0].law);
    assert!((clark[0].law.c - 0.002).abs() < 0.001, "{:?}", clark[0].law);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn baseline_option_and_flops_fallback() {
    let meta = ReportMeta::default();
    let runs = grid();
    let err = summarize_with(&runs, &meta, &ReportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("ReportOptions::baseline"), "{err}");
    let bad = ReportOptions {
        baseline: Some("n100k-e2-t32M".into()),
        ..options()
    };
    let err = summarize_with(&runs, &meta, &bad).unwrap_err().to_string();
    assert!(err.contains("`n100k-e2-t32M`") && err.contains("not a variant of kind `dense`"));

    let mut partial = runs;
    partial[0].executed_train_flops_per_token = None;
    let quick = ReportOptions {
        chinchilla: ChinchillaConfig {
            bootstrap_resamples: 0,
            ..ChinchillaConfig::default()
        },
        ..options()
    };
    let report = summarize_with(&partial, &meta, &quick).unwrap();
    assert_eq!(report.flops_basis, FlopsBasis::Model);
    assert_eq!(report.flops_fallback, ["n100k-e1-t2M"]);
    let p = report.variants[3].result.curve.last().unwrap();
    assert_eq!(p.flops, (6 * 100_000 * p.tokens) as f64, "model FLOPs kept");
}
