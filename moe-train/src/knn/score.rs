//! kNN-LM scoring (Khandelwal et al. 2020, eq. 1–2): `p = λ·p_kNN + (1 − λ)·p_LM`, with
//! `p_kNN(y) ∝ Σ_{neighbours i with value y} exp(−d_i / T)`, mixed in log space, accumulated
//! for every `(k, T, λ)` of a sweep in one pass over the evaluation data (one search per
//! batch, with the largest k).

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::search::NeighbourSearch;
use crate::eval::BatchView;

/// `ln p_kNN(target)` from the neighbours' squared L2 `distances` and next tokens `values`:
/// a softmax of `−d/T` over the neighbours, summed over those whose value is `target`
/// (`−∞` when none is; `+∞` distances weigh nothing).
pub fn knn_log_prob(distances: &[f32], values: &[u32], target: u32, temperature: f64) -> f64 {
    let logit = |d: f32| -(d as f64) / temperature;
    let max = distances
        .iter()
        .map(|&d| logit(d))
        .fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    let (mut total, mut hit) = (0.0, 0.0);
    for (&d, &v) in distances.iter().zip(values) {
        let w = (logit(d) - max).exp();
        total += w;
        if v == target {
            hit += w;
        }
    }
    if hit == 0.0 {
        f64::NEG_INFINITY
    } else {
        hit.ln() - total.ln()
    }
}

/// `ln(λ·e^knn + (1 − λ)·e^lm)`, exactly `lm` at λ = 0 and `knn` at λ = 1.
pub fn interpolate(lm: f64, knn: f64, lambda: f64) -> f64 {
    if lambda == 0.0 {
        return lm;
    }
    if lambda == 1.0 {
        return knn;
    }
    let a = lambda.ln() + knn;
    let b = (1.0 - lambda).ln() + lm;
    let max = a.max(b);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + ((a - max).exp() + (b - max).exp()).ln()
}

/// The values swept in one pass: every combination is scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// Neighbours used (the nearest `k` of the `max(ks)` searched), each ≥ 1.
    pub ks: Vec<usize>,
    /// Softmax temperatures of p_kNN, each > 0.
    pub temperatures: Vec<f64>,
    /// Interpolation weights of p_kNN, each in [0, 1].
    pub lambdas: Vec<f64>,
}

impl Sweep {
    fn len(&self) -> usize {
        self.ks.len() * self.temperatures.len() * self.lambdas.len()
    }
}

/// One point of the sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnnPoint {
    /// Neighbours used.
    pub k: usize,
    /// Softmax temperature T of p_kNN.
    pub temperature: f64,
    /// Interpolation weight of p_kNN.
    pub lambda: f64,
    /// Cross-entropy of the mixture, nats/token.
    pub ce: f64,
    /// `exp(ce)`.
    pub perplexity: f64,
}

/// kNN-LM results of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnnRecord {
    /// The datastore folder.
    pub datastore: String,
    /// Its entries.
    pub entries: usize,
    /// `exact` or `hnsw`.
    pub index: String,
    /// Predicted tokens.
    pub tokens: usize,
    /// The model alone: cross-entropy (equal to the plain evaluation's `ce`) and perplexity.
    pub lm_ce: f64,
    /// `exp(lm_ce)`.
    pub lm_perplexity: f64,
    /// Every `(k, T, λ)` of the sweep, in that nesting order.
    pub results: Vec<KnnPoint>,
    /// The lowest cross-entropy of the sweep.
    pub best: KnnPoint,
    /// Share of tokens whose target is among their largest-k neighbours' values.
    pub target_in_neighbours: f64,
    /// Seconds spent building the approximate index (absent for exact search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_build_s: Option<f64>,
    /// Seconds spent searching.
    pub search_s: f64,
    /// Queries (evaluated tokens) per second of search.
    pub queries_per_s: f64,
}

/// Accumulates the mixture's negative log-likelihood for each `(k, T, λ)` over evaluation
/// batches, searching once per batch with the largest k.
pub struct KnnScorer<'a> {
    search: Box<dyn NeighbourSearch + 'a>,
    values: &'a [u32],
    sweep: Sweep,
    /// Σ −ln p per point, `[ks, temperatures, lambdas]` row-major.
    sums: Vec<f64>,
    lm_sum: f64,
    tokens: usize,
    found: usize,
    search_s: f64,
}

