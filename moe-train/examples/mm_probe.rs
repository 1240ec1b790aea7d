//! GEMM throughput of the backend at the tiny preset's matmul shapes.
//! `cargo run --release -p moe-train --example mm_probe`.
use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};

fn main() {
    moe_train::alloc::tune_allocator();
    let dev = Device::flex();
    for (m, k, n) in [
        (2048, 128, 128),
        (2048, 128, 512),
        (2048, 512, 128),
        (64 * 128, 32, 128),
        (1280, 128, 512),
        (512, 2048, 128),
    ] {
        let a = Tensor::<2>::random([m, k], Distribution::Normal(0.0, 1.0), &dev);
        let b = Tensor::<2>::random([k, n], Distribution::Normal(0.0, 1.0), &dev);
        for _ in 0..5 {
            a.clone().matmul(b.clone()).into_data();
        }
        let t = Instant::now();
        for _ in 0..50 {
            let _ = a.clone().matmul(b.clone());
        }
        dev.sync().unwrap();
        let dt = t.elapsed().as_secs_f64() / 50.0;
        println!(
            "flex  {m}x{k}x{n}: {:.3} ms {:.1} GFLOP/s",
            dt * 1e3,
            2.0 * (m * k * n) as f64 / dt / 1e9
        );
    }
}
