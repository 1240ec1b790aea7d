//! The analysis behind every output file: the dense baseline, each variant's speedups and
//! times to the baseline's final loss, and which switch variants the speedup plot shows.

use serde::{Deserialize, Serialize};

use crate::curve::{speedup, time_to_loss, Axis};
use crate::error::ReportError;
use crate::options::{FlopsBasis, ReportOptions};
use crate::scaling::{analyze, ScalingAnalysis};
use crate::types::{f64_or_nan, ReportMeta, VariantKind, VariantResult};

/// How time-to-loss is measured, stated in `report.md` and `results.json`.
pub const INTERPOLATION: &str = "The time to reach a loss is the x-value (step, token, second or \
FLOP) at which a variant's validation curve first reaches it, linearly interpolated between the \
two evaluation points that bracket the crossing (the first evaluation at or below the loss and \
the one before it); a curve already at or below the loss at its first evaluation counts that \
evaluation's x. A speedup is the dense twin's x at its last evaluation divided by the variant's \
time to the dense twin's final validation loss. A variant that never reached that loss has no \
speedup (— in report.md, an empty field in results.csv, null in results.json).";

/// One variant with its speedups over the dense twin: a row of `results.csv` and an entry of
/// `results.json` (the [`VariantResult`] fields flattened, then the computed ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantReport {
    /// The variant's results as given.
    #[serde(flatten)]
    pub result: VariantResult,
    /// [`speedup`] in steps; `None` if the target loss was never reached.
    pub speedup_steps: Option<f64>,
    /// [`speedup`] in wall-clock seconds.
    pub speedup_wallclock: Option<f64>,
    /// [`speedup`] in training FLOPs.
    pub speedup_flops: Option<f64>,
    /// [`time_to_loss`] of the target loss in steps.
    pub steps_to_target: Option<f64>,
    /// [`time_to_loss`] of the target loss in training tokens.
    pub tokens_to_target: Option<f64>,
    /// [`time_to_loss`] of the target loss in wall-clock seconds.
    pub wall_s_to_target: Option<f64>,
    /// [`time_to_loss`] of the target loss in training FLOPs.
    pub flops_to_target: Option<f64>,
}

/// Everything `write_report` writes, computed once: the content of `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The context given by the sweep runner.
    pub meta: ReportMeta,
    /// Name of the dense twin, the speedup baseline.
    pub baseline: String,
    /// The baseline's validation loss at its last evaluation point: the target of every
    /// time-to-loss and speedup.
    #[serde(deserialize_with = "f64_or_nan")]
    pub target_loss: f64,
    /// [`INTERPOLATION`].
    pub interpolation: String,
    /// Capacity factor of the switch variants in `speedup_vs_experts` (see
    /// [`Report::speedup_variants`]); `None` when the sweep has no switch variant with the
    /// balance loss on, or they have no capacity factor.
    pub default_capacity_factor: Option<f64>,
    /// Every variant, in the order given.
    pub variants: Vec<VariantReport>,
    /// The FLOPs that every FLOP figure counts (absent in old `results.json`: model FLOPs).
    /// With [`FlopsBasis::Executed`] the curves' `flops` above are the executed ones.
    #[serde(default)]
    pub flops_basis: FlopsBasis,
    /// Variants without executed FLOPs when [`FlopsBasis::Executed`] was asked for (the
    /// report then fell back to model FLOPs); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flops_fallback: Vec<String>,
    /// The scaling-law fits (absent in old `results.json`: every fit "not computed").
    #[serde(default)]
    pub scaling: ScalingAnalysis,
}

impl Report {
    /// The switch variants that `speedup_vs_experts` shows, by expert count: balance loss on
    /// (`balance_coef > 0`) and the default capacity factor — the one most switch variants with
    /// the balance loss on share (ties: the first listed), so `switch-e8-cf1.0` next to
    /// `switch-e2..e32` at 1.25 is left out.
    pub fn speedup_variants(&self) -> Vec<&VariantReport> {
        let mut chosen: Vec<&VariantReport> = self
            .variants
            .iter()
            .filter(|v| is_balanced_switch(&v.result))
            .filter(|v| v.result.capacity_factor == self.default_capacity_factor)
            .collect();
        chosen.sort_by_key(|v| v.result.num_experts);
        chosen
    }
}

/// Checks `results` and computes every variant's speedups over the dense twin, and the
/// scaling-law fits, with the default [`ReportOptions`].
pub fn summarize(results: &[VariantResult], meta: &ReportMeta) -> Result<Report, ReportError> {
    summarize_with(results, meta, &ReportOptions::default())
}

