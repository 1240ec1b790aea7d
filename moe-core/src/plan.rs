//! From router scores to a [`DispatchPlan`]: which token sits in which slot of which expert,
//! with which gate. Token choice (top-1, top-k, fine-grained) and expert choice both produce
//! one; both dispatch implementations consume it (`dispatch.rs`).
//!
//! Slots are expert-major: slot `(e · G + g) · C + c` is slot `c` of expert `e` in routing
//! group `g` (`G` groups of `S` tokens, capacity `C` per expert per group, `E` experts).

use burn::tensor::{Bool, Device, IndexingUpdateOp, Int, Tensor};

use crate::config::{OverflowPolicy, TokenChoice};
use crate::router::RouterOutput;

/// How a routing decision's position inside its expert's buffer is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionAlgorithm {
    /// Cumulative sum of the one-hot expert mask along the fill order (Mesh TF):
    /// O(decisions · num_experts). Used by the einsum oracle.
    Cumsum,
    /// Sort decisions by `(expert, fill rank)` and subtract each expert's first offset:
    /// O(n log n + num_experts), flat in the expert count. Used by the fast path. Gives exactly
    /// the positions of [`PositionAlgorithm::Cumsum`].
    Sort,
}

/// The token-major decisions of token-choice routing: decision `t · k + j` is token `t`'s
/// `j`-th choice (`j = 0` its highest-scoring expert).
#[derive(Debug, Clone)]
pub struct Assignments {
    /// Choices per token.
    pub k: usize,
    /// Chosen expert, `[num_tokens · k]`.
    pub expert: Tensor<1, Int>,
    /// Position among the decisions of the group for the same expert, in fill order,
    /// `[num_tokens · k]`. Kept iff `position < capacity`.
    pub position: Tensor<1, Int>,
    /// Slot of a kept decision; dropped ones point at the trash row `E · G · C`,
    /// `[num_tokens · k]`.
    pub slot: Tensor<1, Int>,
    /// Whether the decision fits, `[num_tokens · k]`.
    pub keep: Tensor<1, Bool>,
    /// Gate of the decision (router probability, renormalised over the token's k choices if
    /// the policy says so); differentiable, `[num_tokens · k]`.
    pub gate: Tensor<1>,
}

/// Everything dispatch, combine, losses and statistics need to know about one routing call.
#[derive(Debug, Clone)]
pub struct DispatchPlan {
    /// Routing groups.
    pub num_groups: usize,
    /// Tokens per group.
    pub group_size: usize,
    /// Experts the router chose among.
    pub num_experts: usize,
    /// Slots per expert per group.
    pub capacity: usize,
    /// Token-choice decisions (`None` for expert choice).
    pub assignments: Option<Assignments>,
    /// Expert choice: token in each slot (`[E · G · C]`, all slots filled) and its gate
    /// (differentiable). `None` for token choice, whose slot-major view is derived on demand
    /// ([`DispatchPlan::slot_major`]).
    pub slots: Option<(Tensor<1, Int>, Tensor<1>)>,
    /// Routing decisions per expert before capacity, all choices, `[G, E]`.
    pub counts: Tensor<2>,
    /// First choices per expert, `[G, E]` (equal to `counts` for top-1, except under
    /// Sinkhorn selection in training, where first choices are the router's own).
    pub first_choice_counts: Tensor<2>,
    /// Each token's first-choice expert (expert choice: its highest-probability expert;
    /// Sinkhorn selection in training: the router's own choice before balancing, which the
    /// balance loss counts), `[num_tokens]`.
    pub first_choice: Tensor<1, Int>,
    /// Decisions made: `num_tokens · k`, or the `E · G · C` slots of expert choice.
    pub decisions: usize,
    /// Decisions dropped by capacity (expert choice: tokens no expert took), `[1]`.
    pub dropped: Tensor<1>,
    /// Decisions each expert processed, `[E]`.
    pub kept_per_expert: Tensor<1>,
    /// Sinkhorn-balanced selection's per-expert shift of the log-probabilities, mean over the
    /// groups, `[num_experts]` (`None` when the plan chose by the scores as given; see
    /// [`crate::router::sinkhorn_selection`]).
    pub selection_shift: Option<Tensor<1>>,
}

impl DispatchPlan {
    /// Rows of the expert buffer (without the trash row): `E · G · C`.
    pub fn buffer_rows(&self) -> usize {
        self.num_experts * self.num_groups * self.capacity
    }

    /// Tokens routed in this plan.
    pub fn num_tokens(&self) -> usize {
        self.num_groups * self.group_size
    }

