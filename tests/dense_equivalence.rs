//! A switch layer with one expert is the dense FFN (MegaBlocks `test_moe_forward_vs_dense`):
//! its gate is softmax of one logit = 1 exactly, and with capacity ≥ tokens nothing drops.
//! Checked in outputs and in gradients, for every activation and both dispatches.

mod common;

use burn::tensor::{Distribution, Tensor};
use common::*;
use moe_core::{Activation, DispatchKind, FfnConfig, Init, Mode, SwitchConfig, SwitchLayerConfig};

#[test]
fn one_expert_switch_equals_dense_ffn() {
    let device = device().autodiff();
    let (d_model, d_ff, num_tokens) = (8, 24, 20);
    for activation in [Activation::Relu, Activation::Gelu, Activation::Swiglu] {
        for dispatch in [DispatchKind::Fast, DispatchKind::Einsum] {
            device.seed(3);
            let dense = FfnConfig::new(d_model, d_ff)
                .with_activation(activation)
                .with_init_scale(1.0)
                .init(&Init::new(3), &device);
            let config = SwitchLayerConfig::new(
                d_model,
                d_ff,
                SwitchConfig::new(1)
                    .with_activation(activation)
                    .with_dispatch(dispatch),
            );
            let mut switch = layer(&config, &device, 4);
            switch.experts = dense.to_single_expert();

            let x = Tensor::<3>::random(
                [2, num_tokens / 2, d_model],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let dense_x = x.clone().require_grad();
            let switch_x = x.require_grad();
            let dense_out = dense.forward(dense_x.clone(), Mode::Train);
            let out = switch.forward(switch_x.clone(), Mode::Train);
            let what = |q: &str| format!("{activation:?}/{dispatch:?}: {q}");
            assert_close(
                &what("output"),
                &floats(out.hidden.clone()),
                &floats(dense_out.clone()),
                1e-6,
                1e-5,
            );
            assert_eq!(
                out.stats.summary().dropped_fraction,
                0.0,
                "{}",
                what("nothing dropped")
            );

            let dense_grads = (dense_out.clone() * dense_out).sum().backward();
            let switch_grads = (out.hidden.clone() * out.hidden).sum().backward();
            let g = |t: Option<Tensor<3>>| floats(t.expect("gradient present"));
            assert_close(
                &what("d x"),
                &g(switch_x.grad(&switch_grads)),
                &g(dense_x.grad(&dense_grads)),
                1e-5,
                1e-4,
            );
            let pairs = [
                ("d w1", &switch.experts.w1, &dense.w1),
                ("d w2", &switch.experts.w2, &dense.w2),
            ];
            for (name, sw, dw) in pairs {
                let a = floats(
                    sw.val()
                        .grad(&switch_grads)
                        .expect("switch weight gradient"),
                );
                let b = floats(dw.val().grad(&dense_grads).expect("dense weight gradient"));
                assert_close(&what(name), &a, &b, 1e-5, 1e-4);
            }
            if activation == Activation::Swiglu {
                let a = floats(
                    switch
                        .experts
                        .w3
                        .as_ref()
                        .unwrap()
                        .val()
                        .grad(&switch_grads)
                        .unwrap(),
                );
                let b = floats(dense.w3.as_ref().unwrap().val().grad(&dense_grads).unwrap());
                assert_close(&what("d w3"), &a, &b, 1e-5, 1e-4);
            }
        }
    }
}
