//! `write_report` on a synthetic 4-variant sweep whose speedups are known by construction.
//!
//! Every variant evaluates at steps 0, 100, …, 1000 with 1024 tokens per step. The dense twin's
//! loss is `d(s) = 2 + 2·exp(−s/400)`; a variant that learns `k` times faster per step has loss
//! `d(k·s)`, so it reaches the dense twin's final loss `d(1000)` exactly at step `1000 / k`
//! (an evaluation point for the `k` below): speedup in steps = `k`. Wall-clock and FLOPs
//! speedups follow from the seconds per step and FLOPs per token:
//!
//! | variant | k | s/step | FLOPs/token | steps | wall-clock | FLOPs |
//! |---|---:|---:|---:|---:|---:|---:|
//! | dense | 1 | 0.010 | 600 | 1 | 1 | 1 |
//! | switch-e4 | 2 | 0.012 | 600 | 2 | 10/(500·0.012) = 5/3 | 2 |
//! | switch-e16 | 2.5 | 0.0125 | 600 | 2.5 | 10/(400·0.0125) = 2 | 2.5 |
//! | dense-param-matched | 1.25 | 0.030 | 1800 | 1.25 | 10/(800·0.03) = 5/12 | 1.25/3 = 5/12 |

use std::fs;
use std::path::{Path, PathBuf};

use moe_report::{
    write_report, Point, Report, ReportMeta, VariantKind, VariantResult, CSV_COLUMNS,
};

const TOKENS_PER_STEP: u64 = 1024;

fn dense_loss(step: f64) -> f64 {
    2.0 + 2.0 * (-step / 400.0).exp()
}

fn variant(
    name: &str,
    kind: VariantKind,
    num_experts: usize,
    k: f64,
    s_per_step: f64,
    flops_per_token: u64,
) -> VariantResult {
    let curve: Vec<Point> = (0..=10)
        .map(|i| {
            let step = 100 * i;
            let tokens = TOKENS_PER_STEP * step as u64;
            Point {
                step,
                tokens,
                wall_s: s_per_step * step as f64,
                flops: (flops_per_token * tokens) as f64,
                val_loss: dense_loss(k * step as f64),
                ..Point::default()
            }
        })
        .collect();
    let sparse = kind == VariantKind::Switch;
    VariantResult {
        name: name.to_string(),
        kind,
        num_experts,
        capacity_factor: sparse.then_some(1.25),
        balance_coef: if sparse { 0.01 } else { 0.0 },
        total_params: 853_120 * num_experts as u64,
        active_params: 853_120,
        train_flops_per_token: flops_per_token,
        tokens_per_s: TOKENS_PER_STEP as f64 / s_per_step,
        final_val_loss: curve.last().unwrap().val_loss,
        drop_rate: if sparse { 0.015 } else { 0.0 },
        load_cv: if sparse { 0.25 } else { 0.0 },
        curve,
        ..VariantResult::default()
    }
}

fn sweep() -> Vec<VariantResult> {
    vec![
        variant("dense", VariantKind::Dense, 1, 1.0, 0.010, 600),
        variant("switch-e4", VariantKind::Switch, 4, 2.0, 0.012, 600),
        variant("switch-e16", VariantKind::Switch, 16, 2.5, 0.0125, 600),
        variant(
            "dense-param-matched",
            VariantKind::ParamMatchedDense,
            1,
            1.25,
            0.030,
            1800,
        ),
    ]
}

/// Expected (steps, wall-clock, FLOPs) speedups, from the table above.
const EXPECTED: [(&str, f64, f64, f64); 4] = [
    ("dense", 1.0, 1.0, 1.0),
    ("switch-e4", 2.0, 5.0 / 3.0, 2.0),
    ("switch-e16", 2.5, 2.0, 2.5),
    ("dense-param-matched", 1.25, 5.0 / 12.0, 5.0 / 12.0),
];

