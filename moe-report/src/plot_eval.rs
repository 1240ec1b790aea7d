//! The evaluation plots: the reliability diagram, ECE against model size and against expert
//! count, and per-domain accuracy against training FLOPs (the emergence view; Schaeffer et
//! al. 2023 on reading such curves).

use std::collections::BTreeMap;

use plotters::prelude::{SeriesLabelPosition, BLACK};
use plotters::style::RGBColor;

use crate::calibration::{domains, final_calibration};
use crate::format::si;
use crate::plot::{padded_range, Chart, Line, XTicks, MAX_MARKED_POINTS, PALETTE};
use crate::scaling::moe_runs;
use crate::summary::Report;

/// The colour of variant `index` in every evaluation plot: black for the baseline.
pub(crate) fn variant_color(report: &Report, index: usize) -> RGBColor {
    if report.variants[index].result.name == report.baseline {
        BLACK
    } else {
        PALETTE[index % PALETTE.len()]
    }
}

fn line(label: String, color: RGBColor, points: Vec<(f64, f64)>) -> Line {
    Line {
        label,
        color,
        width: 2,
        dashed: false,
        markers: points.len() <= MAX_MARKED_POINTS,
        connect: true,
        points,
    }
}

/// Accuracy against mean confidence per bin, one line per variant, and the diagonal.
pub(crate) fn reliability_chart(report: &Report) -> Option<Chart> {
    let calibration = final_calibration(report);
    let mut lines = vec![Line {
        label: "perfect calibration".into(),
        color: BLACK,
        width: 1,
        dashed: true,
        markers: false,
        connect: true,
        points: vec![(0.0, 0.0), (1.0, 1.0)],
    }];
    for c in calibration.iter().filter(|c| !c.bins.is_empty()) {
        let points = c
            .bins
            .iter()
            .filter(|b| b.count > 0 && b.mean_confidence.is_finite() && b.accuracy.is_finite())
            .map(|b| (b.mean_confidence, b.accuracy))
            .collect();
        let ece = c.ece.map_or(String::new(), |e| format!(" (ECE {e:.3})"));
        let label = format!("{}{ece}", c.variant.name);
        lines.push(line(label, variant_color(report, c.index), points));
    }
    (lines.len() > 1).then(|| Chart {
        title: "Reliability diagram (top-1 next-token prediction, last evaluation)".into(),
        x_desc: "confidence (mean top-1 probability in the bin)".into(),
        y_desc: "accuracy in the bin".into(),
        x_ticks: XTicks::Si,
        x_range: 0.0..1.0,
        y_range: 0.0..1.0,
        legend: SeriesLabelPosition::LowerRight,
        lines,
        empty_note: "no reliability bins".into(),
    })
}

/// Per `(experts, N)`, the ECE of the run with the most tokens, over the runs of the Clark
/// fit's selection (dense runs, balanced switch runs at the default capacity factor) with its
/// `N` (see [`ScalingAnalysis::moe_params`](crate::ScalingAnalysis::moe_params)).
fn ece_cells(report: &Report) -> BTreeMap<(usize, u64), f64> {
    let results: Vec<_> = report.variants.iter().map(|v| v.result.clone()).collect();
    let (runs, _) = moe_runs(&results, report.default_capacity_factor);
    let calibration = final_calibration(report);
    let ece_of = |name: &str| -> Option<f64> {
        calibration
            .iter()
            .find(|c| c.variant.name == name)
            .and_then(|c| c.ece)
    };
    let mut cells: BTreeMap<(usize, u64), (u64, f64)> = BTreeMap::new();
    for r in &runs {
        let Some(ece) = ece_of(&r.name) else {
            continue;
        };
        let cell = cells
            .entry((r.experts, r.params as u64))
            .or_insert((r.tokens, ece));
        if r.tokens > cell.0 {
            *cell = (r.tokens, ece);
        }
    }
    cells.into_iter().map(|(k, (_, ece))| (k, ece)).collect()
}

/// One line per value of `key`, points `(x, ECE)` in x order.
fn ece_lines(
    cells: &BTreeMap<(usize, u64), f64>,
    key: fn(&(usize, u64)) -> u64,
    x: fn(&(usize, u64)) -> f64,
    label: fn(u64) -> String,
) -> Vec<Line> {
    let mut groups: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
    for (k, ece) in cells {
        groups.entry(key(k)).or_default().push((x(k), *ece));
    }
    groups
        .into_iter()
        .enumerate()
        .map(|(i, (g, mut points))| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            line(label(g), PALETTE[i % PALETTE.len()], points)
        })
        .collect()
}

/// ECE against `log10(N)` (one line per expert count) and against `log2(experts)` (one line
/// per size), from [`ece_cells`].
pub(crate) fn ece_charts(report: &Report) -> Vec<Chart> {
    let cells = ece_cells(report);
    if cells.is_empty() {
        return Vec::new();
    }
    let ece_range = padded_range(cells.values().copied().chain([0.0]), 0.08);
    let vs_params = ece_lines(
        &cells,
        |k| k.0 as u64,
        |k| (k.1 as f64).log10(),
        |e| {
            if e <= 1 {
                "dense".into()
            } else {
                format!("{e} experts")
            }
        },
    );
    let vs_experts = ece_lines(
        &cells,
        |k| k.1,
        |k| (k.0 as f64).log2(),
        |n| format!("N = {}", si(n as f64)),
    );
    let chart = |title: &str, x_desc: &str, x_ticks, lines: Vec<Line>| {
        let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
        Chart {
            title: title.into(),
            x_desc: x_desc.into(),
            y_desc: "ECE (top-1, equal-width bins)".into(),
            x_ticks,
            x_range: padded_range(xs, 0.06),
            y_range: ece_range.clone(),
            legend: SeriesLabelPosition::UpperRight,
            lines,
            empty_note: "no ECE".into(),
        }
    };
    vec![
        chart(
            "ECE vs model size",
            "parameters per token N (log scale)",
            XTicks::Pow10,
            vs_params,
        ),
        chart(
            "ECE vs experts",
            "experts per sparse layer (log scale)",
            XTicks::Pow2,
            vs_experts,
        ),
    ]
}

/// One panel per domain: accuracy against `log10(training FLOPs)`, one line per variant.
/// Only the first panel carries the legend.
pub(crate) fn emergence_charts(report: &Report) -> Vec<Chart> {
    domains(report)
        .iter()
        .enumerate()
        .map(|(panel, domain)| {
            let lines: Vec<Line> = report
                .variants
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let points = v
                        .result
                        .curve
                        .iter()
                        .filter(|p| p.flops > 0.0)
                        .filter_map(|p| Some((p.flops.log10(), *p.domain_accuracy.get(domain)?)))
                        .filter(|(x, y)| x.is_finite() && y.is_finite())
                        .collect();
                    let label = if panel == 0 {
                        v.result.name.clone()
                    } else {
                        String::new()
                    };
                    line(label, variant_color(report, i), points)
                })
                .filter(|l| !l.points.is_empty())
                .collect();
            let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
            Chart {
                title: format!("{domain}: accuracy vs training FLOPs"),
                x_desc: "training FLOPs (log scale)".into(),
                y_desc: "accuracy".into(),
                x_ticks: XTicks::Pow10,
                x_range: padded_range(xs, 0.04),
                y_range: 0.0..1.0,
                legend: SeriesLabelPosition::UpperLeft,
                lines,
                empty_note: format!("no {domain} accuracy"),
            }
        })
        .collect()
}
