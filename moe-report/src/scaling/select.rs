//! Which runs feed which fit, and the size groups the plots use.

use std::collections::BTreeMap;

use super::outcome::ScalingRun;
use crate::types::{VariantKind, VariantResult};

/// Dense runs (both dense kinds) with a finite final loss and tokens, and what `N` counts.
pub(crate) fn dense_runs(results: &[VariantResult]) -> (Vec<ScalingRun>, String) {
    let dense: Vec<&VariantResult> = results.iter().filter(|r| is_dense(r)).collect();
    let missing = names_without_non_embedding(&dense);
    let runs = dense
        .iter()
        .filter_map(|r| {
            let params = if missing.is_empty() {
                r.non_embedding_params?
            } else {
                r.total_params
            };
            final_run(r, params)
        })
        .collect();
    let what = if missing.is_empty() {
        "non-embedding parameters (Kaplan et al.'s N)".to_string()
    } else {
        format!("all parameters (non_embedding_params not given for {missing})")
    };
    (runs, what)
}

/// Dense runs and balanced switch runs at the default capacity factor, with the dense base
/// size as `N`, and what `N` counts. Sizes within 5 % of a smaller one are that size
/// ([`size_groups`]): a switch model's router parameters are not part of its dense base.
pub(crate) fn moe_runs(
    results: &[VariantResult],
    default_capacity_factor: Option<f64>,
) -> (Vec<ScalingRun>, String) {
    let chosen: Vec<&VariantResult> = results
        .iter()
        .filter(|r| {
            is_dense(r)
                || (r.kind == VariantKind::Switch
                    && r.balance_coef > 0.0
                    && r.capacity_factor == default_capacity_factor)
        })
        .collect();
    let missing = names_without_non_embedding(&chosen);
    let mut runs: Vec<ScalingRun> = chosen
        .iter()
        .filter_map(|r| {
            let params = if missing.is_empty() {
                r.active_non_embedding_params()?
            } else {
                r.active_params
            };
            final_run(r, params)
        })
        .collect();
    let group = size_groups(runs.iter().map(|r| r.params as u64));
    for r in &mut runs {
        r.params = group[&(r.params as u64)] as f64;
    }
    let what = if missing.is_empty() {
        "active non-embedding parameters (the dense base model)".to_string()
    } else {
        format!("active parameters (non_embedding_params not given for {missing})")
    };
    (runs, what)
}

fn is_dense(r: &VariantResult) -> bool {
    matches!(r.kind, VariantKind::Dense | VariantKind::ParamMatchedDense)
}

fn names_without_non_embedding(runs: &[&VariantResult]) -> String {
    let names: Vec<&str> = runs
        .iter()
        .filter(|r| r.non_embedding_params.is_none())
        .map(|r| r.name.as_str())
        .collect();
    match names.len() {
        0..=3 => names.join(", "),
        n => format!("{} and {} more", names[..3].join(", "), n - 3),
    }
}

fn final_run(r: &VariantResult, params: u64) -> Option<ScalingRun> {
    let last = r.curve.last()?;
    (last.val_loss.is_finite() && last.val_loss > 0.0 && last.tokens > 0 && params > 0).then(|| {
        ScalingRun {
            name: r.name.clone(),
            params: params as f64,
            tokens: last.tokens,
            experts: r.num_experts.max(1),
            loss: last.val_loss,
        }
    })
}

/// Relative tolerance within which two sizes count as one model size in the plots' groups: a
/// switch model's parameters per token exceed its dense base's by the router (`d_model ×
/// experts` per sparse layer, well under 1 %).
const SAME_SIZE: f64 = 0.05;

/// Maps each of `sizes` to the smallest size of its group, where a group is a run of sorted
/// sizes each within 5 % of the group's smallest.
pub(crate) fn size_groups(sizes: impl Iterator<Item = u64>) -> BTreeMap<u64, u64> {
    let mut sorted: Vec<u64> = sizes.collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut groups = BTreeMap::new();
    let mut start = None;
    for s in sorted {
        let head = match start {
            Some(h) if (s as f64) <= h as f64 * (1.0 + SAME_SIZE) => h,
            _ => s,
        };
        start = Some(head);
        groups.insert(s, head);
    }
    groups
}

