//! Fast index dispatch equals the one-hot einsum oracle, in outputs and in gradients
//! (flaxformer's `test_scatter_and_mask_dispatch_equal`), on a table of cases.

mod common;

use burn::tensor::{Distribution, Tensor};
use common::*;
use moe_core::{Activation, DispatchKind, Mode, OverflowPolicy, SwitchConfig, SwitchLayer};

struct Case {
    name: &'static str,
    num_tokens: usize,
    config: SwitchConfig,
    /// Shifts every token and router column 0 so that most tokens pick expert 0.
    collapse: bool,
}

fn cases() -> Vec<Case> {
    let base = || SwitchConfig::new(8, 16, 4).with_min_capacity(1);
    vec![
        Case {
            name: "default capacity 1.25",
            num_tokens: 32,
            config: base(),
            collapse: false,
        },
        Case {
            name: "heavy overflow (cf 0.25)",
            num_tokens: 32,
            config: base().with_capacity_factor_train(0.25),
            collapse: false,
        },
        Case {
            name: "collapsed router",
            num_tokens: 32,
            config: base(),
            collapse: true,
        },
        Case {
            name: "dropless",
            num_tokens: 32,
            config: base().with_dropless(true),
            collapse: true,
        },
        Case {
            name: "routing groups of 8",
            num_tokens: 32,
            config: base()
                .with_group_size(Some(8))
                .with_capacity_factor_train(1.0),
            collapse: false,
        },
        Case {
            name: "batch-prioritized overflow",
            num_tokens: 32,
            config: base()
                .with_overflow(OverflowPolicy::Probability)
                .with_capacity_factor_train(0.5),
            collapse: false,
        },
        Case {
            name: "swiglu, 16 experts, eval capacity",
            num_tokens: 48,
            config: SwitchConfig::new(8, 12, 16)
                .with_activation(Activation::Swiglu)
                .with_min_capacity(1),
            collapse: false,
        },
        Case {
            name: "gelu, 1 expert",
            num_tokens: 16,
            config: SwitchConfig::new(8, 16, 1).with_activation(Activation::Gelu),
            collapse: false,
        },
    ]
}

struct Result {
    hidden: Vec<f32>,
    balance: Vec<f32>,
    z: Vec<f32>,
    grad_tokens: Vec<f32>,
    grad_router: Vec<f32>,
    grad_w1: Vec<f32>,
    grad_w2: Vec<f32>,
}

fn run(layer: &SwitchLayer, tokens: Tensor<2>, mode: Mode) -> Result {
    let tokens = tokens.require_grad();
    let [num_tokens, d_model] = tokens.dims();
    let out = layer.forward(tokens.clone().reshape([1, num_tokens, d_model]), mode);
    // A loss that weights every output element differently, plus both auxiliary losses.
    let weights =
        Tensor::<1, burn::tensor::Int>::arange(0..(num_tokens * d_model) as i64, &tokens.device())
            .float()
            .reshape([1, num_tokens, d_model])
            .mul_scalar(0.01)
            .sin();
    let loss = (out.hidden.clone() * weights).sum()
        + out.balance_loss.clone() * 0.3
        + out.z_loss.clone() * 0.1;
    let grads = loss.backward();
    let grad = |t: Option<Tensor<2>>| floats(t.expect("gradient present"));
    Result {
        hidden: floats(out.hidden),
        balance: floats(out.balance_loss),
        z: floats(out.z_loss),
        grad_tokens: grad(tokens.grad(&grads)),
        grad_router: grad(layer.router.weight.val().grad(&grads)),
        grad_w1: grad_of(&layer.experts.w1, &grads),
        grad_w2: grad_of(&layer.experts.w2, &grads),
    }
}

