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

#![warn(missing_docs)]

mod csv;
mod curve;
mod error;
mod font;
mod format;
mod fs;
mod markdown;
mod parity;
mod plot;
mod report;
mod summary;
mod types;

pub use crate::csv::CSV_COLUMNS;
pub use crate::curve::{speedup, time_to_loss, Axis};
pub use crate::error::ReportError;
pub use crate::parity::flops_parity;
pub use crate::report::write_report;
pub use crate::summary::{summarize, Report, VariantReport, INTERPOLATION};
pub use crate::types::{Point, ReportMeta, VariantKind, VariantResult};
