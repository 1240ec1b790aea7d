//! The switch layer on burn-wgpu matches the CPU backend, in outputs and gradients, with the
//! GPU row indexing (`scatter`/`gather`) that `RowIndexing::for_device` picks there.
//!
//! CI has no GPU: `.ci/run` installs Mesa's software Vulkan driver (lavapipe), which wgpu
//! finds like any adapter. Shapes are tiny because every kernel compiles on first use.

mod common;

use burn::module::Param;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use common::*;
use moe_core::{
    DispatchKind, Mode, RoutingConfig, RowIndexing, SwitchConfig, SwitchLayer, SwitchLayerConfig,
    TopKConfig,
};
use moe_train::train::{self, TrainArgs};
use moe_train::Backend;

/// Copies every parameter of `layer` onto `device` (same values, new trainable leaves).
fn to_device(layer: &SwitchLayer, device: &Device) -> SwitchLayer {
    fn copy<const D: usize>(p: &Param<Tensor<D>>, device: &Device) -> Param<Tensor<D>> {
        Param::from_tensor(Tensor::from_data(p.val().into_data(), device))
    }
    let mut out = layer.clone();
    out.router.weight = copy(&layer.router.weight, device);
    out.experts.w1 = copy(&layer.experts.w1, device);
    out.experts.w2 = copy(&layer.experts.w2, device);
    out.experts.w3 = layer.experts.w3.as_ref().map(|w| copy(w, device));
    out
}

struct Run {
    hidden: Vec<f32>,
    balance: Vec<f32>,
    grad_router: Vec<f32>,
    grad_w2: Vec<f32>,
}

fn run(layer: &SwitchLayer, x: &[f32], shape: [usize; 3], device: &Device) -> Run {
    let x = Tensor::<3>::from_data(TensorData::new(x.to_vec(), shape), device);
    let out = layer.forward(x, Mode::Train);
    let loss = (out.hidden.clone() * out.hidden.clone()).sum() + out.balance_loss.clone();
    let grads = loss.backward();
    Run {
        hidden: floats(out.hidden),
        balance: floats(out.balance_loss),
        grad_router: grad_of(&layer.router.weight, &grads),
        grad_w2: grad_of(&layer.experts.w2, &grads),
    }
}

#[test]
fn wgpu_matches_cpu_in_outputs_and_gradients() {
    let Some(gpu) = wgpu_device() else { return };
    let gpu = gpu.autodiff();
    assert_eq!(
        RowIndexing::for_device(&gpu),
        RowIndexing::ScatterGather,
        "{gpu:?}"
    );
    let cpu = device().autodiff();
    let shape = [2, 8, 8];
    let x = floats(Tensor::<3>::random(
        shape,
        Distribution::Normal(0.0, 1.0),
        &cpu,
    ));
    let top2 = RoutingConfig::Topk(TopKConfig {
        k: 2,
        renormalize: true,
        ..TopKConfig::default()
    });
    for (dispatch, routing) in [
        (DispatchKind::Fast, RoutingConfig::default()),
        (DispatchKind::Einsum, RoutingConfig::default()),
        (DispatchKind::Fast, top2),
        (
            DispatchKind::Fast,
            RoutingConfig::ExpertChoice(Default::default()),
        ),
    ] {
        let switch = SwitchConfig::new(4)
            .with_capacity_factor_train(0.75)
            .with_min_capacity(1)
            .with_dispatch(dispatch)
            .with_router_init_scale(2.0)
            .with_routing(routing.clone());
        let config = SwitchLayerConfig::new(8, 16, switch);
        let cpu_layer = layer(&config, &cpu, 13);
        let gpu_layer = to_device(&cpu_layer, &gpu);
        let a = run(&cpu_layer, &x, shape, &cpu);
        let b = run(&gpu_layer, &x, shape, &gpu);
        let what = |q: &str| format!("{dispatch:?} {}: {q}", routing.kind());
        assert_close(&what("hidden"), &b.hidden, &a.hidden, 1e-4, 1e-3);
        assert_close(&what("balance loss"), &b.balance, &a.balance, 1e-5, 1e-4);
        assert_close(
            &what("d router"),
            &b.grad_router,
            &a.grad_router,
            1e-4,
            1e-3,
        );
        assert_close(&what("d w2"), &b.grad_w2, &a.grad_w2, 1e-4, 1e-3);
    }
}

/// A few training steps of a tiny model on wgpu follow the CPU run: same initial weights
/// (drawn on the host from the seed), same batches, losses within f32 reduction-order noise.
#[test]
fn wgpu_training_steps_match_cpu() {
    if wgpu_device().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("switchyard-wgpu-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sets = [
        "vocab_size=256",
        "d_model=32",
        "n_layers=2",
        "n_heads=2",
        "d_ff=64",
        "max_seq_len=16",
        "switch.num_experts=4",
        "train.steps=4",
        "train.batch_size=4",
        "train.seq_len=16",
        "train.warmup_steps=1",
        "train.log_every=1",
        "train.eval_every=0",
        "train.eval_batches=1",
        "train.peak_flops=1e9",
        "data.builtin_train_tokens=5000",
        "data.builtin_val_tokens=1000",
    ];
    let losses = |backend: Backend| {
        let out = dir.join(backend.name());
        let args = TrainArgs {
            sets: sets.map(String::from).to_vec(),
            backend,
            out: Some(out.clone()),
            quiet: true,
            ..TrainArgs::default()
        };
        train::run(&args, &mut Vec::new()).expect("trains");
        moe_train::metrics::read_metrics(&out.join("metrics.jsonl"))
            .unwrap()
            .into_iter()
            .filter_map(|r| match r {
                moe_train::metrics::Record::Train(t) => {
                    Some([t.ce as f32, t.balance_loss as f32, t.grad_norm as f32])
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let cpu = losses(Backend::Flex);
    let gpu = losses(Backend::Wgpu);
    assert_eq!(cpu.len(), 4, "every CPU step logged");
    assert_eq!(
        gpu.len(),
        4,
        "every GPU step logged (a truncated GPU run must fail)"
    );
    for (step, (a, b)) in cpu.iter().zip(&gpu).enumerate() {
        assert_close(
            &format!("step {} [ce, balance, grad norm]", step + 1),
            b,
            a,
            1e-3,
            2e-3,
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
