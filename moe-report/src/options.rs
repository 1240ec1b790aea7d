//! [`ReportOptions`]: what [`write_report_with`](crate::write_report_with) may change from
//! [`write_report`](crate::write_report)'s defaults — the baseline among several dense runs,
//! which FLOPs the FLOP axis counts, and how the scaling laws are fitted.

use serde::{Deserialize, Serialize};

use crate::fit::{ChinchillaConfig, ClarkConfig, FloorFitConfig};
use crate::types::VariantResult;

/// Which training FLOPs the report's FLOP axis (`loss_vs_flops`, FLOP speedups, times to
/// loss in FLOPs, the compute power law and the emergence plot) counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlopsBasis {
    /// Each point's `flops` as given: `train_flops_per_token × tokens`, the model's FLOPs
    /// without capacity padding (`"model"`, the default).
    #[default]
    Model,
    /// `executed_train_flops_per_token × tokens`: what the hardware ran, empty capacity slots
    /// included (`"executed"`). Used only when every variant has
    /// [`executed_train_flops_per_token`](VariantResult::executed_train_flops_per_token);
    /// otherwise the report falls back to [`Model`](FlopsBasis::Model) and names the variants
    /// that lack it.
    Executed,
}

impl FlopsBasis {
    /// The variant's training FLOPs per token on this basis (`None`: executed FLOPs not
    /// given). Pass these to [`flops_parity`](crate::flops_parity) to check parity on
    /// executed FLOPs.
    pub fn per_token(self, variant: &VariantResult) -> Option<u64> {
        match self {
            FlopsBasis::Model => Some(variant.train_flops_per_token),
            FlopsBasis::Executed => variant.executed_train_flops_per_token,
        }
    }

    /// One sentence for `report.md`.
    pub fn describe(self) -> &'static str {
        match self {
            FlopsBasis::Model => {
                "model FLOPs: `train_flops_per_token` × tokens (3 × forward, no capacity padding)"
            }
            FlopsBasis::Executed => {
                "executed FLOPs: `executed_train_flops_per_token` × tokens (3 × forward, \
                 capacity padding included)"
            }
        }
    }
}

/// Everything [`write_report_with`](crate::write_report_with) can be told; `Default` is what
/// [`write_report`](crate::write_report) uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportOptions {
    /// The speedup baseline, by name; it must be of kind `dense`. `None` (the default): the
    /// only variant of kind `dense`. Name one when a grid sweep has several dense runs (the
    /// scaling-law fits use them all).
    pub baseline: Option<String>,
    /// Which FLOPs the FLOP axis counts; default [`FlopsBasis::Model`].
    pub flops_basis: FlopsBasis,
    /// Chinchilla Approach 3 fit and bootstrap.
    pub chinchilla: ChinchillaConfig,
    /// Kaplan-style `E + A/x^α` fits.
    pub power_law: FloorFitConfig,
    /// Clark et al. expert-count transform.
    pub clark: ClarkConfig,
}
