//! Golden tiny case: 8 tokens, 4 experts, capacity 2, with every routing quantity checked
//! against values computed independently.
//!
//! The router weight is the identity, so the token vectors *are* the router logits.
//! Expected values come from this script (plain Python, no numpy):
//!
//! ```python
//! import math
//! X = [[2.0, 0.1, 0.0, -1.0], [0.5, 1.5, 0.2, 0.0], [1.8, 0.0, 0.3, 0.1], [1.2, 0.2, -0.5, 0.4],
//!      [0.0, 0.1, 0.0, 2.2], [0.3, 2.0, 0.1, 0.0], [0.2, 2.5, 0.0, 0.5], [-0.3, 0.0, 1.1, 0.2]]
//! E, T = 4, 8
//! def softmax(r):
//!     m = max(r); e = [math.exp(v - m) for v in r]; s = sum(e); return [v / s for v in e]
//! P = [softmax(r) for r in X]
//! idx = [max(range(E), key=lambda i: p[i]) for p in P]
//! gate = [P[t][idx[t]] for t in range(T)]
//! def positions(order):
//!     cnt = [0] * E; pos = [0] * T
//!     for t in order:
//!         pos[t] = cnt[idx[t]]; cnt[idx[t]] += 1
//!     return pos
//! pos = positions(range(T))
//! pos_prob = positions(sorted(range(T), key=lambda t: -gate[t]))
//! f = [sum(1 for t in range(T) if idx[t] == i) / T for i in range(E)]
//! Pm = [sum(P[t][i] for t in range(T)) / T for i in range(E)]
//! bal = E * sum(f[i] * Pm[i] for i in range(E))
//! z = sum(math.log(sum(math.exp(v) for v in r)) ** 2 for r in X) / T
//! ent = sum(-sum(p * math.log(p) for p in r) for r in P) / T
//! # idx [0, 1, 0, 0, 3, 1, 1, 2]
//! # gate [0.7492371, 0.5366127, 0.6364916, 0.500027, 0.7440129, 0.6813904, 0.7589101, 0.5035151]
//! # pos [0, 0, 1, 2, 0, 1, 2, 0]        pos_prob [0, 2, 1, 2, 0, 1, 0, 0]
//! # balance 1.1408983  z 5.1504136  entropy 1.0166920
//! # mean_prob [0.3112919, 0.3296064, 0.1538967, 0.205205]
//! ```

mod common;

use burn::tensor::Tensor;
use common::*;
use moe_core::{DispatchKind, Mode, OverflowPolicy, SwitchConfig};

const TOKENS: [[f32; 4]; 8] = [
    [2.0, 0.1, 0.0, -1.0],
    [0.5, 1.5, 0.2, 0.0],
    [1.8, 0.0, 0.3, 0.1],
    [1.2, 0.2, -0.5, 0.4],
    [0.0, 0.1, 0.0, 2.2],
    [0.3, 2.0, 0.1, 0.0],
    [0.2, 2.5, 0.0, 0.5],
    [-0.3, 0.0, 1.1, 0.2],
];
const EXPERT: [i64; 8] = [0, 1, 0, 0, 3, 1, 1, 2];
const GATE: [f32; 8] = [
    0.7492371, 0.5366127, 0.6364916, 0.500027, 0.7440129, 0.6813904, 0.7589101, 0.5035151,
];
const POSITION: [i64; 8] = [0, 0, 1, 2, 0, 1, 2, 0];
const POSITION_BY_PROBABILITY: [i64; 8] = [0, 2, 1, 2, 0, 1, 0, 0];
const BALANCE: f32 = 1.1408983;
const Z_LOSS: f32 = 5.1504136;
const ENTROPY: f32 = 1.016692;
const MEAN_PROB: [f32; 4] = [0.3112919, 0.3296064, 0.1538967, 0.205205];

/// Capacity factor 1.0 → capacity = 1.0 · 8 / 4 = 2.
fn config(dispatch: DispatchKind, overflow: OverflowPolicy) -> SwitchConfig {
    SwitchConfig::new(4, 8, 4)
        .with_capacity_factor_train(1.0)
        .with_min_capacity(1)
        .with_dispatch(dispatch)
        .with_overflow(overflow)
}

