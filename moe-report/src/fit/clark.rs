//! The routed-model scaling law of Clark et al. 2022 ("Unified Scaling Laws for Routed
//! Language Models", ICML, arXiv 2202.01169) at a fixed number of training tokens:
//!
//! ```text
//! log L(N, E) = a·log N + b·log Ê + c·log N·log Ê + d
//! 1/Ê = 1/(E − 1 + (1/E_start − 1/E_max)⁻¹) + 1/E_max
//! ```
//!
//! `N` is the dense base model's size (parameters used per token), `E` the expert count and
//! `Ê` its saturating transform. With `E_start`, `E_max` fixed the law is linear in
//! `(a, b, c, d)`, fitted by ordinary least squares in log space (natural logarithms; `c` and
//! `d` depend on the base, `a` and `b` do not).

use serde::{Deserialize, Serialize};

use super::linear::{least_squares, rmse};
use super::power_law::distinct;

/// The fixed constants of the expert-count transform.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClarkConfig {
    /// `E_start`; default 1. `Ê(1) = E_start`, so with 1 a dense model has `log Ê = 0`.
    pub e_start: f64,
    /// `E_max`, where `Ê` saturates; `None` (the default) = ∞: no saturation, and with
    /// `E_start = 1` then `Ê = E` exactly. Clark et al. fit both per routing method; sweeps
    /// of ≤ 64 experts with a handful of expert counts cannot pin down a saturation point, so
    /// the default leaves it out — set it for sweeps reaching hundreds of experts.
    pub e_max: Option<f64>,
}

impl Default for ClarkConfig {
    fn default() -> Self {
        ClarkConfig {
            e_start: 1.0,
            e_max: None,
        }
    }
}

/// One run of a fixed-token group: dense base size, expert count (1 = dense), final loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClarkRun {
    /// Dense base parameters `N` (parameters used per token).
    pub params: f64,
    /// Experts per sparse layer `E` (1 for a dense model).
    pub experts: f64,
    /// Final validation loss, nats/token.
    pub loss: f64,
}

/// The fitted law.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClarkLaw {
    /// Coefficient of `log N`.
    pub a: f64,
    /// Coefficient of `log Ê`.
    pub b: f64,
    /// Coefficient of `log N · log Ê` (positive: the benefit of experts shrinks with `N`).
    pub c: f64,
    /// Intercept.
    pub d: f64,
    /// The transform used.
    pub transform: ClarkConfig,
    /// RMS of the log residuals.
    pub rmse_log: f64,
    /// Runs fitted.
    pub runs: usize,
}

impl ClarkLaw {
    /// `exp(a·log N + b·log Ê + c·log N·log Ê + d)`.
    pub fn predict(&self, params: f64, experts: f64) -> f64 {
        let (ln_n, ln_e) = (params.ln(), self.transform.effective_experts(experts).ln());
        (self.a * ln_n + self.b * ln_e + self.c * ln_n * ln_e + self.d).exp()
    }
}

/// Runs needed: 4 coefficients + 1.
const MIN_RUNS: usize = 5;

impl ClarkConfig {
    /// `Ê` for `E` experts: `1/Ê = 1/(E − 1 + (1/E_start − 1/E_max)⁻¹) + 1/E_max`.
    pub fn effective_experts(&self, experts: f64) -> f64 {
        let inv_max = self.e_max.map_or(0.0, |m| 1.0 / m);
        let offset = 1.0 / (1.0 / self.e_start - inv_max);
        1.0 / (1.0 / (experts - 1.0 + offset) + inv_max)
    }

    /// Fits the runs with finite, positive `N`, `E ≥ 1` and loss. Errors (a sentence for the
    /// report) with fewer than 5 such runs, fewer than 2 sizes or expert counts, a singular
    /// design, or an invalid transform (`E_start` must be positive and below `E_max`).
    pub fn fit(&self, runs: &[ClarkRun]) -> Result<ClarkLaw, String> {
        if !(self.e_start > 0.0 && self.e_max.is_none_or(|m| m > self.e_start)) {
            return Err(format!(
                "invalid transform: E_start = {} must be > 0 and < E_max = {:?}",
                self.e_start, self.e_max
            ));
        }
        let runs: Vec<&ClarkRun> = runs
            .iter()
            .filter(|r| r.params.is_finite() && r.params > 0.0 && r.experts >= 1.0)
            .filter(|r| r.loss.is_finite() && r.loss > 0.0)
            .collect();
        // The interaction c·log N·log Ê is identified only when the expert count varies at
        // two sizes or more.
        let sizes: Vec<f64> = runs.iter().map(|r| r.params).collect();
        let varied = |n: f64| {
            let experts: Vec<f64> = runs
                .iter()
                .filter(|r| r.params == n)
                .map(|r| r.experts)
                .collect();
            distinct(&experts) >= 2
        };
        let mut unique = sizes.clone();
        unique.sort_by(f64::total_cmp);
        unique.dedup();
        let varied = unique.iter().filter(|&&n| varied(n)).count();
        if runs.len() < MIN_RUNS || varied < 2 {
            return Err(format!(
                "needs at least {MIN_RUNS} runs at one token count, with 2 or more expert \
                 counts at each of 2 or more model sizes; has {} runs, {} size(s), {varied} \
                 with several expert counts",
                runs.len(),
                distinct(&sizes)
            ));
        }
        let rows: Vec<Vec<f64>> = runs
            .iter()
            .map(|r| {
                let (ln_n, ln_e) = (r.params.ln(), self.effective_experts(r.experts).ln());
                vec![ln_n, ln_e, ln_n * ln_e, 1.0]
            })
            .collect();
        let log_loss: Vec<f64> = runs.iter().map(|r| r.loss.ln()).collect();
        let beta = least_squares(&rows, &log_loss)
            .ok_or("the design is singular: sizes and expert counts must vary independently")?;
        let fitted = rows
            .iter()
            .map(|row| row.iter().zip(&beta).map(|(x, b)| x * b).sum::<f64>());
        Ok(ClarkLaw {
            a: beta[0],
            b: beta[1],
            c: beta[2],
            d: beta[3],
            transform: *self,
            rmse_log: rmse(fitted, &log_loss),
            runs: runs.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transform_limits() {
        let plain = ClarkConfig::default();
        for e in [1.0, 2.0, 8.0, 64.0] {
            assert!(
                (plain.effective_experts(e) - e).abs() < 1e-12,
                "Ê = E for {e}"
            );
        }
        let saturating = ClarkConfig {
            e_start: 1.5,
            e_max: Some(300.0),
        };
        assert!(
            (saturating.effective_experts(1.0) - 1.5).abs() < 1e-12,
            "Ê(1) = E_start"
        );
        let huge = saturating.effective_experts(1e9);
        assert!((huge - 300.0).abs() < 1e-3, "Ê → E_max: {huge}");
        // Monotone in between.
        let values: Vec<f64> = [1.0, 2.0, 4.0, 64.0, 512.0]
            .iter()
            .map(|&e| saturating.effective_experts(e))
            .collect();
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
    }

    #[test]
    fn invalid_transform_and_too_few_runs_are_refused() {
        let runs = [ClarkRun {
            params: 1e6,
            experts: 1.0,
            loss: 3.0,
        }];
        let bad = ClarkConfig {
            e_start: 400.0,
            e_max: Some(300.0),
        };
        assert!(bad.fit(&runs).unwrap_err().contains("invalid transform"));
        let err = ClarkConfig::default().fit(&runs).unwrap_err();
        assert!(
            err.contains("has 1 runs, 1 size(s), 0 with several"),
            "{err}"
        );
    }
}
