//! Finite-difference checks of the switch layer's gradients: the router's weight through the
//! gate (`y = p_i(x) · E_i(x)`), the balance loss (via `P_i`) and the z-loss; the same through
//! top-2 with renormalised gates; and the token inputs and expert weights through the drop
//! path (a dropped token's output is exactly 0, so its gradient through the layer is 0).

mod common;

use burn::module::Param;
use burn::tensor::Tensor;
use common::*;
use moe_core::{
    Activation, Mode, RoutingConfig, SwitchConfig, SwitchLayer, SwitchLayerConfig, TopKConfig,
};

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

/// Every routing decision and whether it was kept, to check a finite-difference step changed
/// none of them.
fn decisions(layer: &SwitchLayer, tokens: &Tensor<3>) -> (Vec<i64>, Vec<bool>) {
    let [b, s, d] = tokens.dims();
    let route = layer
        .router
        .forward(tokens.clone().reshape([b * s, d]), Mode::Eval);
    let a = single_plan(layer, &route, Mode::Eval)
        .assignments
        .expect("token choice");
    (ints(a.expert), bools(a.keep))
}

fn with_weight(layer: &SwitchLayer, w: &[f32], device: &burn::tensor::Device) -> SwitchLayer {
    let mut probe = layer.clone();
    let dims = layer.router.weight.dims();
    probe.router.weight = Param::from_tensor(Tensor::<1>::from_floats(w, device).reshape(dims));
    probe
}

/// Deterministic inputs (burn's device RNG is shared by the tests running in parallel).
fn inputs(shape: [usize; 3], phase: f32, device: &burn::tensor::Device) -> Tensor<3> {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|i| ((i as f32 * 0.731 + phase).sin() * 1.7 + (i as f32 * 0.113).cos()) * 0.8)
        .collect();
    Tensor::<1>::from_floats(values.as_slice(), device).reshape(shape)
}

fn check_router(config: &SwitchLayerConfig, parts: &[Part], what: &str) {
    let device = device().autodiff();
    let layer = layer(config, &device, 11);
    let d = config.d_model;
    let tokens = inputs([1, 12, d], 0.3, &device);
    let base = decisions(&layer, &tokens);
    let weight = floats(layer.router.weight.val());
    for &part in parts {
        let grads = loss(&layer, &tokens, part).backward();
        let analytic = grad_of(&layer.router.weight, &grads);
        assert!(
            analytic.iter().any(|g| g.abs() > 1e-4),
            "{what} {part:?}: router gradient must be non-zero"
        );
        let h = 1e-2f32;
        for k in 0..weight.len() {
            let eval_at = |delta: f32| {
                let mut w = weight.clone();
                w[k] += delta;
                let probe = with_weight(&layer, &w, &device);
                assert_eq!(
                    decisions(&probe, &tokens),
                    base,
                    "{what}: step must not change any routing decision"
                );
                floats(loss(&probe, &tokens, part))[0]
            };
            let numeric = (eval_at(h) - eval_at(-h)) / (2.0 * h);
            let tol = 2e-3 + 2e-2 * numeric.abs();
            assert!(
                (numeric - analytic[k]).abs() <= tol,
                "{what} {part:?}: d loss / d W_r[{k}]: finite difference {numeric} vs autodiff {}",
                analytic[k]
            );
        }
    }
}

#[test]
fn router_gradient_matches_finite_differences() {
    // Dropless so no token sits on the capacity edge.
    let switch = SwitchConfig::new(3)
        .with_dropless(true)
        .with_router_init_scale(3.0);
    check_router(
        &SwitchLayerConfig::new(6, 10, switch),
        &[Part::Gate, Part::Balance, Part::ZLoss],
        "top-1",
    );
}

#[test]
fn renormalised_top2_router_gradient_matches_finite_differences() {
    let switch = SwitchConfig::new(4)
        .with_dropless(true)
        .with_router_init_scale(3.0)
        .with_routing(RoutingConfig::Topk(TopKConfig {
            k: 2,
            renormalize: true,
            ..TopKConfig::default()
        }));
    check_router(
        &SwitchLayerConfig::new(6, 10, switch),
        &[Part::Gate, Part::Balance],
        "top-2 renormalised",
    );
}

/// Capacity 2 for 12 tokens over 3 experts drops some tokens. Finite differences on the
/// token inputs and on the expert weights through the gate loss agree with autodiff, and a
/// dropped token's input gets exactly zero gradient from the layer's output.
#[test]
fn gradients_through_the_drop_path_match_finite_differences() {
    let device = device().autodiff();
    // GELU experts: smooth, so a finite-difference step never crosses a ReLU kink.
    let switch = SwitchConfig::new(3)
        .with_activation(Activation::Gelu)
        .with_capacity_factor_eval(0.5)
        .with_min_capacity(1)
        .with_router_init_scale(3.0);
    let config = SwitchLayerConfig::new(5, 7, switch);
    let layer = layer(&config, &device, 17);
    let data = inputs([1, 12, 5], 1.1, &device);
    let base = decisions(&layer, &data);
    assert!(base.1.iter().any(|k| !k), "the case must drop tokens");

    let x = data.clone().require_grad();
    let grads = loss(&layer, &x, Part::Gate).backward();
    let d_x = floats(x.grad(&grads).expect("token gradient"));
    let d_w1 = grad_of(&layer.experts.w1, &grads);
    for (t, kept) in base.1.iter().enumerate() {
        if !kept {
            assert!(
                d_x[t * 5..t * 5 + 5].iter().all(|&g| g == 0.0),
                "dropped token {t}: gradient {:?} must be exactly 0",
                &d_x[t * 5..t * 5 + 5]
            );
        }
    }
    let h = 1e-3f32;
    let xs = floats(data.clone());
    for k in 0..xs.len() {
        let eval_at = |delta: f32| {
            let mut v = xs.clone();
            v[k] += delta;
            let probe = Tensor::<1>::from_floats(v.as_slice(), &device).reshape([1, 12, 5]);
            assert_eq!(
                decisions(&layer, &probe),
                base,
                "step must not change routing"
            );
            floats(loss(&layer, &probe, Part::Gate))[0]
        };
        let numeric = (eval_at(h) - eval_at(-h)) / (2.0 * h);
        assert!(
            (numeric - d_x[k]).abs() <= 2e-3 + 2e-2 * numeric.abs(),
            "d loss / d x[{k}]: finite difference {numeric} vs autodiff {}",
            d_x[k]
        );
    }
    let w1 = floats(layer.experts.w1.val());
    for k in (0..w1.len()).step_by(3) {
        let eval_at = |delta: f32| {
            let mut w = w1.clone();
            w[k] += delta;
            let mut probe = layer.clone();
            probe.experts.w1 = Param::from_tensor(
                Tensor::<1>::from_floats(w.as_slice(), &device).reshape(layer.experts.w1.dims()),
            );
            floats(loss(&probe, &data, Part::Gate))[0]
        };
        let numeric = (eval_at(h) - eval_at(-h)) / (2.0 * h);
        assert!(
            (numeric - d_w1[k]).abs() <= 2e-3 + 2e-2 * numeric.abs(),
            "d loss / d w1[{k}]: finite difference {numeric} vs autodiff {}",
            d_w1[k]
        );
    }
}