fn check(dispatch: DispatchKind, overflow: OverflowPolicy, expected_position: [i64; 8]) {
    let device = device();
    let cfg = config(dispatch, overflow);
    assert_eq!(cfg.capacity(8, Mode::Train), 2);
    let layer = with_router_weight(layer(&cfg, &device, 0), Tensor::eye(4, &device));
    let tokens = tensor2(&TOKENS.map(|r| r.to_vec()), &device);

    let route = layer.router.forward(tokens.clone(), Mode::Train);
    assert_eq!(ints(route.expert_index.clone()), EXPERT, "expert indices");
    assert_close("gate", &floats(route.gate.clone()), &GATE, 1e-6, 0.0);

    let assignment = layer.assign(&route, Mode::Train);
    assert_eq!(
        ints(assignment.position.clone()),
        expected_position,
        "positions ({overflow:?})"
    );
    let kept: Vec<bool> = expected_position.iter().map(|&p| p < 2).collect();
    assert_eq!(
        floats(assignment.keep.clone()),
        kept.iter().map(|&k| k as u8 as f32).collect::<Vec<_>>()
    );

    // Identity experts: a kept token comes back scaled by its gate, a dropped one as exact 0.
    let out = layer.forward_routed(tokens, route, Mode::Train, |h| h);
    let hidden = floats(out.hidden);
    for t in 0..8 {
        let row = &hidden[t * 4..t * 4 + 4];
        if kept[t] {
            let want: Vec<f32> = TOKENS[t].iter().map(|v| v * GATE[t]).collect();
            assert_close(&format!("token {t} output"), row, &want, 1e-6, 1e-6);
        } else {
            assert!(
                row.iter().all(|&v| v == 0.0),
                "dropped token {t} must be exactly zero, got {row:?}"
            );
        }
    }
    assert_close(
        "balance loss",
        &floats(out.balance_loss),
        &[BALANCE],
        1e-5,
        0.0,
    );
    assert_close("z-loss", &floats(out.z_loss), &[Z_LOSS], 1e-5, 0.0);

    let s = out.stats.summary();
    assert_eq!(
        s.tokens_per_expert,
        vec![3.0, 3.0, 1.0, 1.0],
        "counted before dropping"
    );
    assert_eq!(s.kept_per_expert, vec![2.0, 2.0, 1.0, 1.0]);
    assert_eq!(s.dropped_fraction, 0.25);
    assert_eq!(s.largest_share, 3.0 / 8.0);
    assert_eq!(s.dead_experts, 0);
    assert_eq!(s.capacity, 2);
    assert_close("mean prob", &s.mean_prob, &MEAN_PROB, 1e-6, 0.0);
    assert_close("entropy", &[s.entropy], &[ENTROPY], 1e-5, 0.0);
}

#[test]
fn golden_fast_position() {
    check(DispatchKind::Fast, OverflowPolicy::Position, POSITION);
}

#[test]
fn golden_einsum_position() {
    check(DispatchKind::Einsum, OverflowPolicy::Position, POSITION);
}

#[test]
fn golden_fast_probability() {
    check(
        DispatchKind::Fast,
        OverflowPolicy::Probability,
        POSITION_BY_PROBABILITY,
    );
}

#[test]
fn golden_einsum_probability() {
    check(
        DispatchKind::Einsum,
        OverflowPolicy::Probability,
        POSITION_BY_PROBABILITY,
    );
}

#[test]
fn dead_experts_are_counted() {
    // Every token prefers expert 0: three experts get nothing, all but `capacity` are dropped.
    let device = device();
    let cfg = config(DispatchKind::Fast, OverflowPolicy::Position);
    let layer = with_router_weight(layer(&cfg, &device, 0), Tensor::eye(4, &device));
    let tokens = tensor2(&vec![vec![3.0, 0.0, 0.0, 0.0]; 8], &device);
    let out = layer.forward_routed(
        tokens,
        layer.router.forward(
            tensor2(&vec![vec![3.0, 0.0, 0.0, 0.0]; 8], &device),
            Mode::Train,
        ),
        Mode::Train,
        |h| h,
    );
    let s = out.stats.summary();
    assert_eq!(s.dead_experts, 3);
    assert_eq!(s.largest_share, 1.0);
    assert_eq!(s.dropped_fraction, 0.75);
}
