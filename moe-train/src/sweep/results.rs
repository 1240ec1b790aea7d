//! Reads finished variants' `metrics.jsonl` into the report's results.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use moe_report::{Point, VariantKind, VariantResult};

use super::plan::{Kind, Variant};
use crate::metrics::{read_metrics, Record};

/// Whether the run in `run_dir` completed `steps` steps (its `summary.json` says so).
pub fn finished(run_dir: &Path, steps: usize) -> bool {
    let Ok(text) = std::fs::read_to_string(run_dir.join("summary.json")) else {
        return false;
    };
    let Ok(summary) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    summary["steps"].as_u64() == Some(steps as u64) && summary["stopped_early"] == false
}

/// One result per variant, from its run directory under `dir`.
pub fn collect(dir: &Path, variants: &[&Variant]) -> anyhow::Result<Vec<VariantResult>> {
    variants
        .iter()
        .map(|v| {
            let run_dir = dir.join(&v.name);
            anyhow::ensure!(
                finished(&run_dir, v.config.train.steps),
                "variant {} has not finished ({}); run its sweep (or shard) to the end first",
                v.name,
                run_dir.display()
            );
            result(v, &run_dir).with_context(|| format!("variant {}", v.name))
        })
        .collect()
}

fn result(v: &Variant, run_dir: &Path) -> anyhow::Result<VariantResult> {
    let records = read_metrics(&run_dir.join("metrics.jsonl"))?;
    let m = &v.config.model;
    let t = &v.config.train;
    let accounting = m.accounting(t.batch_size, t.seq_len);
    let tokens_per_step = (t.batch_size * t.seq_len * t.grad_accum) as u64;
    // A crash-resumed run logs some steps twice: keep the last record of each step.
    let mut by_step: std::collections::BTreeMap<usize, &crate::metrics::TrainRecord> =
        Default::default();
    for r in &records {
        if let Record::Train(tr) = r {
            by_step.insert(tr.step, tr);
        }
    }
    let mut elapsed: HashMap<usize, f64> = HashMap::from([(0, 0.0)]);
    let (mut drop_sum, mut cv_sum, mut layer_obs) = (0.0, 0.0, 0usize);
    for tr in by_step.values() {
        elapsed.insert(tr.step, tr.elapsed_s);
        for layer in &tr.layers {
            drop_sum += layer.dropped_fraction as f64;
            cv_sum += coefficient_of_variation(&layer.load);
            layer_obs += 1;
        }
    }
    let last_train = by_step.values().last().copied();
    // One point per evaluated step (a resumed run may have evaluated a step twice: keep the last).
    let mut points: Vec<Point> = Vec::new();
    for r in &records {
        if let Record::Eval(e) = r {
            let tokens = e.step as u64 * tokens_per_step;
            let point = Point {
                step: e.step,
                tokens,
                wall_s: *elapsed.get(&e.step).unwrap_or(&f64::NAN),
                flops: tokens as f64 * accounting.train_flops_per_token as f64,
                val_loss: e.ce,
                ece: Some(e.ece),
                reliability: e.reliability.clone(),
                domain_accuracy: e
                    .domains
                    .iter()
                    .map(|d| (d.domain.clone(), d.accuracy))
                    .collect(),
            };
            points.retain(|p| p.step != e.step);
            points.push(point);
        }
    }
    points.sort_by_key(|p| p.step);
    let last = points.last().context("no evaluation in metrics.jsonl")?;
    let last_train = last_train.context("no training step in metrics.jsonl")?;
    Ok(VariantResult {
        name: v.name.clone(),
        kind: match v.kind {
            Kind::Dense => VariantKind::Dense,
            Kind::Switch => VariantKind::Switch,
            Kind::ParamMatchedDense => VariantKind::ParamMatchedDense,
        },
        num_experts: if m.num_sparse_layers() > 0 {
            m.switch.num_experts
        } else {
            1
        },
        capacity_factor: (m.num_sparse_layers() > 0).then_some(m.switch.capacity_factor_train),
        balance_coef: m.balance_coef,
        total_params: accounting.total_params,
        active_params: accounting.active_params,
        train_flops_per_token: accounting.train_flops_per_token,
        non_embedding_params: Some(accounting.non_embedding_params),
        executed_train_flops_per_token: Some(accounting.executed_train_flops_per_token),
        tokens_per_s: last_train.tokens as f64 / last_train.elapsed_s.max(1e-9),
        final_val_loss: last.val_loss,
        drop_rate: if layer_obs > 0 {
            drop_sum / layer_obs as f64
        } else {
            0.0
        },
        load_cv: if layer_obs > 0 {
            cv_sum / layer_obs as f64
        } else {
            0.0
        },
        curve: points,
    })
}

/// Standard deviation over mean of the expert loads.
fn coefficient_of_variation(load: &[f32]) -> f64 {
    let n = load.len().max(1) as f64;
    let mean = load.iter().map(|&x| x as f64).sum::<f64>() / n;
    if mean == 0.0 {
        return 0.0;
    }
    let var = load.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    var.sqrt() / mean
}

#[cfg(test)]
mod tests {
    use super::coefficient_of_variation;

    #[test]
    fn cv_of_uniform_and_collapsed_loads() {
        assert_eq!(coefficient_of_variation(&[0.25; 4]), 0.0);
        // One expert takes everything: mean 0.25, std = sqrt((0.75² + 3·0.25²)/4) = 0.433.
        let cv = coefficient_of_variation(&[1.0, 0.0, 0.0, 0.0]);
        assert!((cv - 3f64.sqrt()).abs() < 1e-9, "{cv}");
    }
}
