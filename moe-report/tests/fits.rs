//! The scaling-law fits recover the constants of synthetic data made from known laws.
//! Tolerances are stated per test (and in docs/fits.md); noise is deterministic.

use moe_report::fit::{
    ChinchillaConfig, ChinchillaLaw, ChinchillaRun, ClarkConfig, ClarkLaw, ClarkRun,
};

/// Hoffmann et al. 2022's published Approach-3 constants.
const CHINCHILLA: ChinchillaLaw = ChinchillaLaw {
    e: 1.69,
    a: 406.4,
    b: 410.7,
    alpha: 0.34,
    beta: 0.28,
};

/// `count` log-spaced values from `lo` to `hi`.
fn log_space(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    let step = (hi / lo).ln() / (count - 1) as f64;
    (0..count).map(|i| lo * (step * i as f64).exp()).collect()
}

/// A deterministic value in [−1, 1) from an index (SplitMix64's finaliser).
fn jitter(i: usize) -> f64 {
    let mut z = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// 6 sizes (1e6..1e9 params) × 6 token counts (1e8..1e11): 36 runs; the loss is multiplied
/// by `exp(noise · jitter)`.
fn chinchilla_runs(noise: f64) -> Vec<ChinchillaRun> {
    let mut runs = Vec::new();
    for n in log_space(1e6, 1e9, 6) {
        for d in log_space(1e8, 1e11, 6) {
            let loss = CHINCHILLA.predict(n, d) * (noise * jitter(runs.len())).exp();
            runs.push(ChinchillaRun {
                params: n,
                tokens: d,
                loss,
            });
        }
    }
    runs
}

fn assert_rel(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got / want - 1.0).abs() <= tol,
        "{what}: got {got}, want {want} (±{:.2} %)",
        100.0 * tol
    );
}

fn assert_abs(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, want {want} ± {tol}"
    );
}

/// Noise-free data: E to 0.1 %, α and β to ±0.002, A and B to ±2 %. (In practice the fit
/// is exact to ~1e-10; the tolerances leave room for other L-BFGS paths.)
#[test]
fn chinchilla_recovers_hoffmann_constants_from_exact_data() {
    let config = ChinchillaConfig {
        bootstrap_resamples: 0,
        ..ChinchillaConfig::default()
    };
    let fit = config.fit(&chinchilla_runs(0.0)).unwrap();
    let law = fit.law;
    assert_rel(law.e, CHINCHILLA.e, 1e-3, "E");
    assert_abs(law.alpha, CHINCHILLA.alpha, 2e-3, "alpha");
    assert_abs(law.beta, CHINCHILLA.beta, 2e-3, "beta");
    assert_rel(law.a, CHINCHILLA.a, 0.02, "A");
    assert_rel(law.b, CHINCHILLA.b, 0.02, "B");
    assert!(fit.rmse_log < 1e-4, "rmse {}", fit.rmse_log);
    assert_eq!((fit.runs, fit.grid_points), (36, 4500));
    assert_eq!(fit.bootstrap.fitted, 0);
}

/// ±0.5 % multiplicative noise (uniform): the point estimate keeps E to ±0.03, α and β to
/// ±0.01, A and B to ±15 %; every 5–95 % bootstrap interval (100 resamples) contains the true
/// constant and is wider than on exact data.
#[test]
fn chinchilla_with_noise_has_bootstrap_intervals_around_the_truth() {
    let config = ChinchillaConfig {
        bootstrap_resamples: 100,
        ..ChinchillaConfig::default()
    };
    let fit = config.fit(&chinchilla_runs(0.005)).unwrap();
    let law = fit.law;
    assert_abs(law.e, CHINCHILLA.e, 0.03, "E");
    assert_abs(law.alpha, CHINCHILLA.alpha, 0.01, "alpha");
    assert_abs(law.beta, CHINCHILLA.beta, 0.01, "beta");
    assert_rel(law.a, CHINCHILLA.a, 0.15, "A");
    assert_rel(law.b, CHINCHILLA.b, 0.15, "B");
    let boot = &fit.bootstrap;
    assert_eq!((boot.resamples, boot.fitted), (100, 100));
    for (name, spread, truth) in [
        ("E", boot.e, CHINCHILLA.e),
        ("A", boot.a, CHINCHILLA.a),
        ("B", boot.b, CHINCHILLA.b),
        ("alpha", boot.alpha, CHINCHILLA.alpha),
        ("beta", boot.beta, CHINCHILLA.beta),
        ("a", boot.n_exponent, CHINCHILLA.n_exponent()),
    ] {
        assert!(
            spread.p5 <= truth && truth <= spread.p95 && spread.p5 < spread.p95,
            "{name}: {spread:?} misses {truth}"
        );
        assert!(
            spread.p5 <= spread.p50 && spread.p50 <= spread.p95,
            "{name}: {spread:?}"
        );
    }
    // The same seed gives the same bootstrap.
    let again = config.fit(&chinchilla_runs(0.005)).unwrap();
    assert_eq!(again.bootstrap, fit.bootstrap);
}

