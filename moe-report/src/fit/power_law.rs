//! Single-variable power laws (Kaplan et al. 2020, arXiv 2001.08361, eqs. (1.1)–(1.3)): loss
//! against non-embedding parameters `N` or compute `C`, without and with an irreducible term.

use serde::{Deserialize, Serialize};

use super::linear::{least_squares, rmse};
use super::lse::{grid, minimize, rank_starts, LseHuber};

/// `L(x) = (x_c / x)^α`, Kaplan et al. 2020 eq. (1.1)/(1.3), fitted by ordinary least squares
/// in log space: `log L = α log x_c − α log x`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerLaw {
    /// `x_c`: the scale at which the law predicts a loss of 1 nat.
    pub x_c: f64,
    /// `α`: the exponent (> 0 when loss falls with `x`).
    pub alpha: f64,
    /// RMS of the log residuals `log L̂ − log L` over the fitted points.
    pub rmse_log: f64,
    /// Points fitted.
    pub points: usize,
}

impl PowerLaw {
    /// Fits the finite, positive `(x, loss)` pairs. Errors (as a sentence for the report)
    /// with fewer than 3 distinct `x`, or when the loss does not fall with `x` (`α ≤ 0`: no
    /// finite `x_c`).
    pub fn fit(x: &[f64], loss: &[f64]) -> Result<PowerLaw, String> {
        let (lx, ll) = log_pairs(x, loss);
        if distinct(&lx) < 3 {
            return Err(format!("needs 3 distinct x values, has {}", distinct(&lx)));
        }
        let rows: Vec<Vec<f64>> = lx.iter().map(|&v| vec![1.0, v]).collect();
        let beta = least_squares(&rows, &ll).ok_or("the log-linear system is singular")?;
        let alpha = -beta[1];
        if alpha.is_nan() || alpha <= 0.0 {
            return Err(format!(
                "loss does not fall with x (log-log slope {:.3})",
                beta[1]
            ));
        }
        Ok(PowerLaw {
            x_c: (beta[0] / alpha).exp(),
            alpha,
            rmse_log: rmse(lx.iter().map(|v| beta[0] + beta[1] * v), &ll),
            points: lx.len(),
        })
    }

    /// `(x_c / x)^α`.
    pub fn predict(&self, x: f64) -> f64 {
        (self.x_c / x).powf(self.alpha)
    }
}

/// How [`PowerLawWithFloor::fit`] searches.
#[derive(Debug, Clone, PartialEq)]
pub struct FloorFitConfig {
    /// Huber's `δ` on log residuals; 1e-3 as in Hoffmann et al. 2022.
    pub delta: f64,
    /// Starting values of `e = log E`; default `−1, −0.5, …, 1` (Hoffmann et al.'s grid).
    pub e: Vec<f64>,
    /// Starting values of `a = log A`; default `0, 5, …, 25`.
    pub a: Vec<f64>,
    /// Starting values of `α`; default `0, 0.5, …, 2`.
    pub alpha: Vec<f64>,
    /// L-BFGS runs, from the grid points with the lowest objective; default 16.
    pub starts: usize,
    /// Iteration limit per L-BFGS run; default 500.
    pub max_iters: u64,
}

impl Default for FloorFitConfig {
    fn default() -> Self {
        FloorFitConfig {
            delta: 1e-3,
            e: steps(-1.0, 0.5, 5),
            a: steps(0.0, 5.0, 6),
            alpha: steps(0.0, 0.5, 5),
            starts: 16,
            max_iters: 500,
        }
    }
}

/// `start, start + step, …` (`count` values).
pub(crate) fn steps(start: f64, step: f64, count: usize) -> Vec<f64> {
    (0..count).map(|i| start + step * i as f64).collect()
}

/// `L(x) = E + A / x^α`: a power law with an irreducible loss `E`, fitted like Chinchilla's
/// Approach 3 with one variable: `min Σ_i Huber_δ(LSE(a − α log x_i, e) − log L_i)`,
/// `A = eᵃ`, `E = eᵉ`, by multi-start L-BFGS.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerLawWithFloor {
    /// `E`: the irreducible loss, nats/token.
    pub e: f64,
    /// `A`: the coefficient.
    pub a: f64,
    /// `α`: the exponent.
    pub alpha: f64,
    /// RMS of the log residuals.
    pub rmse_log: f64,
    /// Points fitted.
    pub points: usize,
}

