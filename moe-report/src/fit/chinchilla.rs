//! Chinchilla Approach 3 (Hoffmann et al. 2022, arXiv 2203.15556, §3.3, eq. (2) and App.
//! D.2) with the correction of Besiroglu et al. 2024 (arXiv 2404.10102): the summed Huber
//! objective, tolerances scaled to it, and the bootstrap spread reported.
//!
//! ```text
//! L̂(N, D) = E + A/N^α + B/D^β
//! min_{a,b,e,α,β} Σ_i Huber_δ(LSE(a − α log N_i, b − β log D_i, e) − log L_i),  δ = 1e-3
//! A, B, E = eᵃ, eᵇ, eᵉ
//! ```

use serde::{Deserialize, Serialize};

use super::lse::{grid, minimize, rank_starts, LseHuber, Minimum};
use super::power_law::{distinct, steps};
use super::stats::{SplitMix64, Spread};

/// One dense run: its size, its training tokens and its final validation loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChinchillaRun {
    /// Parameters `N`.
    pub params: f64,
    /// Training tokens `D`.
    pub tokens: f64,
    /// Final validation loss `L`, nats/token.
    pub loss: f64,
}

/// The starting grid of the multi-start L-BFGS. The default is Hoffmann et al.'s as a
/// follow-up paper states it (reference doc §3.2): `α, β ∈ {0, 0.5, …, 2}`,
/// `e ∈ {−1, −0.5, …, 1}`, `a, b ∈ {0, 5, …, 25}` — 4,500 points.
#[derive(Debug, Clone, PartialEq)]
pub struct ChinchillaGrid {
    /// Starting values of `e = log E`.
    pub e: Vec<f64>,
    /// Starting values of `a = log A`.
    pub a: Vec<f64>,
    /// Starting values of `b = log B`.
    pub b: Vec<f64>,
    /// Starting values of `α`.
    pub alpha: Vec<f64>,
    /// Starting values of `β`.
    pub beta: Vec<f64>,
}

impl Default for ChinchillaGrid {
    fn default() -> Self {
        ChinchillaGrid {
            e: steps(-1.0, 0.5, 5),
            a: steps(0.0, 5.0, 6),
            b: steps(0.0, 5.0, 6),
            alpha: steps(0.0, 0.5, 5),
            beta: steps(0.0, 0.5, 5),
        }
    }
}

/// How the Chinchilla fit and its bootstrap run.
#[derive(Debug, Clone, PartialEq)]
pub struct ChinchillaConfig {
    /// Huber's `δ` on log residuals; default 1e-3 (Hoffmann et al.; a larger δ overfits the
    /// small runs).
    pub delta: f64,
    /// Starting grid; default [`ChinchillaGrid::default`].
    pub grid: ChinchillaGrid,
    /// L-BFGS runs of the main fit, from the grid points with the lowest objective;
    /// default 32.
    pub starts: usize,
    /// Iteration limit per L-BFGS run; default 1000.
    pub max_iters: u64,
    /// Bootstrap resamples (runs drawn with replacement, refitted); default 200; 0 = none.
    pub bootstrap_resamples: usize,
    /// L-BFGS runs per resample: from the main fit's optimum and the next best-ranked grid
    /// points of the main fit; default 3.
    pub bootstrap_starts: usize,
    /// Seed of the resampling ([SplitMix64]); default 2022.
    ///
    /// [SplitMix64]: https://prng.di.unimi.it/splitmix64.c
    pub seed: u64,
}

impl Default for ChinchillaConfig {
    fn default() -> Self {
        ChinchillaConfig {
            delta: 1e-3,
            grid: ChinchillaGrid::default(),
            starts: 32,
            max_iters: 1000,
            bootstrap_resamples: 200,
            bootstrap_starts: 3,
            seed: 2022,
        }
    }
}

/// The fitted constants of `L̂(N, D) = E + A/N^α + B/D^β`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChinchillaLaw {
    /// `E`: irreducible loss, nats/token.
    pub e: f64,
    /// `A`: the parameter term's coefficient.
    pub a: f64,
    /// `B`: the data term's coefficient.
    pub b: f64,
    /// `α`: the parameter exponent.
    pub alpha: f64,
    /// `β`: the data exponent.
    pub beta: f64,
}