/// The closed-form frontier equals a brute-force search along C = 6·N·D, and N·D = C/6.
#[test]
fn compute_optimal_frontier_matches_brute_force() {
    let law = CHINCHILLA;
    assert_abs(law.n_exponent(), 0.28 / 0.62, 1e-12, "a");
    assert_abs(law.d_exponent(), 0.34 / 0.62, 1e-12, "b");
    for flops in [1e18, 1e21, 5.76e23] {
        let (n_opt, d_opt) = law.compute_optimal(flops);
        assert_rel(6.0 * n_opt * d_opt, flops, 1e-12, "6·N·D = C");
        // Scan N over ±2 decades around N_opt in 0.0001-decade steps.
        let best_n = (-20_000..=20_000)
            .map(|i| n_opt * 10f64.powf(i as f64 * 1e-4))
            .min_by(|&x, &y| {
                let loss = |n: f64| law.predict(n, flops / (6.0 * n));
                loss(x).total_cmp(&loss(y))
            })
            .unwrap();
        assert_rel(best_n, n_opt, 1e-3, &format!("N_opt at C = {flops:e}"));
    }
}

#[test]
fn chinchilla_refuses_too_few_runs() {
    let runs = chinchilla_runs(0.0);
    // One token count only: 6 runs.
    let one_budget: Vec<ChinchillaRun> = runs.iter().copied().step_by(6).collect();
    let err = ChinchillaConfig::default().fit(&one_budget).unwrap_err();
    assert!(
        err.contains("has 6 runs (distinct sizes: 6, token counts: 1)"),
        "{err}"
    );
}

/// Clark et al.'s law with made-up constants (a = −0.08, b = −0.1, c = 0.004, d = 1.9),
/// a saturating transform (E_start = 1.5, E_max = 300), 4 sizes × 7 expert counts at fixed
/// tokens, exact data: least squares recovers every coefficient to 1e-9.
#[test]
fn clark_recovers_bilinear_constants() {
    let transform = ClarkConfig {
        e_start: 1.5,
        e_max: Some(300.0),
    };
    let truth = ClarkLaw {
        a: -0.08,
        b: -0.1,
        c: 0.004,
        d: 1.9,
        transform,
        rmse_log: 0.0,
        runs: 0,
    };
    let mut runs = Vec::new();
    for n in log_space(1e6, 1e9, 4) {
        for e in [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0] {
            runs.push(ClarkRun {
                params: n,
                experts: e,
                loss: truth.predict(n, e),
            });
        }
    }
    let fit = transform.fit(&runs).unwrap();
    for (name, got, want) in [
        ("a", fit.a, truth.a),
        ("b", fit.b, truth.b),
        ("c", fit.c, truth.c),
        ("d", fit.d, truth.d),
    ] {
        assert_abs(got, want, 1e-9, name);
    }
    assert_eq!(fit.runs, 28);
    assert!(fit.rmse_log < 1e-12);
    // One size only: c (the interaction) cannot be identified.
    let one_size: Vec<ClarkRun> = runs[..7].to_vec();
    let err = transform.fit(&one_size).unwrap_err();
    assert!(
        err.contains("has 7 runs, 1 size(s), 1 with several"),
        "{err}"
    );
}