impl PowerLawWithFloor {
    /// Fits the finite, positive `(x, loss)` pairs; errors with fewer than 4 distinct `x`
    /// (3 parameters) or when every L-BFGS run fails.
    pub fn fit(
        x: &[f64],
        loss: &[f64],
        config: &FloorFitConfig,
    ) -> Result<PowerLawWithFloor, String> {
        let (lx, log_loss) = log_pairs(x, loss);
        if distinct(&lx) < 4 {
            return Err(format!("needs 4 distinct x values, has {}", distinct(&lx)));
        }
        let log_x: Vec<Vec<f64>> = lx.iter().map(|&v| vec![v]).collect();
        let objective = LseHuber {
            log_x: &log_x,
            log_loss: &log_loss,
            delta: config.delta,
        };
        let starts = grid(&[&config.e, &config.a, &config.alpha]);
        let ranked = rank_starts(objective, &starts);
        let best = minimize(
            objective,
            ranked.into_iter().take(config.starts),
            config.max_iters,
        )
        .ok_or("every L-BFGS run failed")?;
        let t = &best.theta;
        Ok(PowerLawWithFloor {
            e: t[0].exp(),
            a: t[1].exp(),
            alpha: t[2],
            rmse_log: objective.rmse_log(t),
            points: lx.len(),
        })
    }

    /// `E + A / x^α`.
    pub fn predict(&self, x: f64) -> f64 {
        self.e + self.a / x.powf(self.alpha)
    }
}

/// `(log x, log L)` of the pairs where both are finite and positive.
fn log_pairs(x: &[f64], loss: &[f64]) -> (Vec<f64>, Vec<f64>) {
    x.iter()
        .zip(loss)
        .filter(|(x, l)| x.is_finite() && **x > 0.0 && l.is_finite() && **l > 0.0)
        .map(|(x, l)| (x.ln(), l.ln()))
        .unzip()
}

/// Number of distinct values (exact comparison).
pub(crate) fn distinct(values: &[f64]) -> usize {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kaplan et al.'s `L(N) = (8.8e13 / N)^0.076` at 8 sizes from 1e5 to 1e9.
    #[test]
    fn pure_power_law_recovers_kaplan_constants() {
        let n: Vec<f64> = (0..8)
            .map(|i| 1e5 * 10f64.powf(i as f64 * 4.0 / 7.0))
            .collect();
        let loss: Vec<f64> = n.iter().map(|n| (8.8e13 / n).powf(0.076)).collect();
        let fit = PowerLaw::fit(&n, &loss).unwrap();
        assert!((fit.alpha - 0.076).abs() < 1e-9, "{fit:?}");
        assert!((fit.x_c / 8.8e13 - 1.0).abs() < 1e-6, "{fit:?}");
        assert!(fit.rmse_log < 1e-12 && fit.points == 8);
        assert!((fit.predict(1e7) - loss_at(1e7)).abs() < 1e-9);
        assert!(PowerLaw::fit(&n[..2], &loss[..2]).is_err());
        let rising: Vec<f64> = loss.iter().rev().copied().collect();
        let err = PowerLaw::fit(&n, &rising).unwrap_err();
        assert!(err.contains("does not fall"), "{err}");
    }

    fn loss_at(n: f64) -> f64 {
        (8.8e13 / n).powf(0.076)
    }

    /// `L(C) = 1.7 + 60 / C^0.15` at 10 budgets from 1e12 to 1e18 FLOPs, noise-free: the
    /// L-BFGS fit recovers E to 1e-3 and α to 1e-3 (absolute), A to 1 %.
    #[test]
    fn power_law_with_floor_recovers_constants() {
        let c: Vec<f64> = (0..10)
            .map(|i| 1e12 * 10f64.powf(i as f64 * 6.0 / 9.0))
            .collect();
        let loss: Vec<f64> = c.iter().map(|c| 1.7 + 60.0 / c.powf(0.15)).collect();
        let fit = PowerLawWithFloor::fit(&c, &loss, &FloorFitConfig::default()).unwrap();
        assert!((fit.e - 1.7).abs() < 1e-3, "{fit:?}");
        assert!((fit.alpha - 0.15).abs() < 1e-3, "{fit:?}");
        assert!((fit.a / 60.0 - 1.0).abs() < 0.01, "{fit:?}");
        assert!(fit.rmse_log < 1e-4, "{fit:?}");
        let err = PowerLawWithFloor::fit(&c[..3], &loss[..3], &FloorFitConfig::default());
        assert!(err.unwrap_err().contains("4 distinct"));
    }
}