impl ChinchillaLaw {
    /// `E + A/N^α + B/D^β`.
    pub fn predict(&self, params: f64, tokens: f64) -> f64 {
        self.e + self.a / params.powf(self.alpha) + self.b / tokens.powf(self.beta)
    }

    /// Frontier exponent of `N`: `a = β/(α+β)` (Hoffmann et al. eq. (4)).
    pub fn n_exponent(&self) -> f64 {
        self.beta / (self.alpha + self.beta)
    }

    /// Frontier exponent of `D`: `b = α/(α+β)`.
    pub fn d_exponent(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    /// `G = (αA / (βB))^{1/(α+β)}`.
    pub fn g(&self) -> f64 {
        (self.alpha * self.a / (self.beta * self.b)).powf(1.0 / (self.alpha + self.beta))
    }

    /// The loss-minimising `(N_opt, D_opt)` for a compute budget `C` under `C ≈ 6·N·D`
    /// (Hoffmann et al. eq. (4)): `N_opt = G (C/6)^a`, `D_opt = G⁻¹ (C/6)^b`.
    pub fn compute_optimal(&self, flops: f64) -> (f64, f64) {
        let g = self.g();
        let c6 = flops / 6.0;
        (
            g * c6.powf(self.n_exponent()),
            c6.powf(self.d_exponent()) / g,
        )
    }

    fn from_theta(t: &[f64]) -> ChinchillaLaw {
        // θ = (e, a, α, b, β): the LseHuber layout with terms (log N, log D).
        ChinchillaLaw {
            e: t[0].exp(),
            a: t[1].exp(),
            alpha: t[2],
            b: t[3].exp(),
            beta: t[4],
        }
    }
}

/// Percentiles of each constant over the bootstrap refits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChinchillaBootstrap {
    /// Resamples drawn.
    pub resamples: usize,
    /// Resamples refitted (a resample with fewer than 3 distinct `N` or `D` is skipped, as is
    /// one whose every L-BFGS run failed).
    pub fitted: usize,
    /// Seed of the resampling.
    pub seed: u64,
    /// Spread of `E`.
    pub e: Spread,
    /// Spread of `A`.
    pub a: Spread,
    /// Spread of `B`.
    pub b: Spread,
    /// Spread of `α`.
    pub alpha: Spread,
    /// Spread of `β`.
    pub beta: Spread,
    /// Spread of the frontier exponent `a = β/(α+β)`.
    pub n_exponent: Spread,
    /// Every refitted law (not written to `results.json`).
    #[serde(skip)]
    pub laws: Vec<ChinchillaLaw>,
}

/// The result of [`ChinchillaConfig::fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChinchillaFit {
    /// The best fit to all runs.
    pub law: ChinchillaLaw,
    /// The summed Huber objective at the optimum.
    pub objective: f64,
    /// RMS of the log residuals.
    pub rmse_log: f64,
    /// Runs fitted.
    pub runs: usize,
    /// Huber's `δ`.
    pub delta: f64,
    /// Grid points ranked, and L-BFGS runs started from the best of them.
    pub grid_points: usize,
    /// L-BFGS runs of the main fit.
    pub lbfgs_starts: usize,
    /// Bootstrap spread of the constants.
    pub bootstrap: ChinchillaBootstrap,
}

impl ChinchillaFit {
    /// Bootstrap spread of `(N_opt, D_opt)` at compute `C` (each refit's frontier).
    pub fn compute_optimal_spread(&self, flops: f64) -> (Spread, Spread) {
        let points: Vec<(f64, f64)> = self
            .bootstrap
            .laws
            .iter()
            .map(|l| l.compute_optimal(flops))
            .collect();
        (
            Spread::of(points.iter().map(|p| p.0)),
            Spread::of(points.iter().map(|p| p.1)),
        )
    }
}

/// Minimum runs, and distinct sizes and token counts, for a fit of 5 parameters.
const MIN_RUNS: usize = 7;
const MIN_DISTINCT: usize = 3;

