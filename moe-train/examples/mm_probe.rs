//! GEMM throughput of the backend at the tiny preset's matmul shapes, 2-D and batched as the
//! expert stack runs them (8 experts × 320 capacity rows; forward and the backward's
//! transposed products).
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
    // The expert stack: [E, C, k] · [E, k, n], plain and with a transposed operand (as the
    // backward computes dW = xᵀ·dh and dx = dh·Wᵀ).
    let (e, c, d, f) = (8usize, 320usize, 128usize, 512usize);
    let x = Tensor::<3>::random([e, c, d], Distribution::Normal(0.0, 1.0), &dev);
    let w1 = Tensor::<3>::random([e, d, f], Distribution::Normal(0.0, 1.0), &dev);
    let dh = Tensor::<3>::random([e, c, f], Distribution::Normal(0.0, 1.0), &dev);
    let flops = 2.0 * (e * c * d * f) as f64;
    time_batched("x·W1        [8,320,128]·[8,128,512]", flops, &dev, || {
        x.clone().matmul(w1.clone())
    });
    time_batched(
        "xᵀ·dh       [8,128,320]·[8,320,512]",
        flops,
        &dev,
        || x.clone().swap_dims(1, 2).matmul(dh.clone()),
    );
    time_batched(
        "dh·W1ᵀ      [8,320,512]·[8,512,128]",
        flops,
        &dev,
        || dh.clone().matmul(w1.clone().swap_dims(1, 2)),
    );
}

/// Mean time of `run` over 50 calls after 5 warm-up calls, printed with its GFLOP/s.
fn time_batched(name: &str, flops: f64, dev: &Device, run: impl Fn() -> Tensor<3>) {
    for _ in 0..5 {
        run().into_data();
    }
    let t = Instant::now();
    for _ in 0..50 {
        let _ = run();
    }
    dev.sync().unwrap();
    let dt = t.elapsed().as_secs_f64() / 50.0;
    println!(
        "flex  batched {name}: {:.3} ms {:.1} GFLOP/s",
        dt * 1e3,
        flops / dt / 1e9
    );
}
