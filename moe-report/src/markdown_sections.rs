//! The `report.md` sections after the speedups: scaling laws, calibration, emergence. Each
//! section is always present; without data it is one line saying why.

use std::fmt::Write;

use crate::calibration::{domains, final_calibration};
use crate::fit::Spread;
use crate::format::{si, NOT_REACHED};
use crate::report::{Figure, Section};
use crate::scaling::{ChinchillaSection, KaplanFit, Outcome};
use crate::summary::Report;

/// A constant with 4 significant digits, in scientific notation outside `[0.01, 1e5)`.
fn sig(x: f64) -> String {
    if x == 0.0 || !x.is_finite() || (0.01..1e5).contains(&x.abs()) {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

fn spread_cells(s: &Spread, fmt: fn(f64) -> String) -> String {
    format!("{} | {} | {}", fmt(s.p5), fmt(s.p50), fmt(s.p95))
}

fn write_figures(md: &mut String, figures: &[Figure], section: Section) {
    for f in figures.iter().filter(|f| f.section == section) {
        let name = f.stem;
        let _ = writeln!(md, "{} ([SVG]({name}.svg))\n\n![]({name}.png)\n", f.caption);
    }
}

/// `## Scaling laws`: Kaplan, Chinchilla, Clark.
pub(crate) fn write_scaling(md: &mut String, report: &Report, figures: &[Figure]) {
    let s = &report.scaling;
    md.push_str(
        "## Scaling laws\n\nFormulas, sources and the fitting procedure: `docs/fits.md`.\n\n",
    );
    md.push_str("### Kaplan et al. 2020 power laws (dense runs)\n\n");
    let kaplan = [
        ("L(N)", &s.kaplan_params, format!("N = {}", s.dense_params)),
        (
            "L(C)",
            &s.kaplan_compute,
            "C = training FLOPs, lower envelope of the dense learning curves".to_string(),
        ),
    ];
    if kaplan.iter().all(|(_, o, _)| o.fitted().is_none()) {
        for (law, outcome, _) in &kaplan {
            if let Outcome::Skipped(why) = outcome {
                let _ = writeln!(md, "- {law} not fitted: {why}.");
            }
        }
    } else {
        md.push_str(
            "| law | x | points | (x_c/x)^α: x_c | α | RMSE(log) | E + A/x^α: E | A | α | \
             RMSE(log) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for (law, outcome, x) in &kaplan {
            match outcome {
                Outcome::Fitted(fit) => kaplan_row(md, law, x, fit),
                Outcome::Skipped(why) => {
                    let _ = writeln!(md, "| {law} | not fitted: {why} |||||||||");
                }
            }
        }
    }
    md.push('\n');
    write_chinchilla(md, report);
    write_clark(md, report);
    write_figures(md, figures, Section::Scaling);
}

fn kaplan_row(md: &mut String, law: &str, x: &str, fit: &KaplanFit) {
    let pl = fit.power_law;
    let floor = match &fit.with_floor {
        Outcome::Fitted(f) => format!(
            "{} | {} | {:.4} | {:.4}",
            sig(f.e),
            sig(f.a),
            f.alpha,
            f.rmse_log
        ),
        Outcome::Skipped(why) => format!("not fitted: {why} |||"),
    };
    let _ = writeln!(
        md,
        "| {law} | {x} | {} | {} | {:.4} | {:.4} | {floor} |",
        pl.points,
        sig(pl.x_c),
        pl.alpha,
        pl.rmse_log
    );
}

fn write_chinchilla(md: &mut String, report: &Report) {
    md.push_str("### Chinchilla Approach 3 (dense runs)\n\n");
    let section = match &report.scaling.chinchilla {
        Outcome::Fitted(section) => section,
        Outcome::Skipped(why) => {
            let _ = writeln!(md, "Not fitted: {why}.\n");
            return;
        }
    };
    let fit = &section.fit;
    let boot = &fit.bootstrap;
    let _ = writeln!(
        md,
        "`L(N, D) = E + A/N^α + B/D^β` over {} dense runs (N = {}; D = training tokens), \
         minimising Σ Huber_δ(log L̂ − log L) with δ = {} by L-BFGS from the {} best of {} grid \
         points; objective {:.3e}, RMSE(log) {:.4}. Bootstrap: {} of {} resamples of the runs \
         refitted (seed {}).\n",
        fit.runs,
        report.scaling.dense_params,
        fit.delta,
        fit.lbfgs_starts,
        fit.grid_points,
        fit.objective,
        fit.rmse_log,
        boot.fitted,
        boot.resamples,
        boot.seed
    );
    md.push_str("| constant | fit | bootstrap 5 % | 50 % | 95 % |\n|---|---:|---:|---:|---:|\n");
    let law = fit.law;
    for (name, value, spread) in [
        ("E", law.e, &boot.e),
        ("A", law.a, &boot.a),
        ("B", law.b, &boot.b),
        ("α", law.alpha, &boot.alpha),
        ("β", law.beta, &boot.beta),
        ("a = β/(α+β)", law.n_exponent(), &boot.n_exponent),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {} | {} |",
            sig(value),
            spread_cells(spread, sig)
        );
    }
    write_frontier(md, section);
}

/// The compute-optimal `N`, `D` table of a Chinchilla fit.
fn write_frontier(md: &mut String, section: &ChinchillaSection) {
    let law = section.fit.law;
    let _ = writeln!(
        md,
        "\nCompute-optimal allocation for a budget C = 6·N·D: N_opt = G·(C/6)^a, D_opt = \
         G⁻¹·(C/6)^b, G = {}, b = {:.4}; bootstrap 5–95 % in brackets.\n\n\
         | C (FLOPs) | N_opt | D_opt | tokens per parameter |\n|---:|---:|---:|---:|",
        sig(law.g()),
        law.d_exponent()
    );
    let range = |s: &Spread| {
        if s.p5.is_finite() {
            format!(" ({}–{})", si(s.p5), si(s.p95))
        } else {
            String::new()
        }
    };
    for row in &section.frontier {
        let _ = writeln!(
            md,
            "| {} | {}{} | {}{} | {:.1} |",
            si(row.flops),
            si(row.params),
            range(&row.params_spread),
            si(row.tokens),
            range(&row.tokens_spread),
            row.tokens / row.params
        );
    }
    md.push('\n');
}

fn write_clark(md: &mut String, report: &Report) {
    md.push_str("### Routed models: Clark et al. 2022\n\n");
    let sections = match &report.scaling.clark {
        Outcome::Fitted(sections) => sections,
        Outcome::Skipped(why) => {
            let _ = writeln!(md, "Not fitted: {why}.\n");
            return;
        }
    };
    let t = sections[0].law.transform;
    let e_max = t.e_max.map_or("∞".to_string(), |m| m.to_string());
    let _ = writeln!(
        md,
        "`log L = a·log N + b·log Ê + c·log N·log Ê + d` (natural logs) per token count, N = {}, \
         Ê with E_start = {}, E_max = {e_max}; dense runs count as E = 1.\n\n\
         | tokens | runs | a | b | c | d | RMSE(log) |\n|---:|---:|---:|---:|---:|---:|---:|",
        report.scaling.moe_params, t.e_start
    );
    for s in sections {
        let l = s.law;
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {:.4} | {:.5} | {:.4} | {:.4} |",
            si(s.tokens as f64),
            l.runs,
            l.a,
            l.b,
            l.c,
            l.d,
            l.rmse_log
        );
    }
    md.push('\n');
}