impl ChinchillaConfig {
    /// Fits the runs with finite, positive `N`, `D` and `L`, then bootstraps. Errors (as a
    /// sentence for the report) with fewer than 7 such runs or fewer than 3 distinct sizes or
    /// token counts, or when every L-BFGS run failed.
    pub fn fit(&self, runs: &[ChinchillaRun]) -> Result<ChinchillaFit, String> {
        let runs: Vec<ChinchillaRun> = runs.iter().copied().filter(usable).collect();
        check(&runs)?;
        let (log_x, log_loss) = logs(&runs);
        let objective = self.objective(&log_x, &log_loss);
        let g = &self.grid;
        let starts = grid(&[&g.e, &g.a, &g.alpha, &g.b, &g.beta]);
        let ranked = rank_starts(objective, &starts);
        let best = minimize(
            objective,
            ranked.iter().copied().take(self.starts),
            self.max_iters,
        )
        .ok_or("every L-BFGS run failed")?;
        // Bootstrap starts: the optimum, then the next best-ranked grid points.
        let mut boot_starts = vec![best.theta.clone()];
        boot_starts.extend(
            ranked
                .iter()
                .take(self.bootstrap_starts.saturating_sub(1))
                .map(|s| (*s).clone()),
        );
        Ok(ChinchillaFit {
            law: ChinchillaLaw::from_theta(&best.theta),
            objective: best.cost,
            rmse_log: objective.rmse_log(&best.theta),
            runs: runs.len(),
            delta: self.delta,
            grid_points: starts.len(),
            lbfgs_starts: self.starts.min(ranked.len()),
            bootstrap: self.bootstrap(&runs, &boot_starts),
        })
    }

    fn objective<'a>(&self, log_x: &'a [Vec<f64>], log_loss: &'a [f64]) -> LseHuber<'a> {
        LseHuber {
            log_x,
            log_loss,
            delta: self.delta,
        }
    }

    /// Refits `bootstrap_resamples` resamples of `runs` (with replacement) from `starts`.
    fn bootstrap(&self, runs: &[ChinchillaRun], starts: &[Vec<f64>]) -> ChinchillaBootstrap {
        let mut rng = SplitMix64::new(self.seed);
        let mut laws = Vec::new();
        for _ in 0..self.bootstrap_resamples {
            let sample: Vec<ChinchillaRun> = (0..runs.len())
                .map(|_| runs[rng.below(runs.len())])
                .collect();
            if check(&sample).is_err() {
                continue;
            }
            let (log_x, log_loss) = logs(&sample);
            let objective = self.objective(&log_x, &log_loss);
            if let Some(Minimum { theta, .. }) = minimize(objective, starts, self.max_iters) {
                laws.push(ChinchillaLaw::from_theta(&theta));
            }
        }
        let spread = |f: fn(&ChinchillaLaw) -> f64| Spread::of(laws.iter().map(f));
        ChinchillaBootstrap {
            resamples: self.bootstrap_resamples,
            fitted: laws.len(),
            seed: self.seed,
            e: spread(|l| l.e),
            a: spread(|l| l.a),
            b: spread(|l| l.b),
            alpha: spread(|l| l.alpha),
            beta: spread(|l| l.beta),
            n_exponent: spread(ChinchillaLaw::n_exponent),
            laws,
        }
    }
}

fn usable(r: &ChinchillaRun) -> bool {
    [r.params, r.tokens, r.loss]
        .iter()
        .all(|v| v.is_finite() && *v > 0.0)
}

fn check(runs: &[ChinchillaRun]) -> Result<(), String> {
    let sizes = distinct(&runs.iter().map(|r| r.params).collect::<Vec<_>>());
    let budgets = distinct(&runs.iter().map(|r| r.tokens).collect::<Vec<_>>());
    if runs.len() < MIN_RUNS || sizes < MIN_DISTINCT || budgets < MIN_DISTINCT {
        return Err(format!(
            "needs at least {MIN_RUNS} runs with {MIN_DISTINCT} distinct model sizes and \
             {MIN_DISTINCT} distinct token counts (5 constants); has {} runs (distinct sizes: \
             {sizes}, token counts: {budgets})",
            runs.len()
        ));
    }
    Ok(())
}

fn logs(runs: &[ChinchillaRun]) -> (Vec<Vec<f64>>, Vec<f64>) {
    runs.iter()
        .map(|r| (vec![r.params.ln(), r.tokens.ln()], r.loss.ln()))
        .unzip()
}
