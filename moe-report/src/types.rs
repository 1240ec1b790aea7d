//! The sweep's results as the sweep runner hands them over: one [`VariantResult`] per trained
//! variant, each with its validation curve of [`Point`]s, plus the free-form [`ReportMeta`].
//!
//! Every `f64` field may be NaN (a diverged run). `serde_json` writes NaN as `null`; the
//! `Deserialize` impls read `null` back as NaN, so `results.json` round-trips.
//!
//! Fields added after the first release (calibration, per-domain accuracy, non-embedding
//! parameters, executed FLOPs) are optional: `#[serde(default)]`, left out of the JSON when
//! empty, so a `results.json` written before them still loads. Both structs implement
//! `Default`, so a struct literal can end in `..Default::default()`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// One bin of a reliability diagram (Guo et al. 2017; Kadavath et al. 2022): the top-1
/// predictions whose confidence fell into the bin. Bins are equal-width over `[0, 1]`: of
/// `B` bins, bin `i` holds confidences in `[i/B, (i+1)/B)` (the last one includes 1). The
/// trainer uses `B = 15`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Predictions in the bin.
    pub count: u64,
    /// Mean top-1 probability of those predictions (NaN or anything when `count == 0`).
    #[serde(deserialize_with = "f64_or_nan")]
    pub mean_confidence: f64,
    /// Fraction of those predictions that were correct (NaN or anything when `count == 0`).
    #[serde(deserialize_with = "f64_or_nan")]
    pub accuracy: f64,
}

/// One evaluation point of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// Expected calibration error of the top-1 next-token prediction on the validation data:
    /// `Σ_bins count/total · |accuracy − mean_confidence|` (equal-width bins). `None` when
    /// not measured; when absent but [`reliability`](Point::reliability) is given, the
    /// report computes it from the bins ([`ece_from_bins`](crate::ece_from_bins)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ece: Option<f64>,
    /// Reliability-diagram bins of the same predictions, in confidence order; empty when not
    /// measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reliability: Vec<ReliabilityBin>,
    /// Accuracy (0..=1) per evaluation domain, e.g. `"arithmetic"`, `"records"`, `"facts"`;
    /// empty when not measured. A NaN accuracy is written as `null` and read back as NaN.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "map_f64_or_nan"
    )]
    pub domain_accuracy: BTreeMap<String, f64>,
}

/// What kind of model a variant is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VariantKind {
    /// A dense model; the FLOP-matched dense twin is the speedup baseline (`"dense"`).
    /// The default.
    #[default]
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

/// One variant's results (one trained run).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// Parameters outside the token and position embeddings (Kaplan et al. 2020's `N`), all
    /// experts included; `None` when not given. With it the scaling-law fits use
    /// non-embedding parameters, without it all parameters (the report says which).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_embedding_params: Option<u64>,
    /// Training FLOPs per token as executed: [`train_flops_per_token`] plus the FLOPs spent on
    /// empty capacity slots (capacity padding); `None` when not given. Used by
    /// [`FlopsBasis::Executed`](crate::FlopsBasis::Executed).
    ///
    /// [`train_flops_per_token`]: VariantResult::train_flops_per_token
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executed_train_flops_per_token: Option<u64>,
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

impl VariantResult {
    /// Embedding parameters (shared by every token): `total − non-embedding`; `None` without
    /// [`non_embedding_params`](VariantResult::non_embedding_params).
    pub fn embedding_params(&self) -> Option<u64> {
        self.non_embedding_params
            .map(|n| self.total_params.saturating_sub(n))
    }

    /// Non-embedding parameters used per token (one expert per sparse layer): for a switch
    /// model, the size of its dense base. `active − embedding`; `None` without
    /// [`non_embedding_params`](VariantResult::non_embedding_params).
    pub fn active_non_embedding_params(&self) -> Option<u64> {
        self.embedding_params()
            .map(|e| self.active_params.saturating_sub(e))
    }
}

/// Reads a JSON number, or `null` (how `serde_json` writes NaN and infinities) as NaN.
pub(crate) fn f64_or_nan<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// [`f64_or_nan`] for the values of a map.
fn map_f64_or_nan<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, f64>, D::Error> {
    let map = BTreeMap::<String, Option<f64>>::deserialize(deserializer)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
        .collect())
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
            ..Point::default()
        };
        let json = serde_json::to_string(&point).unwrap();
        assert!(json.contains("\"val_loss\":null"), "{json}");
        let back: Point = serde_json::from_str(&json).unwrap();
        assert!(back.val_loss.is_nan());
        assert_eq!((back.step, back.tokens, back.wall_s), (10, 1280, 1.5));
    }

    #[test]
    fn old_json_without_new_fields_loads() {
        // A results.json variant as written before calibration, domains and executed FLOPs.
        let json = r#"{"name":"dense","kind":"dense","num_experts":1,"capacity_factor":null,
            "balance_coef":0.0,"total_params":10,"active_params":10,"train_flops_per_token":60,
            "tokens_per_s":1.0,"final_val_loss":2.0,"drop_rate":0.0,"load_cv":0.0,
            "curve":[{"step":0,"tokens":0,"wall_s":0.0,"flops":0.0,"val_loss":4.0}]}"#;
        let v: VariantResult = serde_json::from_str(json).unwrap();
        assert_eq!(v.non_embedding_params, None);
        assert_eq!(v.executed_train_flops_per_token, None);
        assert_eq!(v.curve[0].ece, None);
        assert!(v.curve[0].reliability.is_empty() && v.curve[0].domain_accuracy.is_empty());
        // Absent optional fields are left out again, so old readers see the old shape.
        let back = serde_json::to_string(&v).unwrap();
        for key in [
            "non_embedding_params",
            "executed",
            "ece",
            "reliability",
            "domain",
        ] {
            assert!(!back.contains(key), "{key} written: {back}");
        }
    }

    #[test]
    fn new_fields_round_trip_with_nan_accuracy() {
        let point = Point {
            ece: Some(0.05),
            reliability: vec![ReliabilityBin {
                count: 3,
                mean_confidence: 0.9,
                accuracy: 2.0 / 3.0,
            }],
            domain_accuracy: BTreeMap::from([
                ("arithmetic".to_string(), 0.25),
                ("facts".to_string(), f64::NAN),
            ]),
            ..Point::default()
        };
        let json = serde_json::to_string(&point).unwrap();
        let back: Point = serde_json::from_str(&json).unwrap();
        assert_eq!(back.ece, Some(0.05));
        assert_eq!(back.reliability, point.reliability);
        assert_eq!(back.domain_accuracy["arithmetic"], 0.25);
        assert!(back.domain_accuracy["facts"].is_nan(), "{json}");
    }

    #[test]
    fn active_non_embedding_params_subtracts_the_embeddings() {
        let v = VariantResult {
            total_params: 1000,
            active_params: 400,
            non_embedding_params: Some(900),
            ..VariantResult::default()
        };
        assert_eq!(v.embedding_params(), Some(100));
        assert_eq!(v.active_non_embedding_params(), Some(300));
        assert_eq!(VariantResult::default().active_non_embedding_params(), None);
    }
}
