//! The fused attention and cross-entropy ops equal plain compositions of burn ops — RoPE from
//! burn-nn's `RotaryEncoding` (the implementation they replaced), an explicit causal mask and
//! softmax; `log_softmax` + gather — in outputs and in the gradients of every input.

mod common;

use burn::nn::RotaryEncodingConfig;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Bool, Distribution, Int, Tensor, TensorData};
use common::*;
use moe_core::fused::{cross_entropy_mean, rope_causal_attention, rope_tables};

#[test]
fn fused_attention_equals_the_composed_reference() {
    let device = device().autodiff();
    let (b, h, t, d) = (2, 3, 7, 8);
    let make = |seed: f32| {
        let v: Vec<f32> = (0..b * h * t * d)
            .map(|i| (i as f32 * 0.37 + seed).sin() * 1.3)
            .collect();
        Tensor::<4>::from_data(TensorData::new(v, [b, h, t, d]), &device).require_grad()
    };
    let (q, k, v) = (make(0.1), make(1.7), make(2.9));
    let w = make(4.2).detach();
    let scale = 1.0 / (d as f64).sqrt();

    let (cos, sin) = rope_tables(t, d, &device);
    let fused = rope_causal_attention(q.clone(), k.clone(), v.clone(), cos, sin, scale);
    let g_fused = (fused.clone() * w.clone()).sum().backward();

    let rope = RotaryEncodingConfig::new(t, d).init(&device);
    let scores = rope
        .forward(q.clone())
        .matmul(rope.forward(k.clone()).swap_dims(2, 3))
        .mul_scalar(scale);
    let future = Tensor::<2, Bool>::tril_mask([t, t], 0, &device).unsqueeze::<4>();
    let reference = softmax(scores.mask_fill(future, f32::NEG_INFINITY), 3).matmul(v.clone());
    let g_ref = (reference.clone() * w).sum().backward();

    assert_close("output", &floats(fused), &floats(reference), 1e-5, 1e-4);
    for (name, x) in [("q", &q), ("k", &k), ("v", &v)] {
        assert_close(
            &format!("d {name}"),
            &floats(x.grad(&g_fused).expect("fused gradient")),
            &floats(x.grad(&g_ref).expect("reference gradient")),
            1e-5,
            1e-4,
        );
    }
}

#[test]
fn fused_cross_entropy_equals_log_softmax_and_gather() {
    let device = device().autodiff();
    let (n, vocab) = (11, 9);
    let logits = Tensor::<2>::random([n, vocab], Distribution::Normal(0.0, 2.0), &device);
    let logits = Tensor::<2>::from_data(logits.into_data(), &device).require_grad();
    let targets: Vec<i64> = (0..n as i64).map(|i| (i * 5 + 2) % vocab as i64).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &device);

    let fused = cross_entropy_mean(logits.clone(), targets.clone());
    let g_fused = fused.clone().mul_scalar(3.0).backward();
    let reference = log_softmax(logits.clone(), 1)
        .gather(1, targets.reshape([n, 1]))
        .mean()
        .neg();
    let g_ref = reference.clone().mul_scalar(3.0).backward();
    assert_close("loss", &floats(fused), &floats(reference), 1e-6, 1e-5);
    assert_close(
        "d logits",
        &floats(logits.grad(&g_fused).unwrap()),
        &floats(logits.grad(&g_ref).unwrap()),
        1e-6,
        1e-5,
    );
}
