//! Dispatch and combine: moving tokens into expert buffers and back, as a [`DispatchPlan`]
//! says. Two implementations consume the same plan:
//! - **fast** ([`dispatch_fast`], [`combine_fast`]): rows copied by index into an
//!   `[num_experts, num_groups · capacity, d_model]` buffer and back; data movement is
//!   O(decisions · d_model) whatever the expert count. Token choice moves rows token-major
//!   (each decision owns one slot), expert choice slot-major (each slot names its token).
//! - **einsum** ([`dispatch_einsum`], [`combine_einsum`]): the Mesh-TF one-hot formulation, a
//!   `[num_groups, group_size, num_experts · capacity]` dispatch tensor built from the
//!   slot-major view and contracted with matmuls. O(num_tokens · num_experts · capacity ·
//!   d_model): the reference oracle.

use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor};

use crate::plan::DispatchPlan;

/// Which indexing ops move token rows in [`dispatch_fast`] and [`combine_fast`]. Both give
/// identical results and gradients (`select_assign`'s backward is `select` and vice versa;
/// `scatter`'s is `gather`); their speed differs by backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowIndexing {
    /// `select_assign` / `select` along dim 0 with a `[rows]` index: fastest on the CPU
    /// backends (flex, 16384 × 512 rows: select_assign 7.9 ms vs scatter 22.8 ms).
    Select,
    /// `scatter` / `gather` along dim 0 with the index expanded to `[rows, d_model]`:
    /// fastest on GPU backends (wgpu on an H100: scatter 0.19 ms vs select_assign 9.1 ms).
    ScatterGather,
}

impl RowIndexing {
    /// The faster choice for `device`: [`RowIndexing::Select`] on the CPU backends (flex,
    /// ndarray), [`RowIndexing::ScatterGather`] elsewhere (cubecl GPU runtimes).
    pub fn for_device(device: &Device) -> Self {
        if crate::device::is_host(device) {
            RowIndexing::Select
        } else {
            RowIndexing::ScatterGather
        }
    }

    /// `rows[index]`, `[n, d]` from `[m, d]` and `[n]`.
    fn gather_rows(self, rows: Tensor<2>, index: Tensor<1, Int>) -> Tensor<2> {
        match self {
            RowIndexing::Select => rows.select(0, index),
            RowIndexing::ScatterGather => {
                let [n] = index.dims();
                let [_, d] = rows.dims();
                rows.gather(0, index.unsqueeze_dim::<2>(1).expand([n, d]))
            }
        }
    }

    /// `base[index[i]] += values[i]`, `[m, d]`.
    fn add_rows(self, base: Tensor<2>, index: Tensor<1, Int>, values: Tensor<2>) -> Tensor<2> {
        match self {
            RowIndexing::Select => base.select_assign(0, index, values, IndexingUpdateOp::Add),
            RowIndexing::ScatterGather => {
                let [n, d] = values.dims();
                let index = index.unsqueeze_dim::<2>(1).expand([n, d]);
                base.scatter(0, index, values, IndexingUpdateOp::Add)
            }
        }
    }
}

/// Copies each kept decision's token into its slot; empty slots are zero.
///
/// # Shapes
/// - `tokens`: `[num_tokens, d_model]`
/// - output: `[num_experts, num_groups · capacity, d_model]`
pub fn dispatch_fast(tokens: Tensor<2>, plan: &DispatchPlan, indexing: RowIndexing) -> Tensor<3> {
    let [num_tokens, d_model] = tokens.dims();
    let rows = plan.buffer_rows();
    let buffer = match (&plan.assignments, &plan.slots) {
        (Some(a), _) => {
            let source = if a.k == 1 {
                tokens
            } else {
                tokens
                    .unsqueeze_dim::<3>(1)
                    .expand([num_tokens, a.k, d_model])
                    .reshape([num_tokens * a.k, d_model]) // [num_tokens · k, d_model]
            };
            // Slots of kept decisions are unique, so `Add` into zeros is a plain copy; dropped
            // decisions all land in the trash row `rows`, which is cut off.
            let zeros = Tensor::<2>::zeros([rows + 1, d_model], &source.device());
            indexing
                .add_rows(zeros, a.slot.clone(), source)
                .narrow(0, 0, rows) // [rows, d_model]
        }
        (None, Some((token, _))) => indexing.gather_rows(tokens, token.clone()), // [rows, d_model]
        (None, None) => unreachable!("a plan has assignments or slots"),
    };
    buffer.reshape([plan.num_experts, plan.num_groups * plan.capacity, d_model])
}

