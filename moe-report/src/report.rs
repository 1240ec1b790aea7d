//! [`write_report`]: every output file of a sweep's report.

use std::fs;
use std::path::Path;

use crate::fs::{io_error, sync_dir, write_atomic};
use crate::options::ReportOptions;
use crate::plot::{write_figure, Chart, MAX_LEGEND_ENTRIES};
use crate::plot_eval::{ece_charts, emergence_charts, reliability_chart};
use crate::plot_fits::{chinchilla_chart, experts_chart, kaplan_chart};
use crate::summary::{summarize_with, Report};
use crate::types::{ReportMeta, VariantResult};
use crate::{csv, markdown, plot};

/// Writes into `dir`: `results.csv`, `results.json`, `report.md` and plots `loss_vs_steps`,
/// `loss_vs_tokens`, `loss_vs_wallclock`, `loss_vs_flops`, `speedup_vs_experts` — each as
/// `.png` and `.svg`. `meta` is free-form text (command, machine, data, budget) placed at the
/// top of `report.md`. The baseline for speedups is the variant of kind
/// [`Dense`](crate::VariantKind::Dense) (an error if absent or not unique).
///
/// When the results allow, also the fit and evaluation plots (see [`write_report_with`]);
/// `report.md` always has the scaling-law, calibration and emergence sections, one line
/// saying why when there is nothing to show.
///
/// `dir` is created if needed; existing files of these names are replaced, each atomically
/// (temporary file + rename). `report.md` is written last, so its plot links always resolve.
///
/// # Errors
/// Invalid results (see [`summarize`](crate::summarize)) before anything is written; an
/// unwritable `dir` or file; a plotting failure. Messages name the variant or path.
pub fn write_report(
    dir: &Path,
    results: &[VariantResult],
    meta: &ReportMeta,
) -> anyhow::Result<()> {
    write_report_with(dir, results, meta, &ReportOptions::default())
}

/// [`write_report`] with [`ReportOptions`] (baseline among several dense runs, FLOP basis,
/// fit settings). Besides `write_report`'s files, writes whichever of these the data allows:
///
/// | plot | when |
/// |---|---|
/// | `kaplan_fit` | dense runs of ≥ 3 sizes: `L(N)` and `L(C)` with their fits |
/// | `chinchilla_fit` | the Chinchilla fit succeeded (≥ 7 dense runs, ≥ 3 sizes and token counts) |
/// | `loss_vs_experts` | a dense base size with ≥ 2 expert counts at one token count |
/// | `reliability_diagram` | some evaluation point has reliability bins |
/// | `ece_vs_size_and_experts` | dense / balanced switch runs with an ECE |
/// | `domain_accuracy_vs_flops` | some evaluation point has per-domain accuracy |
///
/// # Errors
/// As [`write_report`]; also a [`ReportOptions::baseline`] that names no dense variant.
pub fn write_report_with(
    dir: &Path,
    results: &[VariantResult],
    meta: &ReportMeta,
    options: &ReportOptions,
) -> anyhow::Result<()> {
    let report = summarize_with(results, meta, options)?;
    fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
    let json = serde_json::to_string_pretty(&report).map_err(crate::ReportError::from)?;
    write_atomic(&dir.join("results.json"), format!("{json}\n").as_bytes())?;
    write_atomic(&dir.join("results.csv"), csv::render(&report).as_bytes())?;
    plot::write_plots(dir, &report)?;
    let figures = extra_figures(&report);
    for figure in &figures {
        write_figure(dir, figure.stem, &figure.charts)?;
    }
    write_atomic(
        &dir.join("report.md"),
        markdown::render(&report, &figures).as_bytes(),
    )?;
    sync_dir(dir);
    Ok(())
}

/// The `report.md` section a figure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Scaling,
    Calibration,
    Emergence,
}

/// A plot beyond the loss and speedup plots: one or more charts in one file.
pub(crate) struct Figure {
    pub section: Section,
    /// File name without extension.
    pub stem: &'static str,
    /// The sentence above its link in `report.md`.
    pub caption: String,
    pub charts: Vec<Chart>,
}

/// The fit and evaluation figures the report's data allows, in report order.
pub(crate) fn extra_figures(report: &Report) -> Vec<Figure> {
    let mut figures = scaling_figures(report);
    figures.extend(evaluation_figures(report));
    figures
}

/// A figure, or none when there is no chart to draw.
fn figure(
    section: Section,
    stem: &'static str,
    caption: String,
    charts: Vec<Chart>,
) -> Option<Figure> {
    (!charts.is_empty()).then_some(Figure {
        section,
        stem,
        caption,
        charts,
    })
}

/// `kaplan_fit`, `chinchilla_fit`, `loss_vs_experts`.
fn scaling_figures(report: &Report) -> Vec<Figure> {
    let s = &report.scaling;
    let kaplan: Vec<Chart> = [
        s.kaplan_params.fitted().map(|f| {
            kaplan_chart(
                f,
                "L(N): dense runs",
                "parameters N (log scale)",
                "per size, the run with the most tokens",
            )
        }),
        s.kaplan_compute.fitted().map(|f| {
            kaplan_chart(
                f,
                "L(C): compute frontier",
                "training FLOPs C (log scale)",
                "lower envelope of the dense curves",
            )
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    let chinchilla = s.chinchilla.fitted().map(chinchilla_chart);
    [
        figure(
            Section::Scaling,
            "kaplan_fit",
            "Kaplan et al. power laws: the points fitted and both fitted curves (dashed).".into(),
            kaplan,
        ),
        figure(
            Section::Scaling,
            "chinchilla_fit",
            "Final loss of every dense run against its training tokens, one colour per model \
             size; dashed: the Chinchilla Approach 3 fit at that size."
                .into(),
            chinchilla.into_iter().collect(),
        ),
        figure(
            Section::Scaling,
            "loss_vs_experts",
            "Final loss against the number of experts at one token count: each colour is one \
             dense base size, so every line is at fixed training FLOPs (switch variants are \
             FLOP-matched to their base); dashed: the Clark et al. fit where there is one."
                .into(),
            experts_chart(report).into_iter().collect(),
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// `reliability_diagram`, `ece_vs_size_and_experts`, `domain_accuracy_vs_flops`.
fn evaluation_figures(report: &Report) -> Vec<Figure> {
    let no_legend = if report.variants.len() > MAX_LEGEND_ENTRIES {
        format!(
            " No legend: {} variants are too many to label; the table above lists them.",
            report.variants.len()
        )
    } else {
        String::new()
    };
    [
        figure(
            Section::Calibration,
            "reliability_diagram",
            format!(
                "Reliability diagram: accuracy against mean confidence per bin; the dashed \
                 diagonal is perfect calibration.{no_legend}"
            ),
            reliability_chart(report).into_iter().collect(),
        ),
        figure(
            Section::Calibration,
            "ece_vs_size_and_experts",
            format!(
                "ECE against model size (N = {}) and against the number of experts.",
                report.scaling.moe_params
            ),
            ece_charts(report),
        ),
        figure(
            Section::Emergence,
            "domain_accuracy_vs_flops",
            format!(
                "Accuracy per domain against training FLOPs ({}), one line per variant.{no_legend}",
                report.flops_basis.describe()
            ),
            emergence_charts(report),
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}