impl<'a> KnnScorer<'a> {
    /// A scorer over the datastore whose next tokens are `values`, for every point of
    /// `sweep` (validated by the caller).
    pub fn new(search: Box<dyn NeighbourSearch + 'a>, values: &'a [u32], sweep: Sweep) -> Self {
        Self {
            search,
            values,
            sums: vec![0.0; sweep.len()],
            sweep,
            lm_sum: 0.0,
            tokens: 0,
            found: 0,
            search_s: 0.0,
        }
    }

    /// Scores one evaluation batch.
    pub fn observe(&mut self, batch: BatchView<'_>) {
        let start = Instant::now();
        let k_max = self.sweep.ks.iter().copied().max().unwrap_or(1);
        let neighbours = self.search.search(batch.ffn_input, k_max);
        self.search_s += start.elapsed().as_secs_f64();
        let mut tokens = Vec::with_capacity(neighbours.k);
        for (q, (&nll, &target)) in batch.nll.iter().zip(&batch.targets).enumerate() {
            let (distances, rows) = neighbours.row(q);
            tokens.clear();
            tokens.extend(rows.iter().map(|&r| self.values[r as usize]));
            let lm = -(nll as f64);
            self.lm_sum += nll as f64;
            self.found += tokens.contains(&target) as usize;
            let mut point = 0;
            for &k in &self.sweep.ks {
                let k = k.min(neighbours.k);
                for &t in &self.sweep.temperatures {
                    let knn = knn_log_prob(&distances[..k], &tokens[..k], target, t);
                    for &lambda in &self.sweep.lambdas {
                        self.sums[point] -= interpolate(lm, knn, lambda);
                        point += 1;
                    }
                }
            }
        }
        self.tokens += batch.nll.len();
    }

    /// The record, naming the datastore `datastore` of `entries` entries.
    pub fn finish(self, datastore: String, entries: usize) -> KnnRecord {
        let n = self.tokens.max(1) as f64;
        let mut results = Vec::new();
        let mut sums = self.sums.iter();
        for &k in &self.sweep.ks {
            for &temperature in &self.sweep.temperatures {
                for &lambda in &self.sweep.lambdas {
                    let ce = sums.next().expect("one sum per point") / n;
                    results.push(KnnPoint {
                        k,
                        temperature,
                        lambda,
                        ce,
                        perplexity: ce.exp(),
                    });
                }
            }
        }
        let best = results
            .iter()
            .min_by(|x, y| x.ce.total_cmp(&y.ce))
            .cloned()
            .expect("at least one point");
        KnnRecord {
            datastore,
            entries,
            index: self.search.name().into(),
            tokens: self.tokens,
            lm_ce: self.lm_sum / n,
            lm_perplexity: (self.lm_sum / n).exp(),
            results,
            best,
            target_in_neighbours: self.found as f64 / n,
            index_build_s: self.search.build_s(),
            search_s: self.search_s,
            queries_per_s: self.tokens as f64 / self.search_s.max(1e-9),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand: distances 0, ln 3 at T = 1 give weights 1 and 1/3, so p(7) = 3/4 and
    /// p(8) = 1/4; a token no neighbour has gets −∞.
    #[test]
    fn knn_probability_matches_a_hand_computation() {
        let d = [0.0, 3f32.ln()];
        assert!((knn_log_prob(&d, &[7, 8], 7, 1.0) - 0.75f64.ln()).abs() < 1e-6);
        assert!((knn_log_prob(&d, &[7, 8], 8, 1.0) - 0.25f64.ln()).abs() < 1e-6);
        assert!((knn_log_prob(&d, &[7, 7], 7, 1.0)).abs() < 1e-12);
        assert_eq!(knn_log_prob(&d, &[7, 8], 9, 1.0), f64::NEG_INFINITY);
        assert_eq!(
            knn_log_prob(&[f32::INFINITY], &[7], 7, 1.0),
            f64::NEG_INFINITY
        );
        // A larger temperature flattens: at T → ∞ both weigh 1/2.
        assert!((knn_log_prob(&d, &[7, 8], 8, 1e9) - 0.5f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn interpolation_is_exact_at_the_ends_and_a_mixture_between() {
        let (lm, knn) = (0.2f64.ln(), 0.6f64.ln());
        assert_eq!(interpolate(lm, knn, 0.0), lm);
        assert_eq!(interpolate(lm, knn, 1.0), knn);
        assert!((interpolate(lm, knn, 0.25) - (0.25 * 0.6 + 0.75 * 0.2f64).ln()).abs() < 1e-12);
        assert!((interpolate(lm, f64::NEG_INFINITY, 0.25) - (0.75 * 0.2f64).ln()).abs() < 1e-12);
    }
}
