//! The fused attention, cross-entropy and expert-FFN ops equal plain compositions of burn ops —
//! RoPE from burn-nn's `RotaryEncoding` (the implementation they replaced), an explicit causal
//! mask and softmax; `log_softmax` + gather; per-token expert weights picked with `select` —
//! in outputs and in the gradients of every input.

mod common;

use burn::nn::RotaryEncodingConfig;
use burn::tensor::activation::relu;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Bool, Distribution, Int, Tensor, TensorData};
use common::*;
use moe_core::fused::{
    cross_entropy_mean, expert_ffn_top1, expert_ffn_top1_supported, rope_causal_attention,
    rope_tables,
};
use moe_core::{BalanceContext, Mode, SwitchConfig, SwitchLayerConfig};

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

/// Slots for `n` tokens in groups of `group_size`, each token choosing expert
/// `choose(t) < experts`; a group's tokens claim their expert's slots in token order and those
/// past `capacity` are dropped (slot `experts · groups · capacity`), as in `plan.rs`.
fn make_slots(
    n: usize,
    group_size: usize,
    experts: usize,
    capacity: usize,
    choose: impl Fn(usize) -> usize,
) -> (Vec<i64>, Vec<usize>) {
    let groups = n / group_size;
    let trash = (experts * groups * capacity) as i64;
    let mut used = vec![0; experts * groups];
    let mut slots = Vec::with_capacity(n);
    let mut chosen = Vec::with_capacity(n);
    for t in 0..n {
        let (g, e) = (t / group_size, choose(t));
        let position = used[e * groups + g];
        used[e * groups + g] += 1;
        slots.push(if position < capacity {
            ((e * groups + g) * capacity + position) as i64
        } else {
            trash
        });
        chosen.push(e);
    }
    (slots, chosen)
}

/// The fused expert FFN against a per-token composition: token `t` in a slot of expert `e`
/// gets `gate_t · relu(x_t·W1_e)·W2_e` with `W1_e`, `W2_e` picked by `select`, a dropped token
/// zeros. Outputs and the gradients of tokens, `W1`, `W2` and the gates; an expert that no
/// token chose must get zero weight gradients.
fn check_expert_ffn(n: usize, group_size: usize, d: usize, f: usize, capacity: usize) {
    let device = device().autodiff();
    let experts = 3;
    // Tokens choose experts 0 and 1 only: expert 2 stays empty.
    let (slots, chosen) = make_slots(n, group_size, experts, capacity, |t| (t * 7 + t / 3) % 2);
    let rows_per_expert = (n / group_size) * capacity;
    let kept: Vec<f32> = slots
        .iter()
        .map(|&s| f32::from(u8::from(s < (experts * rows_per_expert) as i64)))
        .collect();
    assert!(
        kept.contains(&0.0) && kept.contains(&1.0),
        "some tokens dropped, some kept"
    );
    let values = |len: usize, seed: f32| -> Vec<f32> {
        (0..len)
            .map(|i| (i as f32 * 0.61 + seed).sin() * 0.8)
            .collect()
    };
    let x =
        Tensor::<2>::from_data(TensorData::new(values(n * d, 0.2), [n, d]), &device).require_grad();
    let w1 = Tensor::<3>::from_data(
        TensorData::new(values(experts * d * f, 1.3), [experts, d, f]),
        &device,
    )
    .require_grad();
    let w2 = Tensor::<3>::from_data(
        TensorData::new(values(experts * f * d, 2.1), [experts, f, d]),
        &device,
    )
    .require_grad();
    let gate = Tensor::<1>::from_data(
        TensorData::new(
            values(n, 3.7).iter().map(|v| 0.5 + v.abs() / 2.0).collect(),
            [n],
        ),
        &device,
    )
    .require_grad();
    let slot = Tensor::<1, Int>::from_data(TensorData::new(slots.clone(), [n]), &device);
    let w_out = Tensor::<2>::from_data(TensorData::new(values(n * d, 4.9), [n, d]), &device);
    let loss = |o: Tensor<2>| (o * w_out.clone()).sum();

    let fused = expert_ffn_top1(
        x.clone(),
        w1.clone(),
        w2.clone(),
        gate.clone(),
        slot,
        rows_per_expert,
    );
    let g_fused = loss(fused.clone()).backward();

    let index: Vec<i64> = chosen.iter().map(|&e| e as i64).collect();
    let index = Tensor::<1, Int>::from_data(TensorData::new(index, [n]), &device);
    let keep = Tensor::<1>::from_data(TensorData::new(kept, [n]), &device);
    let hidden = relu(
        x.clone()
            .reshape([n, 1, d])
            .matmul(w1.clone().select(0, index.clone())),
    ); // [n, 1, f]
    let reference = hidden.matmul(w2.clone().select(0, index)).reshape([n, d])
        * (gate.clone() * keep).reshape([n, 1]);
    let g_ref = loss(reference.clone()).backward();

    let what = format!("{n} tokens, groups of {group_size}, d {d}, d_ff {f}, capacity {capacity}");
    assert_close(
        &format!("output, {what}"),
        &floats(fused),
        &floats(reference),
        1e-5,
        1e-4,
    );
    for (name, fused, reference) in [
        ("x", x.grad(&g_fused), x.grad(&g_ref)),
        (
            "gate",
            gate.grad(&g_fused).map(|g| g.reshape([n, 1])),
            gate.grad(&g_ref).map(|g| g.reshape([n, 1])),
        ),
        (
            "w1",
            w1.grad(&g_fused).map(|g| g.reshape([experts * d, f])),
            w1.grad(&g_ref).map(|g| g.reshape([experts * d, f])),
        ),
        (
            "w2",
            w2.grad(&g_fused).map(|g| g.reshape([experts * f, d])),
            w2.grad(&g_ref).map(|g| g.reshape([experts * f, d])),
        ),
    ] {
        assert_close(
            &format!("d {name}, {what}"),
            &floats(fused.expect("fused gradient")),
            &floats(reference.expect("reference gradient")),
            1e-5,
            1e-4,
        );
    }
    let empty = floats(w1.grad(&g_fused).expect("w1 gradient").narrow(0, 2, 1));
    assert!(
        empty.iter().all(|&v| v == 0.0),
        "the empty expert's W1 gradient is zero"
    );
}

