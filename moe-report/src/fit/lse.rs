//! The Chinchilla Approach 3 objective (Hoffmann et al. 2022, §3.3 and App. D.2), generalised
//! to any number of power terms, and its minimisation by multi-start L-BFGS (argmin).
//!
//! A law `L̂(x) = E + Σ_k A_k / x_k^α_k` is written in log space with `E = eᵉ`, `A_k = e^{a_k}`:
//!
//! ```text
//! log L̂(x) = LSE(e, a_1 − α_1 log x_1, …, a_K − α_K log x_K)      (LSE = log Σ exp)
//! objective(θ) = Σ_i Huber_δ(log L̂(x_i) − log L_i),   θ = (e, a_1, α_1, …, a_K, α_K)
//! ```
//!
//! The sum over runs, not the mean: Besiroglu et al. 2024 (arXiv 2404.10102) traced the
//! implausibly narrow Chinchilla intervals to an averaged objective that stopped L-BFGS
//! early. The stopping tolerances here are scaled to the summed objective's size
//! ([`tolerances`]).

use argmin::core::{CostFunction, Error, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;

/// Huber loss: `r²/2` for `|r| ≤ δ`, `δ(|r| − δ/2)` beyond (Huber 1964).
pub(crate) fn huber(r: f64, delta: f64) -> f64 {
    if r.abs() <= delta {
        0.5 * r * r
    } else {
        delta * (r.abs() - 0.5 * delta)
    }
}

/// The summed Huber loss of a log-sum-exp law over a set of runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LseHuber<'a> {
    /// Per run, `log x_k` for every power term: `[num_runs][num_terms]`.
    pub log_x: &'a [Vec<f64>],
    /// Per run, `log L_i`.
    pub log_loss: &'a [f64],
    /// Huber's `δ` (Hoffmann et al.: 1e-3).
    pub delta: f64,
}

impl LseHuber<'_> {
    /// Number of parameters: `1 + 2 · num_terms`.
    pub(crate) fn num_params(&self) -> usize {
        1 + 2 * self.log_x.first().map_or(0, Vec::len)
    }

    /// `log L̂` for one run; `weights` receives the softmax of the LSE's arguments (the
    /// derivative of `log L̂` with respect to each), `[1 + num_terms]`.
    fn log_prediction(theta: &[f64], log_x: &[f64], weights: &mut [f64]) -> f64 {
        weights[0] = theta[0];
        for (k, lx) in log_x.iter().enumerate() {
            weights[1 + k] = theta[1 + 2 * k] - theta[2 + 2 * k] * lx;
        }
        let max = weights.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = weights.iter().map(|w| (w - max).exp()).sum();
        let lse = max + sum.ln();
        for w in weights.iter_mut() {
            *w = (*w - lse).exp();
        }
        lse
    }

    /// The objective and, if `grad` is given, its gradient (`∂/∂e = ψ·w_0`,
    /// `∂/∂a_k = ψ·w_k`, `∂/∂α_k = −ψ·w_k·log x_k`, with `ψ = clamp(r, −δ, δ)`).
    pub(crate) fn evaluate(&self, theta: &[f64], mut grad: Option<&mut [f64]>) -> f64 {
        let terms = self.num_params() / 2;
        let mut weights = vec![0.0; 1 + terms];
        if let Some(g) = grad.as_deref_mut() {
            g.fill(0.0);
        }
        let mut total = 0.0;
        for (log_x, &log_l) in self.log_x.iter().zip(self.log_loss) {
            let r = Self::log_prediction(theta, log_x, &mut weights) - log_l;
            total += huber(r, self.delta);
            if let Some(g) = grad.as_deref_mut() {
                let psi = r.clamp(-self.delta, self.delta);
                g[0] += psi * weights[0];
                for (k, lx) in log_x.iter().enumerate() {
                    g[1 + 2 * k] += psi * weights[1 + k];
                    g[2 + 2 * k] -= psi * weights[1 + k] * lx;
                }
            }
        }
        total
    }

    /// Root-mean-square of the log residuals `log L̂ − log L` at `theta`.
    pub(crate) fn rmse_log(&self, theta: &[f64]) -> f64 {
        let mut weights = vec![0.0; self.num_params() / 2 + 1];
        let sum: f64 = self
            .log_x
            .iter()
            .zip(self.log_loss)
            .map(|(lx, &ll)| (Self::log_prediction(theta, lx, &mut weights) - ll).powi(2))
            .sum();
        (sum / self.log_loss.len().max(1) as f64).sqrt()
    }
}

impl CostFunction for LseHuber<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, theta: &Vec<f64>) -> Result<f64, Error> {
        Ok(self.evaluate(theta, None))
    }
}

impl Gradient for LseHuber<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, theta: &Vec<f64>) -> Result<Vec<f64>, Error> {
        let mut g = vec![0.0; theta.len()];
        self.evaluate(theta, Some(&mut g));
        Ok(g)
    }
}

/// L-BFGS history length (argmin's `m`); 10 is the usual choice for a handful of parameters.
const LBFGS_MEMORY: usize = 10;

/// Stopping tolerances for a sum of `n` Huber terms: `(gradient norm, cost change)` =
/// `(1e-8 · n·δ, 1e-10 · n·δ²)`. Each term's slope is at most `δ` and its value near the
/// quadratic/linear boundary is `δ²/2`, so both scale with the objective; a mean objective
/// (1/n of this) with the same absolute tolerances is what stopped Hoffmann et al.'s fit
/// early (Besiroglu et al. 2024, §4).
pub(crate) fn tolerances(n: usize, delta: f64) -> (f64, f64) {
    let n = n.max(1) as f64;
    (1e-8 * n * delta, 1e-10 * n * delta * delta)
}