pub(super) fn distinct_params(runs: &[ScalingRun]) -> usize {
    let mut p: Vec<u64> = runs.iter().map(|r| r.params as u64).collect();
    p.sort_unstable();
    p.dedup();
    p.len()
}

/// Per size, `(N, loss)` of the run with the most tokens (ties: the lower loss).
pub(super) fn largest_budget_per_size(runs: &[ScalingRun]) -> Vec<[f64; 2]> {
    let mut best: BTreeMap<u64, &ScalingRun> = BTreeMap::new();
    for r in runs {
        let slot = best.entry(r.params as u64).or_insert(r);
        if (r.tokens, -r.loss) > (slot.tokens, -slot.loss) {
            *slot = r;
        }
    }
    best.values().map(|r| [r.params, r.loss]).collect()
}

/// The lower envelope of every dense learning curve in `(FLOPs, loss)`: the evaluation
/// points (FLOPs > 0) whose loss is below every point at fewer or equal FLOPs (Kaplan et al.
/// §6.1's compute-efficient frontier, `L(C_min)`).
pub(super) fn compute_envelope(results: &[VariantResult]) -> Vec<[f64; 2]> {
    let mut points: Vec<[f64; 2]> = results
        .iter()
        .filter(|r| is_dense(r))
        .flat_map(|r| r.curve.iter())
        .filter(|p| p.flops > 0.0 && p.flops.is_finite() && p.val_loss.is_finite())
        .map(|p| [p.flops, p.val_loss])
        .collect();
    points.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    let mut envelope: Vec<[f64; 2]> = Vec::new();
    for p in points {
        if envelope.last().is_none_or(|last| p[1] < last[1]) {
            envelope.push(p);
        }
    }
    envelope
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Point;

    fn run(name: &str, params: f64, tokens: u64, loss: f64) -> ScalingRun {
        ScalingRun {
            name: name.into(),
            params,
            tokens,
            experts: 1,
            loss,
        }
    }

    #[test]
    fn per_size_takes_the_longest_run_and_envelope_is_monotone() {
        let runs = [
            run("a", 1e6, 100, 3.0),
            run("b", 1e6, 400, 2.5),
            run("c", 2e6, 100, 2.8),
        ];
        assert_eq!(largest_budget_per_size(&runs), [[1e6, 2.5], [2e6, 2.8]]);

        let curve = |loss: [f64; 3], flops: f64| -> Vec<Point> {
            (0..3)
                .map(|i| Point {
                    step: i,
                    flops: flops * i as f64,
                    val_loss: loss[i],
                    ..Point::default()
                })
                .collect()
        };
        let small = VariantResult {
            name: "small".into(),
            curve: curve([9.0, 4.0, 3.5], 1.0),
            ..VariantResult::default()
        };
        let big = VariantResult {
            name: "big".into(),
            kind: VariantKind::ParamMatchedDense,
            curve: curve([9.0, 3.8, 3.0], 4.0),
            ..VariantResult::default()
        };
        // small: (1, 4.0), (2, 3.5); big: (4, 3.8) is above 3.5 → dropped, (8, 3.0) kept.
        assert_eq!(
            compute_envelope(&[small, big]),
            [[1.0, 4.0], [2.0, 3.5], [8.0, 3.0]]
        );
    }

    #[test]
    fn sizes_within_five_percent_group_together() {
        let g = size_groups([853_120, 855_168, 2_688_128, 1_000, 1_049, 1_051].into_iter());
        assert_eq!(g[&855_168], 853_120, "router params do not make a new size");
        assert_eq!(g[&2_688_128], 2_688_128);
        assert_eq!(
            (g[&1_049], g[&1_051]),
            (1_000, 1_051),
            "5 % of the group's smallest"
        );
    }
}