/// [`summarize`] with explicit options: the baseline, the FLOP basis, the fits' settings.
pub fn summarize_with(
    results: &[VariantResult],
    meta: &ReportMeta,
    options: &ReportOptions,
) -> Result<Report, ReportError> {
    validate(results)?;
    let (results, flops_basis, flops_fallback) = apply_flops_basis(results, options.flops_basis);
    let baseline = baseline(&results, options.baseline.as_deref())?;
    let base_curve = &baseline.curve;
    let target_loss = base_curve.last().map_or(f64::NAN, |p| p.val_loss);
    let default_capacity_factor = default_capacity_factor(&results);
    let variants = results
        .iter()
        .map(|result| {
            let time = |axis| time_to_loss(&result.curve, target_loss, axis);
            VariantReport {
                speedup_steps: speedup(base_curve, &result.curve, Axis::Steps),
                speedup_wallclock: speedup(base_curve, &result.curve, Axis::WallClock),
                speedup_flops: speedup(base_curve, &result.curve, Axis::Flops),
                steps_to_target: time(Axis::Steps),
                tokens_to_target: time(Axis::Tokens),
                wall_s_to_target: time(Axis::WallClock),
                flops_to_target: time(Axis::Flops),
                result: result.clone(),
            }
        })
        .collect();
    Ok(Report {
        meta: meta.clone(),
        baseline: baseline.name.clone(),
        target_loss,
        interpolation: INTERPOLATION.to_string(),
        default_capacity_factor,
        scaling: analyze(&results, default_capacity_factor, options),
        variants,
        flops_basis,
        flops_fallback,
    })
}

/// The results with every curve's `flops` on `basis`, the basis used, and the variants that
/// made [`FlopsBasis::Executed`] fall back to model FLOPs.
fn apply_flops_basis(
    results: &[VariantResult],
    basis: FlopsBasis,
) -> (Vec<VariantResult>, FlopsBasis, Vec<String>) {
    let mut results = results.to_vec();
    if basis == FlopsBasis::Model {
        return (results, basis, Vec::new());
    }
    let missing: Vec<String> = results
        .iter()
        .filter(|r| basis.per_token(r).is_none())
        .map(|r| r.name.clone())
        .collect();
    if !missing.is_empty() {
        return (results, FlopsBasis::Model, missing);
    }
    for r in &mut results {
        let per_token = basis
            .per_token(r)
            .expect("checked above: every variant has it") as f64;
        for p in &mut r.curve {
            p.flops = per_token * p.tokens as f64;
        }
    }
    (results, basis, Vec::new())
}

/// Checks names and curves.
fn validate(results: &[VariantResult]) -> Result<(), ReportError> {
    if results.is_empty() {
        return Err(ReportError::NoVariants);
    }
    for (i, result) in results.iter().enumerate() {
        if results[..i].iter().any(|r| r.name == result.name) {
            return Err(ReportError::DuplicateName {
                name: result.name.clone(),
            });
        }
        if result.curve.is_empty() {
            return Err(ReportError::EmptyCurve {
                name: result.name.clone(),
            });
        }
        if let Some(pair) = result.curve.windows(2).find(|w| w[1].step < w[0].step) {
            return Err(ReportError::UnorderedCurve {
                name: result.name.clone(),
                prev: pair[0].step,
                next: pair[1].step,
            });
        }
    }
    Ok(())
}

/// The speedup baseline: the dense variant named `name`, or the only dense variant.
fn baseline<'r>(
    results: &'r [VariantResult],
    name: Option<&str>,
) -> Result<&'r VariantResult, ReportError> {
    let dense: Vec<&VariantResult> = results
        .iter()
        .filter(|r| r.kind == VariantKind::Dense)
        .collect();
    if let Some(name) = name {
        return dense
            .iter()
            .find(|r| r.name == name)
            .copied()
            .ok_or_else(|| ReportError::BadBaseline {
                name: name.to_string(),
                dense: dense.iter().map(|r| r.name.clone()).collect(),
            });
    }
    match dense[..] {
        [baseline] => Ok(baseline),
        [] => Err(ReportError::NoDenseBaseline {
            names: results.iter().map(|r| r.name.clone()).collect(),
        }),
        _ => Err(ReportError::SeveralDense {
            names: dense.iter().map(|r| r.name.clone()).collect(),
        }),
    }
}

fn is_balanced_switch(result: &VariantResult) -> bool {
    result.kind == VariantKind::Switch && result.balance_coef > 0.0
}

