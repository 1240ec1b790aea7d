//! Property tests of the dispatch plan on random router scores, for top-k token choice with
//! both fill orders and both overflow policies: positions equal a plain-Rust reference, sort
//! and cumsum positions are identical, no slot is used twice, no expert goes over capacity,
//! each token sits in at most k slots, the slot-major view inverts the token-major one, and
//! dispatch then combine (identity experts) gives each token the gate-weighted sum of its kept
//! copies (zero when all are dropped).

mod common;

use std::collections::HashSet;

use burn::tensor::{Tensor, TensorData};
use common::*;
use moe_core::dispatch::{
    combine_fast, dispatch_einsum, dispatch_fast, dispatch_mask, RowIndexing,
};
use moe_core::plan::{plan_token_choice, stable_descending_order};
use moe_core::{
    BalanceCounts, FillOrder, OverflowPolicy, PositionAlgorithm, RouterOutput, TokenChoice,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Decision {
    num_groups: usize,
    group_size: usize,
    num_experts: usize,
    capacity: usize,
    k: usize,
    token_major: bool,
    /// `[num_tokens, num_experts]`, all distinct, in (0, 1).
    scores: Vec<f32>,
    policy: OverflowPolicy,
}

fn decisions() -> impl Strategy<Value = Decision> {
    (
        1usize..4,
        1usize..10,
        1usize..6,
        1usize..5,
        1usize..4,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(|(g, s, e, c, k, token_major, by_prob)| {
            let n = g * s;
            prop::collection::hash_set(1u32..1_000_000, n * e).prop_map(move |scores| Decision {
                num_groups: g,
                group_size: s,
                num_experts: e,
                capacity: c,
                k: k.min(e),
                token_major,
                scores: scores.into_iter().map(|v| v as f32 / 1_000_000.0).collect(),
                policy: if by_prob {
                    OverflowPolicy::Probability
                } else {
                    OverflowPolicy::Position
                },
            })
        })
}

impl Decision {
    fn num_tokens(&self) -> usize {
        self.num_groups * self.group_size
    }

    /// Each token's k experts, best first.
    fn choices(&self) -> Vec<Vec<usize>> {
        (0..self.num_tokens())
            .map(|t| {
                let row = &self.scores[t * self.num_experts..(t + 1) * self.num_experts];
                let mut order: Vec<usize> = (0..self.num_experts).collect();
                order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
                order[..self.k].to_vec()
            })
            .collect()
    }

    /// Positions (token-major, `t · k + j`) by a plain loop over the fill order.
    fn reference_positions(&self) -> Vec<i64> {
        let choices = self.choices();
        let (s, k, e) = (self.group_size, self.k, self.num_experts);
        let mut position = vec![0i64; self.num_tokens() * k];
        for g in 0..self.num_groups {
            let mut order: Vec<(usize, usize)> = if self.token_major {
                (0..s)
                    .flat_map(|t| (0..k).map(move |j| (g * s + t, j)))
                    .collect()
            } else {
                (0..k)
                    .flat_map(|j| (0..s).map(move |t| (g * s + t, j)))
                    .collect()
            };
            if self.policy == OverflowPolicy::Probability {
                let gate = |&(t, j): &(usize, usize)| self.scores[t * e + choices[t][j]];
                order.sort_by(|a, b| gate(b).total_cmp(&gate(a)));
            }
            let mut count = vec![0i64; e];
            for (t, j) in order {
                let x = choices[t][j];
                position[t * k + j] = count[x];
                count[x] += 1;
            }
        }
        position
    }

    fn route(&self, device: &burn::tensor::Device) -> RouterOutput {
        let shape = [self.num_tokens(), self.num_experts];
        let scores = Tensor::<2>::from_data(TensorData::new(self.scores.clone(), shape), device);
        RouterOutput {
            logits: scores.clone(),
            probs: scores.clone(),
            selection: scores,
        }
    }

    fn policy(&self) -> TokenChoice {
        TokenChoice {
            routed_per_token: self.k,
            renormalize: false,
            balance_counts: BalanceCounts::First,
            bias_update_rate: 0.0,
            sinkhorn_iters: 0,
            fill_order: FillOrder::Auto,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn plan_invariants(d in decisions()) {
        let device = device();
        let r = d.route(&device);
        let plan = |algorithm| plan_token_choice(&r, d.policy(), d.token_major, d.num_groups, d.capacity, d.policy, algorithm);
        let sorted = plan(PositionAlgorithm::Sort);
        let cumsum = plan(PositionAlgorithm::Cumsum);
        let a = sorted.assignments.clone().expect("token choice");
        let position = ints(a.position.clone());
        prop_assert_eq!(&position, &d.reference_positions());
        prop_assert_eq!(&position, &ints(cumsum.assignments.clone().expect("token choice").position));

        let choices = d.choices();
        let experts = ints(a.expert.clone());
        let slots = ints(a.slot.clone());
        let keep = bools(a.keep.clone());
        let (n, k) = (d.num_tokens(), d.k);
        let rows = (d.num_experts * d.num_groups * d.capacity) as i64;
        let mut used = HashSet::new();
        let mut per_expert_group = vec![0usize; d.num_experts * d.num_groups];
        for (t, token_choices) in choices.iter().enumerate().take(n) {
            let mut mine = HashSet::new();
            for (j, &choice) in token_choices.iter().enumerate().take(k) {
                let i = t * k + j;
                prop_assert_eq!(experts[i] as usize, choice, "choice {} of token {}", j, t);
                let kept = position[i] < d.capacity as i64;
                prop_assert_eq!(keep[i], kept);
                if kept {
                    prop_assert!(slots[i] >= 0 && slots[i] < rows);
                    prop_assert!(used.insert(slots[i]), "slot {} used twice", slots[i]);
                    mine.insert(slots[i]);
                    let g = t / d.group_size;
                    let e = experts[i] as usize;
                    prop_assert_eq!(slots[i] as usize / d.capacity, e * d.num_groups + g, "slot in its expert's group block");
                    per_expert_group[e * d.num_groups + g] += 1;
                } else {
                    prop_assert_eq!(slots[i], rows, "dropped decisions go to the trash row");
                }
            }
            prop_assert!(mine.len() <= k, "a token in at most k slots");
        }
        prop_assert!(per_expert_group.iter().all(|&c| c <= d.capacity), "no expert over capacity");

        // The slot-major view inverts the token-major one.
        let (token_of_slot, gate_of_slot, valid) = sorted.slot_major();
        let (token_of_slot, gate_of_slot, valid) = (ints(token_of_slot), floats(gate_of_slot), bools(valid));
        let gates = floats(a.gate.clone());
        for i in 0..n * k {
            if keep[i] {
                let s = slots[i] as usize;
                prop_assert!(valid[s]);
                prop_assert_eq!(token_of_slot[s] as usize, i / k);
                prop_assert_eq!(gate_of_slot[s], gates[i]);
            }
        }
        prop_assert_eq!(valid.iter().filter(|&&v| v).count(), keep.iter().filter(|&&v| v).count());

        // Dispatch then combine with identity experts: each token gets Σ over its kept
        // decisions of gate · x; the einsum dispatch fills the same buffer.
        let d_model = 3;
        let x = Tensor::<1, burn::tensor::Int>::arange(0..(n * d_model) as i64, &device).float().reshape([n, d_model]).add_scalar(1.0);
        let buffer = dispatch_fast(x.clone(), &sorted, RowIndexing::Select);
        prop_assert_eq!(floats(buffer.clone()), floats(dispatch_fast(x.clone(), &sorted, RowIndexing::ScatterGather)));
        prop_assert_eq!(floats(buffer.clone()), floats(dispatch_einsum(x.clone(), &cumsum, dispatch_mask(&cumsum))));
        let back = floats(combine_fast(buffer.clone(), &sorted, RowIndexing::Select));
        let other = floats(combine_fast(buffer, &sorted, RowIndexing::ScatterGather));
        let xs = floats(x);
        for t in 0..n {
            let weight: f32 = (0..k).filter(|&j| keep[t * k + j]).map(|j| gates[t * k + j]).sum();
            for c in 0..d_model {
                let want = xs[t * d_model + c] * weight;
                prop_assert!((back[t * d_model + c] - want).abs() <= 1e-5 * want.abs().max(1.0));
                prop_assert!((other[t * d_model + c] - want).abs() <= 1e-5 * want.abs().max(1.0));
                if weight == 0.0 {
                    prop_assert_eq!(back[t * d_model + c], 0.0, "all dropped: exactly zero");
                }
            }
        }
    }
}

/// Equal gate values keep their index order, whatever the backend's sort does with ties.
#[test]
fn probability_order_breaks_ties_by_index() {
    let device = device();
    let values = Tensor::<2>::from_floats(
        [
            [0.5f32, 0.9, 0.5, 0.1, 0.9, 0.5],
            [0.2, 0.2, 0.2, 0.2, 0.2, 0.2],
        ],
        &device,
    );
    let order = ints(stable_descending_order(values));
    assert_eq!(order, [1, 4, 0, 2, 5, 3, 0, 1, 2, 3, 4, 5]);
}
