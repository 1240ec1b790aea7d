//! The scaling-law plots: each fit's curve drawn over the points it was fitted to.

use std::collections::BTreeMap;

use plotters::prelude::SeriesLabelPosition;
use plotters::style::RGBColor;

use crate::format::si;
use crate::plot::{padded_range, Chart, Line, XTicks, PALETTE};
use crate::scaling::{moe_runs, ChinchillaSection, KaplanFit, ScalingRun};
use crate::summary::Report;

/// Points on a fitted curve per chart.
const CURVE_POINTS: usize = 120;

fn scatter(label: String, color: RGBColor, points: Vec<(f64, f64)>) -> Line {
    Line {
        label,
        color,
        width: 2,
        dashed: false,
        markers: true,
        connect: false,
        points,
    }
}

fn curve(label: String, color: RGBColor, points: Vec<(f64, f64)>) -> Line {
    Line {
        label,
        color,
        width: 2,
        dashed: true,
        markers: false,
        connect: true,
        points,
    }
}

/// `f` sampled at `CURVE_POINTS` values of `x` across `range`, non-finite values dropped.
fn sample(range: &std::ops::Range<f64>, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
    (0..=CURVE_POINTS)
        .map(|i| range.start + (range.end - range.start) * i as f64 / CURVE_POINTS as f64)
        .map(|x| (x, f(x)))
        .filter(|(_, y)| y.is_finite())
        .collect()
}

/// y range over the data points (the curves may leave it).
fn y_range_of(lines: &[Line]) -> std::ops::Range<f64> {
    padded_range(
        lines
            .iter()
            .filter(|l| !l.dashed)
            .flat_map(|l| l.points.iter().map(|p| p.1)),
        0.08,
    )
}

/// Final loss against `log10(D)`, one colour per model size, with `L̂(N, D)` dashed.
pub(crate) fn chinchilla_chart(section: &ChinchillaSection) -> Chart {
    let law = section.fit.law;
    let mut by_size: BTreeMap<u64, Vec<&ScalingRun>> = BTreeMap::new();
    for r in &section.runs {
        by_size.entry(r.params as u64).or_default().push(r);
    }
    let xs = section.runs.iter().map(|r| (r.tokens as f64).log10());
    let x_range = padded_range(xs, 0.05);
    let mut lines = Vec::new();
    for (i, (params, runs)) in by_size.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points = runs
            .iter()
            .map(|r| ((r.tokens as f64).log10(), r.loss))
            .collect();
        lines.push(scatter(
            format!("N = {}", si(*params as f64)),
            color,
            points,
        ));
        let n = *params as f64;
        lines.push(curve(
            String::new(),
            color,
            sample(&x_range, |x| law.predict(n, 10f64.powf(x))),
        ));
    }
    Chart {
        title: format!(
            "Chinchilla fit: L = {:.3} + {}/N^{:.3} + {}/D^{:.3} (dashed)",
            law.e,
            si(law.a),
            law.alpha,
            si(law.b),
            law.beta
        ),
        x_desc: "training tokens D (log scale)".into(),
        y_desc: "final validation loss (nats/token)".into(),
        x_ticks: XTicks::Pow10,
        y_range: y_range_of(&lines),
        x_range,
        legend: SeriesLabelPosition::UpperRight,
        lines,
        empty_note: "no dense runs".into(),
    }
}

/// One Kaplan panel: the points, `(x_c/x)^α` and `E + A/x^α` when fitted.
pub(crate) fn kaplan_chart(fit: &KaplanFit, title: &str, x_desc: &str, data: &str) -> Chart {
    let points: Vec<(f64, f64)> = fit.points.iter().map(|p| (p[0].log10(), p[1])).collect();
    let x_range = padded_range(points.iter().map(|p| p.0), 0.05);
    let pl = fit.power_law;
    let mut lines = vec![
        scatter(data.into(), PALETTE[0], points),
        curve(
            format!("({}/x)^{:.3}", si(pl.x_c), pl.alpha),
            PALETTE[1],
            sample(&x_range, |x| pl.predict(10f64.powf(x))),
        ),
    ];
    if let Some(f) = fit.with_floor.fitted() {
        lines.push(curve(
            format!("{:.3} + {}/x^{:.3}", f.e, si(f.a), f.alpha),
            PALETTE[2],
            sample(&x_range, |x| f.predict(10f64.powf(x))),
        ));
    }
    Chart {
        title: title.into(),
        x_desc: x_desc.into(),
        y_desc: "validation loss (nats/token)".into(),
        x_ticks: XTicks::Pow10,
        y_range: y_range_of(&lines),
        x_range,
        legend: SeriesLabelPosition::UpperRight,
        lines,
        empty_note: "no points".into(),
    }
}

/// The token count whose runs the experts plot shows: the one with the most runs (ties:
/// the larger).
fn busiest_token_count(runs: &[ScalingRun]) -> Option<u64> {
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for r in runs {
        *counts.entry(r.tokens).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|&(tokens, n)| (n, tokens))
        .map(|(tokens, _)| tokens)
}

/// Final loss against `log2(experts)` at fixed tokens, one colour per dense base size (so
/// each line is at fixed training FLOPs: switch variants are FLOP-matched to their base),
/// with the Clark et al. fit dashed when there is one at
/// that token count. `None` when no size has two expert counts.
pub(crate) fn experts_chart(report: &Report) -> Option<Chart> {
    let results: Vec<_> = report.variants.iter().map(|v| v.result.clone()).collect();
    let (runs, what) = moe_runs(&results, report.default_capacity_factor);
    let tokens = busiest_token_count(&runs)?;
    let mut by_size: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.tokens == tokens) {
        let x = (r.experts as f64).log2();
        by_size
            .entry(r.params as u64)
            .or_default()
            .push((x, r.loss));
    }
    if by_size.values().all(|pts| pts.len() < 2) {
        return None;
    }
    let law = report
        .scaling
        .clark
        .fitted()
        .and_then(|s| s.iter().find(|s| s.tokens == tokens))
        .map(|s| s.law);
    let xs = by_size.values().flatten().map(|p| p.0);
    let span = padded_range(xs, 0.0);
    let x_range = (span.start - 0.3)..(span.end + 0.3);
    let mut lines = Vec::new();
    for (i, (params, mut points)) in by_size.into_iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        lines.push(scatter(format!("N = {}", si(params as f64)), color, points));
        if let Some(law) = law {
            let fit = sample(&(0.0..x_range.end), |x| {
                law.predict(params as f64, 2f64.powf(x))
            });
            lines.push(curve(String::new(), color, fit));
        }
    }
    let fitted = if law.is_some() {
        "; dashed: Clark et al. fit"
    } else {
        ""
    };
    Some(Chart {
        title: format!(
            "Loss vs experts at {} tokens, fixed FLOPs per line{fitted}",
            si(tokens as f64)
        ),
        x_desc: "experts per sparse layer (log scale; 1 = dense)".into(),
        y_desc: "final validation loss (nats/token)".into(),
        x_ticks: XTicks::Pow2,
        y_range: y_range_of(&lines),
        x_range,
        legend: SeriesLabelPosition::UpperRight,
        lines,
        empty_note: format!("no runs ({what})"),
    })
}