    /// The slot-major view: the token in each slot (`num_tokens` for an empty slot), its gate
    /// (0 for an empty slot, differentiable) and whether the slot is filled; `[E · G · C]`
    /// each.
    pub fn slot_major(&self) -> (Tensor<1, Int>, Tensor<1>, Tensor<1, Bool>) {
        if let Some((token, gate)) = &self.slots {
            let valid = token.clone().lower_elem(self.num_tokens() as i64);
            return (token.clone(), gate.clone(), valid);
        }
        let a = self
            .assignments
            .as_ref()
            .expect("a plan has assignments or slots");
        let rows = self.buffer_rows();
        let n = a.expert.dims()[0];
        let device = a.expert.device();
        // Token id + 1 into each kept decision's slot (slots of kept decisions are unique;
        // dropped ones all land in the trash row, which is cut off).
        let token_plus_one = Tensor::<1, Int>::arange(0..n as i64, &device)
            .div_scalar(a.k as i64)
            .add_scalar(1); // [n]
        let raw = Tensor::<1, Int>::zeros([rows + 1], &device)
            .scatter(0, a.slot.clone(), token_plus_one, IndexingUpdateOp::Add)
            .narrow(0, 0, rows)
            .sub_scalar(1); // [rows]; -1 = empty
        let valid = raw.clone().greater_equal_elem(0);
        let token = raw.mask_fill(valid.clone().bool_not(), self.num_tokens() as i64);
        let gate = Tensor::<1>::zeros([rows + 1], &device)
            .scatter(
                0,
                a.slot.clone(),
                a.gate.clone().mask_fill(a.keep.clone().bool_not(), 0.0),
                IndexingUpdateOp::Add,
            )
            .narrow(0, 0, rows); // [rows]
        (token, gate, valid)
    }
}

/// Plans token-choice routing of `num_groups` groups of equal size (the router output holds
/// `num_groups · group_size` tokens, group by group). Each token picks the `k` experts with
/// the highest selection scores. Decisions claim slots in rank order: with `token_major`
/// token by token, each token's choices best first (causal); otherwise all first choices of
/// the group in token order, then all second choices, … (GShard). With
/// [`OverflowPolicy::Probability`] they claim slots by decreasing gate instead, equal gates in
/// rank order.
pub fn plan_token_choice(
    route: &RouterOutput,
    policy: TokenChoice,
    token_major: bool,
    num_groups: usize,
    capacity: usize,
    overflow: OverflowPolicy,
    algorithm: PositionAlgorithm,
) -> DispatchPlan {
    let [num_tokens, num_experts] = route.probs.dims();
    let group_size = num_tokens / num_groups;
    let k = policy.routed_per_token;
    let device = route.probs.device();
    let (expert, mut gate) = if k == 1 {
        let (_, index) = route.selection.clone().max_dim_with_indices(1); // [num_tokens, 1]
        (index.clone(), route.probs.clone().gather(1, index)) // [num_tokens, 1] each
    } else {
        let (_, index) = route.selection.clone().topk_with_indices(k, 1); // [num_tokens, k]
        (index.clone(), route.probs.clone().gather(1, index)) // [num_tokens, k] each
    };
    if policy.renormalize && k > 1 {
        gate = gate.clone() / gate.sum_dim(1); // [num_tokens, k]
    }
    let counts_of = |index: Tensor<2, Int>| {
        let n = index.dims()[1];
        Tensor::<2, Int>::zeros([num_groups, num_experts], &device).scatter(
            1,
            index,
            Tensor::ones([num_groups, n], &device),
            IndexingUpdateOp::Add,
        ) // [num_groups, num_experts]
    };
    // Decisions in rank order within each group: rank s·k + j (token-major) or j·S + s
    // (choice-major) is token s's j-th choice. [num_groups, k · group_size] ↔ [num_tokens, k].
    let to_rank = |t: Tensor<2, Int>| -> Tensor<2, Int> {
        let grouped = t.reshape([num_groups, group_size, k]);
        if token_major || k == 1 {
            grouped.reshape([num_groups, k * group_size])
        } else {
            grouped
                .swap_dims(1, 2)
                .reshape([num_groups, k * group_size])
        }
    };
    let from_rank = |t: Tensor<2, Int>| -> Tensor<1, Int> {
        if token_major || k == 1 {
            t.reshape([num_tokens * k])
        } else {
            t.reshape([num_groups, k, group_size])
                .swap_dims(1, 2)
                .reshape([num_tokens * k])
        }
    };
    let by_rank = to_rank(expert.clone()); // [num_groups, k · group_size]
    let counts = counts_of(by_rank.clone());
    let first_choice = expert.clone().narrow(1, 0, 1).reshape([num_tokens]); // [num_tokens]
    let first_choice_counts = if k == 1 {
        counts.clone()
    } else {
        counts_of(first_choice.clone().reshape([num_groups, group_size]))
    };
    let order = match overflow {
        OverflowPolicy::Position => None,
        OverflowPolicy::Probability => {
            let grouped = gate.clone().detach().reshape([num_groups, group_size, k]);
            let gate_by_rank = if token_major || k == 1 {
                grouped.reshape([num_groups, k * group_size])
            } else {
                grouped
                    .swap_dims(1, 2)
                    .reshape([num_groups, k * group_size])
            };
            Some(stable_descending_order(gate_by_rank))
        }
    };
    let position_by_rank = match algorithm {
        PositionAlgorithm::Cumsum => positions_by_cumsum(by_rank, order, num_experts),
        PositionAlgorithm::Sort => positions_by_sort(by_rank, order, counts.clone()),
    }; // [num_groups, k · group_size]
    let position = from_rank(position_by_rank); // token-major
    let expert = expert.reshape([num_tokens * k]);
    let keep = position.clone().lower_elem(capacity as i64); // [num_tokens · k]
    let group = Tensor::<1, Int>::arange(0..(num_tokens * k) as i64, &device)
        .div_scalar((group_size * k) as i64); // [num_tokens · k]
    let rows = (num_experts * num_groups * capacity) as i64;
    let slot = ((expert.clone() * num_groups as i64 + group) * capacity as i64 + position.clone())
        .mask_fill(keep.clone().bool_not(), rows); // [num_tokens · k]
    let kept_counts = counts.clone().clamp_max(capacity as i64); // [num_groups, num_experts]
    let kept_per_expert = kept_counts.sum_dim(0).reshape([num_experts]).float();
    let decisions = num_tokens * k;
    let dropped = kept_per_expert
        .clone()
        .sum()
        .neg()
        .add_scalar(decisions as f64); // [1]
    DispatchPlan {
        num_groups,
        group_size,
        num_experts,
        capacity,
        assignments: Some(Assignments {
            k,
            expert,
            position,
            slot,
            keep,
            gate: gate.reshape([num_tokens * k]),
        }),
        slots: None,
        counts: counts.float(),
        first_choice_counts: first_choice_counts.float(),
        first_choice,
        decisions,
        dropped,
        kept_per_expert,
        selection_shift: None,
    }
}

