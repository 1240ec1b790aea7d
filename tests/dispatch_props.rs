//! Property tests of the dispatch invariants, on random router decisions: each token in at
//! most one slot, no expert over capacity, unique slots, positions equal to a plain-Rust
//! reference, sort and cumsum positions identical, and dispatch then combine is the
//! identity on kept tokens (zero on dropped ones).

mod common;

use std::collections::HashSet;

use burn::tensor::{Int, Tensor, TensorData};
use common::*;
use moe_core::dispatch::{
    combine_fast, combine_fast_with, dispatch_einsum, dispatch_fast, dispatch_fast_with,
    dispatch_mask, RowIndexing,
};
use moe_core::{OverflowPolicy, PositionAlgorithm, RouterOutput, SlotAssignment};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Decision {
    num_groups: usize,
    group_size: usize,
    num_experts: usize,
    capacity: usize,
    expert: Vec<i64>,
    gate: Vec<f32>,
    policy: OverflowPolicy,
}

fn decisions() -> impl Strategy<Value = Decision> {
    (1usize..4, 1usize..12, 1usize..6, 1usize..5, any::<bool>()).prop_flat_map(
        |(g, s, e, c, by_prob)| {
            let n = g * s;
            (
                prop::collection::vec(0..e as i64, n),
                prop::collection::hash_set(1u32..1_000_000, n),
            )
                .prop_map(move |(expert, gates)| Decision {
                    num_groups: g,
                    group_size: s,
                    num_experts: e,
                    capacity: c,
                    expert,
                    // Distinct gate values, so batch-prioritized order has no ties.
                    gate: gates.into_iter().map(|v| v as f32 / 1_000_000.0).collect(),
                    policy: if by_prob {
                        OverflowPolicy::Probability
                    } else {
                        OverflowPolicy::Position
                    },
                })
        },
    )
}

/// Positions computed by a plain loop: tokens of a group fill in token order, or by
/// decreasing gate for the probability policy.
fn reference_positions(d: &Decision) -> Vec<i64> {
    let mut position = vec![0i64; d.expert.len()];
    for g in 0..d.num_groups {
        let mut order: Vec<usize> = (g * d.group_size..(g + 1) * d.group_size).collect();
        if d.policy == OverflowPolicy::Probability {
            order.sort_by(|&a, &b| d.gate[b].total_cmp(&d.gate[a]));
        }
        let mut count = vec![0i64; d.num_experts];
        for t in order {
            let e = d.expert[t] as usize;
            position[t] = count[e];
            count[e] += 1;
        }
    }
    position
}

fn route(d: &Decision, device: &burn::tensor::Device) -> RouterOutput {
    let n = d.expert.len();
    RouterOutput {
        logits: Tensor::zeros([n, d.num_experts], device),
        probs: Tensor::zeros([n, d.num_experts], device),
        expert_index: Tensor::<1, Int>::from_data(TensorData::new(d.expert.clone(), [n]), device),
        gate: Tensor::from_data(TensorData::new(d.gate.clone(), [n]), device),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn dispatch_invariants(d in decisions()) {
        let device = device();
        let r = route(&d, &device);
        let sorted = SlotAssignment::new(&r, d.num_groups, d.capacity, d.policy, PositionAlgorithm::Sort);
        let cumsum = SlotAssignment::new(&r, d.num_groups, d.capacity, d.policy, PositionAlgorithm::Cumsum);
        let position = ints(sorted.position.clone());
        prop_assert_eq!(&position, &reference_positions(&d));
        prop_assert_eq!(&position, &ints(cumsum.position.clone()));

        let slots = ints(sorted.slot.clone());
        let keep = floats(sorted.keep.clone());
        let rows = (d.num_experts * d.num_groups * d.capacity) as i64;
        let mut used = HashSet::new();
        let mut per_expert_group = vec![0usize; d.num_experts * d.num_groups];
        for t in 0..d.expert.len() {
            let kept = position[t] < d.capacity as i64;
            prop_assert_eq!(keep[t], kept as u8 as f32);
            if kept {
                prop_assert!(slots[t] >= 0 && slots[t] < rows);
                prop_assert!(used.insert(slots[t]), "slot {} used twice", slots[t]);
                let g = t / d.group_size;
                let e = d.expert[t] as usize;
                prop_assert_eq!(slots[t] as usize / d.capacity, e * d.num_groups + g, "slot in its expert's group block");
                per_expert_group[e * d.num_groups + g] += 1;
            } else {
                prop_assert_eq!(slots[t], rows, "dropped tokens go to the trash row");
            }
        }
        prop_assert!(per_expert_group.iter().all(|&k| k <= d.capacity), "no expert over capacity");

        // Dispatch then combine with gate 1 is the identity on kept tokens, zero elsewhere;
        // the einsum dispatch fills the same buffer.
        let n = d.expert.len();
        let d_model = 3;
        let x = Tensor::<1, burn::tensor::Int>::arange(0..(n * d_model) as i64, &device).float().reshape([n, d_model]).add_scalar(1.0);
        let buffer = dispatch_fast(x.clone(), &sorted);
        prop_assert_eq!(floats(buffer.clone()), floats(dispatch_fast_with(x.clone(), &sorted, RowIndexing::ScatterGather)));
        prop_assert_eq!(floats(buffer.clone()), floats(dispatch_einsum(x.clone(), &cumsum, dispatch_mask(&cumsum))));
        let back = floats(combine_fast(buffer.clone(), &sorted, Tensor::ones([n], &device)));
        prop_assert_eq!(&back, &floats(combine_fast_with(buffer, &sorted, Tensor::ones([n], &device), RowIndexing::ScatterGather)));
        let xs = floats(x);
        for t in 0..n {
            for j in 0..d_model {
                let want = if keep[t] == 1.0 { xs[t * d_model + j] } else { 0.0 };
                prop_assert_eq!(back[t * d_model + j], want);
            }
        }
    }
}
