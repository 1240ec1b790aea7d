//! Top-1 through the routing seam reproduces the pre-seam code: the fixtures in
//! `tests/fixtures/` (how they were made: `tests/fixtures/README.md`) hold weights, inputs,
//! outputs, losses and gradients computed before the refactor. The switch layer through
//! `DispatchPlan` must give equal values (f32 `==`, so `-0.0` equals `0.0`). The whole model
//! matched exactly too until the fused attention and cross-entropy of the throughput work
//! (`moe-core/src/fused.rs`) changed the order of floating-point operations outside the switch
//! layer; it is now held to f32 rounding noise (1e-6 absolute + 1e-5 relative).

mod common;

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::*;
use moe_core::model::SwitchTransformerConfig;
use moe_core::{Activation, BalanceContext, Mode, SwitchConfig, SwitchLayerConfig};
use moe_train::weights::{model_from_tensors, named_tensors, read_f32_tensors};

type Tensors = HashMap<String, (Vec<f32>, Vec<usize>)>;

fn fixture(name: &str) -> Tensors {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    read_f32_tensors(&path).expect("fixture").tensors
}

fn tensor<const D: usize>(t: &Tensors, name: &str, device: &Device) -> Tensor<D> {
    let (values, shape) = t[name].clone();
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn assert_exact(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let differ = got.iter().zip(want).filter(|(a, b)| a != b).count();
    assert_eq!(
        differ,
        0,
        "{what}: {differ} of {} values differ from the pre-seam fixture (first: {:?})",
        got.len(),
        got.iter().zip(want).find(|(a, b)| a != b)
    );
}

#[test]
fn top1_layer_matches_pre_seam_fixture() {
    let f = fixture("top1_layer.safetensors");
    let device = device().autodiff();
    let switch = SwitchConfig::new(4)
        .with_capacity_factor_train(1.0)
        .with_min_capacity(1);
    let mut layer = SwitchLayerConfig::new(16, 32, switch).init(&device);
    layer.router.weight = Param::from_tensor(tensor(&f, "router.weight", &device));
    layer.experts.w1 = Param::from_tensor(tensor(&f, "experts.w1", &device));
    layer.experts.w2 = Param::from_tensor(tensor(&f, "experts.w2", &device));
    let x = tensor::<2>(&f, "x", &device).require_grad();
    let r = tensor::<2>(&f, "r", &device);
    let route = layer.router.forward(x.clone(), Mode::Train);
    let out = layer.forward_routed(
        x.clone(),
        route,
        Mode::Train,
        &BalanceContext::default(),
        |h| layer.experts.forward(h),
    );
    assert!(
        out.stats.summary().dropped_fraction > 0.0,
        "the fixture case drops tokens"
    );
    let loss = (out.hidden.clone() * r).sum()
        + out.balance_loss.clone().mul_scalar(0.01)
        + out.z_loss.clone().mul_scalar(0.001);
    let g = loss.backward();
    let want = |name: &str| f[name].0.clone();
    assert_exact("hidden", &floats(out.hidden), &want("hidden"));
    assert_exact(
        "balance loss",
        &floats(out.balance_loss),
        &want("balance_loss"),
    );
    assert_exact("z-loss", &floats(out.z_loss), &want("z_loss"));
    assert_exact(
        "d router",
        &grad_of(&layer.router.weight, &g),
        &want("grad.router.weight"),
    );
    assert_exact(
        "d w1",
        &grad_of(&layer.experts.w1, &g),
        &want("grad.experts.w1"),
    );
    assert_exact(
        "d w2",
        &grad_of(&layer.experts.w2, &g),
        &want("grad.experts.w2"),
    );
    assert_exact(
        "d x",
        &floats(x.grad(&g).expect("token gradient")),
        &want("grad.x"),
    );
}

/// Replaces every parameter by its gradient, so `named_tensors` names gradients like weights.
struct ToGrad<'a> {
    grads: &'a GradientsParams,
}

impl ModuleMapper for ToGrad<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let g = self
            .grads
            .get::<D>(param.id)
            .expect("every parameter has a gradient");
        Param::from_tensor(g)
    }
}

#[test]
fn top1_model_matches_pre_seam_fixture_to_rounding() {
    let mut f = fixture("top1_model.safetensors");
    let device = device().autodiff();
    let switch = SwitchConfig::new(4)
        .with_activation(Activation::Swiglu)
        .with_min_capacity(1);
    let config = SwitchTransformerConfig::new(32, 16, 2, 2, 32, 12, switch);
    let ids = |t: &mut Tensors, name: &str| {
        let (v, _) = t.remove(name).expect("ids");
        Tensor::<2, Int>::from_data(
            TensorData::new(v.iter().map(|&x| x as i64).collect::<Vec<_>>(), [2, 12]),
            &device,
        )
    };
    let tokens = ids(&mut f, "tokens");
    let targets = ids(&mut f, "targets");
    let mut expected: Tensors = HashMap::new();
    for name in ["loss", "ce", "balance_loss", "z_loss"] {
        expected.insert(name.into(), f.remove(name).expect("loss part"));
    }
    let grad_names: Vec<String> = f
        .keys()
        .filter(|k| k.starts_with("grad."))
        .cloned()
        .collect();
    for name in grad_names {
        expected.insert(name.clone(), f.remove(&name).expect("grad"));
    }
    let model = model_from_tensors(&config, f, &device).expect("fixture weights fit the config");
    let out = model.forward_loss(tokens, targets, Mode::Train);
    let close = |what: &str, got: &[f32], want: &[f32]| assert_close(what, got, want, 1e-6, 1e-5);
    close("loss", &floats(out.loss.clone()), &expected["loss"].0);
    close("ce", &floats(out.ce.clone()), &expected["ce"].0);
    close(
        "balance",
        &floats(out.balance_loss.clone()),
        &expected["balance_loss"].0,
    );
    close("z", &floats(out.z_loss.clone()), &expected["z_loss"].0);
    let grads = GradientsParams::from_grads(out.loss.backward(), &model);
    let grad_model = model.map(&mut ToGrad { grads: &grads });
    let got = named_tensors(&grad_model);
    assert_eq!(got.len(), expected.len() - 4, "every parameter's gradient");
    for (name, data) in got {
        let want = &expected[&format!("grad.{name}")].0;
        close(
            &format!("d {name}"),
            &data.try_into_vec_as::<f32>().unwrap(),
            want,
        );
    }
}
