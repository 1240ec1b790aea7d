//! Mean next-token cross-entropy for burn-flex as two row-parallel CPU loops: the forward's
//! logsumexp and the backward's `softmax − onehot` each read the `[tokens, vocab]` logits
//! once, with the vectorising `exp` of `flex_math.rs`.
//!
//! Built from flex's ops (the generic path in `fused.rs`), the forward is five full-size passes
//! (max, subtract, exp, sum, gather) and the backward four (softmax, gather, scatter, scale),
//! each allocating a `[tokens, vocab]` result, with libm's scalar `expf`; at the `small`
//! preset's 4096-entry vocabulary that was most of the head's time. Same functions (summation
//! order differs: equal to float rounding, `tests/fused_ops.rs`).

use std::borrow::Cow;

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Shape, TensorData};
use rayon::prelude::*;

use crate::flex_math::{contiguous_f32, exp_nonpositive, exp_sum, int_values, row_max};

/// `[tokens, vocab]` f32 logits as a contiguous slice, with their shape; `None` for other
/// dtypes or ranks.
fn logits_rows(logits: &FlexTensor) -> Option<(Cow<'_, [f32]>, usize, usize)> {
    let shape = logits.layout().shape();
    if logits.dtype() != DType::F32 || shape.num_dims() != 2 {
        return None;
    }
    Some((contiguous_f32(logits), shape[0], shape[1]))
}

/// Target ids of a `[tokens, 1]` int tensor; `None` for an unknown int dtype or an id outside
/// `0..vocab` (the generic path then reports it).
fn target_ids(targets: &FlexTensor, n: usize, vocab: usize) -> Option<Vec<usize>> {
    let ids = int_values(targets)?;
    (ids.len() == n && ids.iter().all(|&x| (0..vocab as i64).contains(&x)))
        .then(|| ids.into_iter().map(|x| x as usize).collect())
}

/// `log Σ exp(row)`.
fn logsumexp(row: &[f32]) -> f32 {
    let max = row_max(row);
    max + exp_sum(row, max).ln()
}

/// `mean_n (logsumexp(x_n) − x_n[t_n])` as a `[1]` tensor; `None` when the inputs are not
/// ones this kernel takes (the caller falls back to the generic path).
///
/// # Shapes
/// - `logits`: `[tokens, vocab]`, `targets`: `[tokens, 1]` → `[1]`
pub(crate) fn forward(logits: &FlexTensor, targets: &FlexTensor) -> Option<FlexTensor> {
    let (x, n, vocab) = logits_rows(logits)?;
    let ids = target_ids(targets, n, vocab)?;
    let mut nll = vec![0f32; n];
    nll.par_iter_mut()
        .zip(x.par_chunks(vocab))
        .zip(ids.par_iter())
        .for_each(|((out, row), &t)| *out = logsumexp(row) - row[t]);
    // Summed in a fixed order, so the loss does not depend on how rayon split the rows.
    let mean = nll.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    Some(FlexTensor::from_data(TensorData::new(
        vec![mean as f32],
        Shape::new([1]),
    )))
}

/// `dx = (softmax(x) − onehot(t)) · g / N` for the `[1]` output gradient `grad`; `None` as for
/// [`forward`].
pub(crate) fn backward(
    logits: &FlexTensor,
    targets: &FlexTensor,
    grad: &FlexTensor,
) -> Option<FlexTensor> {
    let (x, n, vocab) = logits_rows(logits)?;
    let ids = target_ids(targets, n, vocab)?;
    if grad.dtype() != DType::F32 {
        return None;
    }
    let g = grad.to_contiguous().as_slice::<f32>()?.first().copied()? / n as f32;
    let mut dx = vec![0f32; n * vocab];
    dx.par_chunks_mut(vocab)
        .zip(x.par_chunks(vocab))
        .zip(ids.par_iter())
        .for_each(|((out, row), &t)| {
            let lse = logsumexp(row);
            for (o, &v) in out.iter_mut().zip(row) {
                *o = exp_nonpositive(v - lse) * g;
            }
            out[t] -= g;
        });
    Some(FlexTensor::from_data(TensorData::new(
        dx,
        Shape::new([n, vocab]),
    )))
}
