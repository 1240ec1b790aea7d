//! Finite-difference checks that the router's weight receives the right gradient through
//! the gate (`y = p_i(x) · E_i(x)`) and through the balance loss (via `P_i`).

mod common;

use burn::module::Param;
use burn::tensor::{Distribution, Tensor};
use common::*;
use moe_core::{Mode, SwitchConfig, SwitchLayer};

/// Which part of the loss is checked.
#[derive(Clone, Copy, Debug)]
enum Part {
    /// Σ w ⊙ output: reaches the router only through the gate value.
    Gate,
    /// The balance loss alone: reaches the router only through `P_i`.
    Balance,
    /// The z-loss alone.
    ZLoss,
}

fn loss(layer: &SwitchLayer, tokens: &Tensor<3>, part: Part) -> Tensor<1> {
    let out = layer.forward(tokens.clone(), Mode::Eval);
    match part {
        Part::Gate => {
            let w = out
                .hidden
                .clone()
                .mul_scalar(0.0)
                .add_scalar(1.0)
                .cumsum(2)
                .cos();
            (out.hidden * w).sum()
        }
        Part::Balance => out.balance_loss,
        Part::ZLoss => out.z_loss,
    }
}

#[test]
fn router_gradient_matches_finite_differences() {
    let device = device().autodiff();
    // Dropless so no token sits on the capacity edge; f64-like care via a moderate step.
    let config = SwitchConfig::new(6, 10, 3)
        .with_dropless(true)
        .with_router_init_scale(3.0);
    let layer = layer(&config, &device, 11);
    let tokens = Tensor::<3>::random([1, 12, 6], Distribution::Normal(0.0, 1.0), &device);
    let base_idx = layer
        .router
        .forward(tokens.clone().reshape([12, 6]), Mode::Eval)
        .expert_index;
    let weight = floats(layer.router.weight.val());

    for part in [Part::Gate, Part::Balance, Part::ZLoss] {
        let grads = loss(&layer, &tokens, part).backward();
        let analytic = grad_of(&layer.router.weight, &grads);
        assert!(
            analytic.iter().any(|g| g.abs() > 1e-4),
            "{part:?}: router gradient must be non-zero"
        );
        let h = 1e-2f32;
        for k in 0..weight.len() {
            let eval_at = |delta: f32| {
                let mut w = weight.clone();
                w[k] += delta;
                let mut probe = layer.clone();
                probe.router.weight = Param::from_tensor(
                    Tensor::<1>::from_floats(w.as_slice(), &device).reshape([6, 3]),
                );
                let idx = probe
                    .router
                    .forward(tokens.clone().reshape([12, 6]), Mode::Eval)
                    .expert_index;
                assert_eq!(
                    ints(idx),
                    ints(base_idx.clone()),
                    "step must not change any argmax"
                );
                floats(loss(&probe, &tokens, part))[0]
            };
            let numeric = (eval_at(h) - eval_at(-h)) / (2.0 * h);
            let tol = 2e-3 + 2e-2 * numeric.abs();
            assert!(
                (numeric - analytic[k]).abs() <= tol,
                "{part:?}: d loss / d W_r[{k}]: finite difference {numeric} vs autodiff {}",
                analytic[k]
            );
        }
    }
}