#[test]
fn fast_dispatch_equals_einsum_oracle() {
    let device = device().autodiff();
    for case in cases() {
        let fast = layer(
            &case.config.clone().with_dispatch(DispatchKind::Fast),
            &device,
            7,
        );
        let mut einsum = fast.clone();
        einsum.config.dispatch = DispatchKind::Einsum;
        let d_model = case.config.d_model;
        let mut tokens = Tensor::<2>::random(
            [case.num_tokens, d_model],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let (fast, einsum) = if case.collapse {
            tokens = tokens + 2.0;
            let w = fast.router.weight.val();
            let bump = Tensor::<2>::zeros(w.dims(), &device).slice_fill([0..d_model, 0..1], 1.0);
            let w = (w + bump).detach();
            (
                with_router_weight(fast, w.clone()),
                with_router_weight(einsum, w),
            )
        } else {
            (fast, einsum)
        };
        for mode in [Mode::Train, Mode::Eval] {
            let a = run(&fast, tokens.clone(), mode);
            let b = run(&einsum, tokens.clone(), mode);
            let what = |q: &str| format!("{} ({mode:?}): {q}", case.name);
            assert_close(&what("hidden"), &a.hidden, &b.hidden, 1e-5, 1e-4);
            assert_close(&what("balance loss"), &a.balance, &b.balance, 1e-6, 1e-5);
            assert_close(&what("z-loss"), &a.z, &b.z, 1e-6, 1e-5);
            assert_close(
                &what("d tokens"),
                &a.grad_tokens,
                &b.grad_tokens,
                1e-5,
                1e-4,
            );
            assert_close(
                &what("d router"),
                &a.grad_router,
                &b.grad_router,
                1e-5,
                1e-4,
            );
            assert_close(&what("d w1"), &a.grad_w1, &b.grad_w1, 1e-5, 1e-4);
            assert_close(&what("d w2"), &a.grad_w2, &b.grad_w2, 1e-5, 1e-4);
            if case.collapse && !case.config.dropless && mode == Mode::Train {
                let s = fast
                    .forward(tokens.clone().unsqueeze_dim(0), mode)
                    .stats
                    .summary();
                assert!(
                    s.dropped_fraction > 0.3,
                    "{}: the collapse case must overflow, dropped {}",
                    case.name,
                    s.dropped_fraction
                );
            }
            if case.config.dropless {
                let s = fast
                    .forward(tokens.clone().unsqueeze_dim(0), mode)
                    .stats
                    .summary();
                assert_eq!(
                    s.dropped_fraction, 0.0,
                    "{}: dropless drops nothing",
                    case.name
                );
            }
        }
    }
}

/// The CPU (`select`) and GPU (`scatter`/`gather`) row indexing give the same outputs and
/// gradients, so the choice made per backend cannot change training.
#[test]
fn row_indexing_variants_agree_in_gradients() {
    use moe_core::dispatch::{combine_fast_with, dispatch_fast_with};
    use moe_core::RowIndexing;
    let device = device().autodiff();
    let config = SwitchConfig::new(8, 16, 4)
        .with_capacity_factor_train(0.75)
        .with_min_capacity(1);
    let layer = layer(&config, &device, 21);
    let tokens = Tensor::<2>::random([24, 8], Distribution::Normal(0.0, 1.0), &device);
    let run = |indexing: RowIndexing| {
        let x = tokens.clone().require_grad();
        let route = layer.router.forward(x.clone(), Mode::Train);
        let assignment = layer.assign(&route, Mode::Train);
        let buffer = dispatch_fast_with(x.clone(), &assignment, indexing);
        let out = combine_fast_with(
            layer.experts.forward(buffer),
            &assignment,
            route.gate,
            indexing,
        );
        let grads = (out.clone() * out.clone()).sum().backward();
        (
            floats(out),
            floats(x.grad(&grads).expect("token gradient")),
            grad_of(&layer.router.weight, &grads),
            grad_of(&layer.experts.w1, &grads),
        )
    };
    let a = run(RowIndexing::Select);
    let b = run(RowIndexing::ScatterGather);
    assert_close("output", &a.0, &b.0, 1e-6, 1e-6);
    assert_close("d tokens", &a.1, &b.1, 1e-6, 1e-5);
    assert_close("d router", &a.2, &b.2, 1e-6, 1e-5);
    assert_close("d w1", &a.3, &b.3, 1e-6, 1e-5);
}