/// Plans expert-choice routing (Zhou et al. 2022): in each group every expert takes the
/// `capacity` tokens with the highest router probability for it; a token may be taken by
/// several experts or by none. Gates are those probabilities.
pub fn plan_expert_choice(
    route: &RouterOutput,
    num_groups: usize,
    capacity: usize,
) -> DispatchPlan {
    let [num_tokens, num_experts] = route.probs.dims();
    let group_size = num_tokens / num_groups;
    let device = route.probs.device();
    let by_expert = route
        .probs
        .clone()
        .reshape([num_groups, group_size, num_experts])
        .swap_dims(1, 2); // [G, E, S]
    let (_, local) = by_expert.clone().detach().topk_with_indices(capacity, 2); // [G, E, C]
    let gate = by_expert.gather(2, local.clone()); // [G, E, C], differentiable
    let offset = Tensor::<1, Int>::arange(0..num_groups as i64, &device)
        .mul_scalar(group_size as i64)
        .reshape([num_groups, 1, 1]); // [G, 1, 1]
    let token = (local + offset)
        .swap_dims(0, 1)
        .reshape([num_experts * num_groups * capacity]); // [E·G·C]
    let gate = gate
        .swap_dims(0, 1)
        .reshape([num_experts * num_groups * capacity]);
    let taken = Tensor::<1>::zeros([num_tokens], &device).scatter(
        0,
        token.clone(),
        Tensor::ones([num_experts * num_groups * capacity], &device),
        IndexingUpdateOp::Add,
    ); // [num_tokens]
    let dropped = taken.equal_elem(0.0).float().sum(); // [1] tokens no expert took
    let (_, first) = route.probs.clone().detach().max_dim_with_indices(1); // [num_tokens, 1]
    let first_choice = first.reshape([num_tokens]);
    let full = Tensor::<2>::full([num_groups, num_experts], capacity as f64, &device);
    let first_choice_counts = Tensor::<2, Int>::zeros([num_groups, num_experts], &device)
        .scatter(
            1,
            first_choice.clone().reshape([num_groups, group_size]),
            Tensor::ones([num_groups, group_size], &device),
            IndexingUpdateOp::Add,
        )
        .float();
    DispatchPlan {
        num_groups,
        group_size,
        num_experts,
        capacity,
        assignments: None,
        slots: Some((token, gate)),
        counts: full.clone(),
        first_choice_counts,
        first_choice,
        decisions: num_tokens,
        dropped,
        kept_per_expert: full.sum_dim(0).reshape([num_experts]),
        selection_shift: None,
    }
}

