//! Helpers shared by the integration tests.
#![allow(dead_code)]

use burn::module::Param;
use burn::tensor::{Device, Gradients, Int, Tensor, TensorData};
use moe_core::{
    BalanceContext, DispatchPlan, Init, Mode, RoutedOutput, RouterOutput, SwitchLayer,
    SwitchLayerConfig,
};
use moe_train::Backend;

/// The CPU device the tests run on (flex, the CLI default).
pub fn device() -> Device {
    Backend::Flex
        .device()
        .expect("the test build includes the flex backend")
}

pub fn tensor2(rows: &[Vec<f32>], device: &Device) -> Tensor<2> {
    let (r, c) = (rows.len(), rows[0].len());
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [r, c]), device)
}

pub fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 data")
}

pub fn ints<const D: usize>(t: Tensor<D, Int>) -> Vec<i64> {
    t.into_data().try_into_vec_as::<i64>().expect("i64 data")
}

/// Asserts `|a - b| <= atol + rtol·|b|` elementwise, naming the first offending index.
pub fn assert_close(what: &str, a: &[f32], b: &[f32], atol: f32, rtol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= atol + rtol * y.abs(),
            "{what}: index {i}: {x} vs {y} (atol {atol}, rtol {rtol})"
        );
    }
}

/// A switch layer whose router weight is replaced by `weight` (`[d_model, num_experts]`).
pub fn with_router_weight(mut layer: SwitchLayer, weight: Tensor<2>) -> SwitchLayer {
    layer.router.weight = Param::from_tensor(weight);
    layer
}

/// Builds a layer from `config` on `device` with parameters from the streams of `seed`.
pub fn layer(config: &SwitchLayerConfig, device: &Device, seed: u64) -> SwitchLayer {
    device.seed(seed);
    config.init_with(&Init::new(seed), device)
}

/// The plan of a call that forms a single segment (all groups of equal size).
pub fn single_plan(layer: &SwitchLayer, route: &RouterOutput, mode: Mode) -> DispatchPlan {
    let mut segments = layer.plan_segments(route, mode);
    assert_eq!(segments.len(), 1, "one segment");
    segments.remove(0).plan
}

/// `forward_routed` with the default balance context.
pub fn routed(
    layer: &SwitchLayer,
    tokens: Tensor<2>,
    route: RouterOutput,
    mode: Mode,
    experts: impl FnMut(Tensor<3>) -> Tensor<3>,
) -> RoutedOutput {
    layer.forward_routed(tokens, route, mode, &BalanceContext::default(), experts)
}

pub fn bools<const D: usize>(t: Tensor<D, burn::tensor::Bool>) -> Vec<bool> {
    t.into_data().try_into_vec_as::<bool>().expect("bool data")
}

/// The gradient of a parameter after `backward`, as a flat vector.
///
/// # Panics
/// If the parameter received no gradient (it did not take part in the loss).
pub fn grad_of<const D: usize>(param: &Param<Tensor<D>>, grads: &Gradients) -> Vec<f32> {
    floats(
        param
            .val()
            .grad(grads)
            .expect("parameter received a gradient"),
    )
}

/// The wgpu device, or `None` (test skipped, said plainly) when this machine has no wgpu
/// adapter. With `SWITCHYARD_REQUIRE_WGPU=1` (set by `.ci/run`, which installs lavapipe) a
/// missing adapter fails the test instead.
pub fn wgpu_device() -> Option<Device> {
    let probe = std::panic::catch_unwind(|| {
        let device = moe_train::Backend::Wgpu
            .device()
            .expect("wgpu is compiled in");
        Tensor::<1>::ones([1], &device).into_data();
        device
    });
    match probe {
        Ok(device) => Some(device),
        Err(_) if std::env::var("SWITCHYARD_REQUIRE_WGPU").is_ok_and(|v| v == "1") => {
            panic!("no wgpu adapter, and SWITCHYARD_REQUIRE_WGPU=1 requires one (install mesa-vulkan-drivers)")
        }
        Err(_) => {
            eprintln!("SKIPPED: no wgpu adapter on this machine (install mesa-vulkan-drivers for lavapipe)");
            None
        }
    }
}
