//! Runs every scaling-law fit the sweep's data allows.
//!
//! - Dense runs (kinds `dense` and `param-matched-dense`), one point per run (`N`, `D` = the
//!   tokens at its last evaluation, `L` = the loss there): Kaplan `L(N)` (per size the run
//!   with the most tokens), Kaplan `L(C)` (the lower envelope of every dense learning curve)
//!   and Chinchilla Approach 3.
//! - Dense runs (`E = 1`) and switch runs with the balance loss on at the default capacity
//!   factor, grouped by training tokens: one Clark et al. fit per token count.

use std::collections::BTreeMap;

use super::outcome::{
    ChinchillaSection, ClarkSection, FrontierRow, KaplanFit, Outcome, ScalingAnalysis, ScalingRun,
};
use super::select::{
    compute_envelope, dense_runs, distinct_params, largest_budget_per_size, moe_runs,
};
use crate::fit::{ChinchillaRun, ClarkRun, PowerLaw, PowerLawWithFloor};
use crate::format::si;
use crate::options::ReportOptions;
use crate::types::VariantResult;

/// Sizes needed before any dense fit is tried.
const MIN_SIZES: usize = 3;

/// Runs every fit the data allows.
pub(crate) fn analyze(
    results: &[VariantResult],
    default_capacity_factor: Option<f64>,
    options: &ReportOptions,
) -> ScalingAnalysis {
    let (dense, dense_params) = dense_runs(results);
    let (moe, moe_params) = moe_runs(results, default_capacity_factor);
    let sizes = distinct_params(&dense);
    let too_few = |what: &str| {
        Outcome::Skipped(format!(
            "{what} needs dense runs of at least {MIN_SIZES} sizes; the sweep has {} dense \
             run(s) of {sizes} size(s)",
            dense.len()
        ))
    };
    let (kaplan_params, kaplan_compute) = if sizes < MIN_SIZES {
        (too_few("L(N)"), too_few("L(C)"))
    } else {
        let by_size = largest_budget_per_size(&dense);
        let envelope = compute_envelope(results);
        (kaplan(&by_size, options), kaplan(&envelope, options))
    };
    ScalingAnalysis {
        dense_params,
        moe_params,
        kaplan_params,
        kaplan_compute,
        chinchilla: chinchilla(&dense, options),
        clark: clark(&moe, options),
    }
}

fn kaplan(points: &[[f64; 2]], options: &ReportOptions) -> Outcome<KaplanFit> {
    let (x, loss): (Vec<f64>, Vec<f64>) = points.iter().map(|p| (p[0], p[1])).unzip();
    PowerLaw::fit(&x, &loss)
        .map(|power_law| KaplanFit {
            points: points.to_vec(),
            power_law,
            with_floor: PowerLawWithFloor::fit(&x, &loss, &options.power_law).into(),
        })
        .into()
}

fn chinchilla(dense: &[ScalingRun], options: &ReportOptions) -> Outcome<ChinchillaSection> {
    let runs: Vec<ChinchillaRun> = dense
        .iter()
        .map(|r| ChinchillaRun {
            params: r.params,
            tokens: r.tokens as f64,
            loss: r.loss,
        })
        .collect();
    let fit = match options.chinchilla.fit(&runs) {
        Ok(fit) => fit,
        Err(reason) => return Outcome::Skipped(reason),
    };
    let frontier = budgets(&runs)
        .into_iter()
        .map(|flops| {
            let (params, tokens) = fit.law.compute_optimal(flops);
            let (params_spread, tokens_spread) = fit.compute_optimal_spread(flops);
            FrontierRow {
                flops,
                params,
                tokens,
                params_spread,
                tokens_spread,
            }
        })
        .collect();
    Outcome::Fitted(ChinchillaSection {
        runs: dense.to_vec(),
        fit,
        frontier,
    })
}

fn clark(moe: &[ScalingRun], options: &ReportOptions) -> Outcome<Vec<ClarkSection>> {
    let mut groups: BTreeMap<u64, Vec<ScalingRun>> = BTreeMap::new();
    for r in moe {
        groups.entry(r.tokens).or_default().push(r.clone());
    }
    let mut sections = Vec::new();
    let mut reasons = Vec::new();
    for (tokens, runs) in groups {
        let points: Vec<ClarkRun> = runs
            .iter()
            .map(|r| ClarkRun {
                params: r.params,
                experts: r.experts as f64,
                loss: r.loss,
            })
            .collect();
        match options.clark.fit(&points) {
            Ok(law) => sections.push(ClarkSection { tokens, runs, law }),
            Err(reason) => reasons.push(format!("at {} tokens: {reason}", si(tokens as f64))),
        }
    }
    if sections.is_empty() {
        let reason = if reasons.is_empty() {
            "no dense or switch run with a finite final loss".to_string()
        } else {
            reasons.join("; ")
        };
        return Outcome::Skipped(reason);
    }
    Outcome::Fitted(sections)
}

/// Whole decades of `C = 6·N·D` from the smallest run's to one decade past the largest's,
/// at most 5 (evenly thinned).
fn budgets(runs: &[ChinchillaRun]) -> Vec<f64> {
    let log_c: Vec<f64> = runs
        .iter()
        .map(|r| (6.0 * r.params * r.tokens).log10())
        .collect();
    let lo = log_c.iter().copied().fold(f64::INFINITY, f64::min).floor() as i32;
    let hi = log_c
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil() as i32
        + 1;
    let decades: Vec<i32> = (lo..=hi).collect();
    let step = decades.len().div_ceil(5).max(1);
    decades
        .iter()
        .step_by(step)
        .map(|&d| 10f64.powi(d))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_cover_the_runs_in_whole_decades() {
        let r = |params: f64, tokens: f64| ChinchillaRun {
            params,
            tokens,
            loss: 3.0,
        };
        // 6·N·D from 6e12 to 6e16: decades 1e12 ..= 1e18 (7), thinned to every 2nd.
        let b = budgets(&[r(1e6, 1e6), r(1e8, 1e8)]);
        assert_eq!(b, [1e12, 1e14, 1e16, 1e18]);
    }
}
