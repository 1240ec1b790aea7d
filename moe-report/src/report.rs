//! [`write_report`]: every output file of a sweep's report.

use std::fs;
use std::path::Path;

use crate::fs::{io_error, sync_dir, write_atomic};
use crate::summary::summarize;
use crate::types::{ReportMeta, VariantResult};
use crate::{csv, markdown, plot};

/// Writes into `dir`: `results.csv`, `results.json`, `report.md` and plots `loss_vs_steps`,
/// `loss_vs_tokens`, `loss_vs_wallclock`, `loss_vs_flops`, `speedup_vs_experts` — each as
/// `.png` and `.svg`. `meta` is free-form text (command, machine, data, budget) placed at the
/// top of `report.md`. The baseline for speedups is the variant of kind
/// [`Dense`](crate::VariantKind::Dense) (an error if absent or not unique).
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
    let report = summarize(results, meta)?;
    fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
    let json = serde_json::to_string_pretty(&report).map_err(crate::ReportError::from)?;
    write_atomic(&dir.join("results.json"), format!("{json}\n").as_bytes())?;
    write_atomic(&dir.join("results.csv"), csv::render(&report).as_bytes())?;
    plot::write_plots(dir, &report)?;
    write_atomic(&dir.join("report.md"), markdown::render(&report).as_bytes())?;
    sync_dir(dir);
    Ok(())
}
