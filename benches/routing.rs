//! Regression benchmarks of the switch layer's routing path.
//!
//! Run: `cargo bench --bench routing` (add `-- --quick` for a fast pass). For the
//! user-facing grid with tables and JSON, see `moe-train bench routing`.
//!
//! Small shapes (4096 tokens, d_model 256) so a run takes about a minute on 2 cores; the
//! throughput unit is tokens.

use burn::tensor::{Device, Distribution, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use moe_core::{
    BalanceContext, DispatchKind, FfnConfig, Init, Mode, RoutingConfig, SwitchConfig,
    SwitchLayerConfig, TopKConfig,
};
use moe_train::Backend;

const TOKENS: usize = 4096;
const D_MODEL: usize = 256;
const D_FF: usize = 512;

/// The flex device, with the allocator tuned as in the CLI (`moe-train/src/alloc.rs`).
fn device() -> Device {
    moe_train::alloc::tune_allocator();
    Backend::Flex.device().expect("flex backend compiled in")
}

/// Router + assignment + dispatch + combine with identity experts, forward only.
fn routing(c: &mut Criterion) {
    let device = device();
    let tokens = Tensor::<2>::random([TOKENS, D_MODEL], Distribution::Normal(0.0, 1.0), &device);
    let mut group = c.benchmark_group("routing");
    group.throughput(Throughput::Elements(TOKENS as u64));
    group.sample_size(10);
    let top2 = RoutingConfig::Topk(TopKConfig::default());
    let policies = [
        (DispatchKind::Fast, "top1", RoutingConfig::default()),
        (DispatchKind::Einsum, "top1", RoutingConfig::default()),
        (DispatchKind::Fast, "top2", top2),
    ];
    for (dispatch, name, routing) in policies {
        for experts in [8usize, 64] {
            let switch = SwitchConfig::new(experts)
                .with_dispatch(dispatch)
                .with_routing(routing.clone());
            let layer = SwitchLayerConfig::new(D_MODEL, D_FF, switch).init(&device);
            group.bench_with_input(
                BenchmarkId::new(format!("{dispatch:?}-{name}"), experts),
                &experts,
                |b, _| {
                    b.iter(|| {
                        let route = layer.router.forward(tokens.clone(), Mode::Train);
                        let out = layer.forward_routed(
                            tokens.clone(),
                            route,
                            Mode::Train,
                            &BalanceContext::default(),
                            |h| h,
                        );
                        device.sync().expect("device sync");
                        out.hidden
                    })
                },
            );
        }
    }
    group.finish();
}

/// Whole switch layer forward + backward vs the dense FFN of the same d_ff.
fn layer_step(c: &mut Criterion) {
    let device = device().autodiff();
    let x = Tensor::<3>::random(
        [1, TOKENS, D_MODEL],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let mut group = c.benchmark_group("layer_fwd_bwd");
    group.throughput(Throughput::Elements(TOKENS as u64));
    group.sample_size(10);
    let dense = FfnConfig::new(D_MODEL, D_FF).init(&Init::new(0), &device);
    group.bench_function("dense", |b| {
        b.iter(|| {
            let grads = dense.forward(x.clone(), Mode::Train).sum().backward();
            device.sync().expect("device sync");
            grads
        })
    });
    for experts in [8usize, 64] {
        let layer = SwitchLayerConfig::new(D_MODEL, D_FF, SwitchConfig::new(experts)).init(&device);
        group.bench_with_input(BenchmarkId::new("fast", experts), &experts, |b, _| {
            b.iter(|| {
                let out = layer.forward(x.clone(), Mode::Train);
                let grads = (out.hidden.sum() + out.balance_loss * 0.01).backward();
                device.sync().expect("device sync");
                grads
            })
        });
    }
    group.finish();
}

criterion_group!(benches, routing, layer_step);
criterion_main!(benches);