/// Runs L-BFGS (More–Thuente line search) from `start`; `None` if argmin fails or the
/// result is not finite.
pub(crate) fn lbfgs(objective: LseHuber<'_>, start: Vec<f64>, max_iters: u64) -> Option<Minimum> {
    let (tol_grad, tol_cost) = tolerances(objective.log_loss.len(), objective.delta);
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), LBFGS_MEMORY)
        .with_tolerance_grad(tol_grad)
        .ok()?
        .with_tolerance_cost(tol_cost)
        .ok()?;
    let result = Executor::new(objective, solver)
        .configure(|state| state.param(start).max_iters(max_iters))
        .timer(false)
        .run()
        .ok()?;
    let state = result.state();
    let theta = state.get_best_param()?.clone();
    let cost = state.get_best_cost();
    (cost.is_finite() && theta.iter().all(|t| t.is_finite())).then_some(Minimum { theta, cost })
}

/// A local minimum found by [`lbfgs`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Minimum {
    /// Parameters `(e, a_1, α_1, …)`.
    pub theta: Vec<f64>,
    /// Objective there.
    pub cost: f64,
}

/// `starts` ordered by their objective, lowest first (non-finite ones dropped): the
/// multi-start screening. Hoffmann et al. ran L-BFGS from every grid point; running it from
/// the best-ranked ones finds the same minimum for a fraction of the time.
pub(crate) fn rank_starts<'s>(
    objective: LseHuber<'_>,
    starts: &'s [Vec<f64>],
) -> Vec<&'s Vec<f64>> {
    let mut ranked: Vec<(f64, &Vec<f64>)> = starts
        .iter()
        .map(|s| (objective.evaluate(s, None), s))
        .filter(|(cost, _)| cost.is_finite())
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    ranked.into_iter().map(|(_, s)| s).collect()
}

/// Multi-start L-BFGS: runs [`lbfgs`] from each start and keeps the lowest minimum. `None`
/// if every run failed.
pub(crate) fn minimize<'s>(
    objective: LseHuber<'_>,
    starts: impl IntoIterator<Item = &'s Vec<f64>>,
    max_iters: u64,
) -> Option<Minimum> {
    starts
        .into_iter()
        .filter_map(|start| lbfgs(objective, start.clone(), max_iters))
        .min_by(|a, b| a.cost.total_cmp(&b.cost))
}

/// Every combination of the given values, in order: `[[e, a_1, α_1, …]]` for the axes
/// `[e_values, a_1_values, α_1_values, …]`.
pub(crate) fn grid(axes: &[&[f64]]) -> Vec<Vec<f64>> {
    axes.iter().fold(vec![Vec::new()], |acc, axis| {
        acc.iter()
            .flat_map(|prefix| {
                axis.iter().map(move |&v| {
                    let mut p = prefix.clone();
                    p.push(v);
                    p
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> (Vec<Vec<f64>>, Vec<f64>) {
        let log_x: Vec<Vec<f64>> = [(1e6, 1e8), (3e7, 2e9), (1e9, 5e10), (2e8, 1e9)]
            .iter()
            .map(|&(n, d): &(f64, f64)| vec![n.ln(), d.ln()])
            .collect();
        let log_loss = vec![1.2, 0.9, 0.7, 0.8];
        (log_x, log_loss)
    }

    #[test]
    fn gradient_matches_central_differences() {
        let (log_x, log_loss) = data();
        // δ large (all quadratic) and small (mostly linear): both branches of ψ.
        for delta in [10.0, 1e-3] {
            let f = LseHuber {
                log_x: &log_x,
                log_loss: &log_loss,
                delta,
            };
            let theta = vec![0.3, 5.0, 0.35, 6.0, 0.3];
            let mut g = vec![0.0; 5];
            f.evaluate(&theta, Some(&mut g));
            for i in 0..5 {
                let h = 1e-6;
                let (mut up, mut down) = (theta.clone(), theta.clone());
                up[i] += h;
                down[i] -= h;
                let numeric = (f.evaluate(&up, None) - f.evaluate(&down, None)) / (2.0 * h);
                assert!(
                    (numeric - g[i]).abs() <= 1e-6 * numeric.abs().max(1e-3),
                    "δ={delta} θ[{i}]: analytic {} vs numeric {numeric}",
                    g[i]
                );
            }
        }
    }

    #[test]
    fn objective_is_a_sum_over_runs_not_a_mean() {
        let (log_x, log_loss) = data();
        let once = LseHuber {
            log_x: &log_x,
            log_loss: &log_loss,
            delta: 1e-3,
        };
        let (x2, l2) = ([log_x.clone(), log_x.clone()].concat(), log_loss.repeat(2));
        let twice = LseHuber {
            log_x: &x2,
            log_loss: &l2,
            ..once
        };
        let theta = [0.3, 5.0, 0.35, 6.0, 0.3];
        let (c1, c2) = (once.evaluate(&theta, None), twice.evaluate(&theta, None));
        assert!((c2 - 2.0 * c1).abs() <= 1e-12 * c1, "{c1} {c2}");
        assert!(c1 > 0.0);
    }

    #[test]
    fn huber_branches_and_grid_order() {
        assert_eq!(huber(0.5e-3, 1e-3), 0.125e-6);
        assert!((huber(-3e-3, 1e-3) - 1e-3 * 2.5e-3).abs() < 1e-18);
        let g = grid(&[&[0.0, 1.0], &[5.0, 6.0, 7.0]]);
        assert_eq!(g.len(), 6);
        assert_eq!(g[0], [0.0, 5.0]);
        assert_eq!(g[5], [1.0, 7.0]);
    }
}