/// The capacity factor most balanced switch variants share; ties go to the first listed.
fn default_capacity_factor(results: &[VariantResult]) -> Option<f64> {
    let factors: Vec<Option<f64>> = results
        .iter()
        .filter(|r| is_balanced_switch(r))
        .map(|r| r.capacity_factor)
        .collect();
    let count = |cf: &Option<f64>| factors.iter().filter(|f| *f == cf).count();
    // `max_by_key` keeps the last maximum; scanning reversed makes that the first listed.
    factors
        .iter()
        .rev()
        .max_by_key(|cf| count(cf))
        .copied()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Point;

    fn variant(name: &str, kind: VariantKind, experts: usize, cf: Option<f64>) -> VariantResult {
        let point = |step: usize, val_loss: f64| Point {
            step,
            tokens: 10 * step as u64,
            wall_s: step as f64,
            flops: 1e3 * step as f64,
            val_loss,
            ..Point::default()
        };
        VariantResult {
            name: name.to_string(),
            kind,
            num_experts: experts,
            capacity_factor: cf,
            balance_coef: if name.ends_with("nobal") { 0.0 } else { 0.01 },
            total_params: 0,
            active_params: 0,
            train_flops_per_token: 0,
            tokens_per_s: 0.0,
            final_val_loss: 2.0,
            drop_rate: 0.0,
            load_cv: 0.0,
            curve: vec![point(0, 4.0), point(100, 2.0 + 0.01 * experts as f64)],
            ..VariantResult::default()
        }
    }

    fn sweep() -> Vec<VariantResult> {
        use VariantKind::*;
        vec![
            variant("dense", Dense, 1, None),
            variant("switch-e16", Switch, 16, Some(1.25)),
            variant("switch-e8-cf1.0", Switch, 8, Some(1.0)),
            variant("switch-e2", Switch, 2, Some(1.25)),
            variant("switch-e8-nobal", Switch, 8, Some(1.0)),
            variant("switch-e8", Switch, 8, Some(1.25)),
            variant("dense-param-matched", ParamMatchedDense, 1, None),
        ]
    }

    #[test]
    fn speedup_plot_takes_balanced_default_capacity_in_expert_order() {
        let report = summarize(&sweep(), &ReportMeta::default()).unwrap();
        assert_eq!(report.baseline, "dense");
        assert_eq!(report.default_capacity_factor, Some(1.25));
        let names: Vec<_> = report
            .speedup_variants()
            .iter()
            .map(|v| v.result.name.as_str())
            .collect();
        assert_eq!(names, ["switch-e2", "switch-e8", "switch-e16"]);
    }

    #[test]
    fn default_capacity_tie_goes_to_first_listed() {
        use VariantKind::*;
        let results = vec![
            variant("dense", Dense, 1, None),
            variant("switch-e4-cf2.0", Switch, 4, Some(2.0)),
            variant("switch-e4", Switch, 4, Some(1.25)),
        ];
        assert_eq!(default_capacity_factor(&results), Some(2.0));
        assert_eq!(default_capacity_factor(&results[..1]), None);
    }

    #[test]
    fn baseline_and_target() {
        let report = summarize(&sweep(), &ReportMeta::default()).unwrap();
        assert_eq!(report.target_loss, 2.0 + 0.01);
        let dense = &report.variants[0];
        assert_eq!(dense.speedup_steps, Some(1.0));
        assert_eq!(dense.steps_to_target, Some(100.0));
        // switch-e2 ends at 2.02 > 2.01: never reaches the dense loss.
        assert_eq!(report.variants[3].speedup_steps, None);
    }

    #[test]
    fn invalid_sweeps_are_refused_with_names() {
        let mut two_dense = sweep();
        two_dense[1].kind = VariantKind::Dense;
        let mut no_dense = sweep();
        no_dense[0].kind = VariantKind::ParamMatchedDense;
        let mut duplicate = sweep();
        duplicate[2].name = "switch-e16".into();
        let mut empty = sweep();
        empty[3].curve.clear();
        let mut unordered = sweep();
        unordered[5].curve.reverse();
        let cases: [(&str, Vec<VariantResult>, &str); 6] = [
            ("several dense", two_dense, "switch-e16"),
            ("no dense", no_dense, "no dense baseline"),
            (
                "duplicate",
                duplicate,
                "two variants are named `switch-e16`",
            ),
            ("empty curve", empty, "`switch-e2` has no evaluation points"),
            ("unordered", unordered, "step 0 follows step 100"),
            ("no variants", Vec::new(), "no variants"),
        ];
        for (case, results, needle) in cases {
            let err = summarize(&results, &ReportMeta::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{case}: {err}");
        }
    }
}