fn meta() -> ReportMeta {
    ReportMeta {
        title: "Synthetic sweep".into(),
        command: "cargo run --release -p moe-train -- sweep --experts 4,16".into(),
        machine: "test machine, flex".into(),
        data: "built-in corpus".into(),
        budget: "1000 steps × 1024 tokens".into(),
        notes: vec!["synthetic curves".into()],
    }
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("moe-report-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs(),
        "{what}: got {got}, want {want}"
    );
}

/// Every plot of this sweep: the five of every report, and `loss_vs_experts` (one dense base
/// size with 1, 4 and 16 experts at one token count).
const PLOTS: [&str; 6] = [
    "loss_vs_experts",
    "loss_vs_steps",
    "loss_vs_tokens",
    "loss_vs_wallclock",
    "loss_vs_flops",
    "speedup_vs_experts",
];

#[test]
fn writes_every_file_with_the_right_content() {
    let dir = fresh_dir("full");
    write_report(&dir, &sweep(), &meta()).unwrap();

    let mut expected_files: Vec<String> = ["report.md", "results.csv", "results.json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for plot in PLOTS {
        expected_files.push(format!("{plot}.png"));
        expected_files.push(format!("{plot}.svg"));
    }
    expected_files.sort();
    let mut files: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files, expected_files,
        "exactly these files, no temporaries left"
    );

    check_csv(&dir);
    check_json(&dir);
    check_markdown(&dir);
    for plot in PLOTS {
        check_svg(&dir.join(format!("{plot}.svg")), plot);
        check_png(&dir.join(format!("{plot}.png")));
    }
    fs::remove_dir_all(&dir).unwrap();
}

fn check_csv(dir: &Path) {
    let text = fs::read_to_string(dir.join("results.csv")).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0], CSV_COLUMNS, "header");
    assert_eq!(rows.len(), 1 + 4, "one row per variant:\n{text}");
    let col = |name: &str| CSV_COLUMNS.iter().position(|c| *c == name).unwrap();
    let num = |row: &[&str], name: &str| -> f64 { row[col(name)].parse().unwrap() };
    for (row, (name, steps, wall, flops)) in rows[1..].iter().zip(EXPECTED) {
        assert_eq!(row.len(), CSV_COLUMNS.len(), "{name}: {row:?}");
        assert_eq!(row[col("name")], name);
        assert_close(
            num(row, "speedup_steps"),
            steps,
            &format!("{name} speedup_steps"),
        );
        assert_close(
            num(row, "speedup_wallclock"),
            wall,
            &format!("{name} speedup_wallclock"),
        );
        assert_close(
            num(row, "speedup_flops"),
            flops,
            &format!("{name} speedup_flops"),
        );
        // The speedup in steps is the variant's k (module docs): final loss d(k · 1000).
        assert_eq!(
            num(row, "final_val_loss"),
            dense_loss(steps * 1000.0),
            "{name}"
        );
    }
    let e16 = &rows[3];
    assert_eq!(e16[col("kind")], "switch");
    assert_eq!(e16[col("num_experts")], "16");
    assert_eq!(e16[col("capacity_factor")], "1.25");
    assert_eq!(e16[col("total_params")], (853_120u64 * 16).to_string());
    assert_eq!(e16[col("drop_rate")], "0.015");
    assert_eq!(
        rows[1][col("capacity_factor")],
        "",
        "dense has no capacity factor"
    );
    assert_eq!(rows[4][col("kind")], "param-matched-dense");
}

fn check_json(dir: &Path) {
    let text = fs::read_to_string(dir.join("results.json")).unwrap();
    let report: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(report.baseline, "dense");
    assert_eq!(report.meta, meta());
    assert_close(report.target_loss, dense_loss(1000.0), "target_loss");
    assert_eq!(report.default_capacity_factor, Some(1.25));
    let given = sweep();
    assert_eq!(report.variants.len(), 4);
    for ((v, (name, steps, wall, flops)), input) in report.variants.iter().zip(EXPECTED).zip(&given)
    {
        assert_same_result(&v.result, input);
        assert_close(v.speedup_steps.unwrap(), steps, name);
        assert_close(v.speedup_wallclock.unwrap(), wall, name);
        assert_close(v.speedup_flops.unwrap(), flops, name);
        assert_close(v.steps_to_target.unwrap(), 1000.0 / steps, name);
    }
    let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(raw["variants"][1]["kind"], "switch", "flattened fields");
    assert!(raw["variants"][1]["speedup_steps"].is_number());
}