#[test]
fn fused_expert_ffn_equals_per_token_experts() {
    if !expert_ffn_top1_supported(&device()) {
        eprintln!("skipped: the fused expert FFN runs on burn-flex only");
        return;
    }
    // Two groups, drops in both, rows of each expert in slot (not token) order.
    check_expert_ffn(40, 20, 8, 12, 6);
    // One group, widths that are no multiple of a vector.
    check_expert_ffn(9, 9, 5, 7, 4);
}

/// Without autodiff (evaluation, sampling) the op runs its forward alone.
#[test]
fn fused_expert_ffn_inference_forward_equals_training_forward() {
    let device = device();
    if !expert_ffn_top1_supported(&device) {
        eprintln!("skipped: the fused expert FFN runs on burn-flex only");
        return;
    }
    let (n, d, f, experts, capacity) = (16, 6, 10, 2, 5);
    let (slots, _) = make_slots(n, n, experts, capacity, |t| t % 2);
    device.seed(5);
    let x = Tensor::<2>::random([n, d], Distribution::Normal(0.0, 1.0), &device);
    let w1 = Tensor::<3>::random([experts, d, f], Distribution::Normal(0.0, 0.5), &device);
    let w2 = Tensor::<3>::random([experts, f, d], Distribution::Normal(0.0, 0.5), &device);
    let gate = Tensor::<1>::random([n], Distribution::Uniform(0.2, 1.0), &device);
    let run = |device: &burn::tensor::Device| {
        let slot = Tensor::<1, Int>::from_data(TensorData::new(slots.clone(), [n]), device);
        floats(expert_ffn_top1(
            Tensor::from_data(x.to_data(), device),
            Tensor::from_data(w1.to_data(), device),
            Tensor::from_data(w2.to_data(), device),
            Tensor::from_data(gate.to_data(), device),
            slot,
            capacity,
        ))
    };
    assert_eq!(run(&device), run(&device.clone().autodiff()));
}

/// A top-1 switch layer on burn-flex (its own experts: the fused op) equals the same layer
/// through dispatch → `Experts::forward` → combine, in the output, the balance loss and the
/// gradients of the tokens, the router and both expert matrices; with drops. `n` tokens in
/// groups of 24: two equal groups, or a ragged last group (a segment of its own).
fn check_fused_layer(n: usize) {
    let device = device().autodiff();
    let d = 16;
    let switch = SwitchConfig::new(4)
        .with_capacity_factor_train(0.75)
        .with_min_capacity(1)
        .with_group_size(Some(24));
    let layer = layer(&SwitchLayerConfig::new(d, 32, switch), &device, 21);
    device.seed(22);
    let x0 = Tensor::<2>::random([n, d], Distribution::Normal(0.0, 1.0), &device);
    let w_out = Tensor::<2>::random([n, d], Distribution::Normal(0.0, 1.0), &device);
    let run = |fused: bool| {
        let x = x0.clone().detach().require_grad();
        let route = layer.router.forward(x.clone(), Mode::Train);
        let context = BalanceContext::default();
        let out = if fused {
            layer.forward_routed_experts(x.clone(), route, Mode::Train, &context)
        } else {
            layer.forward_routed(x.clone(), route, Mode::Train, &context, |h| {
                layer.experts.forward(h)
            })
        };
        let dropped = vec![out.stats.summary().dropped_fraction];
        let loss = (out.hidden.clone() * w_out.clone()).sum() + out.balance_loss.clone();
        let g = loss.backward();
        [
            floats(out.hidden),
            floats(out.balance_loss),
            floats(x.grad(&g).expect("token gradient")),
            grad_of(&layer.router.weight, &g),
            grad_of(&layer.experts.w1, &g),
            grad_of(&layer.experts.w2, &g),
            dropped,
        ]
    };
    let (fused, composed) = (run(true), run(false));
    assert!(
        fused[6][0] > 0.0,
        "capacity factor 0.75 drops tokens ({n} tokens)"
    );
    for (i, name) in [
        "output",
        "balance loss",
        "d tokens",
        "d router",
        "d w1",
        "d w2",
        "drops",
    ]
    .iter()
    .enumerate()
    {
        assert_close(
            &format!("{name}, {n} tokens"),
            &fused[i],
            &composed[i],
            1e-5,
            1e-4,
        );
    }
}

#[test]
fn switch_layer_with_fused_experts_equals_dispatch_and_combine() {
    if !expert_ffn_top1_supported(&device()) {
        eprintln!("skipped: the fused expert FFN runs on burn-flex only");
        return;
    }
    check_fused_layer(48);
    check_fused_layer(40);
}
