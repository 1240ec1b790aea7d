//! The fused attention and cross-entropy ops equal plain compositions of burn ops — RoPE from
//! burn-nn's `RotaryEncoding` (the implementation they replaced), an explicit causal mask and
//! softmax; `log_softmax` + gather — in outputs and in the gradients of every input.

mod common;

use burn::nn::RotaryEncodingConfig;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Bool, Distribution, Int, Tensor, TensorData};
use common::*;
use moe_core::fused::{cross_entropy_mean, rope_causal_attention, rope_tables};

/// The fused op against burn-nn's RoPE, an explicit causal mask and softmax, in the output and
/// the gradients of `q`, `k`, `v`. `strided`: the inputs and the output gradient are
/// `swap_dims` views (as in the model), not contiguous tensors.
fn check_attention((b, h, t, d): (usize, usize, usize, usize), strided: bool) {
    let device = device().autodiff();
    let make = |seed: f32| {
        let v: Vec<f32> = (0..b * h * t * d)
            .map(|i| (i as f32 * 0.37 + seed).sin() * 1.3)
            .collect();
        if strided {
            Tensor::<4>::from_data(TensorData::new(v, [b, t, h, d]), &device).swap_dims(1, 2)
        } else {
            Tensor::<4>::from_data(TensorData::new(v, [b, h, t, d]), &device)
        }
        .require_grad()
    };
    let (q, k, v) = (make(0.1), make(1.7), make(2.9));
    let w = make(4.2).detach();
    let scale = 1.0 / (d as f64).sqrt();
    // With `strided`, the loss reads the output through a transpose, so the gradient reaching
    // the op is a strided view too.
    let loss = |o: Tensor<4>| {
        if strided {
            (o.swap_dims(1, 2) * w.clone().swap_dims(1, 2)).sum()
        } else {
            (o * w.clone()).sum()
        }
    };

    let (cos, sin) = rope_tables(t, d, &device);
    let fused = rope_causal_attention(q.clone(), k.clone(), v.clone(), cos, sin, scale);
    let g_fused = loss(fused.clone()).backward();

    let rope = RotaryEncodingConfig::new(t, d).init(&device);
    let scores = rope
        .forward(q.clone())
        .matmul(rope.forward(k.clone()).swap_dims(2, 3))
        .mul_scalar(scale);
    let future = Tensor::<2, Bool>::tril_mask([t, t], 0, &device).unsqueeze::<4>();
    let reference = softmax(scores.mask_fill(future, f32::NEG_INFINITY), 3).matmul(v.clone());
    let g_ref = loss(reference.clone()).backward();

    let shape = format!("{b}×{h}×{t}×{d}, strided {strided}");
    assert_close(
        &format!("output, {shape}"),
        &floats(fused),
        &floats(reference),
        1e-5,
        1e-4,
    );
    for (name, x) in [("q", &q), ("k", &k), ("v", &v)] {
        assert_close(
            &format!("d {name}, {shape}"),
            &floats(x.grad(&g_fused).expect("fused gradient")),
            &floats(x.grad(&g_ref).expect("reference gradient")),
            1e-5,
            1e-4,
        );
    }
}

#[test]
fn fused_attention_equals_the_composed_reference() {
    check_attention((2, 3, 7, 8), false);
}

/// The CPU kernel's blocked triangular products (32-row blocks): exactly one block, several
/// blocks with a ragged last one, a single token; strided inputs and output gradient.
#[test]
fn fused_attention_block_edges_and_strided_views() {
    check_attention((2, 1, 32, 4), false);
    check_attention((1, 2, 70, 16), true);
    check_attention((3, 2, 1, 2), true);
}

/// Without autodiff (evaluation, sampling) the op runs its own forward.
#[test]
fn fused_attention_inference_forward_equals_the_reference() {
    let device = device();
    let (b, h, t, d) = (2, 2, 45, 8);
    let make = |seed: f32| {
        let v: Vec<f32> = (0..b * h * t * d)
            .map(|i| (i as f32 * 0.53 + seed).cos())
            .collect();
        Tensor::<4>::from_data(TensorData::new(v, [b, t, h, d]), &device).swap_dims(1, 2)
    };
    let (q, k, v) = (make(0.3), make(1.1), make(2.3));
    let scale = 1.0 / (d as f64).sqrt();
    let (cos, sin) = rope_tables(t, d, &device);
    let fused = rope_causal_attention(q.clone(), k.clone(), v.clone(), cos, sin, scale);
    let rope = RotaryEncodingConfig::new(t, d).init(&device);
    let scores = rope
        .forward(q)
        .matmul(rope.forward(k).swap_dims(2, 3))
        .mul_scalar(scale);
    let future = Tensor::<2, Bool>::tril_mask([t, t], 0, &device).unsqueeze::<4>();
    let reference = softmax(scores.mask_fill(future, f32::NEG_INFINITY), 3).matmul(v);
    assert_close("output", &floats(fused), &floats(reference), 1e-5, 1e-4);
}

/// The fused cross-entropy against `log_softmax` + gather, in the loss and the logits'
/// gradient (scaled by 3 so the output gradient is not 1).
fn check_cross_entropy(n: usize, vocab: usize, std: f64) {
    let device = device().autodiff();
    let logits = Tensor::<2>::random([n, vocab], Distribution::Normal(0.0, std), &device);
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
    let what = format!("{n} × {vocab}, σ {std}");
    assert_close(
        &format!("loss, {what}"),
        &floats(fused),
        &floats(reference),
        1e-6,
        1e-5,
    );
    assert_close(
        &format!("d logits, {what}"),
        &floats(logits.grad(&g_fused).unwrap()),
        &floats(logits.grad(&g_ref).unwrap()),
        1e-6,
        1e-5,
    );
}

#[test]
fn fused_cross_entropy_equals_log_softmax_and_gather() {
    check_cross_entropy(11, 9, 2.0);
    // A vocabulary of many vector widths with a ragged tail, and logits large enough that an
    // unshifted exp would overflow.
    check_cross_entropy(37, 1001, 30.0);
}