/// Sums each token's expert outputs, each scaled by its gate; a token whose decisions were
/// all dropped gets exactly zero (its rows are masked, never multiplied, so a non-finite
/// value elsewhere in the buffer cannot reach it).
///
/// # Shapes
/// - `expert_out`: `[num_experts, num_groups · capacity, d_model]`
/// - output: `[num_tokens, d_model]`
pub fn combine_fast(
    expert_out: Tensor<3>,
    plan: &DispatchPlan,
    indexing: RowIndexing,
) -> Tensor<2> {
    let [_, _, d_model] = expert_out.dims();
    let rows = plan.buffer_rows();
    let num_tokens = plan.num_tokens();
    let flat = expert_out.reshape([rows, d_model]); // [rows, d_model]
    match (&plan.assignments, &plan.slots) {
        (Some(a), _) => {
            let n = num_tokens * a.k;
            // Dropped decisions read a valid row (the last), then are masked to zero.
            let slot = a.slot.clone().clamp_max(rows as i64 - 1); // [n]
            let dropped = a
                .keep
                .clone()
                .bool_not()
                .unsqueeze_dim::<2>(1)
                .expand([n, d_model]);
            let gathered = indexing.gather_rows(flat, slot).mask_fill(dropped, 0.0); // [n, d_model]
            let weighted = gathered * a.gate.clone().unsqueeze_dim::<2>(1); // [n, d_model]
            if a.k == 1 {
                weighted
            } else {
                weighted
                    .reshape([num_tokens, a.k, d_model])
                    .sum_dim(1)
                    .reshape([num_tokens, d_model])
            }
        }
        (None, Some((token, gate))) => {
            let weighted = flat * gate.clone().unsqueeze_dim::<2>(1); // [rows, d_model]
            let zeros = Tensor::<2>::zeros([num_tokens, d_model], &weighted.device());
            indexing.add_rows(zeros, token.clone(), weighted)
        }
        (None, None) => unreachable!("a plan has assignments or slots"),
    }
}

/// The one-hot dispatch tensor, `[num_groups, group_size, num_experts · capacity]`: entry
/// `(g, s, e·C + c)` is 1 iff token `s` of group `g` sits in slot `c` of expert `e`. Built
/// from the slot-major view, independently of the fast path's token-major rows.
pub fn dispatch_mask(plan: &DispatchPlan) -> Tensor<3> {
    let (token, _, _) = plan.slot_major();
    let DispatchPlan {
        num_groups: g,
        group_size: s,
        num_experts: e,
        capacity: c,
        ..
    } = *plan;
    let device = token.device();
    let offset = Tensor::<1, Int>::arange(0..g as i64, &device)
        .mul_scalar(s as i64)
        .reshape([1, g, 1]); // [1, G, 1]
                             // Index of the slot's token within its group; an empty slot (token = G·S) matches none.
    let local = token.reshape([e, g, c]) - offset; // [E, G, C]
    let grid = [e, g, c, s];
    let positions = Tensor::<1, Int>::arange(0..s as i64, &device)
        .reshape([1, 1, 1, s])
        .expand(grid); // [E, G, C, S]
    local
        .unsqueeze_dim::<4>(3)
        .expand(grid)
        .equal(positions)
        .float() // [E, G, C, S]
        .permute([1, 3, 0, 2]) // [G, S, E, C]
        .reshape([g, s, e * c])
}

/// One-hot dispatch: `expert_in[e, g·C + c] = Σ_s D[g, s, e·C + c] · x[g, s]`.
///
/// # Shapes
/// - `tokens`: `[num_tokens, d_model]`, `mask`: [`dispatch_mask`]
/// - output: `[num_experts, num_groups · capacity, d_model]`
pub fn dispatch_einsum(tokens: Tensor<2>, plan: &DispatchPlan, mask: Tensor<3>) -> Tensor<3> {
    let DispatchPlan {
        num_groups: g,
        group_size: s,
        num_experts: e,
        capacity: c,
        ..
    } = *plan;
    let [_, d_model] = tokens.dims();
    mask.swap_dims(1, 2) // [G, E·C, S]
        .matmul(tokens.reshape([g, s, d_model])) // [G, E·C, d_model]
        .reshape([g, e, c, d_model])
        .swap_dims(0, 1) // [E, G, C, d_model]
        .reshape([e, g * c, d_model])
}

/// One-hot combine: `y[g, s] = Σ_{e,c} D[g, s, e·C + c] · gate[e, g, c] · expert_out[e, g·C + c]`.
///
/// # Shapes
/// - `expert_out`: `[num_experts, num_groups · capacity, d_model]`, `mask`: [`dispatch_mask`]
/// - output: `[num_tokens, d_model]`
pub fn combine_einsum(expert_out: Tensor<3>, plan: &DispatchPlan, mask: Tensor<3>) -> Tensor<2> {
    let DispatchPlan {
        num_groups: g,
        group_size: s,
        num_experts: e,
        capacity: c,
        ..
    } = *plan;
    let [_, _, d_model] = expert_out.dims();
    let (_, gate, _) = plan.slot_major(); // [E·G·C]
    let gate = gate
        .reshape([e, g, c])
        .swap_dims(0, 1)
        .reshape([g, 1, e * c]); // [G, 1, E·C]
    let combine = mask * gate; // [G, S, E·C]
    let expert_out = expert_out
        .reshape([e, g, c, d_model])
        .swap_dims(0, 1) // [G, E, C, d_model]
        .reshape([g, e * c, d_model]);
    combine
        .matmul(expert_out) // [G, S, d_model]
        .reshape([g * s, d_model])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_backends_use_select_assign() {
        let device = crate::test_device();
        assert_eq!(
            RowIndexing::for_device(&device),
            RowIndexing::Select,
            "{device:?}"
        );
        assert_eq!(
            RowIndexing::for_device(&device.autodiff()),
            RowIndexing::Select
        );
    }
}