/// `results.json` keeps every field; floats within 1 ulp-ish (serde_json's default parser).
fn assert_same_result(got: &VariantResult, want: &VariantResult) {
    let name = &want.name;
    let close = |a: f64, b: f64, what: &str| {
        assert!(
            (a - b).abs() <= 1e-14 * b.abs(),
            "{name} {what}: {a} vs {b}"
        )
    };
    assert_eq!(
        (&got.name, got.kind, got.num_experts, got.capacity_factor),
        (
            &want.name,
            want.kind,
            want.num_experts,
            want.capacity_factor
        )
    );
    assert_eq!(
        (
            got.total_params,
            got.active_params,
            got.train_flops_per_token
        ),
        (
            want.total_params,
            want.active_params,
            want.train_flops_per_token
        ),
        "{name}"
    );
    close(got.balance_coef, want.balance_coef, "balance_coef");
    close(got.tokens_per_s, want.tokens_per_s, "tokens_per_s");
    close(got.final_val_loss, want.final_val_loss, "final_val_loss");
    close(got.drop_rate, want.drop_rate, "drop_rate");
    close(got.load_cv, want.load_cv, "load_cv");
    assert_eq!(got.curve.len(), want.curve.len(), "{name}");
    for (g, w) in got.curve.iter().zip(&want.curve) {
        assert_eq!((g.step, g.tokens), (w.step, w.tokens), "{name}");
        close(g.wall_s, w.wall_s, "wall_s");
        close(g.flops, w.flops, "flops");
        close(g.val_loss, w.val_loss, "val_loss");
    }
}

fn check_markdown(dir: &Path) {
    let md = fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.starts_with("# Synthetic sweep\n"), "{md}");
    for needle in [
        "cargo run --release -p moe-train -- sweep --experts 4,16",
        "**Machine:** test machine, flex",
        "**Data:** built-in corpus",
        "**Budget:** 1000 steps × 1024 tokens",
        "- synthetic curves",
        "linearly interpolated between the two evaluation points",
        "| switch-e4 | switch | 4 | 1.25 | 0.01 | ",
        "| 2.00× | 1.67× | 2.00× | 1.50 % | 0.250 | 3,412,480 | 853,120 | 600 | 85,333 |",
        "| switch-e16 | 400.0 | 409.6k | 5.0 | 245.76M |",
        "FLOP figures count model FLOPs",
        "## Scaling laws",
        "- L(N) not fitted: L(N) needs dense runs of at least 3 sizes; the sweep has 2 dense \
         run(s) of 1 size(s).",
        "Not fitted: needs at least 7 runs with 3 distinct model sizes",
        "Not fitted: at 1.02M tokens: needs at least 5 runs at one token count, with 2 or more \
         expert counts at each of 2 or more model sizes; has 4 runs, 1 size(s), 1 with several \
         expert counts.",
        "## Calibration\n\nNo calibration data: no evaluation point has `ece` or `reliability` \
         bins.",
        "## Emergence\n\nNo per-domain accuracy",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}:\n{md}");
    }
    for plot in PLOTS {
        assert!(
            md.contains(&format!("![]({plot}.png)")),
            "no link to {plot}.png"
        );
        assert!(
            md.contains(&format!("]({plot}.svg)")),
            "no link to {plot}.svg"
        );
    }
}

