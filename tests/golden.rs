//! Golden tiny cases: 8 tokens, 4 experts, top-1 at capacity 2 and top-2 at capacity 4, with
//! every routing quantity checked against values computed independently.
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
use moe_core::{
    BalanceCounts, DispatchKind, Mode, OverflowPolicy, RoutingConfig, SwitchConfig,
    SwitchLayerConfig, TopKConfig,
};

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
fn config(dispatch: DispatchKind, overflow: OverflowPolicy) -> SwitchLayerConfig {
    let switch = SwitchConfig::new(4)
        .with_capacity_factor_train(1.0)
        .with_min_capacity(1)
        .with_dispatch(dispatch)
        .with_overflow(overflow);
    SwitchLayerConfig::new(4, 8, switch)
}

fn check(dispatch: DispatchKind, overflow: OverflowPolicy, expected_position: [i64; 8]) {
    let device = device();
    let cfg = config(dispatch, overflow);
    assert_eq!(cfg.switch.capacity(8, Mode::Train), 2);
    let layer = with_router_weight(layer(&cfg, &device, 0), Tensor::eye(4, &device));
    let tokens = tensor2(&TOKENS.map(|r| r.to_vec()), &device);

    let route = layer.router.forward(tokens.clone(), Mode::Train);
    let plan = single_plan(&layer, &route, Mode::Train);
    let a = plan.assignments.clone().expect("token choice");
    assert_eq!(ints(a.expert.clone()), EXPERT, "expert indices");
    assert_close("gate", &floats(a.gate.clone()), &GATE, 1e-6, 0.0);
    assert_eq!(
        ints(a.position.clone()),
        expected_position,
        "positions ({overflow:?})"
    );
    let kept: Vec<bool> = expected_position.iter().map(|&p| p < 2).collect();
    assert_eq!(bools(a.keep.clone()), kept);

    // Identity experts: a kept token comes back scaled by its gate, a dropped one as exact 0.
    let out = routed(&layer, tokens, route, Mode::Train, |h| h);
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
    let route = layer.router.forward(
        tensor2(&vec![vec![3.0, 0.0, 0.0, 0.0]; 8], &device),
        Mode::Train,
    );
    let out = routed(&layer, tokens, route, Mode::Train, |h| h);
    let s = out.stats.summary();
    assert_eq!(s.dead_experts, 3);
    assert_eq!(s.largest_share, 1.0);
    assert_eq!(s.dropped_fraction, 0.75);
}

