//! Times the pieces of the fast dispatch path (slot assignment by sort vs cumsum, buffer
//! allocation, select_assign vs scatter, select vs gather) on one backend, for 16384 tokens
//! of width 512 at 8 and 256 experts. The figures quoted in `moe-core/src/dispatch.rs` and
//! `moe-train/src/alloc.rs` come from it.
//!
//! Run: `cargo run --release -p moe-train --example indexing_probe -- flex` (or `ndarray`,
//! `wgpu`); `SWITCHYARD_DEFAULT_MALLOC=1` in front shows glibc's default allocator.

use burn::tensor::{Distribution, IndexingUpdateOp, Int, Tensor};
use moe_core::*;
use std::time::Instant;
fn t<F: FnMut() -> R, R>(name: &str, dev: &burn::tensor::Device, mut f: F) {
    for _ in 0..2 {
        f();
        dev.sync().unwrap();
    }
    let s = Instant::now();
    for _ in 0..5 {
        f();
        dev.sync().unwrap();
    }
    println!("{name:40} {:8.2} ms", s.elapsed().as_secs_f64() * 1e3 / 5.0);
}
fn main() {
    moe_train::alloc::tune_allocator();
    let backend: moe_train::Backend = std::env::args()
        .nth(1)
        .unwrap_or("flex".into())
        .parse()
        .unwrap();
    let dev = backend.device().unwrap();
    let (n, d) = (16384usize, 512usize);
    for e in [8usize, 256] {
        println!("--- {backend} experts {e}");
        let layer = SwitchLayerConfig::new(d, 4, SwitchConfig::new(e)).init(&dev);
        let x = Tensor::<2>::random([n, d], Distribution::Normal(0.0, 1.0), &dev);
        let route = layer.router.forward(x.clone(), Mode::Train);
        let plan_with = |algorithm| {
            let policy = SwitchConfig::new(e)
                .routing
                .token_choice()
                .expect("top-1 is token choice");
            let capacity = layer.config.capacity(n, Mode::Train);
            moe_core::plan::plan_token_choice(
                &route,
                policy,
                false,
                1,
                capacity,
                OverflowPolicy::Position,
                algorithm,
            )
        };
        let plan = plan_with(PositionAlgorithm::Sort);
        let a = plan.assignments.clone().expect("token choice");
        let rows = plan.buffer_rows();
        t("plan (sort)", &dev, || {
            plan_with(PositionAlgorithm::Sort)
                .assignments
                .expect("token choice")
                .slot
        });
        t("plan (cumsum)", &dev, || {
            plan_with(PositionAlgorithm::Cumsum)
                .assignments
                .expect("token choice")
                .slot
        });
        let key = a.expert.clone().reshape([1, n]);
        t("int sort_with_indices [1,n]", &dev, || {
            key.clone().sort_with_indices(1).1
        });
        t("zeros [rows+1,d]", &dev, || {
            Tensor::<2>::zeros([rows + 1, d], &dev)
        });
        t("select_assign", &dev, || {
            Tensor::<2>::zeros([rows + 1, d], &dev).select_assign(
                0,
                a.slot.clone(),
                x.clone(),
                IndexingUpdateOp::Add,
            )
        });
        let indexing = RowIndexing::for_device(&dev);
        let buf = moe_core::dispatch::dispatch_fast(x.clone(), &plan, indexing);
        t("dispatch_fast", &dev, || {
            moe_core::dispatch::dispatch_fast(x.clone(), &plan, indexing)
        });
        let idx = a.slot.clone().clamp_max(rows as i64 - 1);
        let flat = buf.clone().reshape([rows, d]);
        t("select rows", &dev, || flat.clone().select(0, idx.clone()));
        t("combine_fast", &dev, || {
            moe_core::dispatch::combine_fast(buf.clone(), &plan, indexing)
        });
        t("elementwise mul [n,d]", &dev, || x.clone() * x.clone());
        let idx2 = idx.clone().unsqueeze_dim::<2>(1).expand([n, d]);
        t("gather dim0 [n,d]", &dev, || {
            flat.clone().gather(0, idx2.clone())
        });
        t("scatter dim0 [n,d]", &dev, || {
            Tensor::<2>::zeros([rows + 1, d], &dev).scatter(
                0,
                a.slot.clone().unsqueeze_dim::<2>(1).expand([n, d]),
                x.clone(),
                IndexingUpdateOp::Add,
            )
        });
    }
    let _ = Tensor::<1, Int>::arange(0..2, &dev);
}