fn check_svg(path: &Path, plot: &str) {
    let svg = fs::read_to_string(path).unwrap();
    assert!(svg.starts_with("<svg"), "{plot}: not an SVG");
    assert!(svg.trim_end().ends_with("</svg>"), "{plot}: truncated");
    let texts = svg_texts(&svg);
    let expected: &[&str] = if plot == "loss_vs_experts" {
        &[
            "N = 853.12k",
            "experts per sparse layer (log scale; 1 = dense)",
            "final validation loss (nats/token)",
            "1",
            "4",
            "16",
        ]
    } else if plot == "speedup_vs_experts" {
        &[
            "speedup in steps",
            "speedup in wall-clock time",
            "dense twin dense (1×)",
            "experts per sparse layer (log scale)",
            // x ticks at the sweep's expert counts, 4 and 16 (log2 = 2 and 4), and 8 between.
            "4",
            "8",
            "16",
        ]
    } else {
        &[
            "dense",
            "switch-e4",
            "switch-e16",
            "dense-param-matched",
            "validation loss (nats/token)",
        ]
    };
    for text in expected {
        assert!(
            texts.contains(&text.to_string()),
            "{plot}: no text {text:?} in {texts:?}"
        );
    }
}

/// The contents of every `<text>` element, trimmed.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|s| {
            let body = &s[s.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

fn check_png(path: &Path) {
    let png = fs::read(path).unwrap();
    assert_eq!(
        &png[..8],
        b"\x89PNG\r\n\x1a\n",
        "{}: PNG signature",
        path.display()
    );
    assert_eq!(&png[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
    assert_eq!(
        (be(16), be(20)),
        (1024, 640),
        "{}: dimensions",
        path.display()
    );
    assert_eq!((png[24], png[25]), (8, 2), "8-bit RGB");
    assert_eq!(
        &png[png.len() - 8..png.len() - 4],
        b"IEND",
        "{}: truncated",
        path.display()
    );
    // An all-white 1024×640 PNG compresses to a few kB; lines and anti-aliased text do not.
    assert!(
        png.len() > 15_000,
        "{}: {} bytes, nearly blank",
        path.display(),
        png.len()
    );
}

#[test]
fn missing_dense_baseline_is_an_error_and_writes_nothing() {
    let dir = fresh_dir("no-dense");
    let results: Vec<VariantResult> = sweep()
        .into_iter()
        .filter(|v| v.kind != VariantKind::Dense)
        .collect();
    let err = write_report(&dir, &results, &meta())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no dense baseline"), "{err}");
    assert!(err.contains("switch-e4"), "names the variants: {err}");
    assert!(!dir.exists(), "nothing written for an invalid sweep");
}

#[test]
fn diverged_and_never_reaching_variants_still_report() {
    let dir = fresh_dir("diverged");
    let mut results = sweep();
    // switch-e4 diverges after step 300 (NaN losses); switch-e16 learns too slowly to reach
    // the dense loss.
    for p in &mut results[1].curve[4..] {
        p.val_loss = f64::NAN;
    }
    results[1].final_val_loss = f64::NAN;
    for p in &mut results[2].curve {
        p.val_loss = dense_loss(0.5 * p.step as f64);
    }
    write_report(&dir, &results, &meta()).unwrap();
    let report: Report =
        serde_json::from_str(&fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert!(
        report.variants[1].result.final_val_loss.is_nan(),
        "NaN round-trips as null"
    );
    assert_eq!(report.variants[1].speedup_steps, None);
    assert_eq!(report.variants[2].speedup_wallclock, None);
    let csv = fs::read_to_string(dir.join("results.csv")).unwrap();
    let row: Vec<&str> = csv.lines().nth(2).unwrap().split(',').collect();
    for name in ["speedup_steps", "speedup_wallclock", "speedup_flops"] {
        let col = CSV_COLUMNS.iter().position(|c| *c == name).unwrap();
        assert_eq!(row[col], "", "{name} of switch-e4 must be empty:\n{csv}");
    }
    let md = fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("Never reached (no point): switch-e4, switch-e16."),
        "{md}"
    );
    fs::remove_dir_all(&dir).unwrap();
}
