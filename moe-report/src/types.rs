//! The sweep's results as the sweep runner hands them over: one [`VariantResult`] per trained
//! variant, each with its validation curve of [`Point`]s, plus the free-form [`ReportMeta`].
//!
//! Every `f64` field may be NaN (a diverged run). `serde_json` writes NaN as `null`; the
//! `Deserialize` impls read `null` back as NaN, so `results.json` round-trips.

use serde::{Deserialize, Deserializer, Serialize};

/// One evaluation point of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Optimizer steps done when the evaluation ran.
    pub step: usize,
    /// Training tokens consumed by then.
    pub tokens: u64,
    /// Wall-clock seconds of training by then (the trainer's `elapsed_s`).
    #[serde(deserialize_with = "f64_or_nan")]
    pub wall_s: f64,
    /// Training FLOPs spent by then (`train_flops_per_token × tokens`, `docs/accounting.md`).
    #[serde(deserialize_with = "f64_or_nan")]
    pub flops: f64,
    /// Validation cross-entropy, nats/token.
    #[serde(deserialize_with = "f64_or_nan")]
    pub val_loss: f64,
}

/// What kind of model a variant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VariantKind {
    /// The FLOP-matched dense twin: the speedup baseline (`"dense"`).
    Dense,
    /// A Switch Transformer (`"switch"`).
    Switch,
    /// A dense model with as many parameters as a switch variant (`"param-matched-dense"`).
    ParamMatchedDense,
}

impl VariantKind {
    /// The serde name: `dense`, `switch` or `param-matched-dense` (used in the CSV too).
    pub fn as_str(self) -> &'static str {
        match self {
            VariantKind::Dense => "dense",
            VariantKind::Switch => "switch",
            VariantKind::ParamMatchedDense => "param-matched-dense",
        }
    }
}

/// One variant's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantResult {
    /// Unique name, e.g. `dense`, `switch-e8`, `switch-e8-cf1.0`, `switch-e8-nobal`,
    /// `dense-param-matched`.
    pub name: String,
    /// Dense twin, switch model or parameter-matched dense model.
    pub kind: VariantKind,
    /// Experts per sparse layer; 1 for dense models.
    pub num_experts: usize,
    /// Training capacity factor of the sparse layers; `None` for dense models.
    pub capacity_factor: Option<f64>,
    /// Coefficient of the load-balancing loss (Switch Transformer eq. (4)); 0 = balance off.
    #[serde(deserialize_with = "f64_or_nan")]
    pub balance_coef: f64,
    /// All parameters.
    pub total_params: u64,
    /// Parameters used per token (one expert per sparse layer).
    pub active_params: u64,
    /// Training FLOPs per token, 3 × forward (`docs/accounting.md`).
    pub train_flops_per_token: u64,
    /// Mean training throughput, tokens/s.
    #[serde(deserialize_with = "f64_or_nan")]
    pub tokens_per_s: f64,
    /// Validation loss at the last evaluation, nats/token.
    #[serde(deserialize_with = "f64_or_nan")]
    pub final_val_loss: f64,
    /// Mean fraction of tokens dropped by capacity over logged steps and sparse layers
    /// (0 for dense models).
    #[serde(deserialize_with = "f64_or_nan")]
    pub drop_rate: f64,
    /// Coefficient of variation (std / mean over experts) of the expert load, averaged over
    /// sparse layers and logged steps; 0 for dense models.
    #[serde(deserialize_with = "f64_or_nan")]
    pub load_cv: f64,
    /// Evaluation points in step order (validation loss).
    pub curve: Vec<Point>,
}

/// Free-form context printed at the top of `report.md` (and stored in `results.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportMeta {
    /// The report's title (the Markdown `#` heading).
    pub title: String,
    /// The command that ran the sweep.
    pub command: String,
    /// The machine: CPU/GPU, backend.
    pub machine: String,
    /// The training and validation data.
    pub data: String,
    /// The compute budget each variant got (steps, tokens, time).
    pub budget: String,
    /// Further remarks, one bullet each.
    pub notes: Vec<String>,
}

/// Reads a JSON number, or `null` (how `serde_json` writes NaN and infinities) as NaN.
pub(crate) fn f64_or_nan<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_serde_names_match_as_str() {
        for kind in [
            VariantKind::Dense,
            VariantKind::Switch,
            VariantKind::ParamMatchedDense,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()), "{kind:?}");
            assert_eq!(serde_json::from_str::<VariantKind>(&json).unwrap(), kind);
        }
    }

    #[test]
    fn nan_loss_round_trips_through_null() {
        let point = Point {
            step: 10,
            tokens: 1280,
            wall_s: 1.5,
            flops: 2.0e9,
            val_loss: f64::NAN,
        };
        let json = serde_json::to_string(&point).unwrap();
        assert!(json.contains("\"val_loss\":null"), "{json}");
        let back: Point = serde_json::from_str(&json).unwrap();
        assert!(back.val_loss.is_nan());
        assert_eq!((back.step, back.tokens, back.wall_s), (10, 1280, 1.5));
    }
}