/// Per row, the permutation that orders `values` decreasingly, equal values in increasing
/// index order — a stable order whatever the backend's sort does with ties.
///
/// # Shapes
/// - `values`: `[rows, n]` → `[rows, n]` (the index at each rank)
pub fn stable_descending_order(values: Tensor<2>) -> Tensor<2, Int> {
    let [rows, n] = values.dims();
    let device = values.device();
    let (sorted, index) = values.sort_descending_with_indices(1); // [rows, n] each
                                                                  // Runs of equal values get one id each, increasing along the sorted order.
    let starts = if n > 1 {
        let change = sorted
            .clone()
            .narrow(1, 1, n - 1)
            .not_equal(sorted.narrow(1, 0, n - 1))
            .int(); // [rows, n - 1]
        Tensor::cat(vec![Tensor::zeros([rows, 1], &device), change], 1)
    } else {
        Tensor::zeros([rows, 1], &device)
    }; // [rows, n]
    let run = starts.cumsum(1); // [rows, n]
    let key = run * n as i64 + index; // unique: ascending = by run, then by index
    key.sort(1).remainder_scalar(n as i64)
}

/// `[num_groups, n]` expert ids → `[num_groups, n, num_experts]` one-hot, on the device.
pub(crate) fn one_hot(expert: Tensor<2, Int>, num_experts: usize) -> Tensor<3, Int> {
    let [num_groups, n] = expert.dims();
    let experts = Tensor::<1, Int>::arange(0..num_experts as i64, &expert.device())
        .reshape([1, 1, num_experts])
        .expand([num_groups, n, num_experts]);
    expert
        .unsqueeze_dim::<3>(2)
        .expand([num_groups, n, num_experts])
        .equal(experts)
        .int()
}

/// `arange(n)` repeated for every group, `[num_groups, n]`.
fn ranks(num_groups: usize, n: usize, device: &Device) -> Tensor<2, Int> {
    Tensor::<1, Int>::arange(0..n as i64, device)
        .unsqueeze_dim::<2>(0)
        .repeat_dim(0, num_groups)
}

/// Inverse of a per-group permutation: `values` are in fill order, the result in rank order.
fn unpermute(values: Tensor<2, Int>, order: Tensor<2, Int>) -> Tensor<2, Int> {
    Tensor::zeros(values.dims(), &values.device()).scatter(1, order, values, IndexingUpdateOp::Add)
}

/// Position in expert = (cumulative count of the decision's expert up to and including it,
/// in fill order) − 1 (Mesh TF `cumsum(mask) * mask`). `order[g, j]` is the rank that fills
/// `j`-th (`None`: rank order).
pub fn positions_by_cumsum(
    expert: Tensor<2, Int>,
    order: Option<Tensor<2, Int>>,
    num_experts: usize,
) -> Tensor<2, Int> {
    let in_fill_order = match &order {
        Some(order) => expert.gather(1, order.clone()),
        None => expert,
    }; // [num_groups, n]
    let mask = one_hot(in_fill_order, num_experts); // [num_groups, n, num_experts]
    let position = (mask.clone().cumsum(1) * mask)
        .sum_dim(2)
        .squeeze_dim::<2>(2)
        - 1; // [num_groups, n]
    match order {
        Some(order) => unpermute(position, order),
        None => position,
    }
}

/// Position in expert by sorting: with `key = expert · n + fill_rank` (unique within a
/// group), a decision's position is its index in key order minus the number of decisions
/// for a lower-numbered expert.
pub fn positions_by_sort(
    expert: Tensor<2, Int>,
    order: Option<Tensor<2, Int>>,
    counts: Tensor<2, Int>,
) -> Tensor<2, Int> {
    let [num_groups, n] = expert.dims();
    let device = expert.device();
    let ranks = ranks(num_groups, n, &device); // [num_groups, n]
    let fill_rank = match order {
        Some(order) => unpermute(ranks.clone(), order),
        None => ranks.clone(),
    }; // [num_groups, n]
    let key = expert * n as i64 + fill_rank; // [num_groups, n]
    let (sorted_key, by_key) = key.sort_with_indices(1); // [num_groups, n] each
    let sorted_expert = sorted_key.div_scalar(n as i64); // [num_groups, n]
    let first_of_expert = counts.clone().cumsum(1) - counts; // [num_groups, num_experts]
    let position_sorted = ranks - first_of_expert.gather(1, sorted_expert); // [num_groups, n]
    unpermute(position_sorted, by_key)
}