/// `## Calibration`: ECE per variant at its last calibrated evaluation, and the plots.
pub(crate) fn write_calibration(md: &mut String, report: &Report, figures: &[Figure]) {
    md.push_str("## Calibration\n\n");
    let rows = final_calibration(report);
    if rows.is_empty() {
        md.push_str(
            "No calibration data: no evaluation point has `ece` or `reliability` bins.\n\n",
        );
        return;
    }
    md.push_str(
        "Top-1 next-token calibration on the validation data at each variant's last calibrated \
         evaluation (ECE over equal-width bins).\n\n\
         | variant | experts | active params | step | ECE | bins |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for c in &rows {
        let v = c.variant;
        let ece = c.ece.map_or(NOT_REACHED.to_string(), |e| format!("{e:.4}"));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {ece} | {} |",
            v.name.replace('|', "\\|"),
            v.num_experts,
            si(v.active_params as f64),
            c.step,
            c.bins.len()
        );
    }
    md.push('\n');
    write_figures(md, figures, Section::Calibration);
}

/// `## Emergence`: accuracy per domain at each variant's last evaluation, and the plot.
pub(crate) fn write_emergence(md: &mut String, report: &Report, figures: &[Figure]) {
    md.push_str("## Emergence\n\n");
    let domains = domains(report);
    if domains.is_empty() {
        md.push_str("No per-domain accuracy: no evaluation point has `domain_accuracy`.\n\n");
        return;
    }
    let _ = writeln!(
        md,
        "Accuracy per domain at each variant's last evaluation that measured it. Exact-match \
         accuracy can look like a jump where the per-token probability improves smoothly \
         (Schaeffer et al. 2023).\n\n| variant | {} |\n|---|{}",
        domains.join(" | "),
        "---:|".repeat(domains.len())
    );
    for v in &report.variants {
        let cells: Vec<String> = domains
            .iter()
            .map(|d| {
                let last = v
                    .result
                    .curve
                    .iter()
                    .rev()
                    .find_map(|p| p.domain_accuracy.get(d));
                last.map_or(NOT_REACHED.to_string(), |a| format!("{a:.3}"))
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} |",
            v.result.name.replace('|', "\\|"),
            cells.join(" | ")
        );
    }
    md.push('\n');
    write_figures(md, figures, Section::Emergence);
}
