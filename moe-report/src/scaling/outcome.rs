//! The results of the scaling-law fits as stored in `results.json`.

use serde::{Deserialize, Serialize};

use crate::fit::{ChinchillaFit, ClarkLaw, PowerLaw, PowerLawWithFloor, Spread};

/// A fit's result, or why it was not made (a sentence for `report.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome<T> {
    /// The fit.
    Fitted(T),
    /// Why there is no fit.
    Skipped(String),
}

impl<T> Default for Outcome<T> {
    fn default() -> Self {
        Outcome::Skipped("not computed (results.json written before the scaling-law fits)".into())
    }
}

impl<T> Outcome<T> {
    /// The fit, if made.
    pub fn fitted(&self) -> Option<&T> {
        match self {
            Outcome::Fitted(t) => Some(t),
            Outcome::Skipped(_) => None,
        }
    }
}

impl<T> From<Result<T, String>> for Outcome<T> {
    fn from(result: Result<T, String>) -> Self {
        result.map_or_else(Outcome::Skipped, Outcome::Fitted)
    }
}

/// One run as a fit sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingRun {
    /// The variant's name.
    pub name: String,
    /// `N`: see [`ScalingAnalysis::dense_params`] / [`ScalingAnalysis::moe_params`].
    pub params: f64,
    /// `D`: training tokens at the last evaluation.
    pub tokens: u64,
    /// Experts per sparse layer (1 for dense).
    pub experts: usize,
    /// Validation loss at the last evaluation.
    pub loss: f64,
}

/// A Kaplan-style single-variable fit and its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KaplanFit {
    /// The `(x, loss)` points fitted.
    pub points: Vec<[f64; 2]>,
    /// `L = (x_c/x)^α`.
    pub power_law: PowerLaw,
    /// `L = E + A/x^α`.
    pub with_floor: Outcome<PowerLawWithFloor>,
}

/// The Chinchilla compute-optimal model for one budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrontierRow {
    /// The budget `C` (= 6·N·D), FLOPs.
    pub flops: f64,
    /// `N_opt`.
    pub params: f64,
    /// `D_opt`.
    pub tokens: f64,
    /// Bootstrap spread of `N_opt`.
    pub params_spread: Spread,
    /// Bootstrap spread of `D_opt`.
    pub tokens_spread: Spread,
}

/// Chinchilla Approach 3 over the dense runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChinchillaSection {
    /// The runs fitted.
    pub runs: Vec<ScalingRun>,
    /// The fit and its bootstrap.
    pub fit: ChinchillaFit,
    /// Compute-optimal `N`, `D` for whole decades of budget around the runs' `6·N·D`.
    pub frontier: Vec<FrontierRow>,
}

/// One Clark et al. fit at one token count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClarkSection {
    /// The token count shared by the runs.
    pub tokens: u64,
    /// The runs fitted.
    pub runs: Vec<ScalingRun>,
    /// The fitted law.
    pub law: ClarkLaw,
}

/// Every scaling-law fit of a sweep.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScalingAnalysis {
    /// What `N` counts for dense runs: non-embedding parameters, or all parameters when some
    /// run lacks `non_embedding_params`.
    pub dense_params: String,
    /// What `N` counts in the Clark fit: active non-embedding parameters (the dense base), or
    /// active parameters.
    pub moe_params: String,
    /// Kaplan `L(N)` over dense runs.
    pub kaplan_params: Outcome<KaplanFit>,
    /// Kaplan `L(C)` over the lower envelope of the dense learning curves.
    pub kaplan_compute: Outcome<KaplanFit>,
    /// Chinchilla Approach 3 over dense runs.
    pub chinchilla: Outcome<ChinchillaSection>,
    /// Clark et al. fits, one per token count with enough runs.
    pub clark: Outcome<Vec<ClarkSection>>,
}
