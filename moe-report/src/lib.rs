//! Dense-vs-sparse compute curves for switchyard sweeps (issue #5).
//!
//! The sweep runner trains several variants of one model on the same data — the FLOP-matched
//! dense twin, switch models with 2..32 experts, other capacity factors, the balance loss off,
//! a parameter-matched dense model — and hands their [`VariantResult`]s to [`write_report`],
//! which measures each variant's speedup over the dense twin to reach the twin's final
//! validation loss ([`speedup`], via [`time_to_loss`]; Switch Transformer Fig. 4/5 in
//! miniature) in steps, wall-clock time and FLOPs, and writes `results.csv`, `results.json`,
//! `report.md` and SVG + PNG plots. [`flops_parity`] lets the sweep refuse variants that are
//! not FLOP-matched.
//!
//! ```no_run
//! use std::path::Path;
//! use moe_report::{write_report, ReportMeta, VariantResult};
//!
//! # fn results() -> Vec<VariantResult> { Vec::new() }
//! let results: Vec<VariantResult> = results(); // from the sweep's runs
//! let meta = ReportMeta { title: "tiny sweep".into(), ..ReportMeta::default() };
//! write_report(Path::new("runs/sweep/report"), &results, &meta)?;
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! PNG text is drawn with DejaVu Sans embedded in the crate (no system font library).
//!
//! # Scaling laws, calibration, emergence (issue #14)
//!
//! A grid sweep (model sizes × token budgets × expert counts) hands over one
//! [`VariantResult`] per run; [`write_report_with`] names the speedup baseline among the
//! dense runs ([`ReportOptions::baseline`]) and may count executed FLOPs, capacity padding
//! included ([`FlopsBasis::Executed`]). The report then adds, when the data allows (else one
//! line saying why):
//!
//! - **Kaplan et al. 2020** single power laws over the dense runs, `L(x) = (x_c/x)^α` by least
//!   squares in log space and `L(x) = E + A/x^α` by Huber + L-BFGS, for `x` = non-embedding
//!   parameters `N` and for `x` = compute `C` (the lower envelope of the dense curves)
//!   ([`fit::PowerLaw`], [`fit::PowerLawWithFloor`]).
//! - **Chinchilla Approach 3** (Hoffmann et al. 2022) with the Besiroglu et al. 2024
//!   correction over the dense runs' final losses:
//!   `min Σ_i Huber_δ(LSE(a − α log N_i, b − β log D_i, e) − log L_i)`, `δ = 1e-3`, summed not
//!   averaged, L-BFGS (argmin) from the best points of a 4,500-point grid, tolerances scaled
//!   to the sum; a seeded bootstrap over runs (5/50/95 % per constant) and the
//!   compute-optimal `N_opt = G (C/6)^a`, `D_opt = G⁻¹ (C/6)^b` for a few budgets
//!   ([`fit::ChinchillaConfig::fit`]).
//! - **Clark et al. 2022** at fixed tokens, `log L = a log N + b log Ê + c log N log Ê + d`
//!   with the saturating `Ê(E; E_start, E_max)` (default `E_start = 1`, `E_max = ∞`: `Ê = E`),
//!   over dense and switch runs, and loss against expert count at fixed FLOPs
//!   ([`fit::ClarkConfig::fit`]).
//! - **Calibration**: a reliability diagram from [`Point::reliability`] bins
//!   ([`ReliabilityBin`], equal-width) and ECE ([`Point::ece`] or [`ece_from_bins`]) against
//!   model size and expert count.
//! - **Emergence**: [`Point::domain_accuracy`] per domain against training FLOPs.
//!
//! The fits, their data and bootstrap spreads are stored in `results.json`
//! ([`Report::scaling`]). `docs/fits.md` in the repository gives the formulas, sources,
//! procedure and the tolerances the tests recover synthetic constants to.
//!
//! Every field added for this is optional (`#[serde(default)]`): an older `results.json`
//! still loads, and `Point`, `VariantResult` implement `Default` for `..Default::default()`.

#![warn(missing_docs)]

mod calibration;
mod csv;
mod curve;
mod error;
pub mod fit;
mod font;
mod format;
mod fs;
mod markdown;
mod markdown_sections;
mod options;
mod parity;
mod plot;
mod plot_eval;
mod plot_fits;
mod report;
mod scaling;
mod summary;
mod types;

pub use crate::calibration::ece_from_bins;
pub use crate::csv::CSV_COLUMNS;
pub use crate::curve::{speedup, time_to_loss, Axis};
pub use crate::error::ReportError;
pub use crate::options::{FlopsBasis, ReportOptions};
pub use crate::parity::flops_parity;
pub use crate::report::{write_report, write_report_with};
pub use crate::scaling::{
    ChinchillaSection, ClarkSection, FrontierRow, KaplanFit, Outcome, ScalingAnalysis, ScalingRun,
};
pub use crate::summary::{summarize, summarize_with, Report, VariantReport, INTERPOLATION};
pub use crate::types::{Point, ReliabilityBin, ReportMeta, VariantKind, VariantResult};