/// Top-2 on the same tokens, capacity factor 1.0 → capacity ceil(2 · 1.0 · 8 / 4) = 4. Expected
/// values from this script (plain Python; `X`, `E`, `T`, `softmax`, `P` as above):
///
/// ```python
/// K = 2
/// top = [sorted(range(E), key=lambda i: -p[i])[:K] for p in P]
/// raw = [[P[t][e] for e in top[t]] for t in range(T)]
/// renorm = [[g / sum(raw[t]) for g in raw[t]] for t in range(T)]
/// cap = math.ceil(K * 1.0 * T / E - 1e-9)
/// cnt = [0] * E; pos = [[0] * K for _ in range(T)]
/// for j in range(K):                      # all first choices, then all second choices
///     for t in range(T):
///         e = top[t][j]; pos[t][j] = cnt[e]; cnt[e] += 1
/// first = [sum(1 for t in range(T) if top[t][0] == i) / T for i in range(E)]
/// allk = [sum(1 for t in range(T) for j in range(K) if top[t][j] == i) / (K * T) for i in range(E)]
/// Pm = [sum(P[t][i] for t in range(T)) / T for i in range(E)]
/// bal_first = E * sum(first[i] * Pm[i] for i in range(E))   # 1.1408983
/// bal_all = E * sum(allk[i] * Pm[i] for i in range(E))      # 1.0832762
/// # top [[0, 1], [1, 0], [0, 2], [0, 3], [3, 1], [1, 0], [1, 3], [2, 3]]
/// # renorm [[0.8698915, 0.1301085], [0.7310586, 0.2689414], [0.8175745, 0.1824255],
/// #         [0.6899745, 0.3100255], [0.8909032, 0.1090968], [0.8455347, 0.1544653],
/// #         [0.8807971, 0.1192029], [0.7109495, 0.2890505]]
/// # raw second gates [0.1120624, 0.1974088, 0.1420205, 0.2246766, 0.0911092, 0.1244788,
/// #                   0.1027073, 0.204714]
/// # pos [[0, 3], [0, 3], [1, 1], [2, 1], [0, 4], [1, 4], [2, 2], [0, 3]]  (4: dropped)
/// # counts [5, 5, 2, 4], 2 of 16 decisions dropped
/// ```
fn check_top2(dispatch: DispatchKind, renormalize: bool, counts: BalanceCounts) {
    const TOP: [i64; 16] = [0, 1, 1, 0, 0, 2, 0, 3, 3, 1, 1, 0, 1, 3, 2, 3];
    const RENORM: [f32; 16] = [
        0.8698915, 0.1301085, 0.7310586, 0.2689414, 0.8175745, 0.1824255, 0.6899745, 0.3100255,
        0.8909032, 0.1090968, 0.8455347, 0.1544653, 0.8807971, 0.1192029, 0.7109495, 0.2890505,
    ];
    const SECOND: [f32; 8] = [
        0.1120624, 0.1974088, 0.1420205, 0.2246766, 0.0911092, 0.1244788, 0.1027073, 0.204714,
    ];
    const POS: [i64; 16] = [0, 3, 0, 3, 1, 1, 2, 1, 0, 4, 1, 4, 2, 2, 0, 3];
    let device = device();
    let routing = RoutingConfig::Topk(TopKConfig {
        k: 2,
        renormalize,
        balance_counts: counts,
        ..TopKConfig::default()
    });
    let mut cfg = config(dispatch, OverflowPolicy::Position);
    cfg.switch = cfg.switch.with_routing(routing);
    assert_eq!(cfg.switch.capacity(8, Mode::Train), 4);
    let layer = with_router_weight(layer(&cfg, &device, 0), Tensor::eye(4, &device));
    let tokens = tensor2(&TOKENS.map(|r| r.to_vec()), &device);
    let route = layer.router.forward(tokens.clone(), Mode::Train);
    let plan = single_plan(&layer, &route, Mode::Train);
    let a = plan.assignments.clone().expect("token choice");
    assert_eq!(ints(a.expert.clone()), TOP, "top-2 experts");
    assert_eq!(ints(a.position.clone()), POS, "positions");
    let gates: Vec<f32> = if renormalize {
        RENORM.to_vec()
    } else {
        (0..16)
            .map(|i| {
                if i % 2 == 0 {
                    GATE[i / 2]
                } else {
                    SECOND[i / 2]
                }
            })
            .collect()
    };
    assert_close("gates", &floats(a.gate.clone()), &gates, 1e-6, 0.0);
    let keep: Vec<bool> = POS.iter().map(|&p| p < 4).collect();
    assert_eq!(bools(a.keep.clone()), keep);

    let out = routed(&layer, tokens, route, Mode::Train, |h| h);
    let hidden = floats(out.hidden);
    for t in 0..8 {
        let weight: f32 = (0..2)
            .filter(|j| keep[2 * t + j])
            .map(|j| gates[2 * t + j])
            .sum();
        let want: Vec<f32> = TOKENS[t].iter().map(|v| v * weight).collect();
        assert_close(
            &format!("token {t}"),
            &hidden[t * 4..t * 4 + 4],
            &want,
            1e-6,
            1e-6,
        );
    }
    let balance = match counts {
        BalanceCounts::First => 1.1408983,
        BalanceCounts::All => 1.0832762,
    };
    assert_close("balance", &floats(out.balance_loss), &[balance], 1e-5, 0.0);
    assert_close("z-loss", &floats(out.z_loss), &[Z_LOSS], 1e-5, 0.0);
    let s = out.stats.summary();
    assert_eq!(s.tokens_per_expert, vec![5.0, 5.0, 2.0, 4.0]);
    assert_eq!(s.first_choice_per_expert, vec![3.0, 3.0, 1.0, 1.0]);
    assert_eq!(s.kept_per_expert, vec![4.0, 4.0, 2.0, 4.0]);
    assert_eq!((s.decisions, s.dropped_fraction), (16, 2.0 / 16.0));
}

#[test]
fn golden_top2_fast_renormalized_first_choice_counts() {
    check_top2(DispatchKind::Fast, true, BalanceCounts::First);
}

#[test]
fn golden_top2_einsum_raw_gates_all_counts() {
    check_top2(DispatchKind::Einsum, false, BalanceCounts::All);
}

#[test]
fn golden_top2_fast_raw_gates() {
    check_top2(DispatchKind::Fast, false, BalanceCounts::First);
}
